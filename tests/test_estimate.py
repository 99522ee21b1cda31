"""The wall time a tune or a publication will take, said before it starts (fedbench.tuning.estimate):
the search replayed with the scores on disk, the runs already finished not counted again, seconds
from the runs on disk."""
from __future__ import annotations

import json
from types import SimpleNamespace

import pandas as pd
import pytest

from fedbench.tuning.driver import Unit
from fedbench.tuning.estimate import Plan, Timings, describe, search_runs
from fedbench.tuning.space import space_of, tune_settings

LR = tuple(float(v) for v in tune_settings().lr)


class Disk:
    """An index whose runs on disk score as given (by their overrides), the others not run."""

    def __init__(self, scores=None):
        self.scores = scores or {}
        self.asked: list = []

    def score(self, job):
        self.asked.append(tuple(job))
        return self.scores.get(tuple(job))


TUNE = SimpleNamespace(seed=0, fidelity=lambda: ("rounds=15",), max_trials=16)


def job(unit, config):
    return tuple(unit.job(config, 0, ("rounds=15",)))


def test_a_fresh_search_is_its_grid_with_an_interior_optimum():
    """Nothing on disk: FedAvg asks for its lr list; FedProx for the lr list, its mu grid at the best lr
    (mu moved off its default 1.0: the middle of the grid is best) and the lr's two neighbours again."""
    fedavg, fedprox = Unit((), "fedavg", LR), Unit((), "fedprox", LR)
    assert search_runs(TUNE, Disk(), fedavg) == (len(LR), 0, 16 - len(LR))   # extensions: the budget left
    mus = space_of("fedprox", LR).keys[1].values
    asked = len(LR) + len(mus) - 1 + 2
    assert search_runs(TUNE, Disk(), fedprox) == (asked, 0, 16 - asked)


def test_runs_on_disk_are_done_and_an_edge_on_disk_asks_for_more():
    unit = Unit((), "fedavg", LR)
    interior = {job(unit, (lr,)): -abs(lr - 0.1) for lr in LR}    # best 0.1: interior
    assert search_runs(TUNE, Disk(interior), unit) == (0, len(LR), 0)   # over: nothing more can come
    half = dict(list(interior.items())[:3])
    assert search_runs(TUNE, Disk(half), unit) == (len(LR) - 3, 3, 16 - len(LR))
    edge = {job(unit, (lr,)): lr for lr in LR}                      # the largest lr best: extend past it
    left, done, _ = search_runs(TUNE, Disk(edge), unit)
    assert done == len(LR) and left >= 1


def test_seconds_from_runs_of_the_same_length_first(tmp_path):
    """Short runs carry their fixed costs over fewer rounds: a run of 100 rounds is timed by the runs of
    100 rounds of its method, else of its dataset scaled by the method's relative cost, else by seconds
    per round."""
    for i, (method, wall, rounds) in enumerate([("fedavg", 30.0, 15), ("fedavg", 50.0, 25), ("fedavg", 10.0, 10),
                                                ("pfedme", 120.0, 15), ("fedper", 90.0, 100),
                                                ("fedper", 110.0, 100)]):
        run = tmp_path / "runs" / f"r{i}"
        run.mkdir(parents=True)
        (run / "summary.json").write_text(json.dumps({"dataset": "fmnist", "method": method, "wall_time_s": wall,
                                                      "rounds_done": rounds}))
    timings = Timings([tmp_path])
    assert timings.count == 6
    assert timings.run_seconds("fmnist", "fedper", 100) == pytest.approx(100.0)     # its own runs at 100
    # seconds per round: fedavg 2, pfedme 8; the dataset's median over every run
    per_round = {"fedavg": 2.0, "pfedme": 8.0}
    dataset = float(pd.Series([2.0, 2.0, 1.0, 8.0, 0.9, 1.1]).median())
    assert timings.run_seconds("fmnist", "pfedme", 100) == pytest.approx(100.0 * per_round["pfedme"] / dataset)
    assert timings.run_seconds("fmnist", "fedavg+bn", 15) == pytest.approx(30.0)     # its base method's runs
    assert timings.run_seconds("fmnist", "ditto", 100) == pytest.approx(100.0)       # the dataset's at 100
    assert timings.run_seconds("fmnist", "pfedme", 50) == pytest.approx(400.0)       # no run of 50: per round
    assert timings.run_seconds("fmnist", "ditto", 50) == pytest.approx(50 * dataset)
    assert timings.run_seconds("digits", "fedavg", 100) is None


def test_wall_time_is_the_runs_seconds_over_the_runs_at_once():
    plan = Plan()
    plan.add("search", 10, 5, 360.0, extra=4)
    plan.add("final", 2, 0, 1800.0)
    plan.add("final", 3, 0, None)
    text = describe(plan, SimpleNamespace(count=7), slots=2)
    assert text.startswith("15 runs left (search 10 (5 done), final 5 (0 done)): ~1.0 h of wall time at 2 runs")
    assert "add at most 4 runs (+0.2 h)" in text and "3 more runs not timed" in text
    both = Plan()
    both += plan
    both += plan
    assert both.runs == {"search": 20, "final": 10} and both.seconds == 2 * plan.seconds
