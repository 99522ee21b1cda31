"""One writer per run directory: a second process on a run in progress stops with one line naming
the holder and touches nothing; the kernel frees the lock of a killed process; a sweep whose jobs
would share a run directory is refused before any job starts."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from fedbench.rundir import completion
from fedbench.cli import precheck
from fedbench.errors import ConfigError
from fedbench.rundir.lock import RunInProgress, WriterLock, lock_path
from tests.runs_helpers import ROOT, SMALL, finish, popen_cli, run_dirs, summary


def _wait_for(predicate, proc, what: str, timeout=300):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        if proc.poll() is not None:
            pytest.fail(f"the process ended before {what}: {proc.stderr.read()}")
        time.sleep(0.02)
    pytest.fail(f"no {what}")


def test_second_process_on_a_run_in_progress_stops_and_touches_nothing(tmp_path, data_root):
    """Two real processes, one command: the first is frozen (SIGSTOP) while it holds the run, so the
    second certainly meets a run in progress. The second exits 75 with one line naming the directory,
    the first's host and pid; the first's temp file is still there; the first, resumed, completes."""
    args = [*SMALL, "rounds=150", "eval_every=10", "checkpoint_every=0", f"results_dir={tmp_path}"]
    first = popen_cli(*args)
    _wait_for(lambda: run_dirs(tmp_path) and (run_dirs(tmp_path)[0] / "metrics.csv").exists(), first,
              "the first metrics row")
    first.send_signal(signal.SIGSTOP)
    try:
        (run,) = run_dirs(tmp_path)
        assert summary(run)["status"] == "running"  # frozen mid-run (150 rounds are many seconds)
        in_flight = run / ".metrics.csv.abc123.tmp"   # as if the first were in the middle of a write
        in_flight.write_text("half a file")
        code, err = finish(popen_cli(*args))
        lines = [ln for ln in err.splitlines() if ln.strip()]
        assert code == 75, err
        assert len(lines) == 1 and lines[0].startswith("fedbench: error: run in progress"), err
        assert str(run) in lines[0] and f"pid {first.pid} on host {socket.gethostname()}" in lines[0]
        assert in_flight.exists() and summary(run)["status"] == "running"
    finally:
        first.send_signal(signal.SIGCONT)
    code, err = finish(first)
    assert code == 0, err
    s = summary(run)
    assert s["status"] == "complete" and s["files"]["metrics.csv"]["rows"] == 15
    assert completion.damage(run, s) == ""


def test_the_lock_of_a_killed_process_is_free(tmp_path):
    run = tmp_path / "seed0"
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from fedbench.rundir.lock import WriterLock; "
                               "WriterLock(sys.argv[1]).acquire(); print('held', flush=True); time.sleep(600)", str(run)],
                              cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(RunInProgress, match=f"pid {holder.pid} "):
            WriterLock(run).acquire()
    finally:
        holder.kill()
        holder.wait()
    with WriterLock(run) as lock:  # kill -9 left the file; the kernel released the lock
        lock.acquire()
        assert lock.held and lock_path(run).exists()


def test_two_locks_on_one_run_exclude_each_other_and_release(tmp_path):
    run = tmp_path / "runs" / "x" / "seed0"
    with WriterLock(run) as a:
        a.acquire()
        a.acquire()  # again: a no-op
        with pytest.raises(RunInProgress) as info:
            WriterLock(run).acquire()
        assert f"pid {os.getpid()} on host {socket.gethostname()}" in str(info.value)
        assert "\n" not in str(info.value) and str(run) in str(info.value)
    with WriterLock(run) as b:  # released on leaving the context
        b.acquire()
    assert not run.exists()  # the lock lives beside the run directory, which it never creates


@pytest.mark.parametrize("sweep,key", [(["engine=vmap,sequential"], "engine"), (["threads=1,2", "seed=0,1"], "threads"),
                                       (["method=fedavg,fedper", "checkpoint_every=0,5"], "checkpoint_every"),
                                       (["device=cpu,auto"], "device")])
def test_sweep_whose_jobs_share_a_run_directory_is_refused_up_front(sweep, key, tmp_path):
    with pytest.raises(ConfigError) as info:
        precheck(["-m", *sweep, "rounds=2", f"results_dir={tmp_path}"])
    message = str(info.value)
    assert "\n" not in message and "one run directory" in message and f"differ only in {key} (" in message
    assert not (tmp_path / "runs").exists()


def test_sweeps_that_keep_their_runs_apart_pass(tmp_path):
    precheck(["-m", "seed=0,0", "rounds=2", f"results_dir={tmp_path}"])            # identical: the lock serializes
    precheck(["-m", "lr=0.1,0.2", "threads=1", "rounds=2", f"results_dir={tmp_path}"])
