"""Sweeps: the local pool launcher's slots, skip-complete / rerun-failed on resubmission, and a real
Slurm sweep (hydra/launcher=slurm) that ends with the report. The Slurm test skips when no cluster
answers, unless FEDBENCH_REQUIRE_SLURM=1 (CI, where .ci/run starts one): then it fails."""
from __future__ import annotations

import json
import re
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import ROOT, run_cli
from tests.tracking_helpers import mlflow_runs, need, tb_events, tb_scalars

SMALL = ["rounds=2", "num_clients=6", "eval_every=1"]


def summaries(results: Path) -> dict[str, dict]:
    return {str(p.parent.relative_to(results)): json.loads(p.read_text())
            for p in sorted((results / "runs").rglob("summary.json"))}


def mtimes(results: Path) -> dict[str, int]:
    return {str(p.relative_to(results)): p.stat().st_mtime_ns for p in (results / "runs").rglob("*.*")}


def test_plan_slots_one_run_per_gpu_and_cores_shared():
    # imported here: Hydra's plugin scan (any earlier compose) re-executes plugin modules in place,
    # which would leave a module-level import holding a stale Slot class
    from hydra_plugins.fedbench_launcher.local_pool import Slot, plan_slots

    gpu = plan_slots(range(8), ["0", "1"], num_runs=10)
    assert gpu == [Slot((0, 1, 2, 3), ("0",)), Slot((4, 5, 6, 7), ("1",))]
    assert plan_slots(range(8), ["0", "1", "2", "3"], 10, gpus_per_run=2)[1] == Slot((4, 5, 6, 7), ("2", "3"))
    assert plan_slots([0, 1], [], num_runs=4) == [Slot((0,)), Slot((1,))]          # CPU fallback
    assert plan_slots([0, 1, 2, 3], [], num_runs=1) == [Slot((0, 1, 2, 3))]       # one run gets every core
    assert plan_slots(range(8), [], 10, cpus_per_run=3) == [Slot((0, 1, 2)), Slot((3, 4, 5))]
    assert len(plan_slots(range(8), [], 10, max_parallel=2)) == 2
    assert plan_slots(range(8), ["0"], 10, gpus_per_run=0)[0].gpus == ()          # GPUs ignored on request


def test_slot_sets_affinity_gpus_and_thread_count():
    code = ("from hydra_plugins.fedbench_launcher.local_pool import Slot, apply_slot; import os; "
            "apply_slot(Slot((0,), ())); from fedbench.execution import resolve_threads; "
            "print(resolve_threads('auto'), repr(os.environ['CUDA_VISIBLE_DEVICES']))")
    env = dict(os.environ, SLURM_CPUS_PER_TASK="64", CUDA_VISIBLE_DEVICES="0,1")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["1", "''"]


def test_local_sweep_resubmitted_skips_complete_and_reruns_failed(tmp_path, data_root):
    need("tensorboard", "mlflow")
    results = tmp_path / "results"
    sweep = ["-m", "hydra/launcher=local", "method=fedavg,local", f"results_dir={results}", *SMALL]
    first = run_cli(*sweep, "logger=[tensorboard,mlflow]")                # every job logs itself
    assert first.returncode == 0, first.stderr[-3000:]
    runs = summaries(results)
    assert len(runs) == 2 and all(s["status"] == "complete" for s in runs.values())
    logged = mlflow_runs(results)
    assert sorted(r.data.tags["method"] for r in logged) == ["fedavg", "local"]
    assert {r.info.status for r in logged} == {"FINISHED"} and len({r.data.tags["group"] for r in logged}) == 1
    assert all([s for s, _ in tb_scalars(tb_events(results / run), "test_acc")] == [1, 2] for run in runs)
    cores = len(os.sched_getaffinity(0))
    assert all(s["threads"] == max(1, cores // 2) for s in runs.values())   # 2 runs share the cores
    (report,) = (results / "sweeps").glob("*/report/summary.csv")  # the callback reported the sweep's runs
    assert len(pd.read_csv(report)) == 2 and "final accuracy (%) of the complete runs" in first.stderr
    assert re.search(r"\] #\d .*method=fedavg.*: final acc [\d.]+%, [\d.]+ s", first.stderr)   # each run's result
    stamps = mtimes(results)

    sweep.append("hydra.callbacks.report.enabled=false")          # (saves time; the runs are the same)
    logs = set((results / "sweeps").rglob("*_log.err"))
    second = run_cli(*sweep)                      # the same runs (the logger is not in the hash): nothing new
    assert second.returncode == 0, second.stderr[-3000:]
    assert mtimes(results) == stamps and summaries(results) == runs
    assert "local sweep of 0 runs (2 more already complete: not launched)" in second.stderr
    assert second.stderr.count("skip, already complete") == 2
    assert set((results / "sweeps").rglob("*_log.err")) == logs   # no job was started for them

    fedavg_dir, local_dir = sorted(runs, key=lambda k: "/local/" in k)
    (results / local_dir / "summary.json").write_text(json.dumps(runs[local_dir] | {"status": "failed"}))
    stamps = mtimes(results)
    third = run_cli(*sweep)                                         # reruns only the failed run
    assert third.returncode == 0, third.stderr[-3000:]
    after, now = summaries(results), mtimes(results)
    assert after[local_dir]["status"] == "complete"
    assert now[f"{local_dir}/summary.json"] > stamps[f"{local_dir}/summary.json"]
    assert {k: v for k, v in now.items() if k.startswith(fedavg_dir)} == \
        {k: v for k, v in stamps.items() if k.startswith(fedavg_dir)}


def slurm_up() -> str | None:
    """None when a Slurm cluster answers, else why not."""
    if shutil.which("sinfo") is None:
        return "sinfo is not on PATH"
    try:
        proc = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=20)
    except subprocess.TimeoutExpired:
        return "sinfo did not answer in 20 s"
    if proc.returncode != 0 or not proc.stdout.strip():
        return f"sinfo failed: {proc.stderr.strip() or 'no partitions'}"
    return None


def test_real_slurm_sweep_ends_with_report(tmp_path, data_root):
    why = slurm_up()
    if why:
        if os.environ.get("FEDBENCH_REQUIRE_SLURM") == "1":
            pytest.fail(f"FEDBENCH_REQUIRE_SLURM=1 but no Slurm cluster: {why}")
        pytest.skip(f"no Slurm cluster ({why}); start one with ../shared/slurm_local.sh start")
    results = tmp_path / "results"
    need("mlflow")
    proc = run_cli("-m", "hydra/launcher=slurm", "method=fedavg,local", "seed=0,1", "rounds=3", "num_clients=6",
                   f"results_dir={results}", "hydra.launcher.cpus_per_task=1", "hydra.launcher.mem_gb=1",
                   "hydra.launcher.timeout_min=5", "logger=mlflow", timeout=400)
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs = summaries(results)
    assert len(runs) == 4 and all(s["status"] == "complete" for s in runs.values()), runs
    logged = mlflow_runs(results)                                  # every Slurm job logged its run
    assert sorted((r.data.tags["method"], r.data.tags["seed"]) for r in logged) == \
        [("fedavg", "0"), ("fedavg", "1"), ("local", "0"), ("local", "1")]
    assert {r.info.status for r in logged} == {"FINISHED"}
    assert {(s["method"], s["seed"]) for s in runs.values()} == {(m, k) for m in ("fedavg", "local") for k in (0, 1)}
    assert all(s["threads"] == 1 for s in runs.values())          # SLURM_CPUS_PER_TASK=1
    for run in runs:
        for name in ("config.yaml", "metrics.csv", "clients.csv"):
            assert (results / run / name).stat().st_size > 0
    jobs = [p for p in (results / "sweeps").glob("*/.submitit/*_*") if p.is_dir()]
    assert len(jobs) == 4                                          # one Slurm array task per run
    (report,) = (results / "sweeps").glob("*/report")                # the sweep's own report
    summary = pd.read_csv(report / "summary.csv")
    assert len(summary) == 4 and set(summary["status"]) == {"complete"}
    for name in ("final_acc.md", "final_acc.tex", "issues.md"):
        assert (report / "tables" / name).stat().st_size > 0
    plots = {p.name.split("_")[0] for p in (report / "plots").glob("*.png")}
    assert plots == {"curves", "bytes", "clients", "partition", "compute"}
    assert "fedbench: submitted Slurm job " in proc.stderr and "_log.err" in proc.stderr   # ids and logs at once
    assert proc.stderr.count("Slurm job ") >= 5 and "final acc " in proc.stderr
    assert "fedbench.report: 4 runs in 1 setting (4 complete); 4 usable" in proc.stderr
