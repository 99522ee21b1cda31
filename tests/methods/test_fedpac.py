"""FedPAC: the combination weights solve the paper's QP (equal statistics H: alpha ~ 1/V; a client far
from the others with a tiny variance: its own head), each client receives the combination its own
(V, H) call for of the heads just trained (PFLlib sends them to other clients); the head epoch leaves
the backbone as it was and the backbone epochs leave the head."""
import numpy as np
import torch

from methods.fedpac import combination_weights
from tests.conftest import make_federation, tiny_data
from tests.methods.spies import record_uploads

SIZES = [30, 12, 7, 21]


def test_the_qp_limits():
    h = np.ones((3, 2, 4))
    alpha = combination_weights(np.array([1.0, 2.0, 4.0]), h, 0)
    assert np.allclose(alpha, np.array([4.0, 2.0, 1.0]) / 7, atol=1e-4)     # ~ 1/V
    h = np.zeros((3, 2, 4))
    h[0] += 10.0
    assert np.allclose(combination_weights(np.array([1e-4, 1e-4, 1e-4]), h, 0), [1.0, 0.0, 0.0], atol=1e-3)


def test_each_client_receives_the_combination_its_own_statistics_call_for():
    fed = make_federation("fedpac", rounds=2, join_ratio=1.0, data=tiny_data(train_sizes=SIZES))
    ups = record_uploads(fed)
    fed.train_round(0)
    ids = sorted(k for k, _ in ups)
    up = {k: u for k, u in ups}
    v = np.array([up[k]["pac_v"].double().item() for k in ids])
    h = np.stack([up[k]["pac_h"].double().numpy() for k in ids])
    store = fed.tensors.store.tensors
    for row, k in enumerate(ids):
        alpha = combination_weights(v, h, row)
        for name in (n for n in up[k] if n.startswith("head.")):
            want = sum(a * up[j][name].double() for a, j in zip(alpha, ids))
            assert torch.allclose(store[name][k].double(), want, atol=1e-5), (k, name)
    assert not all(np.allclose(combination_weights(v, h, r), np.eye(len(ids))[r]) for r in range(len(ids)))


def test_the_head_epoch_keeps_the_backbone_and_the_backbone_epochs_keep_the_head():
    fed = make_federation("fedpac", rounds=1, data=tiny_data(train_sizes=SIZES))
    cohort = fed.cohort([0], 0, "train")
    snapshots, real = [], cohort.sgd

    def spy(objective, train="all", **kw):
        before = {k: v.clone() for k, v in cohort.model.tensors().items()}
        out = real(objective, train=train, **kw)
        snapshots.append((train, before, {k: v.clone() for k, v in cohort.model.tensors().items()}))
        return out

    cohort.sgd = spy
    fed.method.local_update(cohort)
    (head_part, b0, a0), (body_part, b1, a1) = snapshots
    assert (head_part, body_part) == ("head", "backbone")
    assert all(torch.equal(a0[k], b0[k]) for k in a0 if k.startswith("backbone."))
    assert any(not torch.equal(a0[k], b0[k]) for k in a0 if k.startswith("head."))
    assert all(torch.equal(a1[k], b1[k]) for k in a1 if k.startswith("head."))
    assert any(not torch.equal(a1[k], b1[k]) for k in a1 if k.startswith("backbone."))
