"""The differences a reading may cite: in each setting, every method against the two baselines that
frame personalized FL, FedAvg (does personalizing beat the one global model?) and Local (does
collaborating beat training alone?), paired over seeds.

Seeds share partitions across methods, so each comparison is a paired two-sided t-test over the
common seeds (significance.paired_difference) with the mean difference and its 95% t-interval, in
accuracy points. The family of a correction is one (setting, reference): the method's comparisons
with that reference in that setting, Holm-corrected (statsmodels). Only cells with every seed of the
setting enter. A verdict `better`/`worse` is a Holm-corrected p below alpha; anything else is
"no tested difference", which with 3 seeds is also what a real but small difference looks like.
"""
from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from fedbench.report.aggregate import aggregate
from fedbench.report.cost import cost_ratios, ratio_text
from fedbench.report.significance import ALPHA, holm, paired_difference, seed_table

REFERENCES = ("fedavg", "local")
BETTER, WORSE, NONE = "better", "worse", "no tested difference"


def differences(runs: pd.DataFrame, metric: str, references=REFERENCES, alpha: float = ALPHA) -> pd.DataFrame:
    """One row per (setting, reference, variant): n (common seeds), diff/low/high (mean paired difference
    variant - reference in accuracy points, 95% interval), p, p_holm, verdict. Settings without the
    reference, or where it lacks seeds, have no rows for it."""
    agg = aggregate(runs, metric)
    complete = agg[(agg["n"] > 0) & (agg["n"] == agg["expected"])]
    table = seed_table(runs, metric)
    rows = []
    for key, cells in complete.groupby("setting_key"):
        setting = cells["setting"].iloc[0]
        for ref in references:
            if ref not in set(cells["variant"]):
                continue
            others = [v for v in cells["variant"] if v != ref]
            tested = [paired_difference(table.loc[key][v], table.loc[key][ref]) for v in others]
            for variant, d, p_holm in zip(others, tested, holm([d.p for d in tested], alpha)):
                verdict = NONE if p_holm >= alpha else (BETTER if d.mean > 0 else WORSE)
                rows.append({"setting": setting, "reference": ref, "variant": variant, "n": d.n,
                             "diff": 100 * d.mean, "low": 100 * d.low, "high": 100 * d.high, "p": d.p,
                             "p_holm": p_holm, "verdict": verdict})
    columns = ["setting", "reference", "variant", "n", "diff", "low", "high", "p", "p_holm", "verdict"]
    return pd.DataFrame(rows, columns=columns)


def cell(r) -> str:
    """'+5.12 [3.10, 7.14] p=0.003 better' (p Holm-corrected); one seed: the difference, not tested."""
    if r["n"] < 2:
        return f"{r['diff']:+.2f} (not tested: {r['n']} seed)"
    interval = "" if math.isnan(r["low"]) else f" [{r['low']:+.2f}, {r['high']:+.2f}]"
    mark = {BETTER: " **better**", WORSE: " **worse**"}.get(r["verdict"], "")
    return f"{r['diff']:+.2f}{interval} p={r['p_holm']:.2g}{mark}"


def write_differences(runs: pd.DataFrame, metric: str, tables_dir: Path, references=REFERENCES) -> list[Path]:
    """tables/differences_<metric>.md: per setting, every method's tested difference to each reference
    (rows by mean accuracy); nothing when no setting has a reference."""
    from fedbench.files import atomic_write

    found = differences(runs, metric, references)
    if not len(found):
        return []
    agg = aggregate(runs, metric)
    means = agg.set_index(["setting", "variant"])["mean"]
    compute = cost_ratios(runs, metric).set_index(["setting", "variant"])["compute_x"]
    short = agg[agg["n"] < agg["expected"]].groupby("setting")["variant"].agg(sorted)
    lines = [f"# Tested differences to {' and '.join(references)} ({metric} accuracy)", "",
             f"Per setting, each method minus the reference in accuracy points, mean over seeds of the paired "
             f"difference [95% t-interval], and the two-sided paired t-test's p-value Holm-corrected over the "
             f"setting's comparisons with that reference (alpha = {ALPHA}); only cells with every seed; "
             f"compute = the method's FLOPs as a multiple of FedAvg's in the setting. "
             f"**better**/**worse**: a tested difference; no mark: none shown (with few seeds a small real "
             f"difference looks the same).", ""]
    for setting, part in found.groupby("setting", sort=True):
        refs = [r for r in references if r in set(part["reference"])]
        wide = part.pivot(index="variant", columns="reference", values="verdict")
        texts = {(r["variant"], r["reference"]): cell(r) for _, r in part.iterrows()}
        order = sorted(wide.index.union(refs), key=lambda v: -means.get((setting, v), -math.inf))
        lines += [f"## {setting}", "", "| method | acc | compute | " + " | ".join(f"vs {r}" for r in refs) + " |",
                  "|---|---|---|" + "---|" * len(refs)]
        for v in order:
            acc, flops = means.get((setting, v), math.nan), ratio_text(compute.get((setting, v), math.nan))
            lines.append(f"| {v} | {100 * acc:.2f} | {flops} | " + " | ".join(texts.get((v, r), "—") for r in refs)
                         + " |")
        if setting in short:
            lines += ["", "Not tested (seeds missing): " + ", ".join(short[setting]) + "."]
        lines.append("")
    path = Path(tables_dir) / f"differences_{metric}.md"
    atomic_write(path, "\n".join(lines))
    return [path]
