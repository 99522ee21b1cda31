"""Setting labels in the report: runs started from presets are labelled by the preset's name (the
spelled-out label kept in setting_detail and in the leaderboard's legend) only when that is unambiguous;
the CSVs name the partition cache by its entry, never by this machine's path."""
from __future__ import annotations

import json

import pandas as pd

from fedbench.report import build_report
from tests.test_report import heatmap_png, write_run


def with_overrides(run_dir, *overrides):
    summary = json.loads((run_dir / "summary.json").read_text())
    summary["overrides"] = list(overrides)
    (run_dir / "summary.json").write_text(json.dumps(summary))


def two_settings(root, cache, preset_b="spread", seeds=(0, 1)):
    for seed in seeds:
        for method, acc in (("fedavg", 0.7), ("local", 0.6)):
            with_overrides(write_run(root, method, seed, acc + seed / 100, alpha=0.1, heatmap=cache),
                           f"method={method}", "experiment=skewed", f"seed={seed}")
            with_overrides(write_run(root, method, seed, acc - 0.2, alpha=0.5),
                           f"method={method}", f"experiment={preset_b}", f"seed={seed}")


def test_settings_named_by_their_presets_with_the_detail_kept(tmp_path):
    root = tmp_path / "results"
    two_settings(root, heatmap_png(tmp_path / "cache" / "digits-dirichlet-x"))
    build_report(root, select="val", echo=lambda s: None)
    runs = pd.read_csv(root / "summary.csv")
    assert set(runs["setting"]) == {"skewed", "spread"}
    detail = runs.drop_duplicates("setting").set_index("setting")["setting_detail"]
    assert "alpha=0.1" in detail["skewed"] and "alpha=0.5" in detail["spread"]
    board = (root / "tables" / "leaderboard_final.md").read_text()
    assert r"skewed \| acc" in board and f"skewed = {detail['skewed']}" in board
    caches = runs["partition_cache"].dropna()
    assert list(caches.unique()) == ["digits-dirichlet-x"]          # the entry, not a path of this machine
    selected = pd.read_csv(root / "tables" / "selected.csv")
    assert "/" not in " ".join(selected.get("partition_cache", pd.Series(dtype=str)).dropna().astype(str))


def test_ambiguous_presets_keep_the_spelled_out_labels(tmp_path):
    root = tmp_path / "results"
    two_settings(root, None, preset_b="skewed")                     # one preset name for two settings
    build_report(root, echo=lambda s: None)
    runs = pd.read_csv(root / "summary.csv")
    assert "setting_detail" not in runs.columns
    assert all(s.startswith("digits dirichlet(alpha=") for s in runs["setting"])


def test_a_setting_with_runs_from_two_presets_keeps_the_spelled_out_label(tmp_path):
    root = tmp_path / "results"
    two_settings(root, None)
    with_overrides(write_run(root, "fedper", 0, 0.8, alpha=0.1), "method=fedper", "partition.alpha=0.1")
    build_report(root, echo=lambda s: None)
    assert "setting_detail" not in pd.read_csv(root / "summary.csv").columns
