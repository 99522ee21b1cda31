"""What a selection on validation says beside its choice (fedbench.report.select): the facts of the
search that found it (configurations outside the grids, edges the search could still have extended,
rounds spent on the tuning seeds) and how far a rounding-size change moves it (the init_jitter probe
that fedbench.tune runs on the tuning seed)."""
from __future__ import annotations

import math

import pandas as pd

from fedbench.report.aggregate import metric_column


def _space(label: str, lr):
    from fedbench.errors import ConfigError
    from fedbench.tuning.space import space_of

    try:
        return {k.name: k for k in space_of(label, lr).keys}
    except (ConfigError, OSError):
        return {}


def search_facts(label: str, values: dict, best, grid: dict, group: pd.DataFrame, tuning: set, lr=None) -> dict:
    """extension_trials: configurations with a value outside its key's grid (fedbench.tuning.space);
    unexplored_edge: the searched keys the chosen configuration takes at an end of the values tried
    where the key's range allows a value beyond (a key the tune does not search always does);
    tuning_rounds: the rounds the tuning-seed runs trained (a diverged run: until it diverged)."""
    keys = _space(label, lr)
    extensions = sum(1 for first in values.values()
                     if any(k in keys and pd.notna(first.get(k)) and not _on_grid(first[k], keys[k].values)
                            for k in grid))
    unexplored = []
    for k, tried in grid.items():
        value = values[best].get(k)
        if len(tried) < 2 or value not in (tried[0], tried[-1]):
            continue
        end = "low" if value == tried[0] else "high"
        if k not in keys or keys[k].beyond(list(tried), end) is not None:
            unexplored.append(f"{k}={value:g} ({'smallest' if end == 'low' else 'largest'})"
                              if isinstance(value, float) else f"{k}={value}")
    spent = group[group["seed"].isin(tuning)] if tuning else group
    rounds = pd.to_numeric(spent["diverged_round"], errors="coerce").fillna(
        pd.to_numeric(spent["rounds_done"], errors="coerce"))
    return {"extension_trials": extensions, "unexplored_edge": "; ".join(unexplored),
            "tuning_rounds": int(rounds.fillna(0).sum())}


def _on_grid(value, grid) -> bool:
    return any(math.isclose(float(value), float(v), rel_tol=1e-9, abs_tol=1e-15) for v in grid)


def rounding_delta(tuning_runs: pd.DataFrame, probes: pd.DataFrame | None, metric: str, tolerance: float) -> dict:
    """rounding_delta: |final accuracy of the probe - of its tuning-seed run| in points (the largest
    over the tuning seeds probed; NaN without a probe); unstable when it exceeds the tolerance. A
    probe matches a run when its overrides are the run's plus init_jitter."""
    if probes is None or not len(probes) or not len(tuning_runs):
        return {"rounding_delta": math.nan, "unstable": False}
    test = metric_column(metric)
    probed = {}
    for _, p in probes.iterrows():
        words = frozenset(o for o in str(p.get("overrides") or "").split() if not o.startswith("init_jitter="))
        probed[words] = p
    deltas = []
    for _, run in tuning_runs.iterrows():
        p = probed.get(frozenset(str(run.get("overrides") or "").split()))
        if p is None:
            continue
        both = p["status"] == run["status"] == "complete"
        moved = 100 * abs(float(p[test]) - float(run[test])) if both else (0.0 if p["status"] == run["status"]
                                                                           else math.inf)  # one diverged
        deltas.append(moved)
    if not deltas:
        return {"rounding_delta": math.nan, "unstable": False}
    delta = max(deltas)
    return {"rounding_delta": delta, "unstable": bool(delta > tolerance)}
