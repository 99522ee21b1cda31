"""FedProx: the proximal term mu/2 ||w - w^t||^2 anchored at the round-start global model."""
import torch

from methods.fedavg import FedAvg
from tests.looking import batches_xy, forward
from tests.conftest import make_federation


def flat_gap(model, anchor):
    params = model.tensors(params_only=True)
    return torch.cat([(p[0] - anchor[n]).flatten() for n, p in params.items()]).detach().clone()


def test_mu_zero_is_bitwise_fedavg():
    a = make_federation("fedprox", rounds=3, join_ratio=0.5, local_epochs=2, hp_overrides={"mu": 0.0})
    b = make_federation("fedavg", rounds=3, join_ratio=0.5, local_epochs=2)
    for t in range(3):
        assert a.train_round(t) == b.train_round(t)
    assert all(torch.equal(a.global_state[k], b.global_state[k]) for k in b.global_state)


def test_without_data_gradient_the_gap_shrinks_by_one_minus_lr_mu_per_step(monkeypatch):
    """With a constant data loss the only force is mu (w - w^t): each SGD step multiplies the gap to
    the ROUND-START global by exactly (1 - lr mu). (A mu/2 gradient bug gives 1 - lr mu / 2; an
    anchor that follows the weights gives no shrinking at all.)"""
    lr, mu = 0.1, 2.0
    monkeypatch.setattr(FedAvg, "loss", lambda self, client, x, y, reduction="mean": (client.model(x) * 0).sum())
    fed = make_federation("fedprox", rounds=1, lr=lr, hp_overrides={"mu": mu})
    client = fed.cohort([0], 0, "train")
    anchor = {k: v.clone() for k, v in client.global_model().named_parameters()}
    with torch.no_grad():
        for p in client.model.tensors(params_only=True).values():
            p.add_(torch.randn_like(p))
    gap = flat_gap(client.model, anchor)
    for batch in client.batches().split()[:4]:
        client.sgd(fed.method.loss, batches=batch)
        new = flat_gap(client.model, anchor)
        assert torch.allclose(new, (1 - lr * mu) * gap, rtol=1e-5, atol=1e-7)
        gap = new
    assert all(torch.equal(anchor[k], v) for k, v in client.global_model().named_parameters())


def test_proximal_term_is_zero_at_round_start_and_pulls_toward_global():
    def drift(mu):
        fed = make_federation("fedprox", rounds=1, local_epochs=5, hp_overrides={"mu": mu})
        client = fed.cohort([0], 0, "train")
        x, y = next(batches_xy(client.batches(), client.data))
        ce = torch.nn.functional.cross_entropy(forward(client.model, x), y)
        assert torch.equal(client.call(fed.method.loss, {}, 0, x, y), ce)  # w = w^t: the term is exactly 0
        fed.method.local_update(client)
        return flat_gap(client.model, dict(client.global_model().named_parameters())).norm()

    assert drift(1.0) < 0.8 * drift(0.0)
