"""Selection on validation (`python -m fedbench.report --select val`): per (setting, method), the
configuration (lr and the method's own keys, see collect.configuration_key) with the best mean
VALIDATION accuracy; only the chosen configuration's test accuracy is reported. Test accuracy never
enters the choice.

Scoring, per configuration: its validation accuracy (`<metric>_val_acc`: the mean of the last k
evaluations for --metric final, the best round's for --metric best) averaged over the seeds that every
configuration of the (setting, method) has a result for, so that every configuration is judged on
the same seeds (a tuning sweep on seed 0 whose winner is then rerun on more seeds selects on seed 0).
A diverged run scores 0 (the configuration lost); a failed, unfinished or missing run makes its seed
unusable for the comparison.

Ties (equal scores, common on small validation splits) do not default to an end of the grid: among
the tied configurations the one nearest the grid's middle wins (per searched key, the position of its
value among the values tried, 0 to 1; the sum of the distances to 0.5), then the first in label order.
Each selection records how many configurations tied for it (`tied`, 1 = no tie) and the searched keys
it took at an end of their range of values (`grid_edge`, e.g. `lr=0.3 (largest of 4)`); of those, the
ones the search could still have extended (`unexplored_edge`: fedbench.tune extends every edge choice
until the key's declared range ends, so it should stay empty), and how many of the configurations tried
lie outside the keys' grids (`extension_trials`).

Seeds apart: the seeds every configuration of a (setting, method) has are its tuning seeds, which chose;
a setting's tuning seeds (`tuning_seeds`, those of all its selections) report for none of its methods,
and the chosen configurations' other seeds (`report_seeds`) are the only runs the tables average (the
runs returned). A setting where no selection has a run on another seed (a grid on one seed) is reported
on its tuning seeds, said in `reported_on` and marked in the tables; in a setting where others have
them, a selection without one is left out of the tables (the issues list it).

Stability: a probe run of the chosen configuration on the tuning seed with init_jitter (fedbench.tune)
gives `rounding_delta`, how many accuracy points a rounding-size change moved its final accuracy, and
`unstable` when that exceeds the reporting tolerance (conf/tune.yaml): its numbers depend on the float
path of the machine that ran them.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

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


def distance_to_middle(config: pd.Series, grid: dict[str, list]) -> float:
    """How far a configuration sits from its grid's middle: the sum over searched keys (with more than
    one value tried) of |position - 0.5|, its value's position among the values tried scaled to [0, 1]."""
    return sum(abs(values.index(config[k]) / (len(values) - 1) - 0.5) for k, values in grid.items()
               if len(values) > 1 and config.get(k) in values)


def grid_edges(config: pd.Series, grid: dict[str, list]) -> str:
    """The searched keys a configuration takes at an end of the values tried: 'lr=0.3 (largest of 4)'."""
    edges = []
    for k, values in grid.items():
        if len(values) > 1 and config.get(k) in (values[0], values[-1]):
            end = "smallest" if config[k] == values[0] else "largest"
            edges.append(f"{k}={config[k]:g} ({end} of {len(values)})" if isinstance(config[k], float)
                         else f"{k}={config[k]} ({end} of {len(values)})")
    return "; ".join(edges)


@dataclass
class Ranking:
    """A (setting, method)'s configurations ranked: `order` (best first; those without a score left
    out), `scores` (mean validation score over `common` seeds), `values` (each variant's first run),
    `grid` (the values tried per searched key), `seeds` (each variant's number of scored seeds)."""

    order: list
    scores: dict
    values: dict
    grid: dict
    common: set
    seeds: dict


def rank_configurations(group: pd.DataFrame, keys: list[str]) -> Ranking:
    """The runs of one (setting, method), with `_score` (validation score per run), ranked by mean
    score over the seeds every configuration has; equal scores by distance to the grid's middle,
    then label order."""
    per_config = {v: g.dropna(subset=["_score"]).drop_duplicates("seed").set_index("seed")["_score"]
                  for v, g in group.groupby("variant", sort=True)}
    known = [set(s.index) for s in per_config.values() if len(s)]
    common = set.intersection(*known) if known else set()
    scores = {v: (math.nan if not len(s) else float(s.loc[sorted(common)].mean()) if common else float(s.mean()))
              for v, s in per_config.items()}  # a configuration without a result yet cannot win
    values = {v: g.iloc[0] for v, g in group.groupby("variant", sort=True)}
    grid = {k: sorted({values[v][k] for v in per_config if pd.notna(values[v].get(k))}) for k in keys}
    scored = [v for v in sorted(scores) if not math.isnan(scores[v])]
    order = sorted(scored, key=lambda v: (-round(scores[v], 12), distance_to_middle(values[v], grid)))  # stable
    return Ranking(order, scores, values, grid, common, {v: int(s.size) for v, s in per_config.items()})


def seeds_text(seeds) -> str:
    return ",".join(str(int(s)) for s in sorted(seeds))


def select_by_validation(runs: pd.DataFrame, metric: str, probes: pd.DataFrame | None = None, search=None
                         ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(selected, runs_of_selected): one row per (setting, method) with the chosen configuration, its
    validation score on the tuning seeds, the test accuracy of its reporting runs (mean ± std over
    seeds), the search's facts (configurations tried, edges, extensions) and its stability (from
    `probes`, the init_jitter runs: collect(..., probes=True)); and the reporting runs of the chosen
    configurations, labelled by method name. `search`: the tune's (tuning.space.tune_settings(results_dir):
    its lr list and tolerance; default conf/tune.yaml's)."""
    from fedbench.report.stability import rounding_delta, search_facts
    from fedbench.tuning.space import tune_settings

    search = search if search is not None else tune_settings()
    lr, tolerance = tuple(search.lr), float(search.tolerance)
    runs = runs.assign(_score=_seed_scores(runs, metric))
    test = metric_column(metric)
    keys = config_columns(runs)
    rows, chosen = [], []
    tuning_seeds: dict[str, set] = {}   # per setting: the seeds its selections were made on
    for (setting_key, method), group in runs.groupby(["setting_key", "method"], sort=True):
        rank = rank_configurations(group, keys)
        row = {"setting": group["setting"].iloc[0], "method": method, "configs_tried": len(rank.values),
               "setting_key": setting_key}
        if not rank.order:
            rows.append(row | {"variant": None, "val_acc": math.nan})
            continue
        best = rank.order[0]
        scores, values, grid, common = rank.scores, rank.values, rank.grid, rank.common
        tied = [v for v in rank.order if math.isclose(scores[v], scores[best], rel_tol=0, abs_tol=1e-12)]
        runs_best = group[group["variant"] == best]
        ok = runs_best[usable(runs_best, metric)].drop_duplicates("seed")
        tuning = common if len(rank.values) > 1 else set()
        tuning_seeds.setdefault(setting_key, set()).update(tuning)
        first = runs_best.iloc[0]
        tuning_runs = runs_best[runs_best["seed"].isin(tuning)] if tuning else runs_best
        row |= {"variant": best, **{k: first.get(k) for k in keys if pd.notna(first.get(k))},
                "val_acc": scores[best], "tied": len(tied), "grid_edge": grid_edges(values[best], grid),
                **search_facts(method, values, best, grid, group, tuning, lr),
                "val_seeds": len(common) if common else int(rank.seeds[best]),
                **rounding_delta(tuning_runs, probes, metric, tolerance), "_ok": ok}
        rows.append(row)
    # the seeds any selection of a setting tuned on report for none of its methods; a setting without
    # other seeds is reported on them, marked (see the module docstring)
    reporting = {i: r["_ok"][~r["_ok"]["seed"].isin(tuning_seeds[r["setting_key"]])]
                 for i, r in enumerate(rows) if "_ok" in r}
    has_reporting = {rows[i]["setting_key"] for i, rep in reporting.items() if len(rep)}
    for i, row in enumerate(rows):
        ok = row.pop("_ok", None)
        if ok is None:
            continue
        tuned = tuning_seeds[row["setting_key"]]
        runs_reported = reporting[i] if row["setting_key"] in has_reporting else ok
        row["reported_on"] = ("reporting seeds" if len(reporting[i]) else "none (no run on a reporting seed)"
                              if row["setting_key"] in has_reporting else "tuning seeds (no others: optimistic)")
        row |= {"tuning_seeds": seeds_text(tuned), "report_seeds": seeds_text(runs_reported["seed"])
                if row["setting_key"] in has_reporting else "",
                f"{test}_mean": runs_reported[test].mean(), f"{test}_std": runs_reported[test].std(),
                f"{metric}_acc_bottom10_mean": runs_reported[metric_column(metric, "acc_bottom10")].mean(),
                "seeds": len(runs_reported)}
        if len(runs_reported):
            chosen.append(runs_reported.assign(variant=row["method"]))
    selected = pd.DataFrame(rows)
    lead = ["setting", "method", "variant"]
    cols = lead + [k for k in keys if k in selected] + [c for c in selected.columns if c not in lead and c not in keys]
    selected = selected[cols].sort_values(["setting", "method"]).reset_index(drop=True)
    picked = pd.concat(chosen).drop(columns="_score") if chosen else runs.iloc[:0].drop(columns="_score")
    return selected, picked.reset_index(drop=True)


def rankings(runs: pd.DataFrame, metric: str) -> dict[tuple[str, str], tuple[Ranking, pd.DataFrame]]:
    """{(setting_key, method): (its configurations ranked, its runs)}: what a screening stage carries
    on (fedbench.tune --screen)."""
    runs = runs.assign(_score=_seed_scores(runs, metric))
    keys = config_columns(runs)
    return {(k, m): (rank_configurations(g, keys), g.drop(columns="_score"))
            for (k, m), g in runs.groupby(["setting_key", "method"], sort=True)}
