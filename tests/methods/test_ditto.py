"""Ditto: the global path is FedAvg's bit for bit, lam=0 makes v plain local training (the `local`
method), lam pulls v toward the round-start global, and v is what gets evaluated."""
import torch

from tests.looking import batches_xy
from tests.conftest import make_federation
from tests.methods.side_by_side import assert_personal_is_local, assert_same_global, train_both
from tests.methods.spies import grad_at


def test_global_trajectory_is_bitwise_fedavg():
    a = make_federation("ditto", rounds=3, join_ratio=0.5, local_epochs=2)
    b = make_federation("fedavg", rounds=3, join_ratio=0.5, local_epochs=2)
    for t in range(3):
        assert a.train_round(t) == b.train_round(t)  # FedAvg's loss too: v is trained apart
    assert_same_global(a, b)


def test_lambda_zero_personal_model_is_local_training():
    a = make_federation("ditto", rounds=3, join_ratio=0.5, hp_overrides={"lam": 0.0})
    b = make_federation("local", rounds=3, join_ratio=0.5)
    train_both(a, b, 3)
    assert_personal_is_local(a, b, "personal_model.")


def test_personal_step_is_anchored_at_the_round_start_global():
    """One minibatch: v <- v - lr (grad CE(v) + lam (v - w^t)), w^t the global received, not the
    client's freshly trained w."""
    lr, lam = 0.1, 2.0
    fed = make_federation("ditto", rounds=2, lr=lr, batch_size=100, hp_overrides={"lam": lam})
    fed.train_round(0)
    client = fed.cohort([0], 1, "train")
    v = {n: t.clone() for n, t in client.personal_model.state_dict().items()}
    w_t = {n: t.clone() for n, t in fed.global_state.items()}
    g = grad_at(fed.model, v, *next(batches_xy(fed.cohort([0], 1, "train").batches(), fed.data)))
    fed.method.local_update(client)
    for n, p in client.personal_model.state_dict().items():
        assert torch.allclose(p, v[n] - lr * (g[n] + lam * (v[n] - w_t[n])), atol=1e-6), n


def test_lambda_pulls_v_toward_the_round_start_global():
    def gap(lam):
        fed = make_federation("ditto", rounds=2, local_epochs=3, hp_overrides={"lam": lam})
        fed.train_round(0)
        client = fed.cohort([1], 1, "train")
        anchor = {k: v.clone() for k, v in fed.global_state.items()}
        fed.method.local_update(client)
        return sum((p - anchor[n]).pow(2).sum() for n, p in client.personal_model.state_dict().items()).item()

    assert gap(10.0) < 0.5 * gap(0.0)


def test_evaluated_model_is_v():
    fed = make_federation("ditto", rounds=2, hp_overrides={"personal_epochs": 2})
    fed.train_round(0)
    fed.train_round(1)
    for k in range(fed.data.num_clients):
        model = fed.evaluated(k, 1).personal_model
        for n, p in model.state_dict().items():
            assert torch.equal(p, fed.tensors.store.tensors["personal_model." + n][k]), n
        assert any(not torch.allclose(model.state_dict()[n], fed.global_state[n], atol=1e-4)
                   for n in fed.global_state)
