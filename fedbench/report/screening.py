"""What the screening stage of a multi-fidelity tuning did (fedbench.tune --screen R --carry N), for
the record beside the tables: per setting and method, the configurations screened, how many diverged
(scored 0), and the ones carried to the full rounds with their screening validation score. The
final tables only see the carried configurations; this says what they were chosen from."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from fedbench.files import atomic_write


def screening_table(screen_dir: Path, carry: int, metric: str = "final") -> pd.DataFrame:
    """One row per (setting, method): configurations, diverged, carried ('label (val %)'; best first)."""
    from fedbench.report.collect import collect
    from fedbench.report.select import rankings

    rows = []
    for (_, method), (rank, group) in rankings(collect(screen_dir), metric).items():
        diverged = group.loc[group["status"] == "diverged", "variant"].nunique()
        carried = [f"{v} ({100 * rank.scores[v]:.2f})" for v in rank.order[:carry]]
        rows.append({"setting": group["setting"].iloc[0], "method": method, "configurations": len(rank.values),
                     "diverged": diverged, "carried": "; ".join(carried)})
    return pd.DataFrame(rows, columns=["setting", "method", "configurations", "diverged", "carried"])


def write_screening(screen_dir: Path, carry: int, rounds: int, path: Path, metric: str = "final") -> Path:
    """tables/screening.md: screening_table as Markdown, with the schedule that produced it."""
    table = screening_table(screen_dir, carry, metric)
    lines = [f"# Screening: every configuration for {rounds} rounds, the {carry} best carried", "",
             f"Per setting and method: configurations screened on the tuning seed for {rounds} rounds, how many "
             f"diverged (scored 0), and the {carry} carried to the full rounds with their screening validation "
             f"accuracy ({metric}: the mean of the last evaluations), ranked by the selection's rule (ties nearest "
             "the grid's middle). The tables select among the carried ones only.", "",
             "| setting | method | configurations | diverged | carried (validation % at screening) |",
             "|---|---|---|---|---|"]
    lines += [f"| {r.setting} | {r.method} | {r.configurations} | {r.diverged} | {r.carried} |"
              for r in table.sort_values(["setting", "method"]).itertuples()]
    atomic_write(path, "\n".join(lines) + "\n")
    return Path(path)
