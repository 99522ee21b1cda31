"""How long a tune (and a publication) will take here, said before it starts (`--dry-run`).

The runs each stage will make, per (setting, method):
  search   the search replayed (fedbench.tuning.search) with the scores of the runs on disk, and for the
           trials not run yet a score that peaks in the middle of every key's grid: the trials a search
           with an interior optimum still asks for. A choice at an edge asks for more (extensions, up to
           max_trials): the estimate says by how much at most.
  carry    --carry configurations at the full rounds (with --screen)
  final    the stability probe and the reporting seeds of the selected configuration
minus the runs already finished by this code (they are read, not rerun). Each run's seconds come from
the runs on disk (Timings: of its dataset and method, at its rounds where there are such runs); the
wall time is their sum over the runs that run at once (the local launcher: one per core).
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from fedbench.tuning.search import search


@dataclass
class Plan:
    """Runs still to make, with their seconds (None: no run on disk to time them by)."""

    runs: dict = field(default_factory=dict)        # stage -> runs left
    done: dict = field(default_factory=dict)        # stage -> runs finished
    seconds: float = 0.0                            # the timed runs' seconds
    untimed: int = 0                                # runs with no timing
    extra_runs: int = 0                             # at most this many more (search extensions)
    extra_seconds: float = 0.0
    each: dict = field(default_factory=dict)        # stage -> one run's seconds, per (setting, method)

    def add(self, stage: str, left: int, done: int, each: float | None, extra: int = 0) -> None:
        self.runs[stage] = self.runs.get(stage, 0) + left
        self.done[stage] = self.done.get(stage, 0) + done
        if each is None:
            self.untimed += left
        else:
            self.each.setdefault(stage, []).append(each)
            self.seconds += left * each
            self.extra_seconds += extra * each
        self.extra_runs += extra

    def __iadd__(self, other: "Plan") -> "Plan":
        for stage in other.runs:
            self.runs[stage] = self.runs.get(stage, 0) + other.runs[stage]
            self.done[stage] = self.done.get(stage, 0) + other.done[stage]
            self.each.setdefault(stage, []).extend(other.each.get(stage, []))
        self.seconds, self.untimed = self.seconds + other.seconds, self.untimed + other.untimed
        self.extra_runs, self.extra_seconds = self.extra_runs + other.extra_runs, self.extra_seconds + other.extra_seconds
        return self


class Timings:
    """Seconds a run takes, from the runs on disk under `dirs` and the rows of `tables` (summary.csv files:
    a former publication's). A run's fixed costs (start, data, the last evaluation) weigh more in a short
    run, so runs of the same length are preferred: the median wall time of the (dataset, method) at those
    rounds; else the (dataset)'s median at those rounds times the method's cost relative to the dataset's
    (seconds per round, any length); else the seconds per round of the (dataset, method), or of the
    dataset, times the rounds."""

    def __init__(self, dirs: list[Path], tables: list[Path] = ()):
        import json

        rows = []
        for d in dirs:
            for path in Path(d).glob("runs/**/summary.json"):
                try:
                    s = json.loads(path.read_text(encoding="utf-8"))
                except (OSError, ValueError):
                    continue
                rows.append({k: s.get(k) for k in COLUMNS})
        frames = [pd.DataFrame(rows, columns=list(COLUMNS))] + [
            pd.read_csv(t, usecols=lambda c: c in COLUMNS) for t in tables if Path(t).is_file()]
        runs = pd.concat([f for f in frames if len(f)] or frames[:1], ignore_index=True)
        runs = runs[(pd.to_numeric(runs["rounds_done"], errors="coerce") > 0)
                    & pd.to_numeric(runs["wall_time_s"], errors="coerce").notna()].copy()
        runs["wall_time_s"], runs["rounds_done"] = runs["wall_time_s"].astype(float), runs["rounds_done"].astype(int)
        runs["per_round"] = runs["wall_time_s"] / runs["rounds_done"]
        self.count = len(runs)
        self.at_rounds = runs.groupby(["dataset", "method", "rounds_done"])["wall_time_s"].median().to_dict()
        self.dataset_at_rounds = runs.groupby(["dataset", "rounds_done"])["wall_time_s"].median().to_dict()
        self.by_method = runs.groupby(["dataset", "method"])["per_round"].median().to_dict()
        self.by_dataset = runs.groupby("dataset")["per_round"].median().to_dict()

    def run_seconds(self, dataset: str, method: str, rounds: int) -> float | None:
        from fedbench.tuning.space import base_method

        for m in dict.fromkeys([method, base_method(method)]):
            if (dataset, m, rounds) in self.at_rounds:
                return self.at_rounds[(dataset, m, rounds)]
        per_round = next((self.by_method[(dataset, m)] for m in (method, base_method(method))
                          if (dataset, m) in self.by_method), None)
        if (dataset, rounds) in self.dataset_at_rounds:
            relative = per_round / self.by_dataset[dataset] if per_round is not None else 1.0
            return self.dataset_at_rounds[(dataset, rounds)] * relative
        per_round = per_round if per_round is not None else self.by_dataset.get(dataset)
        return None if per_round is None else per_round * rounds


COLUMNS = ("dataset", "method", "wall_time_s", "rounds_done")


def modelled(space):
    """The score assumed for a trial not run yet: it peaks in the middle of every key's grid (log or
    linear), an interior optimum, so the replay extends no edge."""
    def middle(key) -> float:
        lo, hi = float(key.values[0]), float(key.values[-1])
        return math.sqrt(lo * hi) if key.scale == "log" and lo > 0 else (lo + hi) / 2

    def distance(key, value, peak) -> float:
        if key.scale == "log" and value > 0 and peak > 0:
            return abs(math.log(value / peak))
        return abs(value - peak) / max(abs(float(key.values[-1]) - float(key.values[0])), 1e-12)
    peaks = [middle(k) for k in space.keys]
    return lambda config: -sum(distance(k, float(v), p) for k, v, p in zip(space.keys, config, peaks))


def search_runs(tune, index, unit) -> tuple[int, int, int]:
    """(trials the search of `unit` will still launch, trials it has finished, the most that extensions
    can add beyond them: the budget left, 0 once the search is over on disk): the search replayed with
    the scores on disk, and `modelled` scores for the trials it asks for beyond them."""
    disk, assumed, model = {}, {}, modelled(unit.space)

    def on_disk(config):
        if config not in disk:
            disk[config] = index.score(unit.job(config, tune.seed, tune.fidelity()))
        return disk[config]

    def score(config):
        found = on_disk(config)
        return found if found is not None else assumed.get(config)

    while (outcome := search(unit.space, score, tune.max_trials)).pending:
        assumed |= {c: model(c) for c in outcome.pending}
    done = sum(on_disk(c) is not None for c in outcome.requested)
    left = len(outcome.requested) - done
    return left, done, max(0, tune.max_trials - left - done) if left else 0


def finished(frame: pd.DataFrame, code: str, **match) -> int:
    """Runs of `frame` (report.collect's) finished by this code and matching every column = value."""
    if not len(frame) or "code_id" not in frame:
        return 0
    keep = frame["status"].isin(["complete", "diverged"]) & (frame["code_id"] == code)
    for column, value in match.items():
        keep &= frame[column] == value
    return int(keep.sum())


def runs_on_disk(results: Path, probes: bool = False) -> pd.DataFrame:
    """report.collect's frame of the runs under `results` (probes=True: the stability probes), empty when
    there are none yet."""
    from fedbench.report.collect import ReportError, collect

    try:
        return collect(results, probes=probes)
    except ReportError:
        return pd.DataFrame(columns=["status", "code_id", "setting_key", "method", "seed"])


def tune_plan(tune, timings: Timings, full: pd.DataFrame | None = None, probes: pd.DataFrame | None = None) -> Plan:
    """The runs `tune` (fedbench.tuning.driver.Tune) has left, stage by stage, with their seconds; `full`
    and `probes`: runs_on_disk(tune.results_dir) and its probes, when the caller has them already."""
    from fedbench.code import code_id
    from fedbench.tuning.jobs import RunIndex

    full = runs_on_disk(tune.results_dir) if full is None else full
    probes = runs_on_disk(tune.results_dir, probes=True) if probes is None else probes
    code, plan, index = code_id(), Plan(), RunIndex(tune.metric)
    try:
        for unit in tune.units:
            unit_plan(tune, index, unit, timings, plan, full, probes, code)
    finally:
        index.close()
    return plan


def unit_plan(tune, index, unit, timings: Timings, plan: Plan, full, probes, code: str) -> None:
    """One (setting, method)'s runs left, stage by stage, into `plan`."""
    cfg = index.config(unit.job(unit.space.start(), tune.seed, tune.fidelity()))
    dataset = str(cfg.dataset.name)
    left, done, extra = search_runs(tune, index, unit)
    plan.add("search", left, done, timings.run_seconds(dataset, unit.label, int(cfg.rounds)), extra)
    at_full = unit.job(unit.space.start(), tune.seed)
    key, each = index.setting_key(at_full), timings.run_seconds(dataset, unit.label, int(index.config(at_full).rounds))
    if tune.screen is not None:
        had = min(tune.carry, finished(full, code, setting_key=key, method=unit.label, seed=tune.seed))
        plan.add("carry", tune.carry - had, had, each)
    seeds = min(len(tune.report_seeds), sum(finished(full, code, setting_key=key, method=unit.label, seed=s)
                                            for s in tune.report_seeds))
    probe = min(1, finished(probes, code, setting_key=key, method=unit.label, seed=tune.seed))
    plan.add("final", len(tune.report_seeds) + 1 - seeds - probe, seeds + probe, each)


def describe(plan: Plan, timings: Timings, slots: int | None = None) -> str:
    """One paragraph: runs left per stage (done beside), the wall time at `slots` runs at once."""
    slots = slots or os.cpu_count() or 1
    stages = ", ".join(f"{stage} {plan.runs[stage]} ({plan.done[stage]} done)" for stage in plan.runs)
    hours, extra = plan.seconds / slots / 3600, plan.extra_seconds / slots / 3600
    left = sum(plan.runs.values())
    if plan.untimed == left and left:
        return (f"{left} runs left ({stages}); not timed: no run of their datasets on disk (run one, e.g. "
                f"python -m fedbench experiment=..., and ask again)")
    text = (f"{left} runs left ({stages}): ~{hours:.1f} h of wall time at {slots} runs at once here, timed by "
            f"{timings.count} runs on disk; searches that extend an edge add at most {plan.extra_runs} runs "
            f"(+{extra:.1f} h)")
    return text + (f"; {plan.untimed} more runs not timed (no run of their dataset on disk)" if plan.untimed else "")
