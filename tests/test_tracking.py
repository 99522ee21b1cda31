"""Trackers (logger=tensorboard|mlflow|wandb, several at once): what each library's own reader gets
back is what metrics.csv and summary.json say; the logger never changes the run directory or the
numbers; an unknown logger or a missing package is one line; a failing tracker warns once and the
run goes on."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from fedbench.report.collect import assign_groups, load_run
from fedbench.rundir import config_hash, path_for
from tests.runs_helpers import ROOT, SMALL, compose_cfg, run_dirs, run_inprocess, summary
from tests.tracking_helpers import (metrics, mlflow_history, mlflow_runs, need, offline_wandb, tb_events,
                                   tb_hparams, tb_scalars, tb_text, wandb_history, wandb_id, wandb_of,
                                   wandb_segments, wandb_summary)

ARGS = [*SMALL, "rounds=6", "eval_every=2"]
ROUNDS = [2, 4, 6]
COLUMNS = ["test_acc", "test_acc_weighted", "test_acc_std", "test_acc_bottom10", "val_acc", "val_acc_weighted",
           "val_acc_std", "val_acc_bottom10", "test_loss", "train_loss", "bytes_up", "bytes_down"]


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory):
    """One command line, `python -m fedbench logger=[tensorboard,mlflow]`, offline."""
    need("tensorboard", "mlflow")
    tmp = tmp_path_factory.mktemp("cli")
    results = tmp / "results"
    env = dict(os.environ, FEDBENCH_DATA=str(tmp / "data"))
    proc = subprocess.run([sys.executable, "-m", "fedbench", *ARGS, f"results_dir={results}",
                           "logger=[tensorboard,mlflow]"], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert "warning" not in proc.stderr, proc.stderr
    (run,) = run_dirs(results)
    return results, run


def test_tensorboard_event_reader_returns_every_evaluation_round(cli_run):
    results, run = cli_run
    acc = tb_events(run)
    rows, s = metrics(run), summary(run)
    assert set(COLUMNS) <= set(acc.Tags()["scalars"])
    for column in COLUMNS:
        got = tb_scalars(acc, column)
        assert [step for step, _ in got] == ROUNDS, column
        assert [v for _, v in got] == pytest.approx(list(rows[column]), rel=1e-5), column
    assert tb_scalars(acc, "final_acc") == [(6, pytest.approx(s["final_acc"], rel=1e-5))]
    assert tb_scalars(acc, "best_round") == [(6, s["best_round"])]
    hp = tb_hparams(acc)
    assert hp["lr"] == 0.05 and hp["method.name"] == "fedavg" and hp["config_hash"] == s["config_hash"]
    assert "status: complete" in tb_text(acc, "status")
    assert "fedavg/digits/dirichlet_alpha0.1_min_samples5/N6/seed0" in tb_text(acc, "run")


def test_mlflow_client_returns_params_and_metric_history(cli_run):
    results, run = cli_run
    (found,) = mlflow_runs(results)
    rows, s = metrics(run), summary(run)
    assert found.info.status == "FINISHED"
    assert found.info.run_name == "fedavg/digits/dirichlet_alpha0.1_min_samples5/N6/seed0"
    params, tags = found.data.params, found.data.tags
    assert params["lr"] == "0.05" and params["num_clients"] == "6" and params["method.name"] == "fedavg"
    assert params["config_hash"] == s["config_hash"] and "logger.mlflow.experiment" not in params
    row, flat = load_run(run, results)
    setting_key = assign_groups([row], [flat])["setting_key"][0]          # summary.csv's setting_key
    assert tags["group"] == f"digits/dirichlet_alpha0.1_min_samples5/N6/{setting_key}"
    assert tags["status"] == "complete" and tags["method"] == "fedavg" and tags["seed"] == "0"
    for column in COLUMNS:
        history = mlflow_history(results, found.info.run_id, column)
        assert [step for step, _ in history] == ROUNDS, column
        assert [v for _, v in history] == pytest.approx(list(rows[column]), rel=1e-5), column
    assert mlflow_history(results, found.info.run_id, "final_acc") == [(6, pytest.approx(s["final_acc"]))]


def test_the_logger_changes_neither_hash_nor_run_directory(cli_run, capsys):
    results, run = cli_run
    plain, logged = compose_cfg(*ARGS), compose_cfg(*ARGS, "logger=[tensorboard,mlflow,wandb]")
    assert config_hash(plain, exclude_seed=False) == config_hash(logged, exclude_seed=False)
    assert path_for(plain) == path_for(logged)
    before = {p: p.stat().st_mtime_ns for p in run.rglob("*")}
    again = run_inprocess(*ARGS[len(SMALL):], f"results_dir={results}")      # no logger: not recomputed
    assert again["status"] == "complete" and "already complete" in capsys.readouterr().err
    assert run_dirs(results) == [run] and {p: p.stat().st_mtime_ns for p in run.rglob("*")} == before


def test_wandb_offline_run_directory_holds_the_history(tmp_path, data_root, monkeypatch, capsys):
    need("wandb")
    offline_wandb(monkeypatch, tmp_path)
    s = run_inprocess(*ARGS[len(SMALL):], f"results_dir={tmp_path}", "logger=wandb", "logger.wandb.project=pfl")
    assert "is offline" in capsys.readouterr().err
    (run,) = run_dirs(tmp_path)
    (records,) = wandb_segments(tmp_path, wandb_id(run))
    history, rows = wandb_history(records), metrics(run)
    assert sorted(history) == ROUNDS
    for column in COLUMNS:
        assert [history[r][column] for r in ROUNDS] == pytest.approx(list(rows[column]), rel=1e-5), column
    (meta,) = wandb_of(records, "run")
    assert meta.project == "pfl" and meta.display_name == "fedavg/digits/dirichlet_alpha0.1_min_samples5/N6/seed0"
    assert meta.run_group.startswith("digits/dirichlet_alpha0.1_min_samples5/N6/") and meta.job_type == "fedavg"
    config = {u.key: u.value_json for c in wandb_of(records, "config") for u in c.update} | \
             {u.key: u.value_json for u in meta.config.update}
    assert config["lr"] == "0.05" and config["config_hash"] == f'"{s["config_hash"]}"'
    final = wandb_summary(records)
    assert final["status"] == "complete" and final["final_acc"] == pytest.approx(s["final_acc"])
    assert [e.exit_code for e in wandb_of(records, "exit")] == [0]


def test_a_failing_tracker_warns_once_and_the_run_and_its_files_go_on(tmp_path, data_root, monkeypatch, capsys):
    """MLflow cannot start (its store would be under a file), TensorBoard's disk fails at round 4:
    one warning each, the run completes, and its files equal those of a run without trackers."""
    need("tensorboard", "mlflow")
    from torch.utils.tensorboard import SummaryWriter

    run_inprocess(*ARGS[len(SMALL):], f"results_dir={tmp_path / 'ref'}")
    (ref,) = run_dirs(tmp_path / "ref")
    add_scalar = SummaryWriter.add_scalar

    def full_disk(self, tag, value, step=None, *args, **kwargs):
        if step >= 4:   # the disk stays full
            raise OSError(28, "No space left on device")
        return add_scalar(self, tag, value, step, *args, **kwargs)

    monkeypatch.setattr(SummaryWriter, "add_scalar", full_disk)
    (tmp_path / "file").write_text("not a directory")
    capsys.readouterr()
    s = run_inprocess(*ARGS[len(SMALL):], f"results_dir={tmp_path / 'run'}", "logger=[tensorboard,mlflow]",
                      f"logger.mlflow.tracking_uri={tmp_path / 'file' / 'mlruns'}")
    warnings = [ln for ln in capsys.readouterr().err.splitlines() if "warning" in ln]
    assert len(warnings) == 2, warnings
    assert warnings[0].startswith("fedbench: warning: mlflow logging stopped while starting")
    assert "tensorboard logging stopped while logging round 4" in warnings[1] and "No space left" in warnings[1]
    assert s["status"] == "complete"
    (run,) = run_dirs(tmp_path / "run")
    for name in ("metrics.csv", "clients.csv"):
        assert (run / name).read_bytes() == (ref / name).read_bytes(), name
    assert tb_scalars(tb_events(run), "test_acc")[0][0] == 2      # what it logged before the failure stays


def test_a_missing_package_is_one_line_naming_the_extra(tmp_path):
    code = ("import sys; sys.modules['mlflow'] = None; sys.argv = ['fedbench', 'logger=mlflow', "
            f"'results_dir={tmp_path}']; from fedbench.cli import main; main()")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.splitlines() == ["fedbench: error: logger=mlflow: the package 'mlflow-skinny' is not "
                                        "installed; install fedbench's tracking extra: pip install -e '.[tracking]'"]
    assert not list(tmp_path.iterdir())


def _open_mlflow_store(results, name, me, arrived, inside, most_inside, cond, out):
    """In a fresh process: open an MLflow Tracker on the shared store (which creates the store and the
    experiment on first use) with the store's creating steps (FileStore.__init__, create_experiment)
    made a window that waits, inside, until the other job has arrived too: at the window, or at the
    store lock (runlock.exclusive). A job that enters the window unlocked therefore always meets the
    other inside it (most_inside = 2), at any machine load; a job that holds the lock lets the other
    arrive at the lock and wait there. Puts (experiment id, run id) or the error on `out`."""
    from pathlib import Path as _Path

    from mlflow.store.tracking.file_store import FileStore
    from omegaconf import OmegaConf as _OC

    from fedbench.rundir import lock as runlock
    from fedbench.tracking.identity import RunIdentity
    from fedbench.tracking.to_mlflow import Tracker

    def arrive(entering: bool) -> None:
        with cond:
            arrived[me] = 1
            if entering:
                inside.value += 1
                most_inside.value = max(most_inside.value, inside.value)
            cond.notify_all()
            if entering:
                cond.wait_for(lambda: all(arrived), timeout=120)

    def window(fn):
        def waited(*a, **k):
            arrive(entering=True)
            try:
                return fn(*a, **k)
            finally:
                with cond:
                    inside.value -= 1
        return waited

    def at_lock(fn):
        def waited(*a, **k):
            arrive(entering=False)
            return fn(*a, **k)
        return waited

    FileStore.__init__ = window(FileStore.__init__)
    FileStore.create_experiment = window(FileStore.create_experiment)
    runlock.exclusive = at_lock(runlock.exclusive)
    run_dir = _Path(results) / name
    run_dir.mkdir(parents=True)
    run = RunIdentity(name=name, group="g", setting="s", method=name, seed=0, run_dir=run_dir,
                      results_dir=_Path(results), tags={"method": name})
    try:
        tracker = Tracker(_OC.create({"tracking_uri": None, "experiment": "fedbench"}), run, resumed_from_round=0)
        out.put((name, tracker.client.get_run(tracker.run_id).info.experiment_id, tracker.run_id))
    except Exception as exc:  # noqa: BLE001 - reported to the test
        out.put((name, "error", repr(exc)))


def test_jobs_starting_together_share_one_mlflow_experiment(tmp_path):
    """Two jobs of a sweep open the same fresh file store together. MLflow's file store creates the
    store (its default experiment 0/meta.yaml) and an experiment without locks: unlocked, the two
    made two experiments of one name (29 of 30 pairs), or one failed with "Yaml file '.../0/meta.yaml'
    exists" and its run was missing. Every step that creates the store or the experiment must be made
    by one job at a time; the window in _open_mlflow_store makes the worst interleaving happen every
    time, so the test fails on every unlocked step whatever the load (mutation checked: the client
    built before the lock; no lock around create_experiment)."""
    import multiprocessing

    need("mlflow")
    ctx = multiprocessing.get_context("spawn")
    arrived, inside, most_inside = ctx.Array("i", 2), ctx.Value("i", 0), ctx.Value("i", 0)
    cond, out = ctx.Condition(), ctx.Queue()
    jobs = [ctx.Process(target=_open_mlflow_store,
                        args=(str(tmp_path), m, i, arrived, inside, most_inside, cond, out))
            for i, m in enumerate(("fedavg", "local"))]
    for job in jobs:
        job.start()
    made = [out.get(timeout=300) for _ in jobs]
    for job in jobs:
        job.join(timeout=60)
    assert all(e != "error" for _, e, _ in made), made
    assert most_inside.value == 1, "two jobs created the MLflow store or experiment at once"
    assert len({e for _, e, _ in made}) == 1, made
    assert sorted(r.data.tags["method"] for r in mlflow_runs(tmp_path)) == ["fedavg", "local"]


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full (Linux)")
def test_a_run_that_fails_at_its_final_writes_tells_the_tracker(tmp_path, data_root, monkeypatch):
    """A full disk at clients.csv (after the last round) fails the run; the MLflow run says FAILED too,
    not RUNNING forever."""
    from fedbench.errors import WriteError
    from tests.test_no_traceback import _dev_full_for

    need("mlflow")
    _dev_full_for("clients.csv", monkeypatch)
    with pytest.raises(WriteError):
        run_inprocess(f"results_dir={tmp_path}", "rounds=2", "eval_every=1", "logger=mlflow")
    (run,) = run_dirs(tmp_path)
    assert summary(run)["status"] == "failed"
    (logged,) = mlflow_runs(tmp_path)
    assert logged.info.status == "FAILED"
