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
    two_settings(root, heatmap_png(tmp_path / "cache" / "digits-dirichlet-x"), preset_b="digits_skew")
    build_report(root, select="val", echo=lambda s: None)
    runs = pd.read_csv(root / "summary.csv")
    labels = runs.drop_duplicates("setting_key").set_index("setting")
    skewed = next(s for s in labels.index if s.startswith("skewed"))
    assert skewed.endswith(f"[{labels.loc[skewed, 'setting_key'][:6]}]")   # a preset gone: its digest
    real = next(s for s in labels.index if s.startswith("digits_skew "))
    # what differs from the preset is named: its 50 clients are 4 here, its alpha 0.3 is 0.5, ...
    assert "num_clients=4" in real and "partition.alpha=0.5" in real and "alpha=0.5" in labels.loc[real, "setting_detail"]
    board = (root / "tables" / "leaderboard_final.md").read_text()
    assert "skewed" in board and f"{real} = {labels.loc[real, 'setting_detail']}" in board
    caches = runs["partition_cache"].dropna()
    assert list(caches.unique()) == ["digits-dirichlet-x"]          # the entry, not a path of this machine
    selected = pd.read_csv(root / "tables" / "selected.csv")
    assert "/" not in " ".join(selected.get("partition_cache", pd.Series(dtype=str)).dropna().astype(str))


def test_a_label_and_its_files_do_not_depend_on_other_runs(tmp_path):
    """The same setting reported alone and beside an unrelated one (another alpha, other rounds) keeps
    its label, its table header and its plots' file names."""
    alone, crowded = tmp_path / "alone", tmp_path / "crowded"
    for root in (alone, crowded):
        for seed in (0, 1):
            write_run(root, "fedavg", seed, 0.7 + seed / 100, alpha=0.1)
    for seed in (0, 1):
        d = write_run(crowded, "local", seed, 0.5, alpha=0.5)
        cfg = (d / "config.yaml").read_text().replace("rounds: 10", "rounds: 20")
        (d / "config.yaml").write_text(cfg)
    reports = {root: build_report(root, echo=lambda s: None) for root in (alone, crowded)}
    label = {root: pd.read_csv(root / "summary.csv").query("method == 'fedavg'")["setting"].iloc[0]
             for root in (alone, crowded)}
    assert label[alone] == label[crowded] and len(label[alone]) < 90
    names = {root: {p.name for p in reports[root].plots} for root in (alone, crowded)}
    assert names[alone] < names[crowded] and all(len(n) <= 60 for n in names[crowded])
    header = (alone / "tables" / "final_acc.md").read_text().splitlines()[2]
    assert header.split(" | ")[1] in (crowded / "tables" / "final_acc.md").read_text()


def test_tables_split_per_dataset(tmp_path):
    root = tmp_path / "results"
    write_run(root, "fedavg", 0, 0.7)
    d = write_run(root, "local", 0, 0.6, alpha=0.5)
    for name in ("config.yaml", "summary.json"):
        (d / name).write_text((d / name).read_text().replace("digits", "mnist"))
    build_report(root, echo=lambda s: None)
    text = (root / "tables" / "final_acc.md").read_text()
    assert text.count("# final mean client accuracy (unweighted): ") == 2
