"""A publication that runs across sittings records each one, however it ends, so its wall time is
measured, not remembered."""
from __future__ import annotations

import os
import signal

import pandas as pd
import pytest

from fedbench.sittings import FILE, sitting, total_minutes


def _summary(root, *parts):
    path = root.joinpath(*parts, "summary.json")
    path.parent.mkdir(parents=True)
    path.write_text("{}")


def test_each_sitting_is_a_row_however_it_ends(tmp_path):
    _summary(tmp_path, "runs", "a", "seed0")
    with sitting(tmp_path, "publish"):
        _summary(tmp_path, "screening", "runs", "b", "seed0")
        _summary(tmp_path, "tables", "not-a-run")           # not under a runs/ folder: not counted
    with pytest.raises(KeyboardInterrupt), sitting(tmp_path, "publish"):
        os.kill(os.getpid(), signal.SIGTERM)                 # how a stopped sitting ends (kill, Slurm)
    with pytest.raises(ValueError), sitting(tmp_path, "report-only"):
        raise ValueError("a failed command")
    rows = pd.read_csv(tmp_path / FILE)
    assert list(rows["ended_by"]) == ["done", "stopped", "failed"]
    assert list(rows["runs_before"]) == [1, 2, 2] and list(rows["runs_after"]) == [2, 2, 2]
    assert [w.split(" (")[0] for w in rows["what"]] == ["publish", "publish", "report-only"]
    assert all("code " in w for w in rows["what"])   # the code each sitting ran
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL   # the handler is put back


def test_total_minutes_sums_the_sittings(tmp_path):
    assert total_minutes(tmp_path) == 0.0
    pd.DataFrame({"started": ["a", "b"], "ended": ["c", "d"], "minutes": [45.8, 120.5], "runs_before": [0, 1],
                  "runs_after": [1, 2], "ended_by": ["stopped", "done"], "what": ["publish"] * 2}).to_csv(
        tmp_path / FILE, index=False)
    assert total_minutes(tmp_path) == pytest.approx(166.3)


def test_a_sitting_records_the_code_it_started_with(tmp_path, monkeypatch):
    """A commit made while the sitting runs (its runs started from the earlier one) is not its code."""
    import fedbench.sittings as sittings

    heads = iter(["commit aaaa; code 1", "commit bbbb; code 1"])
    monkeypatch.setattr(sittings, "code_text", lambda: next(heads))
    with sitting(tmp_path, "publish"):
        pass
    assert pd.read_csv(tmp_path / FILE)["what"].tolist() == ["publish (commit aaaa; code 1)"]
