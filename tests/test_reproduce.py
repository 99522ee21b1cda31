"""A published row reruns from the overrides stored with it: the same run directory (config hash) and
the same final accuracy within the tolerance; a changed number or changed overrides are caught."""
from __future__ import annotations

import pandas as pd

from fedbench.report import build_report
from fedbench.reproduce import main, rerun_argv
from tests.conftest import run_cli

TINY = ("rounds=3", "num_clients=4", "join_ratio=1", "eval_every=1")


def _published(tmp_path):
    results = tmp_path / "results"
    res = run_cli(f"results_dir={results}", "seed=1", *TINY)
    assert res.returncode == 0, res.stderr
    build_report(results, echo=lambda s: None)
    return results / "summary.csv"


def test_a_row_reruns_to_its_number_and_a_changed_number_or_config_is_caught(tmp_path, capsys):
    summary = _published(tmp_path)
    row = pd.read_csv(summary).iloc[0]
    assert "results_dir=" in row["overrides"]
    assert main([str(summary), "--rows", "0", "--keep", str(tmp_path / "again")]) == 0
    assert "1 of 1 rows within 0.5 points" in capsys.readouterr().out
    assert (tmp_path / "again" / "row0" / row["run_dir"] / "summary.json").is_file()   # the published dir untouched

    edited = pd.read_csv(summary)
    edited.loc[0, "final_acc"] += 0.006           # 0.6 points off
    edited.to_csv(tmp_path / "off.csv", index=False)
    assert main([str(tmp_path / "off.csv"), "--random", "1"]) == 1
    assert "diff -0.60" in capsys.readouterr().out

    edited = pd.read_csv(summary)
    edited.loc[0, "overrides"] += " lr=0.3"       # another configuration: another hash, another number
    edited.to_csv(tmp_path / "other.csv", index=False)
    assert main([str(tmp_path / "other.csv"), "--rows", "0"]) == 1
    out = capsys.readouterr().out
    assert f"config hash {row['config_hash']} is now" in out and "NOT REPRODUCED" in out


def test_the_rerun_writes_only_to_its_scratch_directory(tmp_path):
    argv = rerun_argv("method=fedavg lr=0.1 results_dir=results progress=False seed=2", tmp_path)
    assert argv == ["method=fedavg", "lr=0.1", "seed=2", f"results_dir={tmp_path}", "progress=false"]
