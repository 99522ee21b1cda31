"""Runs know their code: the code id changes when a method or the harness changes (not when a report
table's code does), a finished run of other code is rerun (its files kept in superseded-*/), reused
with a warning, or refused, by code_change; rerun=true recomputes a finished run; the report names
each run's code and warns when a setting mixes code versions."""
from __future__ import annotations

import shutil

import pytest

from fedbench import code
from fedbench.errors import ConfigError
from fedbench.report import build_report
from tests.runs_helpers import run_dirs, run_inprocess

TINY = ("rounds=2", "num_clients=4", "method=fedavg", "progress=false")


def test_the_code_id_follows_the_code_a_run_executes(tmp_path, monkeypatch):
    for pkg in code.PACKAGES:
        shutil.copytree(code.ROOT / pkg, tmp_path / pkg, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(code, "ROOT", tmp_path)
    ids = []
    for edit in (None, "fedbench/report/tables.py", "methods/base.py", "fedbench/federation/round.py"):
        if edit:
            (tmp_path / edit).write_text((tmp_path / edit).read_text() + "\n# an edit\n")
        code.code_id.cache_clear()
        ids.append(code.code_id())
    code.code_id.cache_clear()
    assert ids[0] == ids[1]                 # a report table's code: not what a run runs
    assert ids[1] != ids[2] != ids[3]       # a method, the round: new code


def test_a_finished_run_of_other_code_is_rerun_reused_or_refused(tmp_path, data_root, monkeypatch, capsys):
    out = f"results_dir={tmp_path}"
    first = run_inprocess(out, *TINY)
    assert first["code"]["code_id"] == code.code_id() and first["code"]["version"]
    monkeypatch.setattr(code, "code_id", lambda: "edited000000")   # as if a method had been edited since
    with pytest.raises(ConfigError, match="computed by other code"):
        run_inprocess(out, *TINY, "code_change=refuse")
    reused = run_inprocess(out, *TINY, "code_change=reuse")
    assert reused["code"]["code_id"] == first["code"]["code_id"] and "reused as it is" in capsys.readouterr().err
    again = run_inprocess(out, *TINY)                               # the default: rerun
    assert again["code"]["code_id"] == "edited000000" and "rerunning it" in capsys.readouterr().err
    (run,) = run_dirs(tmp_path)
    (kept,) = run.glob("superseded-*")
    assert (kept / "summary.json").is_file() and "other code" in (kept / "why.txt").read_text()
    assert run_inprocess(out, *TINY)["wall_time_s"] == again["wall_time_s"]   # now this code's: reused
    forced = run_inprocess(out, *TINY, "rerun=true")
    assert forced["wall_time_s"] != again["wall_time_s"] and len(list(run.glob("superseded-*"))) == 2
    report = tmp_path / "summary.csv"
    build_report(tmp_path, echo=lambda s: None)
    assert "code_id" in report.read_text().splitlines()[0]         # the superseded copies are not rows


def test_the_report_warns_when_a_setting_mixes_code(tmp_path, data_root, monkeypatch):
    run_inprocess(f"results_dir={tmp_path}", *TINY)
    monkeypatch.setattr(code, "code_id", lambda: "edited000000")
    run_inprocess(f"results_dir={tmp_path}", *TINY[:-2], "method=local", "progress=false")
    lines = []
    build_report(tmp_path, echo=lines.append)
    assert any("come from 2 code versions" in line for line in lines)
