"""What the tests say, in sentences a reading can quote: tables/findings_<metric>.md, written from the
same computations as the tables it names (the leaderboard's bold marks, differences_<metric>.md,
friedman_<metric>.md, newcomers.md) so that a reading never says more than its tests.

The words follow the tests: "above"/"below" only for a Holm-corrected paired difference (alpha 0.05),
"not separated" for everything else (never "at the same level": with few seeds a real difference can
fail to separate). Each setting also says what its methods spent: compute, the samples of their local
updates (forward + backward) and of forward-only passes, each as a multiple of FedAvg's, and the share
of compute spent personalizing before the last evaluation (fine-tuning), so that compute is never
discussed without the work behind it.
"""
from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from fedbench.report.aggregate import CELL, aggregate, good_runs
from fedbench.report.cost import BASELINE, cost_ratios, ratio_text
from fedbench.report.differences import BETTER, REFERENCES, WORSE, differences
from fedbench.report.newcomers import REFERENCE, newcomer_cells
from fedbench.report.significance import ALPHA, SAME, friedman, friedman_groups, paired_marks

WORK = {"train samples": "train_samples", "forward-only samples": "train_forward_samples"}


def listing(items: list[str], empty: str = "none") -> str:
    return f"{', '.join(items)} ({len(items)})" if items else empty


def intervals(rows: pd.DataFrame, diff: str, low: str, high: str, scale: float = 1.0) -> list[str]:
    """'fedper +3.10 [+1.20, +5.00]' per row (columns diff, low, high, times scale), largest first."""
    return [f"{r['variant']} {scale * r[diff]:+.2f} [{scale * r[low]:+.2f}, {scale * r[high]:+.2f}]"
            for _, r in rows.sort_values(diff, ascending=False).iterrows()]


def best_lines(setting_key: str, agg: pd.DataFrame, marks: pd.DataFrame) -> list[str]:
    cells = agg[agg["setting_key"] == setting_key].merge(marks, on=["setting_key", "variant"])
    complete = cells[(cells["n"] > 0) & (cells["n"] == cells["expected"])].sort_values("mean", ascending=False)
    if not len(complete):
        return []
    best = complete.iloc[0]
    same = complete[complete["mark"] == SAME]["variant"].tolist()
    below = complete[complete["mark"] == ""]["variant"].tolist()
    return [f"- Highest mean: {best['variant']} {100 * best['mean']:.2f} (leaderboard). Not separated from it "
            f"(bold, one-sided paired t-test, Holm): {listing(same)}; separated below it: {len(below)} of "
            f"{len(complete) - 1}."]


def reference_lines(found: pd.DataFrame) -> list[str]:
    lines = []
    for ref in REFERENCES:
        mine = found[found["reference"] == ref]
        if not len(mine):
            continue
        above, below = mine[mine["verdict"] == BETTER], mine[mine["verdict"] == WORSE]
        rest = sorted(mine[~mine["verdict"].isin([BETTER, WORSE])]["variant"])
        lines.append(f"- Against {ref} (differences, two-sided paired t-test over {int(mine['n'].max())} seeds, "
                     f"Holm over the setting): above {listing(intervals(above, 'diff', 'low', 'high'))}; below "
                     f"{listing(intervals(below, 'diff', 'low', 'high'))}; "
                     f"not separated {listing(rest)}.")
    return lines


def newcomer_lines(cells: pd.DataFrame) -> list[str]:
    if not len(cells):
        return []
    top = cells.sort_values("unseen_acc_mean", ascending=False).iloc[0]
    separated = cells[cells["gap_p_holm"] < ALPHA]
    gaps = intervals(separated, "participation_gap_mean", "gap_low", "gap_high", 100)
    rest = sorted(set(cells["variant"]) - set(separated["variant"]))
    lines = [f"- Newcomers ({int(cells['newcomers'].max())} clients held out; newcomers.md): highest unseen accuracy "
             f"{top['variant']} {100 * top['unseen_acc_mean']:.2f}. Participation gap (seen - unseen) separated from "
             f"0 (paired over seeds, Holm over the setting): {listing(gaps)}; not separated {listing(rest)}."]
    if cells["ref_diff"].notna().any():
        versus = cells[cells["ref_p_holm"] < ALPHA]
        apart = intervals(versus, "ref_diff", "ref_low", "ref_high", 100)
        others = sorted(set(cells.loc[cells["ref_diff"].notna(), "variant"]) - set(versus["variant"]))
        lines.append(f"- Gap against {REFERENCE}'s (the same newcomers per seed; newcomers.md): separated "
                     f"{listing(apart)}; not separated {listing(others)}.")
    return lines


def work_table(usable: pd.DataFrame, metric: str, setting_key: str) -> list[str]:
    """Per method: compute, train and forward-only samples as multiples of FedAvg's, fine-tuning's share
    (`usable`: good_runs of the report's runs)."""
    ok = usable[usable["setting_key"] == setting_key]
    fields = [f for f in [*WORK.values(), "personalize_once_flops", "compute_flops"] if f in ok]
    if not len(ok) or "compute_flops" not in fields:
        return []
    means = ok.groupby(CELL)[fields].agg(lambda c: pd.to_numeric(c, errors="coerce").mean()).reset_index()
    base = means[means["variant"] == BASELINE]
    compute = cost_ratios(ok, metric).set_index("variant")["compute_x"]
    heads = [label for label, f in WORK.items() if f in fields]
    lines = ["", "| method | compute | " + " | ".join(heads) + " | fine-tuning share of compute |",
             "|---|---|" + "---|" * (len(heads) + 1)]
    for _, r in means.assign(c=means["variant"].map(compute)).sort_values("c").iterrows():
        ratios = [ratio_text(r[f] / base[f].iloc[0]) if len(base) and base[f].iloc[0] > 0
                  else ("0" if r[f] == 0 else "n/a") for label, f in WORK.items() if f in fields]
        share = (f"{100 * r['personalize_once_flops'] / r['compute_flops']:.0f}%"
                 if "personalize_once_flops" in fields and r["compute_flops"] > 0 else "n/a")
        lines.append(f"| {r['variant']} | {ratio_text(compute.get(r['variant'], math.nan))} | "
                     + " | ".join(ratios) + f" | {share} |")
    return lines


def friedman_lines(runs: pd.DataFrame, metric: str) -> list[str]:
    lines = []
    for title, _, part in friedman_groups(runs):
        result = friedman(part, metric)
        if result is None:
            lines.append(f"- {title}: not tested (fewer than 2 complete settings or 3 methods).")
            continue
        ranks, nemenyi = result["ranks"], result["nemenyi"]
        first = ranks.index[0]
        same = [m for m in ranks.index[1:] if nemenyi.loc[first, m] >= ALPHA]
        below = [m for m in ranks.index[1:] if nemenyi.loc[first, m] < ALPHA]
        verdict = "differ" if result["p"] < ALPHA else "are not shown to differ"
        lines.append(f"- {title} (friedman, {result['blocks']} settings as blocks, {result['methods']} methods): "
                     f"chi2 = {result['statistic']:.2f}, p = {result['p']:.3g}, the methods {verdict}. Lowest mean "
                     f"rank {first} ({ranks.iloc[0]:.2f}); not separated from it by Nemenyi {listing(same)}; "
                     f"separated below it {listing(below)}.")
    return lines


def write_findings(runs: pd.DataFrame, metric: str, tables_dir: Path) -> list[Path]:
    """tables/findings_<metric>.md; nothing without usable runs."""
    from fedbench.files import atomic_write

    agg = aggregate(runs, metric)
    if not len(agg):
        return []
    marks, found = paired_marks(runs, metric, agg), differences(runs, metric)
    cells, usable = newcomer_cells(runs, metric), good_runs(runs, metric)
    lines = [f"# What the tests say ({metric} accuracy)", "",
             f"Generated with the tables it names; 'above'/'below' only where a Holm-corrected paired test "
             f"separates (alpha = {ALPHA}), 'not separated' otherwise: no sentence says more.", ""]
    for (key, setting), _ in agg.groupby(["setting_key", "setting"], sort=True):
        lines += [f"## {setting}", ""]
        lines += best_lines(key, agg, marks)
        lines += reference_lines(found[found["setting"] == setting])
        lines += newcomer_lines(cells[cells["setting_key"] == key] if len(cells) else cells)
        lines += work_table(usable, metric, key) + [""]
    lines += ["## Across settings", "", *friedman_lines(runs, metric), ""]
    path = Path(tables_dir) / f"findings_{metric}.md"
    atomic_write(path, "\n".join(lines))
    return [path]
