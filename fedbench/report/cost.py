"""What each method spends beside what it scores: its compute (the FLOPs of its local training, the
forward passes training needs and the work done before evaluation, summary.json's compute_flops) and
the bytes it sends, each as a multiple of FedAvg's in the same setting (mean over usable runs)."""
from __future__ import annotations

import math

import pandas as pd

from fedbench.report.aggregate import CELL, good_runs

BASELINE = "fedavg"
COSTS = {"compute": "compute_flops", "bytes": "bytes_total"}   # column label -> summary field


def cost_ratios(runs: pd.DataFrame, metric: str) -> pd.DataFrame:
    """One row per (setting, variant) cell with its mean compute_flops and bytes_total over usable
    runs, divided by the mean of the setting's FedAvg runs: columns compute_x, bytes_x (NaN where the
    setting has no FedAvg run or the field is missing, e.g. runs written before compute was counted)."""
    ok = good_runs(runs, metric)
    fields = [f for f in COSTS.values() if f in ok.columns]
    means = ok.groupby(CELL)[fields].agg(lambda c: pd.to_numeric(c, errors="coerce").mean()).reset_index()
    base = ok[ok["method"] == BASELINE].groupby("setting_key")[fields].agg(
        lambda c: pd.to_numeric(c, errors="coerce").mean())
    out = means[CELL].copy()
    for label, field in COSTS.items():
        if field not in fields:
            out[f"{label}_x"] = math.nan
            continue
        ref = means["setting_key"].map(base[field]) if len(base) else math.nan
        out[f"{label}_x"] = means[field] / ref
    return out


def ratio_text(x: float) -> str:
    """'1.00×', '14.3×', 'n/a' (unknown: no FedAvg run in the setting to compare with)."""
    if x is None or not math.isfinite(x) or x <= 0:
        return "n/a"
    return f"{x:.2f}×" if x < 10 else f"{x:.1f}×"
