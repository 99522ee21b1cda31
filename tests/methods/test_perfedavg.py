"""Per-FedAvg: alpha=0 FO is FedAvg on the D' batches; the meta-gradient is taken at w~ and applied to
w; the HF finite-difference Hessian-vector product is the exact one to O(delta^2), and the HF step is
w - beta (I - alpha H(w)) grad f(w~) with the exact Hessian; the evaluation adaptation is one
alpha-step on train data only."""
import pytest
import torch
import torch.nn.functional as F
from torch.func import functional_call

from fedbench.federation.batches import Plan
from fedbench.data.types import FederatedData
from fedbench.toolkit.functional import hvp_fd
from tests.looking import batches_xy
from tests.conftest import make_federation, tiny_data
from tests.methods.side_by_side import assert_same_global, train_both
from tests.methods.spies import grad_at


def batches_of(client, n):
    """The client's first n minibatches of its data stream, as (x, y)."""
    return list(batches_xy(client.minibatches(n), client.data))


def test_alpha_zero_fo_is_fedavg_with_lr_beta_one_batch_per_step():
    beta, steps = 0.1, 3
    a = make_federation("perfedavg", rounds=3, join_ratio=0.5,
                        hp_overrides={"alpha": 0.0, "beta": beta, "local_steps": steps, "variant": "fo",
                                      "official": True})
    b = make_federation("fedavg", rounds=3, join_ratio=0.5, lr=beta, hp_overrides={"weighting": "uniform"})
    # FedAvg whose SGD steps use the D' batches (every second one of the same data stream)
    def every_second(c):
        plan = c.minibatches(2 * steps)
        return Plan(plan.steps[1::2], plan.counts // 2)

    b.method.local_update = lambda c: c.sgd(b.method.loss, batches=every_second(c))
    train_both(a, b, 3)
    assert_same_global(a, b)


def test_meta_gradient_is_taken_at_w_tilde_and_applied_to_w():
    alpha, beta = 0.5, 0.3
    fed = make_federation("perfedavg", rounds=1, hp_overrides={"alpha": alpha, "beta": beta, "local_steps": 1,
                                                                                 "official": True})
    model = fed.model
    w = {k: p.detach().clone() for k, p in model.named_parameters()}
    d, d_prime = batches_of(fed.cohort([0], 0, "train"), 2)
    g = grad_at(model, w, *d)
    g_tilde = grad_at(model, {k: w[k] - alpha * g[k] for k in w}, *d_prime)
    client = fed.cohort([0], 0, "train")
    fed.method.local_update(client)
    for k, p in client.model.state_dict().items():
        assert torch.allclose(p, w[k] - beta * g_tilde[k], atol=1e-6), k
        assert not torch.allclose(p, w[k] - alpha * g[k] - beta * g_tilde[k], atol=1e-4), k  # not from w~


def test_finite_difference_hvp_matches_autograd_to_second_order():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.Tanh(), torch.nn.Linear(5, 3)).double()
    x, y = torch.randn(16, 6, dtype=torch.float64), torch.randint(0, 3, (16,))
    w = dict(model.named_parameters())
    v = {k: torch.randn_like(p) for k, p in w.items()}
    grads = torch.autograd.grad(F.cross_entropy(model(x), y), list(w.values()), create_graph=True)
    exact = torch.autograd.grad(sum((g * v[k]).sum() for g, k in zip(grads, w)), list(w.values()))
    exact = torch.cat([e.flatten() for e in exact])

    class Client:  # what hvp_fd needs of a client: gradients at a point on a batch
        def grad(self, objective, at, step):
            return grad_at(model, at, x, y), None

    def error(delta):
        fd = hvp_fd(Client(), None, w, v, None, delta)
        return (torch.cat([fd[k].flatten() for k in w]) - exact).norm().item()

    assert error(1e-3) < 1e-4 * exact.norm().item()
    assert 3.5 < error(0.02) / error(0.01) < 4.5  # halving delta quarters the error: O(delta^2)


def test_hf_differs_from_fo():
    def trained(variant):
        fed = make_federation("perfedavg", rounds=1, hp_overrides={"alpha": 0.5, "beta": 0.3, "variant": variant})
        fed.train_round(0)
        return fed.global_state

    fo, hf = trained("fo"), trained("hf")
    assert any(not torch.allclose(fo[k], hf[k], atol=1e-5) for k in fo)


def test_evaluation_adapts_one_alpha_step_on_train_data_only():
    alpha = 0.5
    data = tiny_data()
    # the same federation, except every val/test sample is different
    x, y = data.x.clone(), data.y.clone()
    held = torch.cat([torch.cat([c.val, c.test]) for c in data.clients])
    x[held] = torch.randn_like(x[held]) * 10
    y[held] = (y[held] + 1) % data.num_classes
    other = FederatedData(data.name, x, y, data.num_classes, data.clients)
    adapted = []
    for d in (data, other):
        fed = make_federation("perfedavg", rounds=1, data=d, hp_overrides={"alpha": alpha})
        fed.train_round(0)
        adapted.append({k: p.clone() for k, p in fed.evaluated(2, 0).model.state_dict().items()})
    assert all(torch.equal(adapted[0][k], adapted[1][k]) for k in adapted[0])
    # exactly one step of size alpha from the global model on the first train batch of the stream
    batch = batches_of(fed.cohort([2], 0, "eval", "finetune"), 1)[0]
    g = grad_at(fed.model, dict(fed.global_state), *batch)
    for k, p in adapted[0].items():
        assert torch.allclose(p, fed.global_state[k] - alpha * g[k], atol=1e-6), k
        assert not torch.allclose(p, fed.global_state[k], atol=1e-4), k


@pytest.fixture
def float64():
    """Models and tiny data built in float64, so that the finite-difference Hessian-vector product is
    exact to ~1e-10 and a tight tolerance separates the right formula from near misses."""
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)


def hvp_exact(model, params, v, x, y):
    """H(params; x, y) v by double backward (exact)."""
    params = {k: p.detach().requires_grad_() for k, p in params.items()}
    loss = F.cross_entropy(functional_call(model, params, (x,)), y)
    grads = torch.autograd.grad(loss, list(params.values()), create_graph=True)
    return dict(zip(params, torch.autograd.grad(sum((g * v[k]).sum() for g, k in zip(grads, params)),
                                                list(params.values()))))


def test_hf_step_is_w_minus_beta_times_i_minus_alpha_hessian_at_w_times_grad_at_w_tilde(float64):
    """One HF meta-step on batches D, D', D'' by hand: w <- w - beta (I - alpha H(w; D'')) grad f(w~; D'),
    w~ = w - alpha grad f(w; D), with the exact Hessian. A flipped sign of the Hessian term, or the
    Hessian taken at w~ instead of w, misses by far more than the tolerance (asserted too)."""
    alpha, beta, delta = 0.5, 0.3, 1e-5
    fed = make_federation("perfedavg", rounds=1, hp_overrides={"variant": "hf", "alpha": alpha, "beta": beta,
                                                               "delta": delta, "local_steps": 1, "official": True})
    model = fed.model
    w = {k: p.detach().clone() for k, p in model.named_parameters()}
    assert all(p.dtype == torch.float64 for p in w.values())
    d, d_prime, d_second = batches_of(fed.cohort([0], 0, "train"), 3)
    g = grad_at(model, w, *d)
    w_tilde = {k: w[k] - alpha * g[k] for k in w}
    g_tilde = grad_at(model, w_tilde, *d_prime)

    def meta_step(sign, at):
        hg = hvp_exact(model, at, g_tilde, *d_second)
        return {k: w[k] - beta * (g_tilde[k] - sign * alpha * hg[k]) for k in w}

    want, flipped, at_w_tilde = meta_step(1, w), meta_step(-1, w), meta_step(1, w_tilde)
    client = fed.cohort([0], 0, "train")
    fed.method.local_update(client)
    got = client.model.state_dict()
    tol = 1e-8
    assert max((got[k] - want[k]).abs().max().item() for k in w) < tol
    for near_miss in (flipped, at_w_tilde):
        assert max((near_miss[k] - want[k]).abs().max().item() for k in w) > 1e3 * tol
