"""No traceback from a value inside the documented ranges, from a data root that is a file, or from
a full or read-only disk: each is one line naming the file or key; a failed write marks the run
failed wherever the disk still allows it. Also the small things: a run that resumes on another
engine records both, threads beyond the cores warn, the report says "round 7", not "7.0"."""
from __future__ import annotations

import errno
import os
import subprocess
import sys
import tempfile

import numpy as np
import pytest

from fedbench.rundir import CHECKPOINT
from fedbench.cli import precheck
from fedbench.data.splits import split_client
from fedbench.errors import ConfigError, WriteError
from fedbench.report import build_report
from fedbench.execution import resolve_threads
from tests.runs_helpers import ROOT, compose_cfg, run_dirs, run_inprocess, summary
from tests.test_report import write_run


def test_split_without_validation_or_with_tiny_clients():
    labels = np.arange(40) % 4
    train, val, test = split_client(np.arange(40), labels, np.random.default_rng(0), 0.0, 0.2)
    assert (len(train), len(val), len(test)) == (32, 0, 8)
    for n in (1, 2, 3):  # a client too small to spare a validation sample
        parts = split_client(np.arange(n), labels[:n], np.random.default_rng(0), 0.1, 0.2)
        assert sum(map(len, parts)) == n and len(parts[0]) >= 1


@pytest.mark.filterwarnings("error::RuntimeWarning")  # nor numpy's "mean of empty slice" lines
def test_val_frac_0_and_500_iid_clients_run(tmp_path, data_root):
    s = run_inprocess(f"results_dir={tmp_path / 'a'}", "data.val_frac=0", "rounds=2")
    assert s["status"] == "complete" and s["best_round"] == 2  # no validation split: best = the last evaluation
    from fedbench.run import run
    s = run(compose_cfg("progress=false", "threads=1", "method=fedavg", "partition=iid", "num_clients=500",
                        "rounds=1", "join_ratio=0.02", f"results_dir={tmp_path / 'b'}"))
    assert s["status"] == "complete" and s["num_clients"] == 500


@pytest.mark.parametrize("where", ["file", "file/below"])
def test_data_root_that_is_a_file(tmp_path, monkeypatch, where):
    (tmp_path / "file").write_text("not a directory")
    monkeypatch.setenv("FEDBENCH_DATA", str(tmp_path / where))
    with pytest.raises(ConfigError) as info:
        precheck([f"results_dir={tmp_path}"])
    message = str(info.value)
    assert "\n" not in message and message.startswith("data.root=") and "(from $FEDBENCH_DATA)" in message
    assert "not a directory" in message


def test_read_only_data_root_runs_without_the_partition_cache(tmp_path, data_root, monkeypatch, caplog):
    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(tempfile, "mkdtemp", read_only)
    assert run_inprocess(f"results_dir={tmp_path}", "rounds=1")["status"] == "complete"
    assert "could not be written (Read-only file system); using the partition uncached" in caplog.text


def _dev_full_for(name, monkeypatch):
    """Writes of `name` go to /dev/full (the kernel answers ENOSPC): a disk full at that file only."""
    real = tempfile.mkstemp

    def mkstemp(dir=None, prefix=None, suffix=None):
        fd, path = real(dir=dir, prefix=prefix, suffix=suffix)
        if prefix == f".{name}.":
            os.dup2(os.open("/dev/full", os.O_WRONLY), fd)
        return fd, path

    monkeypatch.setattr(tempfile, "mkstemp", mkstemp)


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full (Linux)")
@pytest.mark.parametrize("full_at", [CHECKPOINT, "clients.csv"])  # mid-run, and at the final writes
def test_full_disk_is_one_line_and_marks_the_run_failed(tmp_path, data_root, monkeypatch, full_at):
    _dev_full_for(full_at, monkeypatch)
    with pytest.raises(WriteError) as info:
        run_inprocess(f"results_dir={tmp_path}", "rounds=4", "eval_every=1", "checkpoint_every=2")
    message = str(info.value)
    assert "\n" not in message and full_at in message and "No space left on device" in message
    (run,) = run_dirs(tmp_path)
    s = summary(run)
    assert s["status"] == "failed" and "No space left" in s["error"]
    assert not list(run.glob(".*.tmp")) and not (run / "clients.csv").exists()
    monkeypatch.undo()
    assert run_inprocess(f"results_dir={tmp_path}", "rounds=4", "eval_every=1", "checkpoint_every=2")["status"] == "complete"


SCRIPT = """
import errno, sys, tempfile
real, calls = tempfile.mkstemp, [0]
def mkstemp(dir=None, prefix=None, suffix=None):   # the run directory turns read-only after 3 files
    calls[0] += 1
    if calls[0] > 3 and "runs" in str(dir):
        raise PermissionError(errno.EACCES, "Permission denied", str(dir))
    return real(dir=dir, prefix=prefix, suffix=suffix)
tempfile.mkstemp = mkstemp
sys.argv = ["fedbench"] + sys.argv[1:]
from fedbench.cli import main
main()
"""


def test_read_only_run_directory_mid_run_is_one_line_through_the_command_line(tmp_path, data_root):
    proc = subprocess.run([sys.executable, "-c", SCRIPT, "progress=false", "threads=1", "num_clients=6",
                           "partition.min_samples=5", "method=fedavg", "rounds=6", "eval_every=1",
                           f"results_dir={tmp_path}"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert proc.returncode == 74, proc.stderr
    assert len(lines) == 1 and lines[0].startswith("fedbench: error: cannot write ") and "Permission denied" in lines[0]
    assert "summary.json" not in lines[0]  # the first failure is reported, not marking the run failed
    (run,) = run_dirs(tmp_path)
    assert str(run) in lines[0] and summary(run)["status"] == "running"  # nothing could mark it failed


def test_resuming_on_another_engine_records_both(tmp_path, data_root, monkeypatch):
    from fedbench.federation import Federation

    train_round = Federation.train_round

    def stop_at_3(self, t):
        if t == 2 and self.engine.name == "vmap":
            raise KeyboardInterrupt
        return train_round(self, t)

    overrides = [f"results_dir={tmp_path}", "rounds=4", "checkpoint_every=1"]
    monkeypatch.setattr(Federation, "train_round", stop_at_3)
    with pytest.raises(KeyboardInterrupt):
        run_inprocess(*overrides, "engine=vmap")
    monkeypatch.undo()
    s = run_inprocess(*overrides, "engine=sequential")
    assert s["resumed_from_round"] == 2 and s["engines"] == ["vmap", "sequential"]


def test_threads_beyond_the_cores_warn(monkeypatch, capsys):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1})
    assert resolve_threads(1000) == 1000
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("fedbench: warning: threads=1000") and "2 cores" in line
    assert resolve_threads(2) == 2 and capsys.readouterr().err == ""


def test_diverged_round_is_a_whole_number(tmp_path):
    write_run(tmp_path, "fedavg", 0, 0.5)
    write_run(tmp_path, "fedavg", 1, 0.5, status="diverged")
    lines = []
    build_report(tmp_path, echo=lines.append)
    assert any("diverged at round 7 (" in ln for ln in lines), lines
