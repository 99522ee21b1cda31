"""Harness mechanics: sampling stream, FedAvg aggregation, equivalence to centralized SGD,
personal state handling, local training, byte counting."""
import numpy as np
import torch

from fedbench.data.types import ClientData
from fedbench.federation import sampling_schedule
from tests.looking import batches_xy
from tests.conftest import make_federation, tiny_data


def test_sampling_stream_is_fixed_per_seed_and_prefix_stable():
    a = sampling_schedule(3, 10, 50, 0.1)
    assert a.shape == (10, 5) and all(len(set(r)) == 5 for r in a)
    assert np.array_equal(a, sampling_schedule(3, 10, 50, 0.1))
    assert np.array_equal(a[:4], sampling_schedule(3, 4, 50, 0.1))  # rounds count does not shift it
    assert not np.array_equal(a, sampling_schedule(4, 10, 50, 0.1))


def test_sampling_identical_across_methods():
    assert np.array_equal(make_federation("fedavg").schedule, make_federation("fedbsd").schedule)




def test_fedavg_one_client_equals_centralized_sgd():
    data = tiny_data(num_clients=1)
    fed = make_federation("fedavg", rounds=2, data=data, local_epochs=2)
    ref = make_federation("fedavg", rounds=2, data=data, local_epochs=2)  # same init
    model = ref.model
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for t in range(2):
        fed.train_round(t)
        c = ref.cohort([0], t, "train")  # same data-order stream
        for x, y in batches_xy(c.batches(2), c.data):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
    for k, v in model.state_dict().items():
        assert torch.equal(fed.global_state[k], v), k


def test_fedavg_weighted_mean_of_sizes_1_and_3():
    data = tiny_data(num_clients=2, per_client=24)
    # client 0 gets 4 train samples, client 1 gets 12: weights 0.25 / 0.75
    data.clients[0] = ClientData(data.clients[0].train[:4], data.clients[0].val, data.clients[0].test)
    data.clients[1] = ClientData(data.clients[1].train[:12], data.clients[1].val, data.clients[1].test)
    fed = make_federation("fedavg", rounds=1, data=data)
    trained = []
    for k in range(2):
        c = fed.cohort([k], 0, "train")
        fed.method.local_update(c)
        trained.append({n: v.detach().clone() for n, v in c.model.state_dict().items()})
    fed.train_round(0)
    for n in fed.global_state:
        assert torch.allclose(fed.global_state[n], 0.25 * trained[0][n] + 0.75 * trained[1][n], atol=1e-6)


def test_local_communicates_nothing_and_keeps_models_apart():
    fed = make_federation("local", rounds=2)
    for t in range(2):
        fed.train_round(t)
    assert fed.global_state == {} and fed.bytes_up == 0 and fed.bytes_down == 0
    w = fed.tensors.store.tensors["head.0.weight"]
    assert not torch.equal(w[0], w[1])


def test_fedper_bytes_count_only_the_backbone():
    fed = make_federation("fedper", rounds=1, join_ratio=0.5)
    fed.train_round(0)
    backbone = sum(p.numel() * 4 for n, p in fed.model.named_parameters() if n.startswith("backbone."))
    assert fed.bytes_up == fed.bytes_down == 2 * backbone


def test_evaluation_leaves_state_untouched_and_covers_all_clients():
    fed = make_federation("fedbsd", rounds=1, join_ratio=0.25)
    fed.train_round(0)
    g = {k: v.clone() for k, v in fed.global_state.items()}
    s = {k: v.clone() for k, v in fed.tensors.store.tensors.items()}
    ev = fed.evaluate(0)
    assert ev["test_acc"].shape == (4,) and not np.isnan(ev["test_acc"]).any()
    assert all(torch.equal(g[k], fed.global_state[k]) for k in g)
    assert all(torch.equal(s[k], fed.tensors.store.tensors[k]) for k in s)


def test_same_seed_same_numbers():
    a, b = make_federation("fedbsd", rounds=3, join_ratio=0.5), make_federation("fedbsd", rounds=3, join_ratio=0.5)
    for t in range(3):
        assert a.train_round(t) == b.train_round(t)
    assert all(torch.equal(a.global_state[k], b.global_state[k]) for k in a.global_state)


def test_batches_cover_the_split_once_per_epoch_without_singletons():
    fed = make_federation("fedavg", batch_size=5)  # 16 train samples: 5 + 5 + 6, never a batch of 1
    c = fed.cohort([0], 0, "train")
    sizes = [len(y) for _, y in batches_xy(c.batches(2), c.data)]
    assert sizes == [5, 5, 6, 5, 5, 6]
    seen = torch.cat([x for x, _ in batches_xy(c.batches(1), c.data)])
    expect = fed.data.x[fed.data.clients[0].train]
    assert sorted(map(tuple, seen.tolist())) == sorted(map(tuple, expect.tolist()))
