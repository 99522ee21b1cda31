"""The differences a reading cites: every method against FedAvg and Local in each setting, paired over
seeds (the seeds share partitions), two-sided, Holm-corrected per (setting, reference), with the mean
difference and its 95% interval."""
from __future__ import annotations

import numpy as np
import pytest

from fedbench.report.differences import (
    BETTER,
    NONE,
    WORSE,
    differences,
    write_differences,
)
from tests.test_significance import _runs

BASE = [0.80, 0.84, 0.76, 0.88, 0.82]   # seeds differ a lot: only a paired test sees small gaps


def _found(accs, references=("fedavg",)):
    return differences(_runs(accs), "final", references).set_index(["reference", "variant"])


def test_consistent_gaps_are_tested_differences_in_their_direction_noise_is_not():
    found = _found({"fedavg": BASE, "up": [x + 0.02 + e for x, e in zip(BASE, [0, 1e-3, -1e-3, 2e-3, 0])],
                    "down": [x - 0.015 + e for x, e in zip(BASE, [0, 2e-3, -1e-3, 1e-3, 0])],
                    "noisy": [x + e for x, e in zip(BASE, [-0.03, 0.02, -0.02, 0.01, -0.01])]})
    assert found.loc[("fedavg", "up"), "verdict"] == BETTER and found.loc[("fedavg", "up"), "diff"] > 0
    assert found.loc[("fedavg", "down"), "verdict"] == WORSE
    assert found.loc[("fedavg", "noisy"), "verdict"] == NONE
    assert (found["n"] == 5).all()


def test_mean_difference_and_its_interval_by_hand():
    """Differences 1, 2, 3 points on three seeds: mean 2, sd 1, half width t(0.975, 2) / sqrt(3) = 2.484."""
    runs = _runs({"fedavg": BASE[:3], "m": [x + d / 100 for x, d in zip(BASE, (1, 2, 3))]})
    r = differences(runs, "final", ("fedavg",)).iloc[0]
    assert r["diff"] == pytest.approx(2.0)
    assert (r["low"], r["high"]) == pytest.approx((2.0 - 2.4841, 2.0 + 2.4841), abs=1e-3)
    assert r["p"] == pytest.approx(0.0742, abs=1e-3)   # t = 2 sqrt(3) = 3.46 on 2 dof, two-sided


def test_holm_family_is_one_setting_and_one_reference():
    """Four methods each ~1.5 points above FedAvg with noise: each alone p < 0.05, Holm over four not;
    the comparisons with Local are another family and do not dilute them."""
    gaps = [0.03, 0.01, 0.02, 0.005, 0.02]   # p = 0.018 each; Holm over four: 0.07
    accs = {"fedavg": BASE} | {f"m{i}": [x + g for x, g in zip(BASE, np.roll(gaps, i))] for i in range(4)}
    found = _found(accs)
    assert (found["p"] < 0.05).all() and (found["verdict"] == NONE).all()
    alone = _found({"fedavg": BASE, "m0": accs["m0"]})
    assert alone.loc[("fedavg", "m0"), "verdict"] == BETTER
    with_local = _found({"fedavg": BASE, "m0": accs["m0"], "local": [x - 0.2 for x in BASE]}, ("fedavg", "local"))
    assert with_local.loc[("local", "m0"), "verdict"] == BETTER
    assert with_local.loc[("fedavg", "local"), "verdict"] == WORSE


def test_cells_missing_seeds_and_settings_without_the_reference_are_left_out(tmp_path):
    runs = _runs({"fedavg": BASE, "m": [x + 0.05 for x in BASE], "short": [x + 0.1 for x in BASE]})
    runs["compute_flops"] = runs["method"].map({"fedavg": 1e9, "m": 2e9, "short": 3e9})
    runs = runs[~((runs["variant"] == "short") & (runs["seed"] == 4))]
    found = differences(runs, "final", ("fedavg",))
    assert list(found["variant"]) == ["m"]
    assert not len(differences(_runs({"a": BASE, "b": BASE}), "final"))
    assert write_differences(_runs({"a": BASE, "b": BASE}), "final", tmp_path) == []
    path, = write_differences(runs, "final", tmp_path)
    text = path.read_text()
    assert "| m | 87.00 | 2.00× | +5.00 [+5.00, +5.00] p=0 **better** |" in text
    assert "| fedavg | 82.00 | 1.00× | — |" in text and "Not tested (seeds missing): short." in text


def test_one_seed_is_shown_as_not_tested(tmp_path):
    runs = _runs({"fedavg": BASE[:1], "m": [BASE[0] + 0.05]})
    path, = write_differences(runs, "final", tmp_path)
    assert "| m | 85.00 | n/a | +5.00 (not tested: 1 seed) |" in path.read_text()
