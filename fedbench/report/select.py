"""Selection on validation (`python -m fedbench.report --select val`): per (setting, method), the
configuration (lr and the method's own keys, see collect.configuration_key) with the best mean
VALIDATION accuracy; only the chosen configuration's test accuracy is reported. Test accuracy never
enters the choice.

Scoring, per configuration: its validation accuracy (`<metric>_val_acc`: the mean of the last k
evaluations for --metric final, the best round's for --metric best) averaged over the seeds that every
configuration of the (setting, method) has a result for, so that every configuration is judged on
the same seeds (a tuning sweep on seed 0 whose winner is then rerun on more seeds selects on seed 0).
A diverged run scores 0 (the configuration lost); a failed, unfinished or missing run makes its seed
unusable for the comparison. Ties go to the first configuration in label order.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from fedbench.report.aggregate import metric_column, usable
from fedbench.report.collect import configuration_key


def _seed_scores(runs: pd.DataFrame, metric: str) -> pd.Series:
    """Validation score per run: its val accuracy if usable, 0 if diverged, NaN otherwise."""
    val = pd.to_numeric(runs[metric_column(metric, "val_acc")], errors="coerce")
    score = val.where(usable(runs, metric) & np.isfinite(val))
    return score.mask(runs["status"] == "diverged", 0.0)


def config_columns(runs: pd.DataFrame) -> list[str]:
    """The frame's configuration columns (keys that differ between a method's runs), optimizer first."""
    return sorted((c for c in runs.columns if configuration_key(c)), key=lambda c: (c.startswith("method."), c))


def select_by_validation(runs: pd.DataFrame, metric: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(selected, runs_of_selected): one row per (setting, method) with the chosen configuration, its
    validation score, the test accuracy of its runs (mean ± std over seeds) and the number of
    configurations tried; and the runs of the chosen configurations, labelled by method name."""
    runs = runs.assign(_score=_seed_scores(runs, metric))
    test = metric_column(metric)
    keys = config_columns(runs)
    rows, chosen = [], []
    for (setting_key, method), group in runs.groupby(["setting_key", "method"], sort=True):
        per_config = {v: g.dropna(subset=["_score"]).drop_duplicates("seed").set_index("seed")["_score"]
                      for v, g in group.groupby("variant", sort=True)}
        known = [set(s.index) for s in per_config.values() if len(s)]
        common = set.intersection(*known) if known else set()
        scores = {v: (math.nan if not len(s) else float(s.loc[sorted(common)].mean()) if common else float(s.mean()))
                  for v, s in per_config.items()}  # a configuration without a result yet cannot win
        ranked = [v for v in sorted(scores) if not math.isnan(scores[v])]
        row = {"setting": group["setting"].iloc[0], "method": method, "configs_tried": len(per_config),
               "setting_key": setting_key}
        if not ranked:
            rows.append(row | {"variant": None, "val_acc": math.nan})
            continue
        best = max(ranked, key=lambda v: scores[v])  # max keeps the first of equal scores (label order)
        runs_best = group[group["variant"] == best]
        ok = runs_best[usable(runs_best, metric)].drop_duplicates("seed")
        first = runs_best.iloc[0]
        row |= {"variant": best, **{k: first.get(k) for k in keys if pd.notna(first.get(k))},
                "val_acc": scores[best], "val_seeds": len(common) if common else int(per_config[best].size),
                f"{test}_mean": ok[test].mean(), f"{test}_std": ok[test].std(),
                f"{metric}_acc_bottom10_mean": ok[metric_column(metric, "acc_bottom10")].mean(),
                "seeds": len(ok)}
        rows.append(row)
        chosen.append(runs_best.assign(variant=method))
    selected = pd.DataFrame(rows)
    lead = ["setting", "method", "variant"]
    cols = lead + [k for k in keys if k in selected] + [c for c in selected.columns if c not in lead and c not in keys]
    selected = selected[cols].sort_values(["setting", "method"]).reset_index(drop=True)
    picked = pd.concat(chosen).drop(columns="_score") if chosen else runs.iloc[:0].drop(columns="_score")
    return selected, picked.reset_index(drop=True)
