"""The report on synthetic run directories written here: aggregation to the digit, best-per-column
marks, failed/diverged runs and missing seeds left out and listed, summary.csv, filters, plots,
and one clear line (non-zero exit) on bad input."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure
from omegaconf import OmegaConf

from fedbench.report import build_report
from fedbench.report.__main__ import main as report_main
from tests.conftest import ROOT


def write_run(root, method, seed, acc, status="complete", alpha=0.1, lr=0.05, hp=None, heatmap=None,
              best=None, error=None, val=None):
    """One run directory in the real layout, with the files run.py writes."""
    d = root / "runs" / "digits" / f"dirichlet_alpha{alpha}" / method / f"h{lr}{hp}" / f"seed{seed}"
    d.mkdir(parents=True)
    cfg = {"dataset": {"name": "digits"}, "partition": {"name": "dirichlet", "alpha": alpha, "min_samples": 10},
           "model": {"name": "mlp", "hidden": [16]}, "method": {"name": method, **(hp or {})}, "seed": seed,
           "rounds": 10, "num_clients": 4, "lr": lr, "results_dir": str(root), "device": "cpu",
           "data": {"root": "/somewhere"}}
    OmegaConf.save(OmegaConf.create(cfg), d / "config.yaml")
    summary = {"status": status, "method": method, "dataset": "digits", "partition": "dirichlet",
               "seed": seed, "num_clients": 4, "rounds": 10, "model": "mlp", "wall_time_s": 1.5,
               "partition_cache": str(heatmap) if heatmap else None, "engines": ["vmap"], "device": "cpu",
               "threads": 1, "torch": "2.x"}
    if status in ("complete", "diverged"):
        b = best if best is not None else acc
        summary |= {"final_acc": acc, "final_acc_weighted": acc - 0.01, "final_acc_std": 0.1,
                    "final_acc_bottom10": acc / 2, "best_acc": b, "best_acc_weighted": b, "best_acc_std": 0.1,
                    "best_acc_bottom10": b / 2, "best_round": 10, "bytes_up": 1000, "bytes_down": 3000,
                    "final_val_acc": acc if val is None else val, "best_val_acc": b if val is None else val,
                    "compute_flops": FLOPS.get(method, 100), "train_flops": FLOPS.get(method, 100)}
    if status == "diverged":
        summary["diverged_round"] = 7
    if error:
        summary["error"] = error
    (d / "summary.json").write_text(json.dumps(summary))
    rounds = [5, 10]
    pd.DataFrame({"round": rounds, "test_acc": [acc - 0.1, acc], "bytes_up": [500, 1000],
                  "bytes_down": [1500, 3000], "val_acc": [acc, acc]}).to_csv(d / "metrics.csv", index=False)
    pd.DataFrame({"client": range(4), "test_acc": acc + np.array([-0.1, 0.0, 0.05, 0.05])}).to_csv(
        d / "clients.csv", index=False)
    return d


FLOPS = {"fedavg": 100, "local": 50, "fedper": 300}  # compute per run: local half of FedAvg's, fedper 3x


def heatmap_png(path):
    path.mkdir(parents=True)
    fig = Figure(figsize=(3, 3))
    fig.add_subplot().imshow(np.arange(16).reshape(4, 4))
    fig.savefig(path / "heatmap.png")
    return path


@pytest.fixture
def results(tmp_path):
    """Two settings (alpha 0.1, 0.5) x fedavg/local x seeds 0-2, plus a fedper with trouble."""
    root = tmp_path / "results"
    cache = heatmap_png(tmp_path / "cache" / "digits-dirichlet-x")
    for seed, (a, b) in enumerate([(0.70, 0.60), (0.72, 0.61), (0.77, 0.62)]):
        write_run(root, "fedavg", seed, a, alpha=0.1, heatmap=cache)
        write_run(root, "local", seed, b, alpha=0.1, heatmap=cache)
        write_run(root, "fedavg", seed, a - 0.3, alpha=0.5)
        write_run(root, "local", seed, b - 0.1, alpha=0.5)
    write_run(root, "fedper", 0, 0.95, alpha=0.1)                       # best mean, but seeds 1, 2 bad
    write_run(root, "fedper", 1, 0.99, status="diverged", alpha=0.1)
    write_run(root, "fedper", 2, 0.0, status="failed", alpha=0.1, error="RuntimeError: boom")
    return root


def test_mean_std_to_the_digit_and_best_marked(results):
    build_report(results, echo=lambda s: None)
    md = (results / "tables" / "final_acc.md").read_text()
    rows = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:-1]]
            for line in md.splitlines() if line.startswith("| ") and "method" not in line}
    # columns sorted: alpha=0.1 first, each followed by compute and bytes as multiples of FedAvg's there.
    # fedavg: 70, 72, 77 -> mean 73, sample std sqrt(13) = 3.6056
    assert rows["fedavg"] == ["**73.00 ± 3.61**", "1.00×", "1.00×", "43.00 ± 3.61", "1.00×", "1.00×"]
    assert rows["local"] == ["61.00 ± 1.00", "0.50×", "1.00×", "**51.00 ± 1.00**", "0.50×", "1.00×"]
    assert rows["fedper"] == ["95.00 † (1/3)", "3.00×", "1.00×", "", "", ""]  # missing seeds: never bold
    tex = (results / "tables" / "final_acc.tex").read_text()
    assert r"\textbf{73.00 $\pm$ 3.61}" in tex and r"\textbf{51.00 $\pm$ 1.00}" in tex
    assert r"min\_samples=10" in tex and r"\textbf{95" not in tex
    weighted = (results / "tables" / "final_acc_weighted.md").read_text()
    assert "**72.00 ± 3.61**" in weighted
    for name in ("final_acc_bottom10.md", "final_acc_bottom10.tex", "final_acc_weighted.tex"):
        assert (results / "tables" / name).stat().st_size > 100


def test_failed_diverged_and_missing_seeds_listed_not_averaged(results):
    lines = []
    report = build_report(results, echo=lines.append)
    assert report.runs == 15 and report.usable == 13 and report.settings == 2
    issues = (results / "tables" / "issues.md").read_text()
    assert "fedper | seed 1: diverged at round 7" in issues
    assert "fedper | seed 2: failed: RuntimeError: boom" in issues
    assert "fedper: 1/3 seeds, missing seed 1, 2" in issues
    assert any("diverged at round 7" in line for line in lines)
    assert any("missing seed 1, 2" in line for line in lines)
    assert "0.99" not in (results / "tables" / "final_acc.md").read_text()


def test_summary_csv_one_row_per_run_with_the_contract_columns(results):
    build_report(results, echo=lambda s: None)
    s = pd.read_csv(results / "summary.csv")
    assert len(s) == 15
    for col in ("dataset", "partition", "partition.alpha", "partition.min_samples", "num_clients", "method",
                "seed", "final_acc", "final_acc_weighted", "final_acc_std", "final_acc_bottom10", "best_acc",
                "best_acc_weighted", "rounds", "wall_time_s", "bytes_up", "bytes_down", "bytes_total", "status",
                "engines", "device", "threads", "torch"):
        assert col in s.columns, col
    assert set(s["status"]) == {"complete", "diverged", "failed"}
    assert (s.loc[s["status"] == "complete", "bytes_total"] == 4000).all()
    assert sorted(s["partition.alpha"].unique()) == [0.1, 0.5]
    assert set(s["engines"]) == {"vmap"}  # how each number was computed travels with it


def test_plots_written_and_not_empty(results):
    report = build_report(results, echo=lambda s: None)
    plots = results / "plots"
    names = sorted(p.name for p in plots.glob("*.png"))
    for prefix in ("curves_", "bytes_", "clients_", "compute_"):
        assert sum(n.startswith(prefix) for n in names) == 2, names      # one per setting
    assert sum(n.startswith("partition_") for n in names) == 1          # one distinct partition cache
    assert all((plots / n).stat().st_size > 5000 for n in names)
    assert sorted(p.name for p in report.plots) == names
    summary = pd.read_csv(results / "summary.csv")
    assert {"compute_flops", "train_flops", "train_samples", "personalize_train_flops"} <= set(summary.columns)


def test_metric_best_uses_the_validation_chosen_round(tmp_path):
    root = tmp_path / "r"
    for seed in range(2):
        write_run(root, "fedavg", seed, 0.5, best=0.8 + seed / 10)
    assert report_main(["--results-dir", str(root), "--metric", "best"]) == 0
    assert "**85.00 ± 7.07**" in (root / "tables" / "best_acc.md").read_text()


def test_method_hyperparameters_are_separate_rows(tmp_path):
    root = tmp_path / "r"
    for seed in range(2):
        write_run(root, "fedprox", seed, 0.5, hp={"mu": 0.01})
        write_run(root, "fedprox", seed, 0.6, hp={"mu": 0.1})
    build_report(root, echo=lambda s: None)
    md = (root / "tables" / "final_acc.md").read_text()
    assert "| fedprox(mu=0.01) | 50.00 ± 0.00 |" in md and "| fedprox(mu=0.1) | **60.00 ± 0.00** |" in md


def test_filters(results, capsys):
    assert report_main(["--results-dir", str(results), "--filter", "method=fedavg,local", "partition.alpha=0.5"]) == 0
    s = pd.read_csv(results / "summary.csv")
    assert len(s) == 6 and set(s["method"]) == {"fedavg", "local"} and set(s["partition.alpha"]) == {0.5}
    assert report_main(["--results-dir", str(results), "--filter", "nosuchkey=1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("fedbench.report: error: --filter key 'nosuchkey'")


def test_bad_input_is_one_line_and_nonzero(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "fedbench.report", "--results-dir", str(tmp_path / "none")],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "no runs found" in proc.stderr
    root = tmp_path / "r"
    write_run(root, "fedavg", 0, 0.0, status="failed", error="ValueError: x")
    assert report_main(["--results-dir", str(root)]) == 1
    assert "failed: ValueError: x" in (root / "tables" / "issues.md").read_text()
