"""engine=vmap against engine=sequential: same seed, same numbers (up to floating point), for every
method the vmap engine accepts; its batch plan is the sequential engine's data order; methods it cannot
run fall back with a warning; the lean SGD step is torch.optim.SGD's arithmetic."""
import dataclasses

import numpy as np
import pytest
import torch

from fedbench.data.types import ClientData
from fedbench.engines import build_federation, vmap_support
from fedbench.engines.vmap import VmapFederation
from fedbench.errors import ConfigError
from fedbench.federation import Federation
from tests.conftest import make_federation, tiny_data



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
    for k in seq.store.tensors:
        torch.testing.assert_close(vm.store.tensors[k], seq.store.tensors[k], atol=1e-5, rtol=1e-5)


def pair(method, min_group, **kw):
    seq = make_federation(method, **kw)
    twin = make_federation(method, **kw)
    vm = VmapFederation(twin.hp, twin.data, twin.model, twin.method, len(twin.schedule), kw.get("join_ratio", 1.0))
    vm.min_group = min_group
    return seq, vm


@pytest.mark.parametrize("method", ["fedavg", "fedper", "fedbsd", "local", "lgfedavg", "fedavg_ft"])
@pytest.mark.parametrize("min_group", [1, 3])  # 1: every step vmapped; 3: small groups step client by client
def test_engines_agree(method, min_group):
    kw = dict(rounds=4, data=uneven_data(), join_ratio=0.7, local_epochs=2, momentum=0.9, batch_size=4)
    seq, vm = pair(method, min_group, **kw)
    for t in range(4):
        assert vm.train_round(t) == pytest.approx(seq.train_round(t), abs=1e-5)
    assert_same_state(seq, vm)
    a, b = seq.evaluate(3), vm.evaluate(3)
    for k in a:
        np.testing.assert_allclose(b[k], a[k], atol=1e-5)
    assert (vm.bytes_up, vm.bytes_down) == (seq.bytes_up, seq.bytes_down)
    assert np.array_equal(vm.times_sampled, seq.times_sampled)


@pytest.mark.parametrize("method", ["fedavg", "fedbsd"])
def test_engines_agree_when_a_step_is_split_into_several_calls(method):
    kw = dict(rounds=3, data=uneven_data(), join_ratio=1.0, local_epochs=2, momentum=0.9, batch_size=4)
    seq, vm = pair(method, 1, **kw)
    vm.max_call_samples = 9  # batches of 4: two clients per vmapped call
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
    seq.hp = vm.hp = dataclasses.replace(seq.hp, weight_decay=0.01)
    for t in range(3):
        seq.train_round(t), vm.train_round(t)
    assert_same_state(seq, vm)
    a, b = seq.evaluate(2), vm.evaluate(2)
    for k in a:
        np.testing.assert_allclose(b[k], a[k], atol=1e-5)


@pytest.mark.parametrize("method", ["fedbsd", "local"])
def test_vmapped_evaluation_in_chunks_equals_client_by_client(method):
    data = tiny_data(num_clients=7, per_client=30)
    for k, (nv, nt) in enumerate([(0, 3), (1, 1), (4, 9), (2, 0), (6, 4), (3, 3), (0, 1)]):
        c = data.clients[k]
        data.clients[k] = ClientData(c.train, torch.arange(k * 30 + 15, k * 30 + 15 + nv),
                                     torch.arange(k * 30 + 22, k * 30 + 22 + nt))
    seq, vm = pair(method, 1, rounds=2, data=data, join_ratio=0.6)
    for t in range(2):
        seq.train_round(t), vm.train_round(t)
    seq.hp = vm.hp = dataclasses.replace(seq.hp, eval_batch_size=5)  # several chunks, one client per chunk too
    a, b = seq.evaluate(1), vm.evaluate(1)
    for k in a:
        np.testing.assert_allclose(b[k], a[k], atol=1e-5)
    assert np.isnan(b["val_acc"][0]) and np.isnan(b["test_acc"][3])


def test_vmap_plan_is_the_sequential_data_order():
    data = uneven_data()
    data.x[:, 0] = torch.arange(len(data.x), dtype=data.x.dtype)  # a sample's first feature is its index
    _, vm = pair("fedavg", 1, rounds=2, data=data, local_epochs=2, batch_size=4)
    sampled = vm.schedule[1]
    groups, steps, order = vm.plan(1, sampled)
    got = {j: [] for j in range(len(sampled))}
    for s, g in enumerate(groups):
        assert g.step == s and g.pos.tolist() == [j for j in order if steps[j] > s]  # a prefix of the stack
        lens = g.lens or [g.idx.shape[1]] * len(g.pos)
        for row, j in enumerate(g.pos.tolist()):
            got[j].append(g.idx[row, :lens[row]].tolist())
            if g.w is not None:  # 1/len on the batch, 0 on the padding
                want_w = [1 / lens[row]] * lens[row] + [0.0] * (g.idx.shape[1] - lens[row])
                assert g.w[row].tolist() == pytest.approx(want_w)
    for j, k in enumerate(sampled):
        want = [xb[:, 0].long().tolist() for xb, _ in vm.client(int(k), 1, "data").batches(2)]
        assert got[j] == want and steps[j] == len(want)
    assert any(len(g.pos) < len(sampled) for g in groups)  # clients leave the groups as they finish
    assert any(g.w is not None for g in groups)  # and partial batches are padded


def test_unsupported_method_falls_back_with_a_warning():
    fed = make_federation("fedprox")
    why = vmap_support(fed.method, fed.model)
    assert why and "loss" in why
    said = []
    built = build_federation("vmap", fed.hp, fed.data, fed.model, fed.method, 2, 1.0, warn=said.append)
    assert type(built) is Federation and len(said) == 1 and "engine=sequential" in said[0]
    with pytest.raises(ConfigError, match="engine"):
        build_federation("turbo", fed.hp, fed.data, fed.model, fed.method, 2, 1.0)


def test_batchnorm_model_is_not_vmapped():
    fed = make_federation("fedavg", model={"name": "mlp", "hidden": [16, 8], "bn": True})
    assert "buffers" in vmap_support(fed.method, fed.model)


def test_sgd_step_is_torch_optim_sgd():
    """Client.sgd's own update against torch.optim.SGD, bit for bit: momentum, weight decay, and a
    parameter that gets no gradient in some steps."""
    from fedbench.client import sgd_step

    torch.manual_seed(0)
    a = torch.nn.Sequential(torch.nn.Linear(5, 4), torch.nn.ReLU(), torch.nn.Linear(4, 3))
    b = torch.nn.Sequential(torch.nn.Linear(5, 4), torch.nn.ReLU(), torch.nn.Linear(4, 3))
    b.load_state_dict(a.state_dict())
    opt = torch.optim.SGD(a.parameters(), lr=0.1, momentum=0.9, weight_decay=0.01)
    params, bufs = list(b.parameters()), [None] * 4
    for step in range(6):
        x, y = torch.randn(8, 5), torch.randint(0, 3, (8,))
        for model in (a, b):
            for p in model.parameters():
                p.grad = None
            out = model(x) if step % 3 else model[2](torch.relu(model[0](x).detach()))  # no grad for layer 0
            torch.nn.functional.cross_entropy(out, y).backward()
        opt.step()
        sgd_step(params, bufs, 0.1, 0.9, 0.01)
        for p, q in zip(a.parameters(), b.parameters()):
            assert torch.equal(p, q)


def test_cli_engine_vmap_runs_and_records_the_engine(tmp_path, data_root):
    import json

    from tests.conftest import run_cli

    res = run_cli(f"results_dir={tmp_path}", "rounds=2", "engine=vmap", "method=fedper", "threads=1")
    assert res.returncode == 0, res.stderr[-2000:]
    (summary,) = tmp_path.glob("runs/**/summary.json")
    s = json.loads(summary.read_text())
    assert s["status"] == "complete" and s["engine"] == "vmap"


@pytest.mark.parametrize("method,loss", [("fedavg", None), ("fedbsd", "kl"), ("fedbsd", "mse"), ("fedbsd", "cosine")])
def test_padded_weighted_terms_give_the_batch_mean_gradient(method, loss):
    """engine=vmap pads a short batch with copies of its first sample and weighs the method's
    per-sample terms 1/len (0 on padding): same value and gradient as the method's own mean loss."""
    _, vm = pair(method, 1, hp_overrides={"loss": loss} if loss else None)
    vm.global_state = {k: v + 0.3 for k, v in vm.global_state.items()}  # a teacher unlike the student
    vm._teacher_fresh = False
    vm.global_model()
    x, y = vm.data.x[:7], vm.data.y[:7]
    xp, yp = torch.cat([x, x[:1].expand(3, -1)]), torch.cat([y, y[:1].expand(3)])
    w = torch.cat([torch.full((7,), 1 / 7), torch.zeros(3)])
    params = list(vm.model.parameters())
    mean = vm.method.loss(vm._view, x, y)
    g_mean = torch.autograd.grad(mean, params)
    padded = (vm.method.loss(vm._view, xp, yp, reduction="none") * w).sum()
    g_pad = torch.autograd.grad(padded, params)
    assert padded.item() == pytest.approx(mean.item(), rel=1e-6)
    for a, b in zip(g_mean, g_pad):
        torch.testing.assert_close(b, a, atol=1e-6, rtol=1e-5)


def test_auto_engine_picks_vmap_only_where_it_runs_the_method_and_pays_off():
    from fedbench.engines import auto_engine

    cpu, fed = torch.device("cpu"), make_federation("fedbsd")
    assert auto_engine(fed.method, fed.model, cpu, 10) == "vmap"
    assert auto_engine(fed.method, fed.model, cpu, 4) == "sequential"  # below VmapFederation.min_group
    prox = make_federation("fedprox")
    assert auto_engine(prox.method, prox.model, cpu, 10) == "sequential"  # not plain SGD on its loss
    import methods
    from fedbench.models import build_model
    from tests.conftest import method_hp

    cnn = build_model({"name": "cnn"}, (3, 32, 32), 10)
    fedavg = methods.get("fedavg")(method_hp("fedavg"), cnn)
    assert auto_engine(fedavg, cnn, cpu, 10) == "sequential"  # convolutions on a CPU: slower vmapped
    assert auto_engine(fedavg, cnn, torch.device("cuda"), 10) == "vmap"
    said = []
    built = build_federation("auto", prox.hp, prox.data, prox.model, prox.method, 2, 1.0, warn=said.append)
    assert type(built) is Federation and not said  # auto never warns
    many = make_federation("fedavg", data=tiny_data(num_clients=10, per_client=20))
    assert type(build_federation("auto", many.hp, many.data, many.model, many.method, 2, 1.0)) is VmapFederation


def test_engines_agree_under_a_step_lr_schedule():
    kw = dict(rounds=4, data=uneven_data(), join_ratio=1.0, momentum=0.9, batch_size=4)
    seq, vm = pair("fedbsd", 1, **kw)
    seq.hp = vm.hp = dataclasses.replace(seq.hp, lr_schedule="step")  # x0.1 from round 2, again from round 3
    for t in range(4):
        assert vm.train_round(t) == pytest.approx(seq.train_round(t), abs=1e-5)
    assert_same_state(seq, vm)
    const, _ = pair("fedbsd", 1, **kw)
    for t in range(4):
        const.train_round(t)
    assert any(not torch.allclose(const.global_state[k], seq.global_state[k]) for k in seq.global_state)
