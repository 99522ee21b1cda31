"""GPFL: the conditions are rebuilt from the client's own GCE before the global one replaces it
(g = the mean of its class embeddings, p_k = their mean under its label frequencies), and are 0 before
the first aggregation; the lambda term is an unsquared Frobenius norm (its gradient has norm lambda);
the weight decay mu acts on the GCE and the CoV only; the head never leaves its client, and every
client holds the global GCE after a round."""
import torch
from torch import nn

from tests.conftest import make_federation, tiny_data
from tests.methods.spies import mean_upload, record_uploads

MLP = {"name": "mlp", "hidden": [16, 8]}
SIZES = [12, 30, 18, 40]


def _data():
    """Client 0: exactly 3 samples of each of the 4 classes; client 1: only class 2; unequal sizes."""
    data = tiny_data(train_sizes=SIZES)
    data.y[data.clients[0].train] = torch.arange(12) % 4
    data.y[data.clients[1].train] = 2
    return data


class _View:
    """What GPFL's loss reads of a client, with the conditions given."""

    def __init__(self, model, g, p):
        self.model, self.state = model, {"gpfl_g": g, "gpfl_p": p}

    def global_model(self):
        return self.model

    @staticmethod
    def batch_sum(t):
        return t.sum(0)


def test_conditions_come_from_the_clients_own_gce_before_the_global_one_replaces_it():
    fed = make_federation("gpfl", rounds=2, model=MLP, data=_data())
    own, real = [], fed.method.receive

    def spy(cohort):   # the sampled clients' GCE after training, before receive overwrites it
        own.append(cohort.model.tensors()["gce.weight"].clone())
        real(cohort)

    fed.method.receive = spy
    fed.train_round(0)
    store, glob = fed.tensors.store.tensors, fed.global_state
    before = torch.cat(own)        # engine sequential: one cohort per client, in order
    g, p = store["gpfl_g"], store["gpfl_p"]
    assert torch.allclose(g, before.mean(1), atol=1e-6)
    assert torch.allclose(p[0], g[0], atol=1e-6)                      # uniform labels: p == g
    assert torch.allclose(p[1], before[1, 2], atol=1e-6)              # one class: p == E_2 of its own GCE
    assert not torch.allclose(p[1], glob["gce.weight"][2], atol=1e-4)  # ... not of the global one
    assert all(torch.equal(store["gce.weight"][k], glob["gce.weight"]) for k in range(4))


def test_before_the_first_aggregation_both_conditions_are_zero_and_the_routes_agree():
    fed = make_federation("gpfl", rounds=1, model=MLP)
    store = fed.tensors.store.tensors
    assert not store["gpfl_g"].any() and not store["gpfl_p"].any()
    z = fed.model.backbone(fed.data.x[:5])
    assert torch.equal(fed.model.cov(z, store["gpfl_p"][0]), fed.model.cov(z, store["gpfl_g"][0]))


class _GenericSwap(nn.Module):
    """A valve whose second call (the global route, CoV(z, g)) returns the leaf `generic`."""

    def __init__(self, real, generic):
        super().__init__()
        self.real, self.generic, self.calls = real, generic, 0

    def forward(self, z, condition):
        self.calls += 1
        return self.real(z, condition) if self.calls == 1 else self.generic


def _loss_with_generic(method, model, generic, x, y):
    """The method's loss with the global route's features CoV(z, g) replaced by the leaf `generic`."""
    real = model.cov
    model.cov = _GenericSwap(real, generic)
    try:
        d = model.feature_dim
        return method.loss(_View(model, torch.zeros(d), torch.ones(d)), x, y)
    finally:
        model.cov = real


def test_lambda_term_is_the_unsquared_norm_of_the_whole_batch_and_its_gradient_has_norm_lambda():
    lam = 0.3
    with_lam = make_federation("gpfl", rounds=1, model=MLP, hp_overrides={"lam": lam, "mu": 0.0})
    without = make_federation("gpfl", rounds=1, model=MLP, hp_overrides={"lam": 0.0, "mu": 0.0})
    model, x, y = with_lam.model, with_lam.data.x[:6], with_lam.data.y[:6]
    generic = (3.0 * torch.randn(6, model.feature_dim)).requires_grad_()
    a, b = (_loss_with_generic(m.method, model, generic, x, y) for m in (with_lam, without))
    (grad,) = torch.autograd.grad(a - b, generic)
    target = model.gce.weight.detach()[y]
    assert torch.allclose(a - b, lam * torch.linalg.norm(generic - target), atol=1e-5)
    assert abs(grad.norm().item() - lam) < 1e-6


def test_weight_decay_acts_on_the_gce_and_the_valve_only():
    mu = 0.7
    with_mu = make_federation("gpfl", rounds=1, model=MLP, hp_overrides={"mu": mu})
    without = make_federation("gpfl", rounds=1, model=MLP, hp_overrides={"mu": 0.0})
    model, x, y = with_mu.model, with_mu.data.x[:6], with_mu.data.y[:6]
    d = model.feature_dim
    views = [_View(model, torch.zeros(d), torch.ones(d)) for _ in range(2)]
    diff = with_mu.method.loss(views[0], x, y) - without.method.loss(views[1], x, y)
    names, params = zip(*model.named_parameters())
    for name, p, grad in zip(names, params, torch.autograd.grad(diff, params, allow_unused=True)):
        want = mu * p.detach() if name.startswith(("gce.", "cov.")) else torch.zeros_like(p)
        assert torch.allclose(torch.zeros_like(p) if grad is None else grad, want, atol=1e-6), name


def test_head_never_leaves_its_client_and_the_server_averages_backbone_gce_and_valve():
    fed = make_federation("gpfl", rounds=2, join_ratio=0.5, model=MLP, data=_data())
    uploads = record_uploads(fed)
    fed.train_round(0)
    assert uploads and not any(k.startswith("head.") for _, up in uploads for k in up)
    assert {k.split(".")[0] for _, up in uploads for k in up} == {"backbone", "gce", "cov"}
    want = mean_upload(uploads, fed.data, "samples")
    for name, v in want.items():
        assert torch.allclose(fed.global_state[name].double(), v, atol=1e-6), name
    store = fed.tensors.store.tensors
    assert all(torch.equal(store["gce.weight"][k], fed.global_state["gce.weight"]) for k in range(4))
    heads = [v for k, v in store.items() if k.startswith("head.") and k.endswith("weight")][0]
    first = sorted(fed.schedule[0].tolist())
    assert not torch.equal(heads[first[0]], heads[first[1]])   # each trained client keeps its own head


def test_a_client_not_sampled_rebuilds_its_conditions_from_the_gce_it_last_received():
    fed = make_federation("gpfl", rounds=2, join_ratio=0.5, model=MLP, data=_data(), seed=1)
    fed.train_round(0)
    received = fed.global_state["gce.weight"].clone()
    fed.train_round(1)
    store = fed.tensors.store.tensors
    resting = set(fed.schedule[0].tolist()) - set(fed.schedule[1].tolist())
    assert resting   # seed 1's schedule has one (client 2): trained in round 0, not in round 1
    for k in resting:
        assert torch.allclose(store["gpfl_g"][k], received.mean(0), atol=1e-6)
        assert not torch.allclose(store["gpfl_g"][k], fed.global_state["gce.weight"].mean(0), atol=1e-5)
