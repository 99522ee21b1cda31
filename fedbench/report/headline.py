"""The headline a reader sees first, generated, never copied by hand: per study, the leaderboard's
accuracy and compute columns of its settings (and, where the settings hold newcomers, their accuracy and
the participation gap) (the selected configurations, with the significance and
tie marks), into tables/headline_<study>.md, and into every Markdown file that holds the study's
markers (README.md's first screen, results/README.md):

    <!-- headline:fmnist -->
    ...replaced by the table...
    <!-- /headline:fmnist -->
"""
from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from fedbench.files import atomic_write
from fedbench.report.leaderboard import leaderboard, marked_cells
from fedbench.report.significance import SIGNIFICANCE_NOTE


UNSEEN_NOTE = (" unseen = the newcomers' accuracy (clients held out of training, given their model by their method's "
               "rule after the last round), gap = participants' − newcomers' (* = the paired t-test over seeds "
               "separates it from 0; tables/newcomers.md).")


def selected_runs(summary: pd.DataFrame, selected: pd.DataFrame) -> pd.DataFrame:
    """The runs of the selected configurations (summary.csv rows whose (setting, variant) was chosen),
    each named by its method, as report.select's `picked`."""
    chosen = set(zip(selected["setting"], selected["variant"]))
    keep = pd.Series([(s, v) in chosen for s, v in zip(summary["setting"], summary["variant"])],
                     index=summary.index, dtype=bool)   # a mask even when empty (an empty list selects columns)
    return summary[keep].assign(variant=lambda f: f["method"])


def headline(summary: pd.DataFrame, selected: pd.DataFrame, study: str, metric: str = "final") -> str:
    """Markdown: the study's methods by average rank, per setting accuracy (mean ± std over seeds,
    bold = not significantly worse than the best) and compute (x FedAvg's), then the average rank."""
    runs = selected_runs(summary[summary["study"] == study], selected)
    if not len(runs):
        return ""
    board = leaderboard(runs, metric, "md", marked_cells(selected))
    board = board[[c for c in board.columns if c.endswith(("| acc", "| compute", "| unseen", "| gap"))
                   or c == "avg rank"]]
    seeds = runs.groupby("setting")["seed"].nunique()
    head = ["method"] + [c.replace("|", "\\|") for c in board.columns]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join([name, *map(str, row)]) + " |" for name, row in board.iterrows()]
    note = (f"{metric.capitalize()} personalized accuracy %, mean ± std over {seeds.min()}–{seeds.max()} seeds"
            if seeds.min() != seeds.max() else
            f"{metric.capitalize()} personalized accuracy %, mean ± std over {seeds.min()} seeds")
    return "\n".join(lines) + (f"\n\n{note}, each method at its configuration selected on validation; compute = "
                               f"FLOPs × FedAvg's in the setting; {SIGNIFICANCE_NOTE}; ‡ = chosen by the tie "
                               f"rule.{UNSEEN_NOTE if any(c.endswith('| unseen') for c in board.columns) else ''}\n")


def insert(text: str, study: str, table: str) -> str:
    """`text` with the block between the study's markers replaced by `table` (unchanged without them)."""
    pattern = re.compile(rf"(<!-- headline:{study} -->\n).*?(<!-- /headline:{study} -->)", re.S)
    return pattern.sub(lambda m: m.group(1) + table + m.group(2), text)


def write_headlines(results: Path, studies, documents=()) -> list[Path]:
    """tables/headline_<study>.md for each study in results/summary.csv, and the marked blocks of
    `documents` (Markdown files) replaced. Returns the files written."""
    summary = pd.read_csv(Path(results) / "summary.csv")
    selected = pd.read_csv(Path(results) / "tables" / "selected.csv")
    written, tables = [], {}
    for study in studies:
        if table := headline(summary, selected, study):
            path = Path(results) / "tables" / f"headline_{study}.md"
            atomic_write(path, table)
            written.append(path)
            tables[study] = table
    for doc in map(Path, documents):
        if not doc.is_file():
            continue
        text = doc.read_text()
        new = text
        for study, table in tables.items():
            new = insert(new, study, table)
        if new != text:
            atomic_write(doc, new)
            written.append(doc)
    return written
