"""Aggregate runs over seeds, and find what must never be averaged in.

Only runs whose summary says `complete` and that have the chosen headline number count. Failed,
diverged, damaged and unfinished runs are listed instead, and so is every (setting, method) cell that lacks a
seed which some run of that setting has (the setting's expected seeds). Statistics over seeds: the
mean and the sample standard deviation (ddof=1; undefined for one seed).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from fedbench.report.collect import STATUS_OK

CELL = ["setting_key", "setting", "variant"]


def metric_column(metric: str, value: str = "acc") -> str:
    """'final', 'acc_weighted' -> 'final_acc_weighted' (a summary.json field)."""
    return f"{metric}_{value}"


def usable(runs: pd.DataFrame, metric: str) -> pd.Series:
    """Boolean mask of runs that may be averaged: complete, with a finite headline number."""
    value = pd.to_numeric(runs[metric_column(metric)], errors="coerce")
    return (runs["status"] == STATUS_OK) & value.notna() & np.isfinite(value)


def expected_seeds(runs: pd.DataFrame) -> dict[str, set]:
    """setting_key -> every seed that any run of that setting has (any status)."""
    return {k: set(g["seed"].dropna()) for k, g in runs.groupby("setting_key")}


def good_runs(runs: pd.DataFrame, metric: str) -> pd.DataFrame:
    """The usable runs, one per (setting, variant, seed): a duplicate is dropped (and reported)."""
    ok = runs[usable(runs, metric)]
    return ok.drop_duplicates(subset=CELL + ["seed"], keep="first")


def aggregate(runs: pd.DataFrame, metric: str, value: str = "acc") -> pd.DataFrame:
    """One row per (setting, variant) cell: mean, std, n (usable seeds), expected, missing seeds."""
    col = metric_column(metric, value)
    ok = good_runs(runs, metric)
    stats = ok.groupby(CELL)[col].agg(mean="mean", std="std", n="count").reset_index()
    seeds = ok.groupby(CELL)["seed"].agg(lambda s: set(s)).rename("have").reset_index()
    cells = runs[CELL].drop_duplicates()
    out = cells.merge(stats, on=CELL, how="left").merge(seeds, on=CELL, how="left")
    expect = expected_seeds(runs)
    out["n"] = out["n"].fillna(0).astype(int)
    out["expected"] = out["setting_key"].map(lambda k: len(expect[k]))
    out["missing"] = [sorted(expect[k] - (h if isinstance(h, set) else set()))
                      for k, h in zip(out["setting_key"], out["have"])]
    return out.drop(columns="have").sort_values(["setting", "variant"]).reset_index(drop=True)


def problem_runs(runs: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Runs left out of every average, with why: failed, diverged, unfinished, missing, duplicate."""
    bad = runs[~usable(runs, metric)].copy()
    reasons = []
    for _, r in bad.iterrows():
        status = r["status"]
        if status == "diverged":
            at = pd.to_numeric(r.get("diverged_round"), errors="coerce")
            reasons.append(f"diverged at round {int(at) if pd.notna(at) else '?'}")
        elif status == "damaged":
            reasons.append(f"damaged: {r.get('error')}")
        elif status == "failed":
            reasons.append(f"failed: {r.get('error')}")
        elif status == "running":
            reasons.append("unfinished (still running, or killed before it finished)")
        elif status == "interrupted":
            reasons.append(f"interrupted: {r.get('error')} (a resubmitted sweep resumes it)")
        elif status == STATUS_OK:
            reasons.append(f"complete but has no {metric_column(metric)}")
        else:
            reasons.append(f"{status}: {r.get('error')}")
    bad["reason"] = reasons
    ok = runs[usable(runs, metric)]
    dup = ok[ok.duplicated(subset=CELL + ["seed"], keep="first")].copy()
    dup["reason"] = "duplicate of another complete run with the same setting, method and seed (not counted twice)"
    cols = ["setting", "variant", "seed", "status", "reason", "run_dir"]
    return pd.concat([bad, dup])[cols].sort_values(["setting", "variant", "seed"]).reset_index(drop=True)


def missing_seed_cells(agg: pd.DataFrame) -> pd.DataFrame:
    """Cells with fewer usable seeds than their setting has: shown marked, never marked best."""
    m = agg[agg["n"] < agg["expected"]]
    return m[["setting", "variant", "n", "expected", "missing"]].reset_index(drop=True)
