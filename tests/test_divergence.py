"""Divergence: a NaN/inf loss or parameter stops that run with status `diverged` and the round, and
the rest of a sweep goes on."""
from __future__ import annotations

import math

import pandas as pd

from fedbench.rundir import CHECKPOINT
from fedbench.federation import Federation
from tests.runs_helpers import SMALL, finish, popen_cli, run_dirs, run_inprocess, summary  # noqa: F401


def test_huge_lr_diverges_with_round_and_no_checkpoint_left(tmp_path, data_root, capsys):
    s = run_inprocess(f"results_dir={tmp_path}", "lr=1e12", "rounds=5", "checkpoint_every=1")
    assert s["status"] == "diverged" and 1 <= s["diverged_round"] <= 5 and s["rounds_done"] == s["diverged_round"]
    assert "diverged at round" in capsys.readouterr().err
    (run,) = run_dirs(tmp_path)
    assert summary(run)["status"] == "diverged" and not (run / CHECKPOINT).exists()


def test_nan_parameter_with_finite_loss_diverges(tmp_path, data_root, monkeypatch):
    train_round = Federation.train_round

    def poisoned(self, t):
        loss = train_round(self, t)
        if t == 2:
            name = next(iter(self.global_state))
            self.global_state[name] = self.global_state[name].clone().fill_(math.inf)
        return loss

    monkeypatch.setattr(Federation, "train_round", poisoned)
    s = run_inprocess(f"results_dir={tmp_path}", "rounds=6", "eval_every=1")
    assert s["status"] == "diverged" and s["diverged_round"] == 3
    (run,) = run_dirs(tmp_path)
    assert list(pd.read_csv(run / "metrics.csv")["round"]) == [1, 2]  # the good rounds are kept


def test_a_diverging_run_does_not_stop_the_sweep(tmp_path, data_root):
    code, err = finish(popen_cli(*SMALL, f"results_dir={tmp_path}", "rounds=3", "-m", "lr=1e12,0.05"))
    assert code == 0, err
    status = sorted((summary(r)["status"], summary(r).get("diverged_round")) for r in run_dirs(tmp_path))
    assert status[0][0] == "complete" and status[1][0] == "diverged" and status[1][1] >= 1, status
    report = tmp_path / "summary.csv"  # the sweep's report lists the diverged run
    if report.exists():
        assert "diverged" in set(pd.read_csv(report)["status"])
