"""FedALA: adaptive local aggregation runs on every client after each aggregation; the lower layers
(the backbone) become the global ones as they are, the head becomes theta + (Theta - theta) * W with
element-wise weights W kept in [0, 1]; with eta = 0 (W stays 1) the run is FedAvg's; the weights move
towards the model that fits the client's data."""
import torch

from fedbench.data.types import ClientData, FederatedData
from fedbench.engines import ENGINES
from tests.conftest import make_federation, tiny_data
from tests.methods.side_by_side import train_both

MLP = {"name": "mlp", "hidden": [16, 8]}
SIZES = [12, 30, 18, 40]


def test_backbone_becomes_global_head_is_the_weighted_mix_and_weights_stay_in_unit_interval():
    fed = make_federation("fedala", rounds=3, model=MLP, data=tiny_data(train_sizes=SIZES),
                          hp_overrides={"eta": 50.0})   # big steps: W would leave [0, 1] without the clip
    fed.train_round(0)
    fed.method.receive = (lambda real: lambda cohort: (seen.append(
        {k: v.clone() for k, v in cohort.model.tensors().items()}), real(cohort))[1])(fed.method.receive)
    seen = []
    fed.train_round(1)   # round 1's receive: every client mixes its round-1 model with the new global
    glob, store = fed.global_state, fed.tensors.store.tensors
    weights = [v for k, v in store.items() if k.startswith("ala_w.")]
    assert weights and all(((w >= 0) & (w <= 1)).all() for w in weights)
    assert any(((w > 0) & (w < 1)).any() for w in weights)  # W did move inside
    assert (store["ala_started"] == 1).all()
    for k in glob:
        if k.startswith("backbone."):
            assert torch.equal(store[k], glob[k].expand_as(store[k])), k   # lower layers: the global ones
    # the head: own + (global - own) * W, own = the model each client had before this receive
    own = {k: torch.cat([s[k] for s in seen]) for k in glob}   # engine=sequential: one cohort per client, in order
    for k in glob:
        if k.startswith("head."):
            w = store["ala_w." + k.removeprefix("head.")]
            assert torch.allclose(store[k], own[k] + (glob[k] - own[k]) * w, atol=1e-6), k


def test_eta_zero_keeps_w_at_one_and_is_fedavg():
    data = tiny_data(train_sizes=SIZES)
    ala = make_federation("fedala", rounds=3, model=MLP, data=data, hp_overrides={"eta": 0.0, "max_start_epochs": 2})
    avg = make_federation("fedavg", rounds=3, model=MLP, data=data)
    train_both(ala, avg, 3)
    for k in avg.global_state:
        torch.testing.assert_close(ala.global_state[k], avg.global_state[k], atol=1e-6, rtol=1e-5)
    assert all(torch.equal(v, torch.ones_like(v)) for k, v in ala.tensors.store.tensors.items() if k.startswith("ala_w."))


def separable(n: int = 200, dim: int = 8, classes: int = 4, seed: int = 3) -> FederatedData:
    """One client whose labels are a function of its inputs, y = argmax(A x)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n + 8, dim, generator=g)
    y = (x @ torch.randn(dim, classes, generator=g)).argmax(1)
    idx = torch.arange(n + 8)
    return FederatedData("separable", x, y, classes, [ClientData(idx[:n], idx[n:n + 4], idx[n + 4:])])


def test_weights_lean_towards_the_head_that_fits_the_client():
    """A client whose own head fits its data and whose received head is a wrong (permuted) one learns
    W < 1/2 on average (keeps its own); with the global head equal to its own, W stays at 1."""
    fed = make_federation("fedala", rounds=1, model=MLP, data=separable(), hp_overrides={"eta": 1.0})
    fed.train_round(0)
    for _ in range(30):   # a well-fitted own head
        fed.method.local_update(cohort := fed.cohort([0], 0, "train"))
        fed.tensors.write_back(cohort.ids, cohort.state)
    own = {k: v[0].clone() for k, v in fed.tensors.store.tensors.items() if k.startswith("head.")}
    good_glob = {k: v.clone() for k, v in fed.global_state.items()}

    def mean_w(glob_head: dict) -> float:
        cohort = fed.cohort([0], 1, "train", "receive")
        for k, v in own.items():
            cohort.state["model." + k][0].copy_(v)
        for k in cohort.state:
            if k.startswith("ala_"):
                cohort.state[k].fill_(1.0 if k.startswith("ala_w.") else 0.0)
        fed.tensors.global_state = good_glob | glob_head
        fed.tensors.refresh_global()
        fed.method.receive(cohort)
        return float(torch.cat([v.flatten() for k, v in cohort.state.items() if k.startswith("ala_w.")]).mean())

    permuted = {k: own[k][torch.roll(torch.arange(len(own[k])), 1)] for k in own}
    assert mean_w(permuted) < 0.5
    assert mean_w({k: v.clone() for k, v in own.items()}) >= 0.99  # global = own: nothing to choose, W stays


def test_engines_agree():
    data = tiny_data(train_sizes=[22, 7, 11, 16, 25, 13])
    seq = make_federation("fedala", rounds=3, data=data, model=MLP, hp_overrides={"max_start_epochs": 12})
    vm = make_federation("fedala", rounds=3, data=data, model=MLP, hp_overrides={"max_start_epochs": 12},
                         engine=ENGINES["vmap"]())
    train_both(seq, vm, 3)
    for k, v in seq.tensors.store.tensors.items():
        torch.testing.assert_close(vm.tensors.store.tensors[k], v, atol=1e-5, rtol=1e-4)
    for k, v in seq.global_state.items():
        torch.testing.assert_close(vm.global_state[k], v, atol=1e-5, rtol=1e-4)
