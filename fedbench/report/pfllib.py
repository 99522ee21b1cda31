"""Our Fashion-MNIST numbers beside PFLlib's published ones, in PFLlib's own measure: tables/pfllib_<study>.md.

PFLlib's page (pfllib_fmnist.csv beside this file: the rows, their source and commit) reports the
accuracy weighted by test samples (every test image counts once), the best over 2000 rounds at lr 0.005,
on its own partitions; ours here is the same weighting (`final_acc_weighted`, not the mean over clients
that the other tables give), the mean of the last evaluations of 100 rounds at each method's lr selected
on validation, mean ± std over the reporting seeds. The protocols differ in data, model width, rounds,
lr and the round reported, so the table says so under it and no cell is compared with another by a test.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from fedbench.files import atomic_write
from fedbench.report.headline import selected_runs

PFLLIB = Path(__file__).with_name("pfllib_fmnist.csv")
NOTE = ("PFLlib: the best test accuracy over 2000 rounds at lr 0.005 (20 clients all joining each round, all 70,000 "
        "images, the CNN with 32/64 channels and FC 512 where ours has 16/32 and 128), mean ± std over its trials, from its page (source and commit in "
        "fedbench/report/pfllib_fmnist.csv); ours: the participants' accuracy weighted by test samples as PFLlib's, "
        "the mean of the last evaluations of 100 rounds at each method's lr selected on validation, mean ± std over "
        "the reporting seeds. The protocols differ (data, width, rounds, lr, the round reported): no cell is "
        "tested against another; — = not on PFLlib's page.")


def published() -> pd.DataFrame:
    """PFLlib's rows (method, pfllib_name, pathological, pathological_std, practical, practical_std)."""
    return pd.read_csv(PFLLIB, comment="#", dtype={"pathological": str, "pathological_std": str,
                                                     "practical": str, "practical_std": str})


def pfllib_table(summary: pd.DataFrame, selected: pd.DataFrame, study: str, metric: str = "final") -> str:
    """Markdown: per method, PFLlib's two Fashion-MNIST columns and ours weighted per setting of `study`
    (PFLlib's methods in its page's order, then ours it does not have); empty without the study's runs."""
    runs = selected_runs(summary[summary["study"] == study], selected)
    if not len(runs):
        return ""
    column = f"{metric}_acc_weighted"
    ours = (runs.groupby(["variant", "setting"])[column].agg(["mean", "std"]) * 100).apply(
        lambda r: f"{r['mean']:.2f} ± {0.0 if pd.isna(r['std']) else r['std']:.2f}", axis=1).unstack("setting")
    theirs = published().set_index("method")
    order = [m for m in theirs.index if m in ours.index] + sorted(set(ours.index) - set(theirs.index))
    settings = sorted(ours.columns)
    head = ["method", "PFLlib, pathological (2 classes/client)", "PFLlib, practical Dir(0.1)",
            *[f"ours, `{s}` (weighted)" for s in settings]]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for method in order:
        pub = ([f"{theirs.at[method, k]} ± {theirs.at[method, k + '_std']}" for k in ("pathological", "practical")]
               if method in theirs.index else ["—", "—"])
        lines.append("| " + " | ".join([method, *pub, *[ours.at[method, s] if isinstance(ours.at[method, s], str)
                                                          else "—" for s in settings]]) + " |")
    return "\n".join(lines) + f"\n\n{NOTE}\n"


def write_pfllib(results: Path, study: str) -> Path | None:
    """tables/pfllib_<study>.md from results/summary.csv and tables/selected.csv; None without the study."""
    summary = pd.read_csv(Path(results) / "summary.csv")
    selected = pd.read_csv(Path(results) / "tables" / "selected.csv")
    table = pfllib_table(summary, selected, study)
    if not table:
        return None
    path = Path(results) / "tables" / f"pfllib_{study}.md"
    atomic_write(path, table)
    return path
