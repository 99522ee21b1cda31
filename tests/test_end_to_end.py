"""End to end through the command line: the contract files, multirun with -m anywhere, skipping
complete runs, the missing-data error, and the pFL property on a pathological split."""
import json
from pathlib import Path

import numpy as np
import pandas as pd

from fedbench.data.datasets import DATASETS
from tests.conftest import run_cli


def _runs(results: Path) -> list[Path]:
    return sorted(p.parent for p in results.glob("runs/**/summary.json"))


def test_default_run_writes_the_contract_files(tmp_path, data_root):
    res = run_cli(f"results_dir={tmp_path}", "rounds=10")
    assert res.returncode == 0, res.stderr
    (run,) = _runs(tmp_path)
    assert {"config.yaml", "metrics.csv", "clients.csv", "summary.json"} <= {p.name for p in run.iterdir()}
    assert run.relative_to(tmp_path / "runs").parts[:3] == ("digits", "dirichlet_alpha0.1_min_samples10", "fedbsd")
    assert run.name == "seed0"
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "complete" and summary["rounds_done"] == 10
    assert 0.3 < summary["final_acc"] <= 1 and summary["bytes_up"] > 0 and summary["wall_time_s"] > 0
    metrics = pd.read_csv(run / "metrics.csv")
    assert list(metrics["round"]) == [5, 10]
    clients = pd.read_csv(run / "clients.csv")
    assert len(clients) == 20 and clients["test_acc"].between(0, 1).all()
    # the headline numbers are recomputable from the per-round table
    assert np.isclose(summary["final_acc"], metrics["test_acc"].tail(5).mean())
    assert np.isclose(summary["best_acc"], metrics.loc[metrics["val_acc"].idxmax(), "test_acc"])
    # the weighted mean is over test samples
    w = clients["n_test"] / clients["n_test"].sum()
    assert np.isclose(metrics["test_acc_weighted"].iloc[-1], (w * clients["test_acc"]).sum(), atol=1e-5)
    assert "final acc" in res.stderr  # the one-line summary


def test_multirun_flag_in_the_middle_and_skip_complete(tmp_path, data_root):
    args = [f"results_dir={tmp_path}", "rounds=2", "num_clients=5", "method=fedavg", "-m", "seed=0,1"]
    res = run_cli(*args)
    assert res.returncode == 0, res.stderr
    runs = _runs(tmp_path)
    assert [r.name for r in runs] == ["seed0", "seed1"]
    stamp = [(r / "summary.json").stat().st_mtime_ns for r in runs]
    again = run_cli(*args)
    assert again.returncode == 0 and again.stderr.count("already complete") == 2
    assert stamp == [(r / "summary.json").stat().st_mtime_ns for r in runs]


def test_different_hyperparameters_never_share_a_run_dir(tmp_path, data_root):
    for lr in ("0.05", "0.1"):
        assert run_cli(f"results_dir={tmp_path}", "rounds=1", "num_clients=5", f"lr={lr}").returncode == 0
    assert len(_runs(tmp_path)) == 2


def test_missing_cifar_gives_one_line_and_nonzero_exit(tmp_path, data_root):
    res = run_cli(f"results_dir={tmp_path}", "dataset=cifar100", "data.download=false", "-m", "seed=0,1,2")
    assert res.returncode == 2
    lines = [line for line in res.stderr.splitlines() if line.strip() and not line.startswith("[")]
    assert len(lines) == 1, res.stderr
    assert "cifar-100-python" in lines[0] and str(data_root) in lines[0] and "Traceback" not in res.stderr
    assert not (tmp_path / "runs").exists()  # nothing half-written


def test_cifar10_fixture_runs_through_the_cli(tmp_path, data_root):
    DATASETS.get("cifar10").fixture(data_root)  # the record's tiny files in the real format: 6 x 10 images
    res = run_cli(f"results_dir={tmp_path}", "dataset=cifar10", "data.verify=false", "data.download=false",
                  "partition=iid", "num_clients=4", "rounds=1", "model.channels=[4,8]", "model.hidden=[16]")
    assert res.returncode == 0, res.stderr
    (run,) = _runs(tmp_path)
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "complete" and summary["model"] == "cnn"
    assert pd.read_csv(run / "clients.csv")[["n_train", "n_val", "n_test"]].to_numpy().sum() == 60


def test_personalized_methods_beat_fedavg_on_pathological_split(tmp_path, data_root):
    """An honest property of pFL: with 2 classes per client, a private head (or a private model)
    beats the single global model on each client's own test split by a clear margin."""
    final = {}
    for method in ("fedavg", "local", "fedbsd"):
        res = run_cli(f"results_dir={tmp_path}", f"method={method}", "partition=pathological",
                      "partition.classes_per_client=2", "rounds=40", "join_ratio=0.5")
        assert res.returncode == 0, res.stderr
    for run in _runs(tmp_path):
        s = json.loads((run / "summary.json").read_text())
        final[s["method"]] = s["final_acc"]
    assert final["local"] > final["fedavg"] + 0.08, final
    assert final["fedbsd"] > final["fedavg"] + 0.08, final
