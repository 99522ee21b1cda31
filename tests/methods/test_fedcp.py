"""FedCP: the policy splits each feature into r + s = 1; the frozen global head h_g gets no update
in training (only its mix with h_p is uploaded); the MMD to the round's global backbone is 0 when the
backbones agree; the server's h_g is the weighted mean of the mixed heads, sent (with the CPN) to the
clients that trained, which rebuild their context from their own head; h_p is never uploaded."""
import torch

from methods.fedcp import mmd2
from tests.conftest import make_federation, tiny_data
from tests.methods.spies import mean_upload, record_uploads

MLP = {"name": "mlp", "hidden": [16, 8]}
SIZES = [12, 30, 18, 40]


def test_policy_splits_every_feature_in_two_parts_that_sum_to_one():
    fed = make_federation("fedcp", rounds=1, model=MLP)
    z = torch.randn(5, 8)
    r, s = fed.model.cpn(z)
    assert torch.allclose(r + s, torch.ones_like(r), atol=1e-6) and (r >= 0).all() and (s >= 0).all()


def test_mmd_is_zero_between_equal_batches_and_positive_otherwise():
    a = torch.randn(10, 8)
    assert mmd2(a, a.clone()).abs() < 1e-6 and mmd2(a, a + 1) > 1e-3


def test_global_head_gets_no_step_but_passes_the_gradient_to_the_policy():
    fed = make_federation("fedcp", rounds=1, model=MLP)
    cohort = fed.cohort([0], 0, "train")
    cohort.state["model.head.0.weight"].zero_()   # h_p silent: the policy can learn only through h_g
    before = {k: v.clone() for k, v in cohort.model.tensors().items()}
    cohort.sgd(fed.method.loss, train=fed.method.trains)
    after = cohort.model.tensors()
    assert all(torch.equal(after[k], before[k]) for k in before if k.startswith("ghead."))
    assert not torch.equal(after["cpn.fc.0.weight"], before["cpn.fc.0.weight"])


def test_upload_is_the_mixed_global_head_and_the_server_averages_it():
    fed = make_federation("fedcp", rounds=2, join_ratio=0.5, model=MLP, data=tiny_data(train_sizes=SIZES))
    fed.train_round(0)
    held, real = {}, fed.method.local_update

    def spy(cohort):   # each client's h_g before training, and its h_p after
        before = {k: v.clone() for k, v in cohort.model.tensors().items() if k.startswith("ghead.")}
        loss = real(cohort)
        held[int(cohort.ids[0])] = (before, {k: v.clone() for k, v in cohort.model.tensors().items()
                                             if k.startswith("head.")})
        return loss

    fed.method.local_update = spy
    uploads = record_uploads(fed)
    fed.train_round(1)
    assert uploads and not any(k.startswith("head.") for _, up in uploads for k in up)  # h_p stays
    assert {k.split(".")[0] for k in fed.global_state} == {"backbone", "ghead", "cpn"}
    for k, up in uploads:
        before, heads = held[k]
        for name, v in up.items():
            if name.startswith("ghead."):
                want = 0.5 * heads["head." + name.removeprefix("ghead.")][0] + 0.5 * before[name][0]
                assert torch.allclose(v, want, atol=1e-6), name
    want = mean_upload(uploads, fed.data, "samples")   # the server: n_k-weighted means of the mixed uploads
    for name, v in want.items():
        assert torch.allclose(fed.global_state[name].double(), v, atol=1e-6), name


def test_sampled_clients_receive_head_and_policy_and_rebuild_their_context():
    fed = make_federation("fedcp", rounds=1, join_ratio=0.5, model=MLP, data=tiny_data(train_sizes=SIZES))
    start = fed.tensors.store.tensors["cp_context"].clone()
    assert torch.equal(start[0], start[1])  # the same context on every client at the start
    fed.train_round(0)
    store, glob, sampled = fed.tensors.store.tensors, fed.global_state, set(fed.schedule[0].tolist())
    for k in range(4):
        if k in sampled:
            assert torch.allclose(store["cp_context"][k], store["head.0.weight"][k].sum(0))  # class sums of h_p
            assert all(torch.equal(store[n][k], glob[n]) for n in glob if n.startswith(("ghead.", "cpn.")))
        else:   # not sampled: keeps what it had (stale)
            assert torch.equal(store["cp_context"][k], start[k])
            assert not torch.equal(store["cpn.fc.0.weight"][k], glob["cpn.fc.0.weight"])


def test_evaluated_model_uses_the_clients_own_head_context_and_policy():
    fed = make_federation("fedcp", rounds=1, model=MLP, data=tiny_data(train_sizes=SIZES))
    fed.train_round(0)
    x = fed.data.x[:6]
    torch.manual_seed(5)
    a = fed.evaluated(0, 0).call(None, {}, 0, x, None)
    torch.manual_seed(5)
    b = fed.evaluated(1, 0).call(None, {}, 0, x, None)
    assert not torch.allclose(a, b)


def test_personal_head_reads_z_times_r_and_the_global_head_z_times_s():
    fed = make_federation("fedcp", rounds=1, model=MLP)
    model, context = fed.model, torch.rand(8)

    class View:
        state = {"cp_context": context}

    View.model = model
    with torch.no_grad():
        for p in model.ghead.parameters():   # the two heads differ
            p.mul_(-3.0)
        z = torch.randn(5, 8)
        torch.manual_seed(3)
        r, s = model.cpn(z * context / context.norm())
        want = model.head(z * r) + model.ghead(z * s)
        torch.manual_seed(3)
        assert torch.allclose(fed.method.forward(View, z), want, atol=1e-6)
        assert not torch.allclose(model.head(z * s) + model.ghead(z * r), want, atol=1e-3)
