"""Tables: methods x settings, mean ± std over seeds (in %), as Markdown and LaTeX, plus issues.md.

A cell reads `71.23 ± 0.45`; with one seed just `71.23`; a cell missing seeds gets `† (n/N)` and
is never marked; a cell whose runs all failed reads `—`. In each column the best cell (highest mean
among cells with every seed) and every cell not significantly worse than it (a paired test over
seeds, Holm-corrected: fedbench.report.significance) are bold: `**...**` in Markdown,
`\\textbf{...}` in LaTeX. Beside each setting's column: what each method spends
there (compute and bytes, x FedAvg's; fedbench.report.cost).
"""
from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from fedbench.report.aggregate import aggregate, missing_seed_cells
from fedbench.report.cost import COSTS, cost_ratios, ratio_text
from fedbench.report.significance import SIGNIFICANCE_NOTE, paired_marks
from fedbench.files import atomic_write

VALUES = {"acc": "mean client accuracy (unweighted)",
          "acc_weighted": "mean client accuracy (weighted by test samples)",
          "acc_bottom10": "bottom-decile client accuracy"}
DIGITS = 2
LATEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#",
                 "_": r"\_", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}


def seeds_text(seeds) -> str:
    return ", ".join(str(int(s)) for s in seeds)


def cell_text(mean: float, std: float, n: int, expected: int, pm: str = "±") -> str:
    """The shown value of one cell (percent)."""
    if n == 0:
        return "—"
    text = f"{100 * mean:.{DIGITS}f}"
    if n > 1 and not math.isnan(std):
        text += f" {pm} {100 * std:.{DIGITS}f}"
    if n < expected:
        text += f" † ({n}/{expected})"
    return text


def best_cells(agg: pd.DataFrame, runs: pd.DataFrame, metric: str, value: str = "acc") -> pd.Series:
    """Boolean per row of `agg`: the best cell of its setting or not significantly worse than it
    (fedbench.report.significance.paired_marks on the runs' `value`), among cells with all their seeds."""
    return paired_marks(runs, metric, agg, value=value)["mark"].ne("").to_numpy()


def pivot(agg: pd.DataFrame, style: str, costs: pd.DataFrame | None = None, best=None) -> pd.DataFrame:
    """Methods (rows) x settings (columns) of formatted cells; style is 'md' or 'tex'; `best`: the
    bold cells (best_cells). With `costs` (report.cost.cost_ratios), each setting's column is
    followed by its compute and bytes columns (x FedAvg's in that setting)."""
    best = [False] * len(agg) if best is None else best
    texts = []
    for (_, r), is_best in zip(agg.iterrows(), best):
        pm = "$\\pm$" if style == "tex" else "±"
        t = cell_text(r["mean"], r["std"], r["n"], r["expected"], pm)
        if style == "tex":
            t = t.replace("†", "$^\\dagger$").replace("—", "--")
        if is_best:
            t = f"\\textbf{{{t}}}" if style == "tex" else f"**{t}**"
        texts.append(t)
    frame = agg.assign(text=texts)
    table = frame.pivot(index="variant", columns="setting", values="text").fillna("")
    table = table.sort_index().reindex(sorted(table.columns), axis=1)
    return table if costs is None else with_costs(table, costs, style)


def with_costs(table: pd.DataFrame, costs: pd.DataFrame, style: str, after: str = "") -> pd.DataFrame:
    """`table` (variants x settings, or with `after`, x '<setting><after>' and other columns) with
    '<setting> | compute' and '<setting> | bytes' columns after each setting's (its `after` column):
    the cell's cost as a multiple of FedAvg's in the same setting."""
    times = (lambda t: t.replace("×", "$\\times$")) if style == "tex" else (lambda t: t)  # noqa: E731
    out = {}
    for column in table.columns:
        out[column] = table[column]
        if after and not column.endswith(after):
            continue
        setting = column.removesuffix(after)
        mine = costs[costs["setting"] == setting].set_index("variant")
        for label in COSTS:   # blank where the method has no run in the setting
            out[f"{setting} | {label}"] = [times(ratio_text(mine[f"{label}_x"].get(v, float("nan"))))
                                          if v in mine.index else "" for v in table.index]
    return pd.DataFrame(out, index=table.index)


def latex_escape(text: str) -> str:
    return "".join(LATEX_SPECIAL.get(c, c) for c in str(text))


def to_markdown(table: pd.DataFrame, title: str, note: str) -> str:
    """A GitHub Markdown table (pipes in labels escaped)."""
    esc = lambda s: str(s).replace("|", "\\|")  # noqa: E731
    head = ["method"] + [esc(c) for c in table.columns]
    lines = [f"# {title}", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, row in table.iterrows():
        lines.append("| " + " | ".join([esc(name)] + [esc(v) for v in row]) + " |")
    return "\n".join(lines + ["", note, ""])


def to_latex(table: pd.DataFrame, title: str, note: str) -> str:
    """A booktabs tabular (needs \\usepackage{booktabs}); cells are already LaTeX."""
    frame = table.copy()
    frame.index = [latex_escape(i) for i in frame.index]
    frame.index.name = "method"
    frame.columns = [latex_escape(c) for c in frame.columns]
    body = frame.reset_index().to_latex(index=False, escape=False, column_format="l" + "r" * len(table.columns))
    return f"% {title}\n% {note}\n{body}"


COST_NOTE = ("compute = the FLOPs of local training, of the forward passes it needs and of one personalization "
             "(the fine-tuning or adaptation before the last evaluation: what a deployed client spends once, whatever "
             "eval_every), bytes = bytes sent up and down, both as multiples of FedAvg's "
             "in the same setting (mean over seeds; FLOPs of matrix products and convolutions, torch.utils.flop_counter; "
             "n/a = no FedAvg run in the setting to compare with)")


def note_text(metric: str) -> str:
    return (f"{metric} personalized accuracy in %, mean ± sample std (ddof=1) over seeds; " + COST_NOTE + "; "
            + SIGNIFICANCE_NOTE + "; † (n/N) = only n of the setting's N seeds "
            "completed (not eligible for best); — = every run failed. Failed, diverged and unfinished "
            "runs are never averaged in (see issues.md).")


def by_dataset(runs: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    """The runs split per dataset when they span several (one table each: a paper's table has one
    dataset's settings as columns), else [("", runs)]."""
    if "dataset" not in runs or runs["dataset"].nunique() < 2:
        return [("", runs)]
    return [(str(d), group) for d, group in runs.groupby("dataset", sort=True)]


def write_tables(runs: pd.DataFrame, metric: str, out_dir: Path, prefix: str = "") -> list[Path]:
    """Write <prefix><metric>_<value>.md and .tex for each value in VALUES, one table per dataset;
    return the paths."""
    out_dir = Path(out_dir)
    written = []
    for value, desc in VALUES.items():
        title = f"{metric} {desc}" + (" (configurations selected on validation)" if prefix else "")
        for style, render in (("md", to_markdown), ("tex", to_latex)):
            parts = []
            for dataset, part in by_dataset(runs):
                agg = aggregate(part, metric, value)
                parts.append(render(pivot(agg, style, cost_ratios(part, metric), best_cells(agg, part, metric, value)),
                                    f"{title}: {dataset}" if dataset else title, note_text(metric)))
            path = out_dir / f"{prefix}{metric}_{value}.{style}"
            atomic_write(path, "\n".join(parts))
            written.append(path)
    return written


def write_issues(problems: pd.DataFrame, runs: pd.DataFrame, metric: str, path: Path, extra=()) -> list[str]:
    """Write issues.md (runs left out, cells missing seeds, `extra` lines); return its lines for the console."""
    missing = missing_seed_cells(aggregate(runs, metric)) if len(runs) else pd.DataFrame()
    lines = list(extra)
    for _, r in problems.iterrows():
        lines.append(f"left out: {r['setting']} | {r['variant']} | seed {r['seed']}: {r['reason']} ({r['run_dir']})")
    for _, r in missing.iterrows():
        lines.append(f"missing seeds: {r['setting']} | {r['variant']}: {r['n']}/{r['expected']} seeds, "
                     f"missing seed {seeds_text(r['missing'])}")
    body = ["# Report issues", ""]
    body += [f"- {line}" for line in lines] if lines else ["None: every run completed and every setting has all seeds."]
    atomic_write(Path(path), "\n".join(body) + "\n")
    return lines
