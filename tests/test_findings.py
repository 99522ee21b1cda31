"""The sentences a reading may quote (tables/findings_<metric>.md): each says what its test says,
"above"/"below" only where a Holm-corrected paired test separates, "not separated" otherwise."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fedbench.report.findings import write_findings
from fedbench.report.newcomers import newcomer_cells
from tests.test_significance import _runs

BASE = [0.80, 0.84, 0.76, 0.88, 0.82]   # seeds differ a lot: only a paired test sees small gaps
STEADY = [0, 1e-3, -1e-3, 2e-3, 0]
NOISY = [-0.03, 0.02, -0.02, 0.01, -0.01]


def shifted(by: float, noise=STEADY) -> list[float]:
    return [x + by + e for x, e in zip(BASE, noise)]


def findings(runs: pd.DataFrame, tmp_path) -> str:
    path, = write_findings(runs, "final", tmp_path)
    return path.read_text()


def section(text: str, setting: str) -> str:
    return text.split(f"## {setting}\n")[1].split("\n## ")[0]


def test_each_claim_follows_its_test(tmp_path):
    runs = _runs({"fedavg": BASE, "local": shifted(-0.02), "up": shifted(0.03), "down": shifted(-0.015),
                  "noisy": shifted(0.0, NOISY)})
    text = section(findings(runs, tmp_path), "s")
    against_fedavg = next(line for line in text.splitlines() if line.startswith("- Against fedavg"))
    assert "above up +3.04 [+2.90, +3.18] (1); below down -1.46 [-1.60, -1.32], local -1.96" in against_fedavg
    assert "not separated noisy (1)." in against_fedavg
    against_local = next(line for line in text.splitlines() if line.startswith("- Against local"))
    assert "above up +5.00" in against_local and "fedavg +1.96" in against_local
    assert "Highest mean: up 85.04" in text and "Not separated from it (bold, one-sided paired t-test, Holm): none" \
        in text


def test_a_noisy_cell_near_the_best_is_not_separated_from_it(tmp_path):
    runs = _runs({"fedavg": BASE, "best": shifted(0.05), "near": shifted(0.045, NOISY)})
    text = findings(runs, tmp_path)
    assert "Not separated from it (bold, one-sided paired t-test, Holm): near (1); separated below it: 1 of 2." in text


def test_friedman_over_settings_as_blocks(tmp_path):
    """Four settings (blocks) where a always beats b beats c: the lowest mean rank is a's; with 4 blocks
    and 3 methods Friedman's p = 0.018 (chi2 = 8)."""
    runs = pd.concat([_runs({"a": shifted(0.04), "b": shifted(0.02), "c": BASE}, setting=f"s{i}") for i in range(4)])
    text = findings(runs, tmp_path)
    line = next(line for line in text.splitlines() if line.startswith("- d (friedman"))
    assert "4 settings as blocks, 3 methods" in line and "chi2 = 8.00, p = 0.0183, the methods differ" in line
    assert "Lowest mean rank a (1.00)" in line


def newcomer_runs(gaps: dict[str, list[float]]) -> pd.DataFrame:
    runs = _runs({m: BASE for m in gaps})
    runs["seen_acc"] = runs["final_acc"]
    runs["unseen_acc"] = [a - g for a, g in zip(runs["final_acc"], [g for m in gaps for g in gaps[m]])]
    runs["participation_gap"] = runs["seen_acc"] - runs["unseen_acc"]
    runs["unseen_clients"], runs["unseen_flops"] = 8, 0.0
    return runs


def test_participation_gaps_are_holm_corrected_over_the_settings_methods(tmp_path):
    """Four methods each with a gap of ~1.5 points: each alone p < 0.05, Holm over the four not; a steady
    gap alone is separated (marked), with its interval."""
    gaps = [0.03, 0.01, 0.02, 0.005, 0.02]
    four = newcomer_cells(newcomer_runs({f"m{i}": list(np.roll(gaps, i)) for i in range(4)}), "final")
    assert (four["gap_p"] < 0.05).all() and (four["gap_p_holm"] >= 0.05).all()
    alone = newcomer_cells(newcomer_runs({"steady": [0.03 + e for e in STEADY], "none": [e for e in NOISY]}), "final")
    steady = alone.set_index("variant").loc["steady"]
    assert steady["gap_p_holm"] < 0.05 and steady["gap_low"] > 0.02 and steady["gap_high"] < 0.04
    text = findings(newcomer_runs({"steady": [0.03 + e for e in STEADY], "none": [e for e in NOISY]}), tmp_path)
    assert "separated from 0 (paired over seeds, Holm over the setting): steady +3.04 [" in text
    assert "not separated none (1)." in text


def test_work_is_stated_beside_compute(tmp_path):
    runs = _runs({"fedavg": BASE, "pfedme": BASE, "fedavg_ft": BASE})
    runs["train_samples"] = runs["method"].map({"fedavg": 100.0, "pfedme": 500.0, "fedavg_ft": 100.0})
    runs["train_forward_samples"] = 0.0
    runs["personalize_once_flops"] = runs["method"].map({"fedavg": 0.0, "pfedme": 0.0, "fedavg_ft": 1e9})
    runs["compute_flops"] = runs["method"].map({"fedavg": 1e9, "pfedme": 5e9, "fedavg_ft": 2e9})
    text = findings(runs, tmp_path)
    assert "| pfedme | 5.00× | 5.00× | 0 | 0% |" in text
    assert "| fedavg_ft | 2.00× | 1.00× | 0 | 50% |" in text


def test_gaps_against_fedavgs_cancel_the_newcomers_luck(tmp_path):
    """Every method's gap moves with its seed's newcomers (here by -3 to +3 points); a method whose gap is
    FedAvg's + 2 points on every seed is separated from FedAvg's, though its gap alone is not from 0."""
    luck = [0.03, -0.03, 0.02, -0.02, 0.0]
    runs = newcomer_runs({"fedavg": luck, "worse": [g + 0.02 + e for g, e in zip(luck, STEADY)],
                          "same": [g + e for g, e in zip(luck, STEADY)]})
    cells = newcomer_cells(runs, "final").set_index("variant")
    assert cells.loc["worse", "gap_p_holm"] >= 0.05                        # alone: not separated from 0
    assert cells.loc["worse", "ref_p_holm"] < 0.05 and cells.loc["worse", "ref_diff"] == pytest.approx(0.0204)
    assert cells.loc["same", "ref_p_holm"] >= 0.05 and pd.isna(cells.loc["fedavg", "ref_diff"])
    text = findings(runs, tmp_path)
    assert "Gap against fedavg's (the same newcomers per seed; newcomers.md): separated worse +2.04 [" in text
    assert "not separated same (1)." in text
