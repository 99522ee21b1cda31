"""FedAMP: the server keeps each client's latest model and builds a client's cloud model from them with
the paper's attention (xi_ij = alpha exp(-d/sigma)/sigma, xi_ii = 1 - sum); the proximal term pulls by
exactly (lam/alpha)(w - u) (PFLlib's has no gradient); a larger lam brings w closer to u; clients keep
their own model, which the server never overwrites."""
import math

import torch

from methods.fedamp import CLOUD
from tests.conftest import make_federation, tiny_data

SIZES = [30, 12, 7, 21]


def flat_params(model_tensors, row):
    return torch.cat([t[row].reshape(-1) for t in model_tensors.values()])


def test_the_cloud_model_is_the_attention_weighted_combination():
    fed = make_federation("fedamp", rounds=1, data=tiny_data(num_clients=2),
                          hp_overrides={"alpha_k": 0.5, "sigma": 2.0})
    torch.manual_seed(0)
    w = torch.randn(2, fed.server.state["amp_models"].shape[1]) * 0.1
    fed.server.state["amp_models"], fed.server.state["amp_seen"] = w.clone(), torch.ones(2)
    got = fed.method.download(fed.server, [0], "train")
    d = ((w[0] - w[1]) ** 2).sum().item()
    xi12 = 0.5 * math.exp(-d / 2.0) / 2.0
    want = (1 - xi12) * w[0] + xi12 * w[1]
    u = torch.cat([got[CLOUD + k].reshape(-1) for k, _ in fed.method.params])
    assert 0 < xi12 < 1 and torch.allclose(u, want, atol=1e-6) and got["amp_has"].tolist() == [1.0]
    alone = fed.method.download(fed.server.__class__(fed.tensors, {"amp_models": w, "amp_seen": torch.tensor([1.0, 0.0])}, 2),
                                [0], "train")
    assert alone["amp_has"].tolist() == [0.0]                  # nobody else yet: no pull


def one_step(lam):
    """Client 0 after one full-batch step, its cloud model set to u."""
    fed = make_federation("fedamp", rounds=1, data=tiny_data(train_sizes=[10, 10]), batch_size=10,
                          hp_overrides={"lam": lam, "alpha_k": 2.0})
    cohort = fed.cohort([0], 0, "train")
    start = {k: v.clone() for k, v in cohort.model.tensors(params_only=True).items()}
    for k, _ in fed.method.params:
        cohort.state[CLOUD + k] = (start[k] + 0.3).clone()   # u = w + 0.3
    cohort.state["amp_has"] = torch.ones(1)
    fed.method.local_update(cohort)
    return start, cohort.model.tensors(params_only=True), fed.training.lr


def test_the_proximal_term_pulls_by_lam_over_alpha_times_w_minus_u():
    start, plain, lr = one_step(0.0)
    _, pulled, _ = one_step(4.0)
    for k in start:   # w_lam - w_0 = -lr (lam/alpha) (w - u) = -lr * 2 * (-0.3)
        assert torch.allclose(pulled[k] - plain[k], torch.full_like(start[k], lr * 2.0 * 0.3), atol=1e-6), k


def test_a_larger_lam_brings_the_models_closer_to_their_clouds_and_clients_keep_their_own():
    def gap(lam):
        fed = make_federation("fedamp", rounds=3, join_ratio=1.0, data=tiny_data(train_sizes=SIZES),
                              hp_overrides={"lam": lam, "alpha_k": 1.0, "sigma": 100.0})
        trained = {}
        real = fed.method.local_update

        def spy(cohort):
            out = real(cohort)
            trained.update({int(k): flat_params(cohort.model.tensors(params_only=True), r) for r, k in enumerate(cohort.ids)})
            cloud = {int(k): torch.cat([cohort.state[CLOUD + n][r].reshape(-1) for n, _ in fed.method.params])
                     for r, k in enumerate(cohort.ids)}
            spy.gaps = [(trained[k] - cloud[k]).norm().item() for k in cloud]
            return out

        fed.method.local_update = spy
        for t in range(3):
            fed.train_round(t)
        stored = fed.server.state["amp_models"]
        assert all(torch.allclose(stored[k], trained[k]) for k in trained)   # the server holds each latest model
        own = {k: flat_params({n: fed.tensors.store.tensors[n] for n, _ in fed.method.params}, k) for k in trained}
        assert all(torch.equal(own[k], trained[k]) for k in trained)         # never overwritten by the server
        return sum(spy.gaps)

    plain = gap(0.0)
    assert 0 < gap(8.0) < 0.75 * plain   # (PFLlib d832e76: equal, its term has no gradient)
