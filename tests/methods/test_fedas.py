"""FedAS: the server averages with weights F_k / sum F (equal traces: the uniform mean, not n_k's;
scaling every trace changes nothing); the Fisher trace is the sum over batches of the squared norm of
the batch-mean gradient; alignment takes over the received backbone (exactly, at align_lr 0), moves
it toward the client's prototypes, and never touches the head."""
import numpy as np
import torch
import torch.nn.functional as F

from fedbench.federation.server import Uploads
from tests.conftest import make_federation, tiny_data

SIZES = [30, 12, 7, 21]


def test_the_server_weighs_uploads_by_their_fisher_traces():
    fed = make_federation("fedas", rounds=1, data=tiny_data(train_sizes=SIZES))
    g = fed.global_state
    ups = {k: torch.stack([torch.full_like(v, 1.0), torch.full_like(v, 3.0)]) for k, v in g.items()}

    def mean_with(fim):
        fed.method.aggregate(fed.server, Uploads(np.array([0, 1]), np.array([30.0, 12.0]),
                                                 ups | {"fas_fim": torch.tensor(fim)}))
        return {k: v.clone() for k, v in fed.global_state.items()}

    equal = mean_with([2.0, 2.0])
    assert all(torch.allclose(v, torch.full_like(v, 2.0)) for v in equal.values() if v.is_floating_point())   # not 30:12
    scaled = mean_with([20.0, 20.0])
    assert all(torch.equal(scaled[k], equal[k]) for k in equal)
    skewed = mean_with([3.0, 1.0])
    assert all(torch.allclose(v, torch.full_like(v, 1.5)) for v in skewed.values() if v.is_floating_point())


def test_the_fisher_trace_by_hand():
    data = tiny_data(train_sizes=[10, 10])
    fed = make_federation("fedas", rounds=1, data=data, batch_size=5)
    got = fed.method.fisher_trace(fed.cohort([0], 0, "train"))[0]
    fresh = fed.cohort([0], 0, "train")            # a fresh cohort draws the same batches
    params = {k: v[0].clone().requires_grad_() for k, v in fresh.model.tensors(params_only=True).items()}
    want = 0.0
    for step in fresh.batches(1):
        idx = step.rows(0)
        loss = F.cross_entropy(torch.func.functional_call(fed.model, params, data.x[idx]), data.y[idx])
        want += sum((g ** 2).sum().item() for g in torch.autograd.grad(loss, list(params.values())))
    assert len(list(fresh.batches(1))) == 2 and abs(got.item() - want) < 1e-5 * want


def test_alignment_takes_the_received_backbone_toward_the_prototypes_and_leaves_the_head():
    def aligned(lr):
        fed = make_federation("fedas", rounds=2, join_ratio=1.0, data=tiny_data(train_sizes=[20, 20]),
                              hp_overrides={"align_lr": lr})
        fed.train_round(0)                         # clients now have their own models, the server a new global
        cohort = fed.cohort([0], 1, "train")
        before = {k: v.clone() for k, v in cohort.model.tensors().items()}
        fed.method.align(cohort)
        return fed, before, cohort.model.tensors(), dict(fed.global_state)

    fed, before, after, received = aligned(0.0)
    for k, v in after.items():
        if k.startswith("backbone."):
            assert torch.equal(v[0], received[k])          # exactly the received backbone
        else:
            assert torch.equal(v, before[k])               # the head is the client's own
    assert any(not torch.equal(before[k], after[k]) for k in after if k.startswith("backbone."))
    fed, before, after, received = aligned(0.05)
    assert any(not torch.equal(after[k][0], received[k]) for k in after if k.startswith("backbone."))
    assert all(torch.equal(after[k], before[k]) for k in after if k.startswith("head."))
