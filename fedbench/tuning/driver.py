"""The stages of a tune, each one multirun through the user's launcher (fedbench.tuning.jobs.launch):

  search     every (setting, method) searched alike on the tuning seed (fedbench.tuning.search), stage by
             stage: the trials every method asks for next go out together; with --screen R at R rounds
             into <results_dir>/screening
  carry      (--screen) the N best screened configurations of each (setting, method) at the full rounds,
             and while all of them diverged there, the next best, one at a time
  edge       (--screen) where the configuration chosen at the full rounds takes a key at an end of the
             values screened, the value beyond (the search's own step) is screened too, within the same
             budget, and carried when it ranks among the N best: until the choice is interior, the key's
             range ends or the budget is spent
  probe      the selected configuration (report.select: best validation on the tuning seed) rerun on the
             tuning seed with init_jitter (conf/tune.yaml): how far rounding moves it
  seeds      the selected configuration on the reporting seeds, the only ones the tables average
Each stage reads what the previous ones left on disk, so a stopped tune resumes where it stopped.
"""
from __future__ import annotations

import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

from fedbench.tuning.jobs import RunIndex, launch
from fedbench.tuning.search import search
from fedbench.tuning.space import CONTROL_SUFFIX, Space, base_method, space_of, tune_settings


@dataclass(frozen=True)
class Unit:
    """One (setting, method label) of the tune: its setting's overrides and its search space."""

    setting: tuple
    label: str
    lr: tuple          # the tune's lr list (conf/tune.yaml, or its --lr), the same for every unit

    @property
    def space(self) -> Space:
        return space_of(self.label, self.lr)

    def job(self, config: tuple, seed: int, extra: tuple = ()) -> list[str]:
        """The overrides of `config` on `seed`; `extra` (a stage's rounds and results_dir) replace the
        setting's own values of those keys."""
        replaced = {o.split("=", 1)[0] for o in extra}
        setting = [o for o in self.setting if o.split("=", 1)[0] not in replaced]
        return [*setting, f"method={base_method(self.label)}", *required(self.label, self.setting),
                *self.space.overrides(config), f"seed={seed}", *extra]


def required(label: str, setting) -> list[str]:
    """Overrides a label cannot run without: a BatchNorm model for FedBN and for its control (fedavg+bn)."""
    from fedbench.config import method_class

    given = {o.split("=", 1)[0].lstrip("+~") for o in setting}
    needs_bn = label.endswith(CONTROL_SUFFIX) or getattr(method_class(base_method(label)), "needs_batchnorm", False)
    return ["model.bn=true"] if needs_bn and not given & {"model", "model.bn"} else []


def labels(methods: list[str], settings: list[list[str]]) -> list[str]:
    """The tuned labels: the methods, and FedAvg on FedBN's BatchNorm model (fedavg+bn, the control that
    tells FedBN's gain from BatchNorm's) wherever FedBN runs on a model the others do not have."""
    given = {o.split("=", 1)[0] for s in settings for o in s}
    control = "fedbn" in methods and not given & {"model", "model.bn"}
    return methods + ([f"fedavg{CONTROL_SUFFIX}"] if control else [])


@dataclass
class Tune:
    units: list[Unit]
    seed: int
    report_seeds: list[int]
    launch_overrides: list[str]
    results_dir: Path
    metric: str = "final"
    screen: int | None = None
    carry: int = 2
    dry_run: bool = False
    max_trials: int = 16

    def __post_init__(self):
        self.index = RunIndex(self.metric)
        self.failed: list[str] = []

    @property
    def screen_dir(self) -> Path:
        return self.results_dir / "screening"

    def fidelity(self) -> tuple:
        if self.screen is None:
            return (f"results_dir={self.results_dir}",)
        return (f"rounds={self.screen}", f"results_dir={self.screen_dir}")

    def run(self) -> list[str]:
        """Every stage; the jobs that failed (their overrides)."""
        try:
            self.search()
            if self.dry_run:
                print("fedbench.tune: (dry run) the later stages depend on these results", file=sys.stderr)
                return []
            if self.screen is not None:
                for _ in range(2 * self.max_trials):   # each pass carries or screens one more: the budget bounds it
                    screened = self.screened()   # carrying writes no screened run: both stages read it once
                    carried = self.carry_stage(screened)
                    jobs = self.edge_jobs(screened)
                    if not jobs and not carried:
                        break
                    self.run_jobs(jobs, "edge")
            self.final_stage()
            return self.failed
        finally:
            self.index.close()

    def search(self) -> dict:
        launched: set[tuple] = set()
        cap = self.max_trials
        for step in range(1, 1000):
            jobs, outcomes = [], {}
            for unit in self.units:
                def score(config, unit=unit):
                    job = unit.job(config, self.seed, self.fidelity())
                    found = self.index.score(job)
                    return -1.0 if found is None and tuple(job) in launched else found   # failed: lost
                outcomes[unit] = search(unit.space, score, cap)
                jobs += [unit.job(c, self.seed, self.fidelity()) for c in outcomes[unit].pending]
            if not jobs:
                break
            launched |= {tuple(j) for j in jobs}
            launch(jobs, self.launch_overrides, self.results_dir, f"search{step}", self.dry_run)
            if self.dry_run:
                break
        self.failed += [shlex.join(j) for j in launched if self.index.score(list(j)) is None]
        return outcomes

    def chosen(self, results: Path) -> dict[Unit, list[str]]:
        """Each unit's configuration selected on the tuning seed in `results` (report.select): the
        overrides of its tuning-seed run, without the seed. The selection is among the runs at the full
        rounds (with --screen, the carried ones): its setting is the unit's own, never the screening's."""
        from fedbench.report.collect import collect
        from fedbench.report.select import select_by_validation

        runs = collect(results)
        runs = runs[runs["seed"] == self.seed]
        _, picked = select_by_validation(runs, self.metric)
        out = {}
        for unit in self.units:
            key = self.index.setting_key(unit.job(unit.space.start(), self.seed, (f"results_dir={results}",)))
            rows = picked[(picked["setting_key"] == key) & (picked["method"] == unit.label)]
            if len(rows):
                out[unit] = [o for o in shlex.split(rows["overrides"].iloc[0]) if not o.startswith("seed=")]
        return out

    def screened(self) -> dict[Unit, tuple]:
        """Each unit's screening: (its Ranking, its screened runs), (None, None) before any."""
        from fedbench.report.collect import collect
        from fedbench.report.select import rankings

        ranked = rankings(collect(self.screen_dir), self.metric)
        return {unit: ranked.get((self.index.setting_key(unit.job(unit.space.start(), self.seed, self.fidelity())),
                                  unit.label), (None, None)) for unit in self.units}

    def carry_stage(self, screened: dict[Unit, tuple]) -> int:
        """The `carry` best screened configurations of each unit, at the full rounds, on the tuning seed
        (carried: and the next best while all diverged there). Returns the runs it launched."""
        jobs = []
        for unit, (rank, group) in screened.items():

            def full_job(variant, unit=unit, group=group) -> list[str]:
                line = group[group["variant"] == variant]["overrides"].dropna().iloc[0]
                kept = [o for o in shlex.split(line) if not o.startswith(("rounds=", "results_dir="))]
                return [*kept, *[o for o in unit.setting if o.startswith("rounds=")], f"results_dir={self.results_dir}"]

            def status(variant) -> str | None:
                job = full_job(variant)
                return (self.index.summary(job) or {}).get("status") if self.index.score(job) is not None else None

            jobs += [full_job(v) for v in carried(rank.order if rank else [], self.carry, status)]
        return self.run_jobs(jobs, "carry")

    def edge_jobs(self, screened: dict[Unit, tuple]) -> list[list[str]]:
        """Screening trials past the edges of the configurations chosen at the full rounds (beyond_chosen):
        the screening ranked one configuration best and the full rounds another, at an end of what was
        screened; the carry rule then decides whether the new value reaches the full rounds."""
        jobs = []
        for unit, base in self.chosen(self.results_dir).items():
            _, group = screened[unit]
            if group is not None:
                jobs += [unit.job(c, self.seed, self.fidelity()) for c in beyond_chosen(unit.space, base, group,
                                                                                       self.max_trials)]
        return [j for j in jobs if self.index.score(j) is None]

    def final_stage(self) -> None:
        """The stability probe of each selected configuration and its reporting seeds, together."""
        jitter = repr(float(tune_settings(self.results_dir).jitter))
        jobs = []
        for unit, base in self.chosen(self.results_dir).items():
            jobs.append([*base, f"seed={self.seed}", f"init_jitter={jitter}"])
            jobs += [[*base, f"seed={s}"] for s in self.report_seeds]
        self.run_jobs(jobs, "probe+seeds")

    def run_jobs(self, jobs: list[list[str]], stage: str) -> int:
        todo = [j for j in jobs if self.index.score(j) is None]
        launch(todo, self.launch_overrides, self.results_dir, stage, self.dry_run)
        self.failed += [shlex.join(j) for j in todo if self.index.score(j) is None]
        return len(todo)


def carried(order: list, carry: int, status) -> list:
    """The screened configurations (best first) a unit runs at the full rounds: its `carry` best, and,
    while every one carried has diverged there (status(variant) == 'diverged'), the next best, one at a
    time as each result comes: a selection is never among diverged runs alone."""
    out = list(order[:carry])
    for variant in order[carry:]:
        if not out or any(status(v) != "diverged" for v in out):
            break
        out.append(variant)
    return out


def beyond_chosen(space: Space, chosen: list[str], screened, cap: int) -> list[tuple]:
    """The configurations to screen past `chosen` (the overrides of the configuration selected at the
    full rounds): for each searched key it takes at the smallest or largest value screened (`screened`:
    the unit's screened runs, a column per key), the next value (Key.beyond, the search's own step) at
    its other values; as many as the budget (`cap` configurations screened) still allows."""
    import math

    given = dict(o.split("=", 1) for o in chosen if "=" in o)
    if any(k.name not in given for k in space.keys):
        return []
    config = tuple(float(given[k.name]) if not k.integer else int(float(given[k.name])) for k in space.keys)
    room = cap - len(screened.drop_duplicates("variant"))
    out = []
    for i, k in enumerate(space.keys):
        tried = sorted({float(v) for v in screened[k.name].dropna()}) if k.name in screened else []
        at = [end for end, v in (("low", tried[:1]), ("high", tried[-1:])) if v and math.isclose(config[i], v[0])]
        if len(tried) < 2 or not at:
            continue
        nxt = k.beyond([int(v) if k.integer else v for v in tried], at[0])
        if nxt is not None and len(out) < room:
            out.append(config[:i] + (nxt,) + config[i + 1:])
    return out
