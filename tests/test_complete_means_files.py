"""A run is complete only if its files say so: summary.json records the row count and sha256 of
metrics.csv and clients.csv; a complete run whose files disagree is put aside (kept) and rerun, and
a damaged summary.json never crashes a rerun."""
from __future__ import annotations

import pytest

from fedbench.rundir import CHECKPOINT
from fedbench.rundir import completion
from fedbench.rundir.lock import RunInProgress, WriterLock
from tests.runs_helpers import run_inprocess, summary

FILES = ("metrics.csv", "clients.csv")
OVERRIDES = ["rounds=6", "eval_every=2", "checkpoint_every=0"]


def _one_run(results):
    (run,) = [p.parent for p in results.glob("runs/**/summary.json") if "damaged-" not in str(p)]
    return run


def _complete(tmp_path, name="run"):
    run_inprocess(f"results_dir={tmp_path / name}", *OVERRIDES)
    run = _one_run(tmp_path / name)
    return run, {f: (run / f).read_bytes() for f in FILES}


def test_summary_records_rows_and_checksums_of_the_files(tmp_path, data_root):
    run, _ = _complete(tmp_path)
    s = summary(run)
    assert s["files"]["metrics.csv"]["rows"] == 3 and s["files"]["clients.csv"]["rows"] == 6
    assert completion.damage(run, s) == ""
    (run / "clients.csv").write_bytes((run / "clients.csv").read_bytes().replace(b"0.", b"1.", 1))
    assert "clients.csv does not match the sha256" in completion.damage(run, s)


def test_complete_run_with_partial_metrics_is_put_aside_and_rerun(tmp_path, data_root, capsys):
    """What a second writer used to leave: summary complete, metrics.csv cut to fewer rows."""
    run, want = _complete(tmp_path)
    lines = want["metrics.csv"].splitlines(keepends=True)
    (run / "metrics.csv").write_bytes(b"".join(lines[:2]))
    capsys.readouterr()
    s = run_inprocess(f"results_dir={tmp_path / 'run'}", *OVERRIDES)
    err = capsys.readouterr().err
    assert "already complete" not in err
    assert "metrics.csv has 1 rows where summary.json records 3" in err and "starts again from round 0" in err
    assert s["status"] == "complete" and {f: (run / f).read_bytes() for f in FILES} == want
    (aside,) = run.glob("damaged-*")
    assert (aside / "metrics.csv").read_bytes() == b"".join(lines[:2])          # the old files are kept
    assert "metrics.csv has 1 rows" in (aside / completion.REASON_FILE).read_text()
    capsys.readouterr()
    run_inprocess(f"results_dir={tmp_path / 'run'}", *OVERRIDES)            # now consistent: skipped
    assert "already complete" in capsys.readouterr().err


def test_a_consistent_complete_run_is_read_without_the_lock_and_leftovers_wait_for_it(tmp_path, data_root):
    run, _ = _complete(tmp_path)
    with WriterLock(run) as other:       # another process holds the run (e.g. a concurrent resubmission)
        other.acquire()
        assert run_inprocess(f"results_dir={tmp_path / 'run'}", *OVERRIDES)["status"] == "complete"
        (run / CHECKPOINT).write_bytes(b"someone's")  # something to clean: only under the lock
        with pytest.raises(RunInProgress):
            run_inprocess(f"results_dir={tmp_path / 'run'}", *OVERRIDES)
        assert (run / CHECKPOINT).exists()
    run_inprocess(f"results_dir={tmp_path / 'run'}", *OVERRIDES)
    assert not (run / CHECKPOINT).exists()


@pytest.mark.parametrize("content", [b"\xff\xfe not utf-8 \x80", b"null", b"[1, 2]", b"{\"status\": "])
def test_damaged_summary_json_is_rerun_not_a_traceback(tmp_path, data_root, content):
    run, want = _complete(tmp_path)
    (run / "summary.json").write_bytes(content)
    s = run_inprocess(f"results_dir={tmp_path / 'run'}", *OVERRIDES)
    assert s["status"] == "complete" and summary(run)["status"] == "complete"
    assert {f: (run / f).read_bytes() for f in FILES} == want
