"""Differences tested, not eyeballed: within a setting, the cells not significantly worse than the
best (paired over seeds, Holm-corrected) are marked with it; across settings and seeds, Friedman's
test and a critical-difference diagram; selection ties broken towards the grid's middle, and every
tie and grid-edge selection listed."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from fedbench.report import build_report
from fedbench.report.aggregate import aggregate
from fedbench.report.significance import BEST, SAME, friedman, paired_marks
from tests.test_report import write_run
from tests.test_select import read_md

SEEDS = range(5)


def _runs(accs: dict[str, list[float]], setting="s") -> pd.DataFrame:
    """A runs frame as collect makes it: one complete run per (method, seed)."""
    rows = [{"setting_key": setting, "setting": setting, "variant": m, "method": m, "seed": s, "status": "complete",
             "final_acc": a, "dataset": "d"} for m, vals in accs.items() for s, a in zip(SEEDS, vals)]
    return pd.DataFrame(rows)


def _marks(accs):
    runs = _runs(accs)
    agg = aggregate(runs, "final")
    return paired_marks(runs, "final", agg).set_index("variant")


def test_a_small_but_consistent_gap_is_significant_paired_a_noisy_one_is_not():
    base = [0.80, 0.84, 0.76, 0.88, 0.82]                       # seeds differ a lot (partitions)
    marks = _marks({"a": base, "consistent": [x - 0.01 + e for x, e in zip(base, [0, 1e-3, -1e-3, 2e-3, 0])],
                    "noisy": [x + e for x, e in zip(base, [-0.03, 0.02, -0.02, 0.01, -0.01])]})
    assert marks.loc["a", "mark"] == BEST and math.isnan(marks.loc["a", "p_holm"])
    assert marks.loc["consistent", "mark"] == ""      # paired: 1 point below on every seed (unpaired: p ~ 0.4)
    assert marks.loc["noisy", "mark"] == SAME and marks.loc["noisy", "p_holm"] >= 0.05


def test_holm_correction_over_the_settings_comparisons():
    """Four cells each 1.5 +- 1.2 points below the best: each alone p = 0.026; Holm over four: 0.10."""
    base = [0.80, 0.84, 0.76, 0.88, 0.82]
    gaps = [0.03, 0.0, 0.02, 0.005, 0.02]
    accs = {"a": base} | {f"m{i}": [x - g for x, g in zip(base, np.roll(gaps, i))] for i in range(4)}
    marks = _marks(accs)
    assert (marks.loc[[f"m{i}" for i in range(4)], "mark"] == SAME).all()
    single = _marks({"a": base, "m0": accs["m0"]})     # one comparison: significant
    assert single.loc["m0", "mark"] == ""


def test_a_cell_missing_seeds_is_never_marked_and_one_equal_on_every_seed_is():
    base = [0.80, 0.84, 0.76, 0.88, 0.82]
    runs = _runs({"a": base, "twin": base, "short": [0.99] * 5})
    runs = runs[~((runs["variant"] == "short") & (runs["seed"] > 2))]
    marks = paired_marks(runs, "final", aggregate(runs, "final")).set_index("variant")
    assert marks.loc["short", "mark"] == "" and marks.loc["twin", "mark"] in (BEST, SAME)


def test_friedman_statistic_by_hand_and_the_ranks():
    """Three methods in the same order in all 6 settings: chi2 = 12/(n k (k+1)) sum R_j^2 - 3 n (k+1) = 12."""
    accs = {"top": [0.9] * 5, "mid": [0.8] * 5, "low": [0.7] * 5}
    runs = pd.concat([_runs(accs, f"s{i}") for i in range(6)])
    result = friedman(runs, "final")
    assert result["blocks"] == 6 and result["methods"] == 3
    assert result["statistic"] == pytest.approx(12.0) and result["p"] == pytest.approx(math.exp(-6.0))
    assert list(result["ranks"].index) == ["top", "mid", "low"] and list(result["ranks"]) == [1.0, 2.0, 3.0]


def test_friedman_blocks_are_settings_and_a_block_is_the_mean_over_its_seeds():
    """Seeds are not blocks: one setting of 5 seeds is one block (too few: not tested); in a setting
    where `b` wins 3 seeds of 5 by a little and loses 2 by a lot, its mean (its block value) is lower."""
    accs = {"a": [0.80] * 5, "b": [0.81, 0.81, 0.81, 0.70, 0.70], "c": [0.60] * 5}
    assert friedman(_runs(accs, "s1"), "final") is None
    result = friedman(pd.concat([_runs(accs, "s1"), _runs(accs, "s2")]), "final")
    assert result["blocks"] == 2 and list(result["ranks"].index) == ["a", "b", "c"]


def test_report_writes_friedman_table_cd_diagram_ties_and_grid_edges(tmp_path):
    root = tmp_path / "r"
    for alpha in (0.1, 0.5):
        for seed in range(3):
            for lr, val in ((0.01, 0.7), (0.05, 0.7), (0.1, 0.7)):   # a three-way tie: the middle wins
                write_run(root, "fedavg", seed, 0.70 + seed / 100 + lr, lr=lr, val=val, alpha=alpha)
            for lr, val in ((0.01, 0.6), (0.05, 0.7), (0.1, 0.8)):   # no tie: the largest lr, an edge
                write_run(root, "local", seed, 0.60 + seed / 50, lr=lr, val=val, alpha=alpha)
                write_run(root, "fedper", seed, 0.65 + seed / 30, lr=lr, val=val, alpha=alpha)
    report = build_report(root, echo=lambda s: None, select="val")
    sel = pd.read_csv(root / "tables" / "selected.csv")
    fedavg = sel[sel["method"] == "fedavg"]
    assert (fedavg["lr"] == 0.05).all() and (fedavg["tied"] == 3).all() and fedavg["grid_edge"].isna().all()
    local = sel[sel["method"] == "local"]
    assert (local["lr"] == 0.1).all() and (local["tied"] == 1).all()
    assert (local["grid_edge"] == "lr=0.1 (largest of 3)").all()
    notes = (root / "tables" / "selected_hparams.md").read_text()
    assert "2 of 6 selections were ties" in notes and "4 of 6 selections take a searched key" in notes
    assert notes.count("lr=0.1 (largest of 3)") == 4
    friedman_md = (root / "tables" / "friedman_final.md").read_text()
    assert "over 2 settings as blocks and 3 methods" in friedman_md
    differences_md = root / "tables" / "differences_final.md"
    assert differences_md in report.tables and "| fedper |" in differences_md.read_text()
    assert "| local | nothing | none | whole model |" in (root / "tables" / "methods.md").read_text()
    cd = root / "plots" / "cd_digits_final.png"
    assert cd in report.plots and cd.stat().st_size > 5000
    board = read_md(root / "tables" / "leaderboard_final.md")   # the tie-decided selections are marked
    assert " ‡" in board["fedavg"][0] and "‡" not in board["local"][0]
    assert board["local"][0].endswith(" °")   # a grid on every seed: reported on its tuning seeds, marked
    rows = read_md(root / "tables" / "selected_final_acc.md")
    assert rows["fedavg"][0].startswith("**")   # the best cell (75.00) is bold
