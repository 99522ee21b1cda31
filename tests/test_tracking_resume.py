"""Trackers across a resume: a run killed with SIGKILL after it logged rounds past its last
checkpoint, rerun with the same command, ends with every evaluation round exactly once in TensorBoard
and in the same MLflow run; after a failure, W&B and MLflow continue the same run and no round is
logged twice. The killed run is frozen (SIGSTOP) until the state to test is there, so no timing
decides what the test checks."""
from __future__ import annotations

import json
import os
import signal
import time

import pytest
import torch

from fedbench.rundir import CHECKPOINT
from fedbench.federation import Federation
from tests.runs_helpers import SMALL, finish, popen_cli, run_dirs, run_inprocess, summary
from tests.tracking_helpers import (metrics, mlflow_history, mlflow_runs, need, offline_wandb, tb_events,
                                    tb_scalars, wandb_history, wandb_id, wandb_of, wandb_segments)


def _rows(run) -> int:
    try:
        return max(0, len((run / "metrics.csv").read_text().splitlines()) - 1)
    except FileNotFoundError:
        return 0


def _freeze_past_checkpoint(results, proc, timeout=300):
    """SIGSTOP the run at a moment when both trackers hold rounds after its last checkpoint;
    return (run dir, checkpoint round, last round MLflow has)."""
    deadline, want = time.monotonic() + timeout, 5
    while time.monotonic() < deadline:
        runs = run_dirs(results)
        if proc.poll() is not None:
            pytest.fail(f"the run ended before it could be frozen: {proc.stderr.read()}")
        if not runs or _rows(runs[0]) < want:
            time.sleep(0.01)
            continue
        run = runs[0]
        os.kill(proc.pid, signal.SIGSTOP)
        saved = torch.load(run / CHECKPOINT, weights_only=True)["round"]
        run_id = json.loads((run / "tracking.json").read_text())["mlflow"]["run_id"]
        in_mlflow = max(step for step, _ in mlflow_history(results, run_id, "test_acc"))
        (events,) = (run / "tensorboard").iterdir()
        in_tb = max(step for step, _ in tb_scalars(tb_events(run, events), "test_acc"))
        if in_mlflow > saved and in_tb > saved:
            return run, saved, in_mlflow
        os.kill(proc.pid, signal.SIGCONT)   # frozen right at a checkpoint: one more round
        want = _rows(run) + 1
    pytest.fail("the run made no progress")


def test_kill9_past_the_checkpoint_then_rerun_logs_every_round_once(tmp_path, data_root):
    need("tensorboard", "mlflow")
    rounds = 14
    args = [*SMALL, f"rounds={rounds}", "eval_every=1", "checkpoint_every=4", f"results_dir={tmp_path}",
            "logger=[tensorboard,mlflow]"]
    proc = popen_cli(*args)
    run, saved, logged = _freeze_past_checkpoint(tmp_path, proc)
    proc.send_signal(signal.SIGKILL)
    assert finish(proc)[0] == -signal.SIGKILL
    (before,) = mlflow_runs(tmp_path)
    assert before.info.status == "RUNNING"

    code, err = finish(popen_cli(*args))
    assert code == 0, err
    assert summary(run)["status"] == "complete" and summary(run)["resumed_from_round"] == saved < logged
    want = list(range(1, rounds + 1))
    acc = list(metrics(run)["test_acc"])
    tb = tb_scalars(tb_events(run), "test_acc")
    assert len(list((run / "tensorboard").iterdir())) == 2                  # two segments, one history
    assert [step for step, _ in tb] == want and [v for _, v in tb] == pytest.approx(acc, rel=1e-5)
    (after,) = mlflow_runs(tmp_path)
    assert after.info.run_id == before.info.run_id and after.info.status == "FINISHED"
    history = mlflow_history(tmp_path, after.info.run_id, "test_acc")
    assert [step for step, _ in history] == want and [v for _, v in history] == pytest.approx(acc, rel=1e-5)


def test_after_a_failure_wandb_and_mlflow_continue_the_same_run(tmp_path, data_root, monkeypatch):
    """Round 6 fails (rows 1-5 logged, checkpoint at 4); the rerun resumes at 4, recomputes round 5
    (already in both trackers: skipped) and logs 6-8 into the same W&B and MLflow runs."""
    need("wandb", "mlflow")
    offline_wandb(monkeypatch, tmp_path)
    overrides = ["rounds=8", "eval_every=1", "checkpoint_every=4", f"results_dir={tmp_path}", "logger=[mlflow,wandb]"]
    train_round = Federation.train_round

    def failing_round(self, t):
        if t == 5:
            raise RuntimeError("lost the node")
        return train_round(self, t)

    monkeypatch.setattr(Federation, "train_round", failing_round)
    with pytest.raises(RuntimeError):
        run_inprocess(*overrides)
    (run,) = run_dirs(tmp_path)
    (failed,) = mlflow_runs(tmp_path)
    assert failed.info.status == "FAILED" and failed.data.tags["status"] == "failed"
    assert failed.data.tags["error"] == "RuntimeError: lost the node"
    monkeypatch.setattr(Federation, "train_round", train_round)
    s = run_inprocess(*overrides)
    assert s["status"] == "complete" and s["resumed_from_round"] == 4

    acc = list(metrics(run)["test_acc"])
    (done,) = mlflow_runs(tmp_path)
    assert done.info.run_id == failed.info.run_id and done.info.status == "FINISHED"
    assert done.data.tags["status"] == "complete" and done.data.tags["error"] == ""
    history = mlflow_history(tmp_path, done.info.run_id, "test_acc")
    assert [step for step, _ in history] == list(range(1, 9))
    assert [v for _, v in history] == pytest.approx(acc, rel=1e-5)
    first, second = wandb_segments(tmp_path, wandb_id(run))
    assert sorted(wandb_history(first)) == [1, 2, 3, 4, 5] and sorted(wandb_history(second)) == [6, 7, 8]
    logged = wandb_history(first) | wandb_history(second)
    assert [logged[r]["test_acc"] for r in range(1, 9)] == pytest.approx(acc, rel=1e-5)
    assert [e.exit_code for e in wandb_of(first, "exit") + wandb_of(second, "exit")] == [1, 0]
