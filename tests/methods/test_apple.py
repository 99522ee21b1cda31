"""APPLE: p_i steps by the exact gradient of p -> CE(sum_j p_j theta_j) (+ the proximal term); with a
one-hot p the personalized model is the own core and a step is plain SGD at the run's lr (PFLlib: N
lr); the upload is the own trained core, not the personalized model, and the server replaces cores
only after the round; the proximal weight is mu at round 0 and 0 from round L on."""
import torch
import torch.nn.functional as F
from torch.func import functional_call

from fedbench.toolkit.flat import unflatten
from tests.conftest import make_federation, tiny_data
from tests.methods.spies import record_uploads

SIZES = [10, 10, 10]


def federation(**hp):
    return make_federation("apple", rounds=10, join_ratio=1.0, data=tiny_data(train_sizes=SIZES), batch_size=10,
                           hp_overrides=hp)


def test_p_steps_by_the_exact_gradient():
    fed = federation(p_lr=0.5, mu=0.3, L_frac=0.5)
    fed.start()
    fed.server.state["apple_cores"] += 0.1 * torch.randn_like(fed.server.state["apple_cores"])
    cohort = fed.cohort([1], 0, "train")
    p0 = cohort.state["apple_p0"][0].clone()
    cores = unflatten(cohort.state["apple_cores"][0], fed.method.params)
    own = {k: v[0].clone() for k, v in cohort.model.tensors(params_only=True).items()}
    (step,) = list(fed.cohort([1], 0, "train").batches(1))          # the same batch the update takes
    idx = step.rows(0)
    p = p0.clone().requires_grad_()
    theta = {k: torch.tensordot(p, cores[k], dims=1) + p[1] * (own[k] - cores[k][1]) for k in own}
    loss = F.cross_entropy(functional_call(fed.model, theta, (fed.data.x[idx],)), fed.data.y[idx]) + \
        0.3 * ((p - p0) ** 2).sum()
    (grad,) = torch.autograd.grad(loss, [p])
    fed.method.local_update(cohort)
    assert torch.allclose(cohort.state["apple_p"][0], p0 - 0.5 * grad, atol=1e-6)


def test_one_hot_p_is_the_own_core_and_a_plain_step():
    fed, local = federation(p_lr=0.0, mu=0.0), make_federation("local", rounds=10, join_ratio=1.0,
                                                               data=tiny_data(train_sizes=SIZES), batch_size=10)
    fed.start()
    cohort = fed.cohort([0], 0, "train")
    cohort.state["apple_started"].fill_(1.0)
    cohort.state["apple_p"].copy_(torch.tensor([[1.0, 0.0, 0.0]]))
    fed.method.local_update(cohort)
    plain = local.cohort([0], 0, "train")
    local.method.local_update(plain)
    for k, v in plain.model.tensors(params_only=True).items():
        assert torch.allclose(cohort.model.tensors(params_only=True)[k], v, atol=1e-6), k


def test_the_upload_is_the_own_core_and_cores_change_only_after_the_round():
    fed = federation()
    ups = record_uploads(fed)
    seen = []
    real = fed.method.local_update

    def spy(cohort):
        seen.append(cohort.state["apple_cores"].clone())
        return real(cohort)

    fed.method.local_update = spy
    before = fed.server.state["apple_cores"].clone()
    fed.train_round(0)
    assert all(torch.equal(s[0], before) for s in seen)           # every client saw the previous round's cores
    stored = fed.server.state["apple_cores"]
    for k, up in ups:
        own = torch.cat([up[n].reshape(-1) for n, _ in fed.method.params])
        assert torch.equal(stored[k], own)
        assert torch.equal(own, torch.cat([fed.tensors.store.tensors[n][k].reshape(-1) for n, _ in fed.method.params]))


def test_the_proximal_schedule():
    method = federation(mu=0.2, L_frac=0.3).method
    assert method.coef(0, 10) == 0.2 and 0 < method.coef(2, 10) < 0.2
    assert method.coef(3, 10) == 0.0 and method.coef(9, 10) == 0.0
