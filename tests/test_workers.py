"""Persistent workers (hydra.launcher.reuse_processes=true): a sweep's runs, several in one process,
are byte for byte the runs of one process each; a worker that dies or overruns fails only its job and
is replaced."""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

from hydra.core.utils import JobReturn, JobStatus

from tests.conftest import run_cli
from tests.test_sweeps import SMALL


def _files(results: Path) -> dict[str, bytes]:
    return {str(p.relative_to(results)): p.read_bytes()
            for name in ("metrics.csv", "clients.csv") for p in (results / "runs").rglob(name)}


def test_runs_on_persistent_workers_are_the_runs_of_one_process_each(tmp_path, data_root):
    sweep = ["-m", "hydra/launcher=local", "method=fedavg,fedbsd,fedper", "seed=0,1", *SMALL,
             "hydra.callbacks.report.enabled=false"]
    fresh = run_cli(*sweep, f"results_dir={tmp_path / 'fresh'}")
    reused = run_cli(*sweep, f"results_dir={tmp_path / 'reused'}", "hydra.launcher.reuse_processes=true")
    assert fresh.returncode == 0 and reused.returncode == 0, reused.stderr[-3000:]
    a, b = _files(tmp_path / "fresh"), _files(tmp_path / "reused")
    assert len(a) == 12 and a == b                     # 6 runs, 3 of them after another run in the same process
    threads = {(d, str(p.relative_to(tmp_path / d))): json.loads(p.read_text())["threads"]
               for d in ("fresh", "reused") for p in (tmp_path / d / "runs").rglob("summary.json")}
    assert len(threads) == 12 and len(set(threads.values())) == 1   # each worker holds its slot's cores, as a run's process does
    logs = sorted((tmp_path / "reused" / "sweeps").rglob(".workers/*_log.err"))
    assert len(logs) == 6 and all("final acc" in p.read_text() for p in logs)
    assert not list((tmp_path / "reused" / "sweeps").rglob(".submitit/*/*_log.err"))   # no per-run process


class FakeLauncher:
    """run_here as the pool calls it: job 1 kills its worker, job 2 overruns; the others return."""

    def run_here(self, overrides, job_dir_key, job_num, job_id, state):
        if job_num == 1:
            os._exit(3)
        if job_num == 2:
            time.sleep(60)
        ret = JobReturn(overrides=list(overrides), status=JobStatus.COMPLETED)
        ret._return_value = {"pid": os.getpid(), "job": job_num}
        print(f"job {job_num} ran")
        return ret


def test_a_dead_or_overrunning_worker_fails_only_its_job_and_is_replaced(tmp_path):
    from hydra_plugins.fedbench_launcher.local_pool import Slot
    from hydra_plugins.fedbench_launcher.workers import run_pool

    jobs = [(i, ([f"job={i}"], "k", i, f"id{i}", {})) for i in range(5)]
    done = []
    results = run_pool(FakeLauncher(), [Slot((0,))], jobs, tmp_path, timeout_s=5.0, report=lambda i, ret: done.append(i))
    assert sorted(done) == list(range(5))
    assert [results[i].status for i in range(5)] == [JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.FAILED,
                                                    JobStatus.COMPLETED, JobStatus.COMPLETED]
    assert "worker process ended (exit 3)" in str(results[1]._return_value)
    assert "past the timeout" in str(results[2]._return_value)
    pids = [results[i].return_value["pid"] for i in (0, 3, 4)]
    assert pids[1] == pids[2] != pids[0]                # one worker per slot, replaced after each failure
    assert (tmp_path / "3_log.out").read_text() == "job 3 ran\n"
