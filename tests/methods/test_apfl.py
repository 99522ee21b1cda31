"""APFL: w follows FedAvg bit for bit; alpha=0 evaluates w itself; alpha=1 makes v plain local SGD;
the adaptive alpha takes the paper's gradient step <v - w, grad f(v_bar)>; v_bar mixes parameters."""
import torch
import torch.nn.functional as F
from torch.func import functional_call

from tests.looking import batches_xy
from tests.conftest import make_federation
from tests.methods.side_by_side import assert_personal_is_local, assert_same_global, train_both


def test_w_trajectory_is_bitwise_fedavg():
    a = make_federation("apfl", rounds=3, join_ratio=0.5, local_epochs=2)
    b = make_federation("fedavg", rounds=3, join_ratio=0.5, local_epochs=2, hp_overrides={"weighting": "uniform"})
    train_both(a, b, 3)
    assert_same_global(a, b)
    assert not torch.equal(a.tensors.store.tensors["alpha"], torch.full_like(a.tensors.store.tensors["alpha"], 0.5))


def test_alpha_zero_evaluates_w():
    fed = make_federation("apfl", rounds=2, hp_overrides={"alpha": 0.0, "adaptive_alpha": False})
    fed.train_round(0)
    fed.train_round(1)
    for k in range(fed.data.num_clients):
        model = fed.evaluated(k, 1).model
        assert all(torch.equal(p, fed.global_state[n]) for n, p in model.state_dict().items())
        assert any(not torch.equal(fed.tensors.store.tensors["personal_model." + n][k], fed.global_state[n]) for n in fed.global_state)


def test_alpha_one_personal_model_is_local_sgd():
    a = make_federation("apfl", rounds=3, join_ratio=0.5, hp_overrides={"alpha": 1.0, "adaptive_alpha": False})
    b = make_federation("local", rounds=3, join_ratio=0.5)
    train_both(a, b, 3)
    assert_personal_is_local(a, b, "personal_model.")


def test_evaluated_model_mixes_parameters():
    fed = make_federation("apfl", rounds=1, hp_overrides={"alpha": 0.3})
    fed.train_round(0)
    alpha = float(fed.tensors.store.tensors["alpha"][1])
    assert 0.0 <= alpha <= 1.0 and alpha != 0.3
    model = fed.evaluated(1, 0).model
    for n, p in model.state_dict().items():
        v = fed.tensors.store.tensors["personal_model." + n][1]
        assert torch.allclose(p, alpha * v + (1 - alpha) * fed.global_state[n], atol=1e-6), n


def test_adaptive_alpha_takes_one_gradient_step_per_batch():
    lr = 0.1
    fed = make_federation("apfl", rounds=1, lr=lr, batch_size=100, hp_overrides={"alpha": 0.5})  # one batch
    client = fed.cohort([0], 0, "train")
    w = {n: p[0].clone() for n, p in client.model.tensors(params_only=True).items()}
    v = {n: w[n] + 0.1 * torch.randn_like(w[n]) for n in w}  # a personal model apart from w
    for n, t in v.items():
        client.state["personal_model." + n].copy_(t)
    x, y = next(batches_xy(fed.cohort([0], 0, "train").batches(), fed.data))
    mixed = {n: (0.5 * v[n] + 0.5 * w[n]).requires_grad_() for n in w}
    g = torch.autograd.grad(F.cross_entropy(functional_call(fed.model, mixed, (x,)), y), list(mixed.values()))
    expected = 0.5 - lr * sum((gi * (v[n] - w[n])).sum() for gi, n in zip(g, w)).item()
    fed.method.local_update(client)
    assert abs(float(client.state["alpha"]) - min(max(expected, 0.0), 1.0)) < 1e-6
    for gi, n in zip(g, w):  # and v took lr * alpha * grad f(v_bar)
        assert torch.allclose(client.state["personal_model." + n], v[n] - lr * 0.5 * gi, atol=1e-6), n
