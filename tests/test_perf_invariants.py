"""What the fast paths must never change: gathering by index yields exactly a client's samples, the
one-pass evaluation gives the per-client numbers, memory does not grow round after round, threads=auto
follows the documented rule, and the benchmark runs and prints every row. (No timed assertions:
speed is measured by `python -m fedbench.bench`, never asserted.)"""
import gc
import os
import re
import subprocess
import sys
import tracemalloc

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir

from fedbench.cli import CONF_DIR
from fedbench.config import prepare
from fedbench.execution import resolve_threads
from fedbench.data.federated import load_federated
from tests.looking import batches_xy
from tests.conftest import ROOT, load_live, make_federation, tiny_data



def digits(tmp_path, *overrides):
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name="config", overrides=[f"data.root={tmp_path}", f"results_dir={tmp_path}",
                                                       *overrides])
    return prepare(cfg)


def test_gathering_by_index_yields_exactly_the_clients_samples(tmp_path):
    from sklearn.datasets import load_digits

    cfg = digits(tmp_path, "num_clients=12", "partition.alpha=0.3")
    data = load_federated(cfg, torch.device("cpu"))
    raw = load_digits()
    raw_x, raw_y = torch.as_tensor((raw.data / 16.0 - 0.5) / 0.5, dtype=torch.float32), torch.as_tensor(raw.target)
    owner = torch.full((len(raw_y),), -1)
    fed = make_federation("fedavg", data=data)
    for k, c in enumerate(data.clients):
        for part in (c.train, c.val, c.test):
            assert (owner[part] == -1).all()  # no sample belongs to two clients or two splits
            owner[part] = k
        client = fed.cohort([k], 0, "train")
        xs, ys = zip(*batches_xy(client.batches(1), client.data))
        x, y = torch.cat(xs), torch.cat(ys)
        assert len(y) == len(c.train)
        # the same samples (as a multiset of rows), and each is the raw dataset's row at a train index
        got = sorted(zip(map(tuple, x.tolist()), y.tolist()))
        assert got == sorted(zip(map(tuple, raw_x[c.train].tolist()), raw_y[c.train].tolist()))
    # the one-pass evaluation index holds each client's val and test samples, in that order
    idx, seg, counts = fed.evaluator.index, fed.evaluator.segment, fed.evaluator.counts
    for k, c in enumerate(data.clients):
        assert torch.equal(idx[seg == 2 * k], c.val) and torch.equal(idx[seg == 2 * k + 1], c.test)
        assert counts[k].tolist() == [len(c.val), len(c.test)]


def test_one_pass_evaluation_equals_per_client_evaluation():
    data = tiny_data(num_clients=5)
    data.clients[2].val = data.clients[2].val[:0]  # an empty split gives NaN, as before
    fed = make_federation("fedavg", rounds=2, data=data)
    for t in range(2):
        fed.train_round(t)
    assert fed.same_eval_model()
    ev = fed.evaluate(1)
    for k, c in enumerate(fed.data.clients):
        load_live(fed, k)
        fed.model.eval()
        with torch.no_grad():
            val, test = (fed.model(fed.data.x[part]) for part in (c.val, c.test))
        va = (val.argmax(1) == fed.data.y[c.val]).float().mean().item() if len(c.val) else float("nan")
        ta = (test.argmax(1) == fed.data.y[c.test]).float().mean().item()
        tl = torch.nn.functional.cross_entropy(test, fed.data.y[c.test]).item()
        np.testing.assert_allclose([ev["val_acc"][k], ev["test_acc"][k], ev["test_loss"][k]], [va, ta, tl],
                                   rtol=1e-6)
    assert np.isnan(ev["val_acc"][2])
    assert not make_federation("fedper").same_eval_model()  # personal heads: client by client


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2 ** 20


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="RSS from /proc (Linux)")
@pytest.mark.parametrize("method,engine", [("fedavg", "sequential"), ("fedbsd", "sequential"), ("fedbsd", "vmap")])
def test_no_memory_growth_over_many_rounds(method, engine):
    from fedbench.engines import ENGINES
    from fedbench.federation import Federation

    # a model of ~1 MiB, so that keeping one copy per round would show in RSS too
    base = make_federation(method, rounds=50, join_ratio=0.5, data=tiny_data(num_clients=10, per_client=40),
                           model={"name": "mlp", "hidden": [512, 480]})
    fed = Federation(base.training, base.data, base.model, base.method, 50, 0.5, ENGINES[engine]())
    for t in range(10):  # warm-up: lazy models, caches, allocator pools
        fed.train_round(t)
        fed.evaluate(t)
    gc.collect()
    tracemalloc.start()
    py_before, rss_before = tracemalloc.get_traced_memory()[0], _rss_mb()
    for t in range(10, 50):
        fed.train_round(t)
        if t % 5 == 4:
            fed.evaluate(t)
    gc.collect()
    py_growth = tracemalloc.get_traced_memory()[0] - py_before
    tracemalloc.stop()
    rss_growth = _rss_mb() - rss_before
    # 40 rounds: keeping one model copy per round (~1 MiB) would exceed the RSS bound (generous for
    # allocator noise), keeping Python objects per client or round the heap bound (observed: 6-30 KB,
    # saturating caches)
    print(f"{method}/{engine}: Python heap {py_growth} B, RSS {rss_growth:.2f} MiB over 40 rounds")
    assert py_growth < 64 * 1024, f"Python heap grew {py_growth} bytes over 40 rounds"
    assert rss_growth < 24, f"RSS grew {rss_growth:.1f} MiB over 40 rounds"


def test_threads_auto_is_one_unless_cores_are_given_to_the_run(monkeypatch):
    monkeypatch.delenv("SLURM_CPUS_PER_TASK", raising=False)
    assert resolve_threads(3) == 3 and resolve_threads("4") == 4
    monkeypatch.setattr(os, "cpu_count", lambda: 8)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(8)))
    assert resolve_threads("auto") == 1  # the whole machine: maybe shared, so one thread
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {2, 3, 4})
    assert resolve_threads("auto") == 3  # a launcher pinned this run to 3 cores
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "6")
    assert resolve_threads("auto") == 6


def test_quick_bench_prints_every_row(tmp_path):
    env = dict(os.environ, FEDBENCH_DATA=str(tmp_path))
    # the MLP sections only (the CNN's are the same code on another setting, and most of the time)
    out = subprocess.run([sys.executable, "-m", "fedbench.bench", "--quick", "--no-cnn"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    text = out.stdout
    for method in ("fedavg", "fedbsd"):
        for runner in ("harness, engine=sequential", "harness, engine=vmap", "floor", "typical"):
            assert re.search(rf"^\| {method} \| {runner} \| [0-9.]+ \|", text, re.M), (method, runner, text)
        assert re.search(rf"^{method}: default engine \(auto\) = vmap; harness/floor = [0-9.]+ .* "
                         rf"typical/harness = [0-9.]+ .* typical/sequential = [0-9.]+", text, re.M)
    import methods

    for method in methods.available():  # every method, both engines where it is vectorizable
        row = re.search(rf"^\| {method} \| ([0-9.]+) \| (\S+)[^|]*\| (vmap|sequential) \|", text, re.M)
        assert row, (method, text)
        vectorizable = methods.get(method).vectorizable   # FedBN (BatchNorm statistics) and FedCP (Gumbel noise) are not
        assert (row.group(2) == "n/a") == (not vectorizable) and row.group(3) == ("vmap" if vectorizable else "sequential")
    for clients in (100, 1000):
        assert re.search(rf"^\| {clients} \| fedbsd \| sequential \| \d+ \|", text, re.M), text
    assert "data path, 1,000 clients" in text
    # every runner computed the same model as the floor (the MLP: --no-cnn; the CNN's choice of engine is
    # tests/test_engines.py's)
    diffs = [float(d) for d in re.findall(r"\| ([0-9.]+e[-+][0-9]+) \|$", text, re.M)]
    assert len(diffs) == 6 and max(diffs) < 1e-4
