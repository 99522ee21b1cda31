"""Ctrl-C (SIGINT) is a stop like SIGTERM: the run saves a checkpoint at the end of its round, says so
in one line, exits 130 without a traceback, and the same command resumes it. In a local sweep, Ctrl-C at
the terminal (the whole process group) stops the runs in flight the same way (on a pool of fresh
processes and on persistent workers), the sweep says "stopped" and writes no report of half a sweep."""
from __future__ import annotations

import glob
import os
import signal
import subprocess
import sys
import time

import pytest

from tests.conftest import ROOT
from tests.runs_helpers import run_dirs, summary

ARGS = ["rounds=60",   # Ctrl-C lands right after round 1: the rest is margin
         "eval_every=1", "checkpoint_every=0", "progress=false", "num_clients=6"]


def as_in_a_terminal():
    """SIGINT at its default, as a terminal's foreground job has it, whatever started the tests (a shell's
    background job, e.g. `pytest &` or nohup, ignores SIGINT, and its children inherit that)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start(*args):
    """The CLI in its own process group, as a terminal runs it (Ctrl-C reaches the whole group)."""
    return subprocess.Popen([sys.executable, "-m", "fedbench", *args], cwd=ROOT, text=True, start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, preexec_fn=as_in_a_terminal)


def ctrl_c_once_running(proc, results, runs: int, timeout=240):
    deadline = time.monotonic() + timeout
    while len(glob.glob(f"{results}/runs/**/metrics.csv", recursive=True)) < runs:
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()[1][-2000:]
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=timeout)
    return proc.returncode, err


def test_ctrl_c_stops_a_run_at_its_round_end_and_the_rerun_resumes(tmp_path, data_root):
    results = tmp_path / "r"
    code, err = ctrl_c_once_running(start(*ARGS, f"results_dir={results}"), results, 1)
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == 130 and "Traceback" not in err, err
    assert len(lines) == 1 and lines[0].startswith("fedbench: stopped by Ctrl-C after round "), err
    assert "run the same command again to resume" in lines[0]
    (run,) = run_dirs(results)
    assert (run / "checkpoint.pt").is_file() and summary(run)["status"] == "interrupted"
    again = subprocess.run([sys.executable, "-m", "fedbench", *ARGS, f"results_dir={results}"], cwd=ROOT,
                           capture_output=True, text=True, timeout=600)
    assert again.returncode == 0 and "resuming" in again.stderr, again.stderr
    assert summary(run)["status"] == "complete" and summary(run)["resumed_from_round"] >= 1


@pytest.mark.parametrize("reuse", ["false", "true"])
def test_ctrl_c_stops_a_local_sweep_with_checkpoints_and_no_report(tmp_path, data_root, reuse):
    results = tmp_path / "r"
    sweep = ["-m", "hydra/launcher=local", f"hydra.launcher.reuse_processes={reuse}", "method=fedavg,local,fedper",
             *ARGS, f"results_dir={results}"]
    code, err = ctrl_c_once_running(start(*sweep), results, 2)
    assert code == 130 and "Traceback" not in err, err
    assert "sweep stopped by Ctrl-C: 0 runs finished, 2 stopped with a checkpoint" in err
    assert "no report of a stopped sweep" in err and not (results / "summary.csv").exists()
    stopped = [r for r in run_dirs(results) if (r / "checkpoint.pt").is_file()]
    assert len(stopped) == 2 and all(summary(r)["status"] == "interrupted" for r in stopped)
    again = subprocess.run([sys.executable, "-m", "fedbench", *sweep], cwd=ROOT, capture_output=True, text=True,
                           timeout=600)
    assert again.returncode == 0, again.stderr[-2000:]
    assert all(summary(r)["status"] == "complete" and summary(r)["resumed_from_round"] >= 1 for r in stopped)
