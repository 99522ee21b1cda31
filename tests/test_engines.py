"""engine=vmap against engine=sequential: same seed, same numbers (up to floating point), for every
vectorizable method, in training and evaluation; a cohort's plan is each client's own data order;
what vmap cannot run falls back with a warning; the SGD update is torch.optim.SGD's arithmetic."""

import numpy as np
import pytest
import torch

import methods
from fedbench.config import prepare
from fedbench.data.types import ClientData
from fedbench.engines import choose_engine, vmap_support
from fedbench.engines.sequential import SequentialEngine
from fedbench.engines.vmap import VmapEngine
from fedbench.errors import ConfigError
from tests.looking import batches_xy
from tests.conftest import make_federation, set_training, tiny_data
from tests.runs_helpers import compose_cfg

VECTORIZED = [m for m in methods.available() if methods.get(m).vectorizable]  # all but fedbn (BatchNorm buffers)
QUICK = {"fedrep": {"head_epochs": 2}, "perfedavg": {"local_steps": 3}, "pfedme": {"local_steps": 3},
         "fedavg_ft": {"ft_epochs": 2}, "fedbabu": {"ft_epochs": 2}}


def uneven_data():
    """Clients of 22, 7, 11, 0, 16 and 2 train samples: different step counts and last-batch sizes."""
    data = tiny_data(num_clients=6, per_client=30)
    for k, n in {1: 7, 2: 11, 3: 0, 5: 2}.items():
        c = data.clients[k]
        data.clients[k] = ClientData(c.train[:n], c.val, c.test)
    return data


def assert_same_state(seq, vm):
    for k in seq.global_state:
        torch.testing.assert_close(vm.global_state[k], seq.global_state[k], atol=1e-5, rtol=1e-5)
    for k in seq.tensors.store.tensors:
        torch.testing.assert_close(vm.tensors.store.tensors[k], seq.tensors.store.tensors[k], atol=1e-5, rtol=1e-5)


def pair(method, min_group, **kw):
    kw.setdefault("hp_overrides", QUICK.get(method))
    seq = make_federation(method, **kw)
    vm = make_federation(method, engine=VmapEngine(), **kw)
    vm.engine.min_group = min_group
    return seq, vm


def test_every_method_but_fedbn_is_vectorizable():
    import methods

    assert [m for m in methods.available() if vmap_support(methods.get(m), make_federation("fedavg").model) is None
            and methods.get(m).vectorizable] == VECTORIZED


@pytest.mark.parametrize("method", VECTORIZED)
@pytest.mark.parametrize("min_group", [1, 3])  # 1: every step vmapped; 3: small groups step client by client
def test_engines_agree(method, min_group):
    kw = dict(rounds=3, data=uneven_data(), join_ratio=0.7, local_epochs=2, momentum=0.9, batch_size=4)
    seq, vm = pair(method, min_group, **kw)
    for t in range(3):
        assert vm.train_round(t) == pytest.approx(seq.train_round(t), abs=1e-5)
    assert_same_state(seq, vm)
    a, b = seq.evaluate(2), vm.evaluate(2)
    for k in a:
        np.testing.assert_allclose(b[k], a[k], atol=1e-5)
    assert (vm.bytes_up, vm.bytes_down) == (seq.bytes_up, seq.bytes_down)
    assert np.array_equal(vm.times_sampled, seq.times_sampled)


@pytest.mark.parametrize("method", ["fedavg", "fedbsd"])
def test_engines_agree_when_a_step_is_split_into_several_calls(method):
    kw = dict(rounds=3, data=uneven_data(), join_ratio=1.0, local_epochs=2, momentum=0.9, batch_size=4)
    seq, vm = pair(method, 1, **kw)
    vm.engine.max_call_samples = 9  # batches of 4: two clients per vmapped call
    for t in range(3):
        assert vm.train_round(t) == pytest.approx(seq.train_round(t), abs=1e-5)
    assert_same_state(seq, vm)


@pytest.mark.parametrize("student_init,eval_backbone", [("personal", "local"), ("personal", "global"),
                                                        ("global", "global")])
def test_engines_agree_with_weight_decay_and_fedbsd_options(student_init, eval_backbone):
    kw = dict(rounds=3, data=uneven_data(), join_ratio=0.5, batch_size=5,
              hp_overrides={"student_init": student_init, "eval_backbone": eval_backbone,
                            "weighting": "samples", "loss": "mse"})
    seq, vm = pair("fedbsd", 1, **kw)
    set_training(seq, weight_decay=0.01)
    set_training(vm, weight_decay=0.01)
    for t in range(3):
        seq.train_round(t), vm.train_round(t)
    assert_same_state(seq, vm)
    a, b = seq.evaluate(2), vm.evaluate(2)
    for k in a:
        np.testing.assert_allclose(b[k], a[k], atol=1e-5)


@pytest.mark.parametrize("method", ["fedbsd", "local", "fedavg_ft", "perfedavg", "ditto", "apfl", "fedrod"])
def test_vmapped_evaluation_in_chunks_equals_client_by_client(method):
    data = tiny_data(num_clients=7, per_client=30)
    for k, (nv, nt) in enumerate([(0, 3), (1, 1), (4, 9), (2, 0), (6, 4), (3, 3), (0, 1)]):
        c = data.clients[k]
        data.clients[k] = ClientData(c.train, torch.arange(k * 30 + 15, k * 30 + 15 + nv),
                                     torch.arange(k * 30 + 22, k * 30 + 22 + nt))
    seq, vm = pair(method, 1, rounds=2, data=data, join_ratio=0.6)
    for t in range(2):
        seq.train_round(t), vm.train_round(t)
    set_training(seq, eval_batch_size=5)
    set_training(vm, eval_batch_size=5)  # several chunks, one client per chunk too
    a, b = seq.evaluate(1), vm.evaluate(1)
    for k in a:
        np.testing.assert_allclose(b[k], a[k], atol=1e-5)
    assert np.isnan(b["val_acc"][0]) and np.isnan(b["test_acc"][3])


def test_a_cohorts_plan_is_each_clients_own_data_order():
    data = uneven_data()
    data.x[:, 0] = torch.arange(len(data.x), dtype=data.x.dtype)  # a sample's first feature is its index
    fed = make_federation("fedavg", rounds=2, data=data, local_epochs=2, batch_size=4)
    ids = [0, 4, 2, 1, 5]  # decreasing train size: 22, 16, 11, 7, 2
    plan = fed.cohort(ids, 1, "train", vmapped=True).batches()
    for row, k in enumerate(ids):
        want = [xb[:, 0].long().tolist() for xb, _ in batches_xy(fed.cohort([k], 1, "train").batches(), fed.data)]
        assert [xb[:, 0].long().tolist() for xb, _ in batches_xy(plan, fed.data, row)] == want and plan.counts[row] == len(want)
    for i, step in enumerate(plan):
        assert step.active == int((plan.counts > i).sum())  # a prefix of the cohort
        if step.w is not None:  # 1/len on the batch, 0 on the padding
            for row, n in enumerate(step.lens):
                assert step.w[row].tolist() == pytest.approx([1 / n] * n + [0.0] * (step.idx.shape[1] - n))
    assert any(s.active < len(ids) for s in plan) and any(s.w is not None for s in plan)


def test_what_vmap_cannot_run_falls_back_with_a_warning():
    fed = make_federation("fedavg", model={"name": "mlp", "hidden": [16, 8], "bn": True})
    why = vmap_support(fed.method, fed.model)
    assert why and "buffers" in why
    said = []
    built = choose_engine("vmap", fed.method, fed.model, torch.device("cpu"), 4, warn=said.append)
    assert isinstance(built, SequentialEngine) and not isinstance(built, VmapEngine)
    assert len(said) == 1 and "engine=sequential" in said[0]
    with pytest.raises(ConfigError, match="engine"):
        prepare(compose_cfg("engine=turbo"))


def test_sgd_update_is_torch_optim_sgd():
    """The cohort's SGD update against torch.optim.SGD, bit for bit: momentum, weight decay, and a
    parameter that gets no gradient in some steps."""
    from fedbench.federation.sgd import sgd_update

    torch.manual_seed(0)
    a = torch.nn.Sequential(torch.nn.Linear(5, 4), torch.nn.ReLU(), torch.nn.Linear(4, 3))
    b = {k: v.detach().clone().unsqueeze(0) for k, v in a.state_dict().items()}  # a cohort of one
    opt = torch.optim.SGD(a.parameters(), lr=0.1, momentum=0.9, weight_decay=0.01)
    bufs = {}
    for step in range(6):
        x, y = torch.randn(8, 5), torch.randint(0, 3, (8,))
        for p in a.parameters():
            p.grad = None
        out = a(x) if step % 3 else a[2](torch.relu(a[0](x).detach()))  # no grad for layer 0
        torch.nn.functional.cross_entropy(out, y).backward()
        grads = {k: None if p.grad is None else p.grad.unsqueeze(0) for k, p in a.named_parameters()}
        opt.step()
        sgd_update(b, grads, bufs, 1, 0.1, 0.9, 0.01)
        for k, p in a.named_parameters():
            assert torch.equal(p, b[k][0]), k


def test_cli_engine_vmap_runs_and_records_the_engine(tmp_path, data_root):
    import json

    from tests.conftest import run_cli

    res = run_cli(f"results_dir={tmp_path}", "rounds=2", "engine=vmap", "method=fedper", "threads=1")
    assert res.returncode == 0, res.stderr[-2000:]
    (summary,) = tmp_path.glob("runs/**/summary.json")
    s = json.loads(summary.read_text())
    assert s["status"] == "complete" and s["engines"] == ["vmap"]


@pytest.mark.parametrize("method,loss", [("fedavg", None), ("fedbsd", "kl"), ("fedbsd", "mse"), ("fedbsd", "cosine"),
                                         ("fedprox", None), ("fedrod", None)])
def test_padded_weighted_terms_give_the_batch_mean_gradient(method, loss):
    """A cohort pads a short batch with copies of its first sample and weighs the objective's
    per-sample terms 1/len (0 on padding): same value and gradient as the objective's own mean."""
    fed = make_federation(method, hp_overrides={"loss": loss} if loss else None)
    fed.tensors.global_state = {k: v + 0.3 for k, v in fed.global_state.items()}  # a teacher/anchor unlike the client
    fed.tensors.refresh_global()
    client = fed.cohort([0], 0, "train")
    x, y = fed.data.x[:7], fed.data.y[:7]
    xp, yp = torch.cat([x, x[:1].expand(3, -1)]), torch.cat([y, y[:1].expand(3)])
    w = torch.cat([torch.full((7,), 1 / 7), torch.zeros(3)])
    names = client.model.names()

    def value_and_grad(xb, yb, wb):
        leaves = {n: client.state[n][0].detach().requires_grad_() for n in names}
        value = client.call(fed.method.loss, leaves, 0, xb, yb, wb)
        return value, torch.autograd.grad(value, list(leaves.values()))

    mean, g_mean = value_and_grad(x, y, None)
    padded, g_pad = value_and_grad(xp, yp, w)
    assert padded.item() == pytest.approx(mean.item(), rel=1e-6)
    for a, b in zip(g_mean, g_pad):
        torch.testing.assert_close(b, a, atol=1e-6, rtol=1e-5)


def test_auto_engine_picks_vmap_only_where_it_runs_the_method_and_pays_off():
    from fedbench.engines import auto_engine

    cpu, fed = torch.device("cpu"), make_federation("fedbsd")
    assert auto_engine(fed.method, fed.model, cpu, 10) == "vmap"
    assert auto_engine(fed.method, fed.model, cpu, 4) == "sequential"  # below VmapEngine.min_group
    bn = make_federation("fedavg", model={"name": "mlp", "hidden": [16, 8], "bn": True})
    assert auto_engine(bn.method, bn.model, cpu, 10) == "sequential"  # BatchNorm buffers
    import methods
    from fedbench.models import build_model
    from tests.conftest import method_hp

    cnn = build_model({"name": "cnn"}, (3, 32, 32), 10)
    fedavg = methods.get("fedavg")(method_hp("fedavg"), cnn)
    assert auto_engine(fedavg, cnn, cpu, 10) == "sequential"  # convolutions on a CPU: slower vmapped
    assert auto_engine(fedavg, cnn, torch.device("cuda"), 10) == "vmap"
    said = []
    built = choose_engine("auto", bn.method, bn.model, cpu, 10, warn=said.append)
    assert built.name == "sequential" and not said  # auto never warns
    many = make_federation("pfedme", data=tiny_data(num_clients=10, per_client=20))
    assert choose_engine("auto", many.method, many.model, cpu, 10).name == "vmap"


def test_engines_agree_under_a_step_lr_schedule():
    kw = dict(rounds=4, data=uneven_data(), join_ratio=1.0, momentum=0.9, batch_size=4)
    seq, vm = pair("fedbsd", 1, **kw)
    set_training(seq, lr_schedule="step")
    set_training(vm, lr_schedule="step")  # x0.1 from round 2, again from round 3
    for t in range(4):
        assert vm.train_round(t) == pytest.approx(seq.train_round(t), abs=1e-5)
    assert_same_state(seq, vm)
    const, _ = pair("fedbsd", 1, **kw)
    for t in range(4):
        const.train_round(t)
    assert any(not torch.allclose(const.global_state[k], seq.global_state[k]) for k in seq.global_state)


@pytest.mark.parametrize("method", VECTORIZED)
def test_every_vectorizable_method_completes_a_run_on_the_vmap_engine(method, tmp_path, data_root):
    from tests.runs_helpers import run_inprocess

    s = run_inprocess(f"method={method}", f"results_dir={tmp_path}", "engine=vmap", "rounds=2", "eval_every=1",
                      *[f"method.{k}={v}" for k, v in QUICK.get(method, {}).items()])
    assert s["status"] == "complete" and s["engines"] == ["vmap"] and 0 <= s["final_acc"] <= 1
