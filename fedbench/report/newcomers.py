"""Newcomers beside participants (runs with unseen_frac > 0, fedbench.federation.newcomers): per setting
and method, the participants' accuracy (seen_acc: the last evaluation's), the newcomers' (unseen_acc:
welcomed once after the last round by the method's rule) and the participation gap = seen - unseen, each
mean ± std over seeds, the gap's paired t-test over seeds (seen vs unseen of the same runs: its 95%
interval, and its p Holm-corrected over the setting's methods, one family per setting), and what the
newcomers' adaptation cost (unseen_flops, per newcomer, x FedAvg's training compute per client).
tables/newcomers.md and .csv; plots/newcomers_<setting>.png (seen against unseen, the diagonal = no gap).
"""
from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from fedbench.files import atomic_write
from fedbench.report.aggregate import CELL, good_runs
from fedbench.report.significance import ALPHA, holm, paired_difference

COLUMNS = ("seen_acc", "unseen_acc", "participation_gap")
REFERENCE = "fedavg"   # the gap every other is compared with: one global model, no personalization


def newcomer_runs(runs: pd.DataFrame, metric: str) -> pd.DataFrame:
    """The usable runs that have newcomers' numbers."""
    if "unseen_acc" not in runs:
        return runs.iloc[0:0]
    ok = good_runs(runs, metric)
    return ok[pd.to_numeric(ok["unseen_acc"], errors="coerce").notna()]


def newcomer_cells(runs: pd.DataFrame, metric: str) -> pd.DataFrame:
    """One row per (setting, variant) with newcomers: mean and std of seen, unseen and gap, n seeds, the
    gap's paired t-test (seen vs unseen over the seeds: gap_low/gap_high its 95% interval, gap_p, and
    gap_p_holm corrected over the setting's methods; nan under 2 seeds), newcomers and their mean
    adaptation FLOPs."""
    have = newcomer_runs(runs, metric)
    rows = []
    for cell, group in have.groupby(CELL, sort=True):
        values = {c: pd.to_numeric(group[c], errors="coerce") for c in COLUMNS}
        row = dict(zip(CELL, cell)) | {"n": len(group), "newcomers": int(group["unseen_clients"].max())}
        for c, v in values.items():
            row[f"{c}_mean"], row[f"{c}_std"] = float(v.mean()), float(v.std()) if len(v) > 1 else math.nan
        seeds = group["seed"].to_numpy()
        gap = paired_difference(values["seen_acc"].set_axis(seeds), values["unseen_acc"].set_axis(seeds))
        row |= {"gap_low": gap.low, "gap_high": gap.high, "gap_p": gap.p if gap.n > 1 else math.nan}
        row["unseen_flops_per_newcomer"] = float(pd.to_numeric(group["unseen_flops"], errors="coerce").mean()
                                                 / max(1, row["newcomers"]))
        rows.append(row)
    cells = pd.DataFrame(rows)
    if len(cells):
        cells = holm_per_setting(against_reference(have, cells), ("gap_p", "ref_p"))
    return cells


def holm_per_setting(cells: pd.DataFrame, columns) -> pd.DataFrame:
    """<column>_holm for each p-value column: Holm-corrected within each setting (one family per setting
    and column; nan where the p-value is)."""
    cells = cells.assign(**{f"{c}_holm": math.nan for c in columns})
    for c in columns:
        for _, family in cells[cells[c].notna()].groupby("setting_key"):
            cells.loc[family.index, f"{c}_holm"] = holm(family[c].tolist())
    return cells


def against_reference(have: pd.DataFrame, cells: pd.DataFrame) -> pd.DataFrame:
    """Each method's gap minus the reference's (FedAvg's), paired by seed: a seed's newcomers are the same
    clients for every method, so what their own draw puts into every gap (a small group's luck) cancels.
    Columns ref_diff, ref_low, ref_high (95% interval), ref_p (nan under 2 seeds)."""
    cells = cells.assign(ref_diff=math.nan, ref_low=math.nan, ref_high=math.nan, ref_p=math.nan)
    for key, group in have.groupby("setting_key"):
        gaps = group.assign(gap=pd.to_numeric(group["participation_gap"], errors="coerce")).pivot_table(
            index="seed", columns="variant", values="gap", aggfunc="first")
        if REFERENCE not in gaps:
            continue
        for variant in gaps.columns.drop(REFERENCE):
            d = paired_difference(gaps[variant], gaps[REFERENCE])
            row = cells.index[(cells["setting_key"] == key) & (cells["variant"] == variant)][0]
            cells.loc[row, ["ref_diff", "ref_low", "ref_high", "ref_p"]] = [d.mean, d.low, d.high,
                                                                            d.p if d.n > 1 else math.nan]
    return cells


def text(mean: float, std: float) -> str:
    return f"{100 * mean:.2f}" + ("" if math.isnan(std) else f" ± {100 * std:.2f}")


def gap_text(r) -> str:
    """The gap, with its test: '*' when the paired t-test over seeds separates it from 0 (Holm over the
    setting's methods, alpha 0.05)."""
    mark = " *" if not math.isnan(r["gap_p_holm"]) and r["gap_p_holm"] < ALPHA else ""
    return f"{100 * r['participation_gap_mean']:+.2f}" + (
        "" if math.isnan(r["participation_gap_std"]) else f" ± {100 * r['participation_gap_std']:.2f}") + mark


def reference_text(r) -> str:
    """The gap minus FedAvg's with its 95% interval, '*' where Holm over the setting separates it from 0."""
    if math.isnan(r["ref_diff"]):
        return "—"
    interval = "" if math.isnan(r["ref_low"]) else f" [{100 * r['ref_low']:+.2f}, {100 * r['ref_high']:+.2f}]"
    mark = " *" if r["ref_p_holm"] < ALPHA else ""
    return f"{100 * r['ref_diff']:+.2f}{interval}{mark}"


def with_newcomers(table: pd.DataFrame, cells: pd.DataFrame, style: str) -> pd.DataFrame:
    """The leaderboard `table` (variants x columns) with '<setting> | unseen' and '<setting> | gap'
    columns after each of its settings' columns, for the settings that have newcomers
    (tables/newcomers.md has the rest)."""
    table = table.copy()
    if not len(cells):
        return table
    pm = (lambda t: t.replace("±", "$\\pm$")) if style == "tex" else (lambda t: t)  # noqa: E731
    for setting, group in cells.groupby("setting", sort=True):
        mine = group.set_index("variant")
        unseen = {v: pm(text(r["unseen_acc_mean"], r["unseen_acc_std"])) for v, r in mine.iterrows()}
        gap = {v: pm(gap_text(r)) for v, r in mine.iterrows()}
        ours = [i for i, c in enumerate(table.columns) if str(c).startswith(f"{setting} | ")]
        at = ours[-1] + 1 if ours else len(table.columns)
        table.insert(at, f"{setting} | unseen", [unseen.get(v, "") for v in table.index])
        table.insert(at + 1, f"{setting} | gap", [gap.get(v, "") for v in table.index])
    return table


NOTE = ("seen: the participants' mean client accuracy at the last evaluation; unseen: the newcomers' (clients "
        "held out of training, unseen_frac), given their model by their method's rule after the last round "
        "(tables/methods.md, column 'newcomer') and evaluated once; gap = seen - unseen, mean ± std over seeds; "
        f"* the paired t-test over seeds separates the gap from 0 (p Holm-corrected over the setting's methods "
        f"< {ALPHA}; none is claimed otherwise; newcomers.csv has each gap's 95% interval and p). "
        f"gap - {REFERENCE}'s: the gap minus {REFERENCE}'s, paired by seed (a seed's newcomers are the same clients "
        f"for every method, so the luck of that small group cancels), 95% interval, * where Holm over the "
        f"setting separates it from 0. newcomer GFLOPs: one newcomer's adaptation.")


def write_newcomers(runs: pd.DataFrame, metric: str, tables_dir: Path, plots_dir: Path) -> tuple[list, list]:
    """tables/newcomers.md and .csv, plots/newcomers_<setting>.png; nothing without newcomers."""
    cells = newcomer_cells(runs, metric)
    if not len(cells):
        return [], []
    lines = ["# Newcomers: participants (seen) and clients held out of training (unseen)", ""]
    for setting, group in cells.groupby("setting", sort=True):
        lines += [f"## {setting}", "", f"| method | seen | unseen | gap | gap - {REFERENCE}'s | seeds | newcomers | "
                  "newcomer GFLOPs |", "|---|---|---|---|---|---|---|---|"]
        for _, r in group.sort_values("unseen_acc_mean", ascending=False).iterrows():
            lines.append(f"| {r['variant']} | {text(r['seen_acc_mean'], r['seen_acc_std'])} | "
                         f"{text(r['unseen_acc_mean'], r['unseen_acc_std'])} | {gap_text(r)} | {reference_text(r)} | "
                         f"{r['n']} | {r['newcomers']} | {r['unseen_flops_per_newcomer'] / 1e9:.3g} |")
        lines.append("")
    lines.append(NOTE)
    md, csv = Path(tables_dir) / "newcomers.md", Path(tables_dir) / "newcomers.csv"
    atomic_write(md, "\n".join(lines) + "\n")
    atomic_write(csv, cells.drop(columns="setting_key").to_csv(index=False, float_format="%.6g"))
    return [md, csv], plot_newcomers(runs, cells, Path(plots_dir))


def plot_newcomers(runs: pd.DataFrame, cells: pd.DataFrame, out: Path) -> list[Path]:
    """newcomers_<setting>.png: each method's seen (x) against unseen (y) accuracy, mean ± std over seeds."""
    from matplotlib.figure import Figure

    from fedbench.report.plots import save, stem

    out.mkdir(parents=True, exist_ok=True)
    written = []
    for key, group in cells.groupby("setting_key"):
        fig = Figure(figsize=(5.6, 5.2))
        ax = fig.add_subplot()
        x, y = 100 * group["seen_acc_mean"], 100 * group["unseen_acc_mean"]
        ax.errorbar(x, y, xerr=100 * group["seen_acc_std"].fillna(0), yerr=100 * group["unseen_acc_std"].fillna(0),
                    fmt="o", ms=4, capsize=2)
        for xi, yi, label in zip(x, y, group["variant"]):
            ax.annotate(str(label), (xi, yi), fontsize=7, xytext=(3, 3), textcoords="offset points")
        low, high = min(x.min(), y.min()) - 2, max(x.max(), y.max()) + 2
        ax.plot([low, high], [low, high], color="grey", lw=0.8, ls="--", label="no gap")
        ax.set(xlim=(low, high), ylim=(low, high), xlabel="participants (seen) accuracy, %",
               ylabel="newcomers (unseen) accuracy, %")
        ax.set_title(f"{group['setting'].iloc[0]}: newcomers beside participants", fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
        row = runs[runs["setting_key"] == key].iloc[0]
        written.append(save(fig, out / f"newcomers_{stem(row)}.png"))
    return written
