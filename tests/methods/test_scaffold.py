"""SCAFFOLD: with zero control variates its first round is FedAvg with uniform weights; after a round
every sampled client's c_i is option II's (c_i - c + (x - y)/(K lr)) and the server's c moves by the
mean of the dc_i over all N clients; a local step is corrected by exactly c - c_i. Unequal client
sizes, so K (steps) differs between clients."""
import numpy as np
import torch

from methods.scaffold import flat
from tests.conftest import make_federation, tiny_data
from tests.methods.side_by_side import assert_same_global, train_both

SIZES = [30, 12, 7, 21]


def fed(method="scaffold", **kw):
    return make_federation(method, rounds=3, join_ratio=0.5, data=tiny_data(train_sizes=SIZES), **kw)


def test_zero_control_variates_give_fedavg_with_uniform_weights():
    a, b = fed(), fed("fedavg", hp_overrides={"weighting": "uniform"})
    train_both(a, b, 1)
    for k in b.global_state:
        assert torch.allclose(a.global_state[k], b.global_state[k], atol=1e-6), k


def test_control_variates_follow_option_two_and_the_server_averages_over_all_clients():
    f = fed()
    f.train_round(0)                                  # c_i and c now non-zero for round 0's clients
    x = flat([t.clone() for t in f.global_state.values()])
    c_old = f.server.state["c"].clone()
    ci_old = f.tensors.store.tensors["scaffold_ci"].clone()
    sampled = f.schedule[1]
    steps = {k: -(-SIZES[k] // f.training.batch_size) for k in sampled}   # batches of one epoch
    steps = {k: n - (SIZES[k] % f.training.batch_size == 1) for k, n in steps.items()}   # a lone sample joins
    trained = {}
    real = f.method.local_update

    def spy(cohort):
        out = real(cohort)
        for row, k in enumerate(cohort.ids):
            trained[int(k)] = flat([t[row].clone() for t in cohort.model.tensors(params_only=True).values()])
        return out

    f.method.local_update = spy
    f.train_round(1)
    ci = f.tensors.store.tensors["scaffold_ci"]
    for k in sampled:
        want = ci_old[k] - c_old + (x - trained[k]) / (steps[k] * f.training.lr)
        assert torch.allclose(ci[k], want, atol=1e-5), k
    others = np.setdiff1d(np.arange(4), sampled)
    assert torch.equal(ci[others], ci_old[others])    # clients not sampled keep theirs
    dc = sum(ci[k] - ci_old[k] for k in sampled)
    assert torch.allclose(f.server.state["c"], c_old + dc / 4, atol=1e-6)   # 1/N, not 1/|S|


def test_a_local_step_is_corrected_by_c_minus_ci():
    """One client, one batch: y = x - lr (grad + c - c_i), against FedAvg's plain step."""
    data = tiny_data(train_sizes=[5, 5, 5, 5])
    a = make_federation("scaffold", rounds=2, join_ratio=1.0, data=data, batch_size=5)
    b = make_federation("fedavg", rounds=2, join_ratio=1.0, data=data, batch_size=5)
    size = a.server.state["c"].numel()
    c, ci = torch.randn(size), torch.randn(size)
    cohort_a, cohort_b = a.cohort([0], 0, "train"), b.cohort([0], 0, "train")
    cohort_a.state["scaffold_c"] = c.view(1, -1).clone()
    cohort_a.state["scaffold_ci"].copy_(ci.view(1, -1))
    a.method.local_update(cohort_a)
    b.method.local_update(cohort_b)
    ya = flat(list(cohort_a.model.tensors(params_only=True).values()), rows=True)[0]
    yb = flat(list(cohort_b.model.tensors(params_only=True).values()), rows=True)[0]
    assert torch.allclose(ya, yb - a.training.lr * (c - ci), atol=1e-6)
