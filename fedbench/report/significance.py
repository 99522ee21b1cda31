"""Differences tested, by maintained libraries: which cells of a setting are not significantly worse
than its best, and, across settings and seeds, Friedman's test with a critical-difference diagram.

Within a setting, seeds share partitions across methods, so cells are compared paired by seed. The
best cell (highest mean among cells with every seed) is tested against every other cell with every
seed: a one-sided paired t-test over their common seeds (scipy.stats.ttest_rel, H1: best > other),
the p-values Holm-corrected over the setting's comparisons (statsmodels' multipletests). A cell with
a corrected p >= ALPHA is "not significantly worse than the best" and is marked with it. A paired
t-test rather than Wilcoxon's signed-rank test: over 5 seeds Wilcoxon's smallest one-sided p is
1/32 and its two-sided 1/16, so with a Holm correction over 18 comparisons it could never reject.
A cell equal to the best on every seed has p = 1 (no difference to test).

Across settings: the blocks are the settings (independent problems; the seeds of one setting are not), a
method's value in a block its mean over the setting's usable runs (its reporting seeds), a setting in
which some method has none left out; a method's rank in a block is its rank by that mean (1 = best;
ties share the mean rank).
Friedman's test (scipy.stats.friedmanchisquare) says whether the methods differ at all; Nemenyi's
post-hoc test (scikit-posthocs, posthoc_nemenyi_friedman) which pairs do, drawn as a
critical-difference diagram (scikit_posthocs.critical_difference_diagram): methods joined by a bar
are not significantly different.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from fedbench.report.aggregate import good_runs, metric_column

ALPHA = 0.05
BEST, SAME = "best", "same"   # the marks: the best cell; not significantly worse than it
SIGNIFICANCE_NOTE = (f"bold = the best cell of the column and every cell not significantly worse than it "
                     f"(one-sided paired t-test over seeds, Holm-corrected over the column, alpha = {ALPHA}; "
                     f"only cells with all seeds)")


@dataclass(frozen=True)
class Difference:
    """A paired comparison of a vs b over their common seeds: n seeds, the mean of a - b with its 95%
    t-interval (in the values' units), and the p-value of the paired t-test."""
    n: int
    mean: float
    low: float
    high: float
    p: float


def paired_difference(a: pd.Series, b: pd.Series, alternative: str = "two-sided") -> Difference:
    """a vs b (seed-indexed) paired over the seeds both have: scipy.stats.ttest_rel with `alternative`
    (two-sided, or greater: H1 a > b). A constant difference has no variance: p = 0 when it is in the
    alternative's direction, 1 when it is not (or zero); fewer than 2 common seeds: p = 1, no interval."""
    from scipy.stats import t, ttest_rel

    pair = pd.concat([a, b], axis=1, keys=["a", "b"]).dropna()
    diff = (pair["a"] - pair["b"]).to_numpy()
    n = len(diff)
    if n < 2:
        return Difference(n, float(diff.mean()) if n else math.nan, math.nan, math.nan, 1.0)
    mean = float(diff.mean())
    half = float(t.ppf(0.975, n - 1) * diff.std(ddof=1) / math.sqrt(n))
    if np.allclose(diff, diff[0]):
        favours = diff[0] > 0 if alternative == "greater" else diff[0] != 0
        return Difference(n, mean, mean, mean, 0.0 if favours else 1.0)
    p = float(ttest_rel(pair["a"], pair["b"], alternative=alternative).pvalue)
    return Difference(n, mean, mean - half, mean + half, p)


def holm(pvalues: list[float], alpha: float = ALPHA) -> list[float]:
    """Holm-corrected p-values of one family of comparisons (statsmodels' multipletests)."""
    from statsmodels.stats.multitest import multipletests

    return list(multipletests(pvalues, alpha=alpha, method="holm")[1]) if len(pvalues) else []


def seed_table(runs: pd.DataFrame, metric: str, value: str = "acc") -> pd.DataFrame:
    """Usable runs as a table: rows (setting_key, seed), columns variants, values the accuracy."""
    ok = good_runs(runs, metric)
    col = metric_column(metric, value)
    return ok.pivot_table(index=["setting_key", "seed"], columns="variant", values=col, aggfunc="first")


def paired_marks(runs: pd.DataFrame, metric: str, agg: pd.DataFrame, alpha: float = ALPHA,
                 value: str = "acc") -> pd.DataFrame:
    """Per cell of `agg` (report.aggregate's rows): `mark` (BEST, SAME or "") and `p_holm` (the
    Holm-corrected one-sided p-value of best > cell; NaN for the best and for cells not tested: a
    cell missing seeds is never marked)."""
    table = seed_table(runs, metric, value)
    out = agg[["setting_key", "variant"]].assign(mark="", p_holm=math.nan)
    eligible = (agg["n"] > 0) & (agg["n"] == agg["expected"])
    for key, cells in agg[eligible].groupby("setting_key"):
        best = cells.loc[cells["mean"].idxmax(), "variant"]
        out.loc[(out["setting_key"] == key) & (out["variant"] == best), "mark"] = BEST
        per_seed = table.loc[key]
        others = [v for v in cells["variant"] if v != best]
        pvalues = [paired_difference(per_seed[best], per_seed[v], "greater").p for v in others]
        if not others:
            continue
        for variant, p in zip(others, holm(pvalues)):
            row = (out["setting_key"] == key) & (out["variant"] == variant)
            out.loc[row, "p_holm"] = p
            out.loc[row, "mark"] = SAME if p >= alpha else ""
    return out


def friedman(runs: pd.DataFrame, metric: str) -> dict:
    """Friedman's test with the settings as blocks (each method's mean over the setting's seeds; only
    settings where every method has a usable run): {statistic, p, blocks, methods, ranks (mean rank per
    method, 1 = best), nemenyi (p-value matrix)}; None when fewer than 2 blocks or 3 methods."""
    import scikit_posthocs as sp
    from scipy.stats import friedmanchisquare

    table = seed_table(runs, metric).groupby(level="setting_key").mean().dropna(axis=0, how="any")
    if len(table) < 2 or table.shape[1] < 3:
        return None
    stat, p = friedmanchisquare(*[table[c].to_numpy() for c in table.columns])
    ranks = table.rank(axis=1, ascending=False, method="average").mean().sort_values()
    nemenyi = sp.posthoc_nemenyi_friedman(table.reset_index(drop=True))
    return {"statistic": float(stat), "p": float(p), "blocks": len(table), "methods": table.shape[1],
            "ranks": ranks, "nemenyi": nemenyi}


def plot_critical_difference(result: dict, title: str, path, alpha: float = ALPHA):
    """The critical-difference diagram of `friedman`'s result into `path` (PNG); returns the path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import scikit_posthocs as sp

    from fedbench.report.plots import save

    fig, ax = plt.subplots(figsize=(8, 0.25 * result["methods"] + 1.5))
    sp.critical_difference_diagram(result["ranks"], result["nemenyi"], ax=ax, alpha=alpha)
    ax.set_title(f"{title}\nFriedman chi2 = {result['statistic']:.1f}, p = {result['p']:.2g} over "
                 f"{result['blocks']} settings as blocks; bars: Nemenyi p >= {alpha}", fontsize=9)
    return save(fig, path)


def friedman_groups(runs: pd.DataFrame) -> list[tuple[str, str, pd.DataFrame]]:
    """(title, file name, runs) of each Friedman test: all settings (with more than one dataset), each dataset."""
    groups = [("all settings", "all", runs)] if runs["dataset"].nunique() > 1 else []
    return groups + [(str(d), str(d), part) for d, part in runs.groupby("dataset", sort=True)]


def write_friedman(runs: pd.DataFrame, metric: str, tables_dir, plots_dir) -> tuple[list, list]:
    """Friedman's test with the settings as blocks, over all settings and per dataset, into
    tables/friedman_<metric>.md and critical-difference diagrams plots/cd_<all|dataset>_<metric>.png.
    Returns (tables, plots) written; a group with too few complete settings is said so in the table."""
    from pathlib import Path

    from fedbench.files import atomic_write

    lines, plots = [f"# Friedman test and critical differences ({metric} accuracy)", "",
                    "Blocks: the settings, each method's value its mean over the setting's seeds.", ""], []
    for title, name, part in friedman_groups(runs):
        result = friedman(part, metric)
        lines += [f"## {title}", ""]
        if result is None:
            lines += ["Fewer than 2 settings in which every method has a usable run, or fewer than 3 methods: "
                      "not tested.", ""]
            continue
        verdict = "differ" if result["p"] < ALPHA else "are not shown to differ"
        lines += [f"Friedman chi2 = {result['statistic']:.2f}, p = {result['p']:.3g} over {result['blocks']} "
                  f"settings as blocks and {result['methods']} methods: the methods {verdict} (alpha = {ALPHA}).",
                  "", "| method | mean rank | not significantly different from (Nemenyi) |", "|---|---|---|"]
        nemenyi = result["nemenyi"]
        for method, rank in result["ranks"].items():
            same = [m for m in result["ranks"].index if m != method and nemenyi.loc[method, m] >= ALPHA]
            lines.append(f"| {method} | {rank:.2f} | {', '.join(same) or '—'} |")
        lines.append("")
        plots.append(plot_critical_difference(result, f"{title}: {metric} accuracy",
                                              Path(plots_dir) / f"cd_{name}_{metric}.png"))
    path = Path(tables_dir) / f"friedman_{metric}.md"
    atomic_write(path, "\n".join(lines))
    return [path], plots
