"""FedBSD's defining mechanisms: backbone-only upload, frozen teacher, the distilled (local) backbone
evaluated, lam=0 with the global backbone evaluated == FedPer, zero loss at student == teacher, and the
distillation actually pulling the student toward the teacher."""
import numpy as np
import pytest
import torch

from fedbench.toolkit.losses import DISTILL_LOSSES, distillation
from tests.looking import batches_xy, copy_of, forward
from tests.conftest import load_live, make_federation


def test_head_never_leaves_the_client():
    fed = make_federation("fedbsd", rounds=2)
    assert fed.tensors.shared and all(k.startswith("backbone.") for k in fed.tensors.shared)
    for t in range(2):
        fed.train_round(t)
        assert not any(k.startswith("head.") for k in fed.global_state)
    # the upload of a trained client holds no head tensor
    client = fed.cohort([0], 2, "train")
    fed.method.local_update(client)
    assert not any(k.startswith("head.") for k in fed.upload(client))
    # heads are personal: they differ across clients after training
    heads = fed.tensors.store.tensors["head.0.weight"]
    assert not torch.equal(heads[0], heads[1])


def test_teacher_gets_no_gradient_and_stays_fixed():
    fed = make_federation("fedbsd", rounds=1)
    client = fed.cohort([0], 0, "train")
    teacher = client.global_model()
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    fed.method.local_update(client)
    assert all(p.grad is None and not p.requires_grad for p in teacher.parameters())
    assert all(torch.equal(before[k], v) for k, v in teacher.state_dict().items())
    # and the student did move
    assert not torch.equal(client.model.state_dict()["backbone.1.0.weight"], before["backbone.1.0.weight"])


def test_lambda_zero_with_global_backbone_is_fedper_with_plain_mean():
    a = make_federation("fedbsd", rounds=3, join_ratio=0.5, hp_overrides={"lam": 0.0, "eval_backbone": "global"})
    b = make_federation("fedper", rounds=3, join_ratio=0.5, hp_overrides={"weighting": "uniform"})
    for t in range(3):
        assert a.train_round(t) == b.train_round(t)
    assert all(torch.equal(a.global_state[k], b.global_state[k]) for k in a.global_state)
    assert all(torch.equal(a.tensors.store.tensors[k], b.tensors.store.tensors[k]) for k in b.tensors.store.tensors)  # the heads
    ea, eb = a.evaluate(2), b.evaluate(2)
    assert all(np.array_equal(ea[k], eb[k]) for k in eb)


def evaluated_backbone(fed, k: int) -> dict[str, torch.Tensor]:
    """The backbone tensors of the model that client k evaluates (what Federation.evaluate tests)."""
    model = fed.evaluated(k, 0).model
    return {n: v.clone() for n, v in model.state_dict().items() if n.startswith("backbone.")}


def test_evaluated_backbone_is_the_distilled_student():
    """Default eval_backbone=local: a sampled client evaluates exactly the backbone its local update
    produced (the student), which differs from the global backbone when lam > 0; a client that never
    trained evaluates the global backbone."""
    fed = make_federation("fedbsd", rounds=1, join_ratio=0.5, hp_overrides={"lam": 1.0})
    sampled, students = set(fed.schedule[0].tolist()), {}
    for k in sorted(sampled):  # the round's local updates by hand, keeping each student
        client = fed.cohort([k], 0, "train")
        fed.method.local_update(client)
        students[k] = {n: v.clone() for n, v in client.model.state_dict().items() if n.startswith("backbone.")}
    fresh = make_federation("fedbsd", rounds=1, join_ratio=0.5, hp_overrides={"lam": 1.0})
    fresh.train_round(0)
    for k in range(fresh.data.num_clients):
        got = evaluated_backbone(fresh, k)
        if k in sampled:
            assert all(torch.equal(got[n], students[k][n]) for n in got)
            assert any(not torch.equal(got[n], fresh.global_state[n]) for n in got)
        else:
            assert all(torch.equal(got[n], fresh.global_state[n]) for n in got)


def test_global_eval_backbone_evaluates_the_global_backbone_and_trains_the_same():
    """eval_backbone only changes what is evaluated: the training trajectory is identical, and
    eval_backbone=global evaluates the global backbone with the client's own head."""
    local = make_federation("fedbsd", rounds=2, join_ratio=0.5)
    glob = make_federation("fedbsd", rounds=2, join_ratio=0.5, hp_overrides={"eval_backbone": "global"})
    for t in range(2):
        assert local.train_round(t) == glob.train_round(t)
    assert all(torch.equal(local.global_state[k], glob.global_state[k]) for k in local.global_state)
    for k in range(glob.data.num_clients):
        got = evaluated_backbone(glob, k)
        assert all(torch.equal(got[n], glob.global_state[n]) for n in got)
        assert torch.equal(glob.evaluated(k, 0).model.state_dict()["head.0.weight"], glob.tensors.store.tensors["head.0.weight"][k])
    trained = [k for k in range(local.data.num_clients) if local.times_sampled[k]]
    assert not np.array_equal(local.evaluate(1)["test_loss"][trained], glob.evaluate(1)["test_loss"][trained])


@pytest.mark.parametrize("kind", DISTILL_LOSSES)
def test_distillation_zero_when_student_equals_teacher(kind):
    f = torch.randn(16, 8).relu()
    assert distillation(f, f.clone(), kind, tau=2.0).abs().item() < 1e-6
    assert distillation(f + torch.randn_like(f), f, kind, tau=2.0).item() > 1e-3


def test_fedbsd_loss_equals_ce_at_round_start():
    """At round start the student backbone is the global one, so L_BSD = 0 and L = CE."""
    fed = make_federation("fedbsd", rounds=1)
    fed.train_round(0)
    client = fed.cohort([1], 1, "train")
    x, y = next(batches_xy(client.batches(), client.data))
    ce = torch.nn.functional.cross_entropy(forward(client.model, x), y)
    assert torch.allclose(client.call(fed.method.loss, {}, 0, x, y), ce, atol=1e-6)


@pytest.mark.parametrize("kind,lam", [("kl", 5.0), ("mse", 2.0), ("cosine", 1.0)])
def test_distillation_pulls_student_toward_teacher(kind, lam):
    def drift(lam):
        fed = make_federation("fedbsd", rounds=1, hp_overrides={"lam": lam, "loss": kind}, lr=0.1,
                              local_epochs=5)
        client = fed.cohort([0], 0, "train")
        fed.method.local_update(client)
        x = fed.data.x[fed.data.clients[0].train]
        with torch.no_grad():
            return distillation(copy_of(client.model).backbone(x), client.global_model().backbone(x), kind).item()

    assert drift(lam) < 0.5 * drift(0.0)


def test_personal_student_init_keeps_own_backbone():
    fed = make_federation("fedbsd", rounds=2, hp_overrides={"student_init": "personal"})
    fed.train_round(0)
    load_live(fed, 0)
    own = fed.tensors.store.tensors["backbone.1.0.weight"][0]
    assert torch.equal(fed.tensors.live["backbone.1.0.weight"], own)
    assert not torch.equal(own, fed.global_state["backbone.1.0.weight"])


def test_global_student_init_starts_from_the_global_backbone():
    fed = make_federation("fedbsd", rounds=2)
    fed.train_round(0)
    load_live(fed, 0)  # for training: the global backbone, though the client keeps its distilled one
    assert torch.equal(fed.tensors.live["backbone.1.0.weight"], fed.global_state["backbone.1.0.weight"])
    assert not torch.equal(fed.tensors.store.tensors["backbone.1.0.weight"][0], fed.global_state["backbone.1.0.weight"])
