"""Fair tuning end to end (python -m fedbench.tune): every method's yaml declares a sound search of its
own keys; a tiny tune of two methods tries the same lr values for each, extends a choice forced to the
top of the lr list until it is interior, reports only the reporting seeds' runs (never the tuning
seed's), probes the selection's stability, and resumes without rerunning anything."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pandas as pd
import pytest

from fedbench.config import group_options, prepare
from fedbench.errors import ConfigError
from fedbench.tuning.space import MIN_VALUES, space_of, tune_settings
from tests.conftest import ROOT
from tests.runs_helpers import compose_cfg

# a list whose top is far below the best lr of a 2-round run: the search must go past it
LOW_LRS = "0.0005,0.001,0.002,0.005,0.01,0.02,0.05"
TINY = ["rounds=2", "num_clients=4", "eval_every=1", "progress=false", "partition=iid",
        "hydra/launcher=local", "hydra.launcher.reuse_processes=true"]


@pytest.mark.parametrize("method", group_options("method"))
def test_every_method_declares_a_sound_search(method):
    space = space_of(method)
    assert space.lr.values == tuple(tune_settings().lr)            # the same lr list for every method
    for key, default in zip(space.keys[1:], space.defaults):
        assert len(key.values) >= MIN_VALUES and key.values[0] <= default <= key.values[-1]
    extra = ["model.bn=true"] if method == "fedbn" else []
    for pick in (0, -1):   # the grid's corners are valid configurations of the method
        corner = [f"{k.name}={k.text(k.values[pick])}" for k in space.keys]
        prepare(compose_cfg(f"method={method}", *corner, *extra), machine=False)


def tune(tmp_path, *args, check=True):
    proc = subprocess.run([sys.executable, "-m", "fedbench.tune", *args, f"results_dir={tmp_path}", *TINY],
                          cwd=ROOT, capture_output=True, text=True, timeout=900)
    if check:
        assert proc.returncode == 0, proc.stderr[-4000:]
    return proc


def test_a_tiny_tune_searches_alike_extends_edges_and_reports_other_seeds(tmp_path, data_root):
    proc = tune(tmp_path, "--methods", "fedavg,fedprox", "seed=0", "--lr", LOW_LRS, "--seeds", "1,2")
    runs = pd.read_csv(tmp_path / "summary.csv")
    tuning = runs[runs["seed"] == 0]
    lrs = [float(v) for v in LOW_LRS.split(",")]
    sel = pd.read_csv(tmp_path / "tables" / "selected.csv").set_index("method")
    cap = 2 * len(lrs)
    for method in ("fedavg", "fedprox"):
        tried = sorted(set(tuning.loc[tuning["method"] == method, "lr"]))
        assert set(lrs) <= set(tried)                                  # the same lr list for each
        row = sel.loc[method]
        assert row["configs_tried"] == (tuning["method"] == method).sum() <= cap   # the budget: twice the list
        # forced past the top of the list (2 rounds want a larger lr), then extended until interior,
        # unless the budget ran out first, which the selection then says
        assert row["lr"] > max(lrs) and row["extension_trials"] >= 1
        if method != "fedprox" or row["configs_tried"] < cap:
            assert tried[0] < row["lr"] < tried[-1] and pd.isna(row["unexplored_edge"]), (method, tried, row["lr"])
        else:
            assert row["unexplored_edge"] == f"lr={row['lr']:g} (largest)"
        assert row["tuning_seeds"] == 0 and str(row["report_seeds"]) == "1,2"
        # the mean is the reporting seeds' alone: the tuning seed's run of the same configuration is not in it
        same = runs[(runs["method"] == method) & (runs["variant"] == row["variant"])]
        reported = same[same["seed"].isin([1, 2])]["final_acc"]
        assert len(reported) == 2 and row["final_acc_mean"] == pytest.approx(reported.mean())
        assert row["final_acc_mean"] != pytest.approx(same["final_acc"].mean())   # with the tuning seed it differs
        assert row["rounding_delta"] >= 0 and row["unstable"] in (True, False)   # the probe ran
    mus = set(tuning.loc[tuning["method"] == "fedprox", "method.mu"])
    assert {0.001, 0.01, 0.1, 1.0} <= mus                              # its own key over its grid
    assert sel.loc["fedprox", "configs_tried"] > sel.loc["fedavg", "configs_tried"]   # its own key, mu
    assert (tmp_path / "tune.yaml").is_file()                        # the search the report reads
    board = (tmp_path / "tables" / "leaderboard_final.md").read_text()
    assert "reporting seeds" in board
    again = tune(tmp_path, "--methods", "fedavg,fedprox", "--lr", LOW_LRS, "--seeds", "1,2", "seed=0")
    assert "fedbench.tune: search" not in again.stderr                 # resumed: nothing left to run
    assert len(pd.read_csv(tmp_path / "summary.csv")) == len(runs)


def test_a_screened_selection_is_stated_against_the_grid_screened(tmp_path, data_root):
    """--screen: the search runs 1 round into screening/, its 2 best configurations 2 rounds; the
    selection's budget and edges are the screened grid's (the settings' names differ by their rounds:
    a selection matched to no screening would claim 2 configurations tried, both at an edge)."""
    from fedbench.report.collect import collect

    tune(tmp_path, "--methods", "fedavg", "seed=0", "--lr", LOW_LRS, "--seeds", "1", "--screen", "1", "--carry", "2")
    row = pd.read_csv(tmp_path / "tables" / "selected.csv").set_index("method").loc["fedavg"]
    screened = collect(tmp_path / "screening")
    # 2 carried, and one more for each value screened past a full-round choice at the screened edge
    assert row["carried"] >= 2 and row["configs_tried"] == len(screened) > 2
    assert pd.isna(row["unexplored_edge"]) or row["configs_tried"] == 2 * len(LOW_LRS.split(","))   # or budget spent
    assert row["tuning_rounds"] == screened["rounds_done"].sum() + 2 * row["carried"]   # screening + carried rounds
    # the carried selection then reruns on the reporting seed (and its probe on the tuning seed): the
    # tables report seed 1 alone, at the full rounds
    runs = pd.read_csv(tmp_path / "summary.csv")
    chosen = runs[runs["variant"] == row["variant"]]
    assert sorted(chosen["seed"]) == [0, 1] and set(chosen["rounds"]) == {2}   # carried, seed 1
    assert row["rounding_delta"] >= 0                                            # the probe ran
    assert str(row["report_seeds"]) == "1" and row["final_acc_mean"] == pytest.approx(
        chosen[chosen["seed"] == 1]["final_acc"].iloc[0])


def test_bad_tunes_get_one_line(tmp_path):
    for args, message in ((["seed=0,1"], "the tuning seed is one seed"),
                          (["--seeds", "0,1", "seed=0"], "cannot report"),
                          (["lr=0.1"], "lr: searched by fedbench.tune"),
                          (["--lr", "0.1,0.2"], "at least 7 ascending learning rates")):
        proc = tune(tmp_path, "--methods", "fedavg", *args, check=False)
        assert proc.returncode == 2 and message in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, \
            proc.stderr


def test_a_results_dir_keeps_one_search(tmp_path):
    (tmp_path / "tune.yaml").write_text("lr: [0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0]\nmax_trials: 14\n"
                                        "jitter: 1.0e-6\ntolerance: 0.5\n")
    proc = tune(tmp_path, "--methods", "fedavg", "--dry-run", check=False)
    assert proc.returncode == 2 and "records another search" in proc.stderr


def test_fedbn_gets_its_control(tmp_path):
    proc = tune(tmp_path, "--methods", "fedbn", "--dry-run")
    lines = [line for line in proc.stderr.splitlines() if line.startswith("  ")]
    assert any("method=fedavg" in line and "model.bn=true" in line for line in lines)
    assert all("model.bn=true" in line for line in lines)
    with pytest.raises(ConfigError):
        space_of("nosuchmethod")


def test_a_tiny_tune_runs_through_slurm(tmp_path, data_root):
    """Every stage of a tune through the launcher named: a real Slurm (CI starts one), one array job per
    stage, each run with Slurm's CPUs (threads=auto: 1)."""
    from tests.test_sweeps import slurm_up

    why = slurm_up()
    if why:
        if os.environ.get("FEDBENCH_REQUIRE_SLURM") == "1":
            pytest.fail(f"FEDBENCH_REQUIRE_SLURM=1 but no Slurm cluster: {why}")
        pytest.skip(f"no Slurm cluster ({why}); start one with ../shared/slurm_local.sh start")
    slurm = ["hydra/launcher=slurm", "hydra.launcher.cpus_per_task=1", "hydra.launcher.mem_gb=1",
             "hydra.launcher.timeout_min=5"]
    proc = subprocess.run([sys.executable, "-m", "fedbench.tune", "--methods", "fedavg", "--lr", LOW_LRS,
                           "--max-trials", "8", "--seeds", "1", "seed=0", f"results_dir={tmp_path}", *TINY[:-2],
                           *slurm], cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-4000:]
    sel = pd.read_csv(tmp_path / "tables" / "selected.csv").set_index("method")
    assert list(sel.index) == ["fedavg"] and (sel["configs_tried"] <= 8).all()
    assert (sel["report_seeds"].astype(str) == "1").all() and sel["rounding_delta"].notna().all()
    stages = sorted(p.name.split("_", 2)[-1] for p in (tmp_path / "sweeps").iterdir() if p.name != "trials")
    assert stages[0] == "probe+seeds" and all(s.startswith("search") for s in stages[1:])
    jobs = [p.name for p in (tmp_path / "sweeps").glob("*/.submitit/*") if p.is_dir()]
    arrays = {name.split("_")[0] for name in jobs if "_" in name}
    # Slurm jobs: an array's tasks (<id>_<task>), or a job submitted alone (<id>, a stage of one run)
    submitted = [n for n in jobs if re.fullmatch(r"\d+_\d+", n) or (n.isdigit() and n not in arrays)]
    runs = [json.loads(p.read_text()) for p in tmp_path.glob("runs/**/summary.json")]
    assert len(submitted) == len(runs) and all(r["threads"] == 1 for r in runs)
