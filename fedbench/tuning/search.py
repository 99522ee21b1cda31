"""The staged search of one (setting, method), replayed from the scores of the trials run so far, so that
a stopped tune resumes where it stopped and every method is searched by the same rule:

  1. the lr list (conf/tune.yaml, the same for every method) at the method's own defaults;
  2. each own key over its values, at the best configuration so far (in the yaml's order);
  3. when an own key moved off its default, the lr again: its neighbours on the lr ladder.

A stage explores a *line* (the best configuration so far with one key varied). Whenever the best value
of the line is its smallest or largest, the next value beyond is tried (Key.beyond: the same step, for
every key), until the best is interior, the key's declared range ends, or the trial budget
(`max_trials` configurations, the lr list's included: at most twice another method's) is spent. A
trial that diverged scores 0 (it lost); one that failed counts as lost once it was launched (the tune
says which). `search` returns the trials to run next (none: the search is over) and the best.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from fedbench.tuning.space import Space


@dataclass
class Outcome:
    pending: list            # configurations to run before the search can go on (empty: done)
    best: tuple | None       # the best configuration found so far
    requested: list = field(default_factory=list)   # every configuration the search asked for, in order
    capped: bool = False     # the budget cut the search short


class _Wait(Exception):
    def __init__(self, pending: list):
        self.pending = pending


def _with(config: tuple, i: int, value) -> tuple:
    return config[:i] + (value,) + config[i + 1:]


class _Replay:
    def __init__(self, space: Space, score: Callable[[tuple], float | None], cap: int):
        self.space, self.score, self.cap = space, score, cap
        self.requested: list[tuple] = []
        self.capped = False

    def need(self, configs: list[tuple]) -> list[tuple]:
        """Ask for `configs` (as many as the budget allows, in order); the asked ones with no score yet."""
        for c in configs:
            if c not in self.requested:
                if len(self.requested) >= self.cap:
                    self.capped = True
                    continue
                self.requested.append(c)
        return [c for c in configs if c in self.requested and self.score(c) is None]

    def best(self, line: list[tuple], i: int) -> tuple:
        """The best of a line by score; equal scores: nearest the middle of the line's values, then lower."""
        n = len(line)
        return max(line, key=lambda c: (round(self.score(c), 12), -abs(line.index(c) / max(n - 1, 1) - 0.5),
                                        -line.index(c)))

    def explore(self, center: tuple, i: int, base: list) -> tuple:
        """The best of key i's line through `center` over `base`, extended past an end while the best
        sits there (see the module docstring)."""
        key = self.space.keys[i]
        values = sorted({*base, center[i]})
        while True:
            pending = self.need([_with(center, i, v) for v in values])
            if pending:
                raise _Wait(pending)
            values = [v for v in values if _with(center, i, v) in self.requested]
            best = self.best([_with(center, i, v) for v in values], i)
            if len(values) < 2 or best[i] not in (values[0], values[-1]):
                return best
            nxt = key.beyond(values, "low" if best[i] == values[0] else "high")
            if nxt is None:
                return best   # the key's range ends here
            self.need([_with(center, i, nxt)])
            if _with(center, i, nxt) not in self.requested:
                return best   # the budget is spent
            values = sorted({*values, nxt})

    def run(self) -> tuple:
        space = self.space
        first = self.explore(space.start(), 0, list(space.lr.values))
        best = first
        for i in range(1, len(space.keys)):
            best = self.explore(best, i, list(space.keys[i].values))
        if best[1:] != first[1:]:   # the own keys moved: the lr's neighbours on the ladder, again
            ladder = sorted({*space.lr.values, *(c[0] for c in self.requested if c[1:] == first[1:])})
            at = ladder.index(best[0])
            around = [ladder[at - 1] if at > 0 else space.lr.beyond(ladder, "low"),
                      ladder[at + 1] if at + 1 < len(ladder) else space.lr.beyond(ladder, "high")]
            best = self.explore(best, 0, [v for v in around if v is not None])
        return best


def search(space: Space, score: Callable[[tuple], float | None], cap: int) -> Outcome:
    """Replay the search of `space` with the scores known so far (`score(config)`: a number, or None
    while the configuration has not run); the trials to run next, or the best when it is over."""
    replay = _Replay(space, score, cap)
    try:
        best = replay.run()
    except _Wait as wait:
        scored = [c for c in replay.requested if score(c) is not None]
        best = max(scored, key=lambda c: score(c)) if scored else None
        return Outcome(wait.pending, best, replay.requested, replay.capped)
    return Outcome([], best, replay.requested, replay.capped)
