"""Tuning with an equal budget: every method declares a search space (the lr and at most two keys of
its own) of the same size; python -m fedbench.tune runs one Hydra multirun per method over it and the
report selects on validation; --final-seeds reruns each selected configuration on more seeds."""
from __future__ import annotations

import subprocess
import sys

import pandas as pd
import pytest

from fedbench.config import group_options, prepare
from fedbench.errors import ConfigError
from fedbench.tune import configurations, plan, search_space
from tests.conftest import ROOT
from tests.runs_helpers import compose_cfg


@pytest.mark.parametrize("method", group_options("method"))
def test_every_method_declares_a_valid_search_of_the_common_size(method):
    space = search_space(method)
    keys = [s.split("=", 1)[0] for s in space]
    assert keys[0] == "lr" and len(keys) <= 3 and all(k.startswith("method.") for k in keys[1:])
    assert configurations(space) == configurations(search_space("fedavg")) == 12
    # the extreme grid points are valid configurations of the method
    for pick in (0, -1):
        values = [f"{s.split('=', 1)[0]}={s.split('=', 1)[1].split(',')[pick]}" for s in space]
        extra = ["model.bn=true"] if method == "fedbn" else []
        prepare(compose_cfg(f"method={method}", *values, *extra), machine=False)


def test_plan_is_one_multirun_per_method_and_refuses_what_would_bias_it(monkeypatch):
    jobs = dict(plan(["fedavg", "fedbsd", "fedbn"], ["seed=0"]))
    assert jobs["fedbsd"][:5] == ["-m", "method=fedbsd", "lr=0.03,0.1,0.3,1.0", "method.lam=0.1,1.0,10.0", "seed=0"]
    assert "model.bn=true" in jobs["fedbn"] and "model.bn=true" not in jobs["fedavg"]
    with pytest.raises(ConfigError, match="lr: tuned by method=fedavg's search"):
        plan(["fedavg"], ["lr=0.1"])
    with pytest.raises(ConfigError, match="choose methods with --methods"):
        plan(["fedavg"], ["method=fedbsd"])
    monkeypatch.setattr("fedbench.tune.search_space", lambda m: ["lr=0.1,0.2"] if m == "local" else ["lr=0.1"])
    with pytest.raises(ConfigError, match="unequal tuning budgets: fedavg 1, local 2"):
        plan(["fedavg", "local"], [])


def test_tune_then_select_then_final_seeds_end_to_end(tmp_path, data_root):
    """Two methods, the grid on seed 0, the winners on seed 1: every grid point ran once, the
    selection is on validation, and the selected configurations have both seeds."""
    proc = subprocess.run([sys.executable, "-m", "fedbench.tune", "--methods", "fedavg,local", "--final-seeds", "1",
                           f"results_dir={tmp_path}", "rounds=2", "num_clients=4", "eval_every=1", "progress=false",
                           "threads=1", "partition=iid"], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs = pd.read_csv(tmp_path / "summary.csv")
    assert len(runs) == 2 * 12 + 2 and set(runs["status"]) == {"complete"}
    sel = pd.read_csv(tmp_path / "tables" / "selected.csv")
    assert list(sel["method"]) == ["fedavg", "local"] and list(sel["configs_tried"]) == [12, 12]
    assert list(sel["seeds"]) == [2, 2] and list(sel["val_seeds"]) == [1, 1]
    for _, row in sel.iterrows():  # the winner has the best validation accuracy of its method on seed 0
        grid = runs[(runs["method"] == row["method"]) & (runs["seed"] == 0)]
        assert row["val_acc"] == pytest.approx(grid["final_val_acc"].max())
    # every row's overrides reproduce it: python -m fedbench <overrides>
    assert runs["overrides"].str.contains("method=").all() and runs["overrides"].str.contains("lr=").all()
    row = runs[runs["method"] == "local"].iloc[3]
    redo = [o for o in row["overrides"].split() if not o.startswith("results_dir=")] + [f"results_dir={tmp_path / 'redo'}"]
    again = subprocess.run([sys.executable, "-m", "fedbench", *redo], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-2000:]
    (metrics,) = (tmp_path / "redo").glob("runs/**/metrics.csv")
    assert metrics.read_bytes() == (tmp_path / row["run_dir"] / "metrics.csv").read_bytes()


def test_screening_runs_the_grid_short_and_carries_the_best_to_the_full_rounds(tmp_path):
    """--screen 1 --carry 2: the 12 configurations for 1 round in results_dir/screening, then the 2 best
    there (the selection's rule) for the full 2 rounds in results_dir, where the selection picks one."""
    proc = subprocess.run([sys.executable, "-m", "fedbench.tune", "--methods", "fedavg", "--screen", "1", "--carry", "2",
                           f"results_dir={tmp_path}", "rounds=2", "num_clients=4", "eval_every=1", "progress=false",
                           "threads=1", "partition=iid"], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    from fedbench.report.collect import collect
    from fedbench.report.select import rankings

    screen = collect(tmp_path / "screening")
    assert len(screen) == 12 and set(screen["rounds"]) == {1}
    ((rank, _),) = rankings(screen, "final").values()
    runs = pd.read_csv(tmp_path / "summary.csv")
    assert len(runs) == 2 and set(runs["rounds"]) == {2} and set(runs["status"]) == {"complete"}
    carried = {v.split("(", 1)[1] for v in rank.order[:2]}   # 'fedavg(lr=...)' -> 'lr=...)'
    assert {v.split("(", 1)[1] for v in runs["variant"]} == carried
    assert not runs["overrides"].str.contains(str(tmp_path / "screening"), regex=False).any()
    sel = pd.read_csv(tmp_path / "tables" / "selected.csv")
    # stated against the screened grid: 12 tried, 2 carried, an edge of the 12 learning rates
    assert list(sel["configs_tried"]) == [12] and list(sel["carried"]) == [2]
    lrs, chosen = rank.grid["lr"], float(sel["lr"].iloc[0])
    edge = "" if chosen not in (lrs[0], lrs[-1]) else \
        f"lr={chosen:g} ({'smallest' if chosen == lrs[0] else 'largest'} of 12)"
    assert str(sel["grid_edge"].fillna("").iloc[0]) == edge
    record = (tmp_path / "tables" / "screening.md").read_text()   # what the carried ones were chosen from
    row = next(line for line in record.splitlines() if line.startswith("| ") and "| fedavg |" in line)
    assert row.split(" | ")[2:4] == ["12", str(int((screen["status"] == "diverged").sum()))]
    assert row.split(" | ")[4].startswith(f"{rank.order[0]} ({100 * rank.scores[rank.order[0]]:.2f}); {rank.order[1]} (")
