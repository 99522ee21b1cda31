"""pFedMe: server beta-mixing, the personalized theta is what gets evaluated (never w), theta tracks w
when lambda is large (the Moreau envelope collapses onto f), and the inner step is the official one,
mu L2 term included."""
import torch

from tests.looking import batches_xy
from tests.conftest import make_federation
from tests.methods.spies import grad_at, record_uploads

HP = {"personal_lr": 0.05, "lr": 0.02, "local_steps": 4, "official": True}


def flat(tensors):
    return torch.cat([t.detach().flatten() for t in tensors])


def params(model):
    """A cohort-of-one model's parameter tensors."""
    return [t[0] for t in model.tensors(params_only=True).values()]


def test_server_moves_beta_times_toward_the_mean():
    fed = make_federation("pfedme", rounds=2, join_ratio=0.5, hp_overrides=HP | {"beta": 2.0})
    uploads = record_uploads(fed)
    fed.train_round(0)
    old = {k: v.clone() for k, v in fed.global_state.items()}
    uploads.clear()
    fed.train_round(1)
    seen = dict(uploads)
    weights = {k: float(fed.n_train[k]) for k in seen}
    total = sum(weights.values())
    for name, w_old in old.items():
        mean = sum(weights[k] * seen[k][name] for k in seen) / total
        step = fed.global_state[name] - w_old
        assert torch.allclose(step, 2.0 * (mean - w_old), atol=1e-6), name
        assert step.abs().max() > 1e-4  # the global does move


def test_evaluated_model_is_the_stored_theta_not_w():
    fed = make_federation("pfedme", rounds=1, hp_overrides=HP)
    uploads = record_uploads(fed)
    fed.train_round(0)
    seen = dict(uploads)
    assert fed.method.evaluates == "personal_model"
    for k in range(fed.data.num_clients):
        model = fed.evaluated(k, 0).personal_model.state_dict()
        theta = {n: fed.tensors.store.tensors["personal_model." + n][k] for n in model}
        evaluated = flat(model.values())
        assert torch.equal(evaluated, flat(theta.values()))
        assert not torch.allclose(evaluated, flat(seen[k][n] for n in theta), atol=1e-4)  # w_{i,R}
        assert not torch.allclose(evaluated, flat(fed.global_state[n] for n in theta), atol=1e-4)


def test_theta_is_warm_started_across_the_r_iterations():
    """theta starts the round at w^t; each of the R inner solves starts where the previous one ended
    (never reset to w_i), and
    w_i takes exactly its step w_i - lr*lam*(w_i - theta) after each."""
    lr, lam = HP["lr"], 15.0
    fed = make_federation("pfedme", rounds=2, hp_overrides=HP | {"local_steps": 3})
    fed.train_round(0)  # now client 0's stored theta is not the global
    client = fed.cohort([0], 1, "train")
    round_start = flat(params(client.model)).clone()
    sgd, calls = client.sgd, []

    def spy(loss, model, **kw):
        before, w = flat(params(model)).clone(), flat(params(client.model)).clone()
        out = sgd(loss, model=model, **kw)
        calls.append((before, flat(params(model)).clone(), w))
        return out

    client.sgd = spy
    fed.method.local_update(client)
    assert len(calls) == 3 and torch.equal(calls[0][0], round_start)  # theta <- w^t when the round starts
    for (_, end, w), (start, _, w_next) in zip(calls, calls[1:]):
        assert torch.equal(start, end) and not torch.allclose(start, w_next, atol=1e-5)
        assert torch.allclose(w_next, w - lr * lam * (w - end), atol=1e-6)


def test_large_lambda_makes_theta_track_w():
    def gap(lam):
        # keep lr*lam and personal_lr*lam stable (< 1): the fixed-step solver must converge
        hp = {"lam": lam, "personal_lr": 0.5 / lam, "lr": 0.5 / lam, "local_steps": 4, "mu": 0.0, "official": True}
        fed = make_federation("pfedme", rounds=1, hp_overrides=hp)
        client = fed.cohort([0], 0, "train")
        fed.method.local_update(client)
        theta = flat(params(client.personal_model))
        return (theta - flat(params(client.model))).norm().item()

    small, large = gap(1.0), gap(1e4)
    assert large < 1e-3 and large < 1e-3 * small


def test_inner_steps_include_the_mu_l2_term():
    """One local iteration (R = 1) of K = 2 inner steps on one minibatch D, by hand:
    theta <- theta - personal_lr (grad f(theta; D) + lam (theta - w_i) + mu theta), then
    w_i <- w_i - lr lam (w_i - theta). mu is large here, so a solver without mu theta is far off."""
    plr, lr, lam, mu = 0.1, 0.05, 2.0, 0.5
    fed = make_federation("pfedme", rounds=2, hp_overrides={"personal_lr": plr, "lr": lr, "lam": lam, "mu": mu,
                                                            "inner_steps": 2, "local_steps": 1,
                                                            "official": True})
    fed.train_round(0)  # client 0's w^t is no longer the initial model
    client = fed.cohort([0], 1, "train")
    w = {n: p[0].clone() for n, p in client.model.tensors(params_only=True).items()}
    batch = next(batches_xy(fed.cohort([0], 1, "train").minibatches(1), fed.data))  # D: the same stream's first minibatch

    def solve(mu):
        theta = dict(w)  # theta <- w^t at round start
        for _ in range(2):
            g = grad_at(fed.model, theta, *batch)
            theta = {n: t - plr * (g[n] + lam * (t - w[n]) + mu * t) for n, t in theta.items()}
        return theta

    theta = solve(mu)
    fed.method.local_update(client)
    for n, p in client.model.state_dict().items():
        got = client.state["personal_model." + n][0]
        assert torch.allclose(got, theta[n], atol=1e-6), n
        assert torch.allclose(p, w[n] - lr * lam * (w[n] - theta[n]), atol=1e-6), n
    without_mu = solve(0.0)
    assert max((client.state["personal_model." + n] - t).abs().max().item() for n, t in without_mu.items()) > 1e-3
