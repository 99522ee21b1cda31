"""FedDBE: the consensus mean g is the n_k-weighted mean, over ALL clients, of their running feature
means after an initialization pass of plain CE whose weights are thrown away; g never changes; the
mean regularization's gradient is mu*kappa*(r - g)/(D*B) per sample; r restarts every round; the PRBM
m_k stays on its client (never uploaded) and shifts only that client's predictions."""
import torch
import torch.nn.functional as F

from fedbench.engines import ENGINES
from tests.conftest import make_federation, tiny_data
from tests.methods.spies import record_uploads

SIZES = [12, 30, 18, 40]   # unequal train sizes: the n_k weighting shows
MLP = {"name": "mlp", "hidden": [16, 8]}


def test_consensus_mean_is_the_weighted_mean_of_the_initialization_pass_by_hand():
    fed = make_federation("feddbe", rounds=2, data=tiny_data(train_sizes=SIZES), batch_size=5, model=MLP,
                          hp_overrides={"kappa": 1.0})
    init = {k: v.clone() for k, v in fed.global_state.items()}
    fed.start()
    model, data, means = fed.model, fed.data, []
    for k, c in enumerate(data.clients):  # by hand: E epochs of CE from the initial model; kappa 1: r = last batch mean
        cohort = fed.cohort([k], 0, "train", "start")
        model.load_state_dict(init, strict=False)
        opt = torch.optim.SGD(list(model.backbone.parameters()) + list(model.head.parameters()), lr=0.1)
        for step in cohort.batches():
            xb, yb = data.x[step.rows(0)], data.y[step.rows(0)]
            opt.zero_grad()
            feats = model.backbone(xb)
            F.cross_entropy(model.head(feats), yb).backward()
            opt.step()
            last = feats.detach().mean(0)
        means.append(last)
    w = torch.tensor(SIZES, dtype=torch.float32)
    want = (w[:, None] * torch.stack(means)).sum(0) / w.sum()
    target = fed.tensors.store.tensors["dbe_target"]
    assert torch.allclose(target, want.expand_as(target), atol=1e-6)
    assert all(torch.equal(fed.global_state[k], v) for k, v in init.items())  # the pass's weights: thrown away
    for t in range(2):
        fed.train_round(t)
    assert torch.equal(fed.tensors.store.tensors["dbe_target"], target)  # computed once, never again


def test_mean_regularization_gradient_detaches_the_previous_running_mean():
    """d(mu * mean_d 1/2 (r - g)^2)/dz_b = mu * kappa * (r - g) / (D * B) for every sample b: the 1/2, the
    mean over D, and no gradient through the previous r."""
    fed = make_federation("feddbe", rounds=1, model=MLP, hp_overrides={"kappa": 0.3, "mu": 7.0})
    fed.start()
    cohort = fed.cohort([0], 0, "train")
    cohort.state["dbe_mean"].normal_()
    view_state = {"dbe_mean": cohort.state["dbe_mean"][0], "dbe_target": cohort.state["dbe_target"][0]}
    z = torch.randn(6, 8, requires_grad=True)

    class View:  # only what running_mean and the MR term read
        state, carry = view_state, {}

        @staticmethod
        def batch_mean(t):
            return t.mean(0)

    (grad,) = torch.autograd.grad(fed.method.mean_regularization(View, z), z)
    r = View.carry["dbe_mean"]
    assert torch.allclose(r, 0.7 * view_state["dbe_mean"] + 0.3 * z.detach().mean(0))
    want = 7.0 * 0.3 * (r - view_state["dbe_target"]) / (8 * 6)
    assert torch.allclose(grad, want.expand_as(grad), atol=1e-7)


def test_prbm_stays_local_and_shifts_only_its_clients_predictions():
    fed = make_federation("feddbe", rounds=2, model=MLP, data=tiny_data(train_sizes=SIZES))
    uploads = record_uploads(fed)
    for t in range(2):
        fed.train_round(t)
    assert uploads and not any(k.startswith("prbm") for _, up in uploads for k in up)
    assert {k.split(".")[0] for k in fed.global_state} == {"backbone", "head"}  # backbone AND head are shared
    prbm = fed.tensors.store.tensors["prbm.bias"]
    assert not torch.equal(prbm[0], prbm[1]) and prbm.abs().sum() > 0  # trained, apart
    x = fed.data.x[:5]
    logits = [fed.evaluated(k, 1).call(None, {}, 0, x, None) for k in (0, 1)]
    assert not torch.allclose(logits[0], logits[1])
    fed.tensors.store.tensors["prbm.bias"][0].zero_()
    with torch.no_grad():
        assert torch.allclose(fed.evaluated(0, 1).call(None, {}, 0, x, None), fed.tensors.global_module(x))


def test_running_mean_restarts_every_round_and_engines_agree():
    data = tiny_data(train_sizes=[22, 7, 11, 16, 25, 13])  # unequal: the vmap engine pads short batches
    seq = make_federation("feddbe", rounds=2, data=data, model=MLP, hp_overrides={"kappa": 0.5})
    vm = make_federation("feddbe", rounds=2, data=data, model=MLP, hp_overrides={"kappa": 0.5},
                         engine=ENGINES["vmap"]())
    for fed in (seq, vm):
        for t in range(2):
            fed.train_round(t)
    for k, v in seq.tensors.store.tensors.items():
        torch.testing.assert_close(vm.tensors.store.tensors[k], v, atol=1e-5, rtol=1e-5)
    # a running mean left from the last round changes nothing: every round starts r at 0
    a = make_federation("feddbe", rounds=2, data=data, model=MLP, hp_overrides={"kappa": 0.5})
    b = make_federation("feddbe", rounds=2, data=data, model=MLP, hp_overrides={"kappa": 0.5})
    for fed in (a, b):
        fed.train_round(0)
    b.tensors.store.tensors["dbe_mean"].add_(100.0)
    for fed in (a, b):
        fed.train_round(1)
    sampled = torch.as_tensor(a.schedule[1])
    assert torch.equal(a.tensors.store.tensors["dbe_mean"][sampled], b.tensors.store.tensors["dbe_mean"][sampled])
    assert all(torch.equal(a.global_state[k], b.global_state[k]) for k in a.global_state)
