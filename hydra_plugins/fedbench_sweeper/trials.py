"""`hydra/sweeper=trials`: a multirun over an explicit list of jobs instead of a grid.

Hydra's basic sweeper runs the cartesian product of the command line's sweeps. A staged search (the
lr at the defaults, then each of the method's own keys at the best lr, then the extensions past an
edge: fedbench.tuning) and a set of reruns (each selected configuration on the reporting seeds, a
sample of published rows) are lists of jobs with different keys, not a product. This sweeper reads
them from a file, one job per line in shell words (`method=fedprox lr=0.1 method.mu=0.01`), and
crosses them with the command line's own sweep (its fixed overrides, usually): every job goes to the
launcher the command line names (hydra/launcher=local or slurm with its keys) in one batch, so a
search stage on Slurm is one array job, and locally the slots share the cores as for any sweep. A
key may be set by the command line or by the file, not both (one line names which).

    python -m fedbench -m hydra/sweeper=trials hydra.sweeper.trials=stage.txt experiment=digits_skew seed=0
"""
from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any, List

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.errors import HydraException


def read_trials(path: str | Path) -> list[list[str]]:
    """The jobs of a trials file: one list of overrides per non-empty line (`#` starts a comment)."""
    jobs = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        words = shlex.split(line, comments=True)
        if words:
            jobs.append(words)
    return jobs


def key_of(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~")


class TrialsSweeper(BasicSweeper):
    """The basic sweeper's product of the command line, times the jobs of the file `trials`."""

    def __init__(self, trials: str | None = None, max_batch_size: int | None = None, params=None) -> None:
        super().__init__(max_batch_size=max_batch_size, params=params)
        self.trials = trials

    def sweep(self, arguments: List[str]) -> Any:
        if not self.trials:
            raise HydraException("hydra/sweeper=trials needs hydra.sweeper.trials=<file> (one job's overrides "
                                 "per line)")
        if not Path(self.trials).is_file():
            raise HydraException(f"hydra.sweeper.trials={self.trials}: no such file")
        self.jobs = read_trials(self.trials)
        given = {key_of(a) for a in arguments}
        for job in self.jobs:
            clash = sorted(given & {key_of(o) for o in job})
            if clash:
                raise HydraException(f"{', '.join(clash)}: set both on the command line and by "
                                     f"hydra.sweeper.trials={self.trials}; set it in one place")
        return super().sweep(arguments)

    def split_arguments(self, overrides, max_batch_size):  # the command line's product, times the file's jobs
        product = BasicSweeper.split_arguments(overrides, None)[0]
        jobs = [base + job for base in product for job in self.jobs]
        if max_batch_size in (None, -1):
            return [jobs] if jobs else []
        return [jobs[i:i + max_batch_size] for i in range(0, len(jobs), max_batch_size)]
