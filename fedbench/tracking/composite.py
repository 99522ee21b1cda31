"""All of a run's trackers behind one object whose calls never raise: a tracker that fails is
dropped with one warning line and the others (and the run) go on.

Every tracker class (to_tensorboard, to_mlflow, to_wandb) has the same shape:
  Tracker(settings, run: RunIdentity, resumed_from_round)   start, or reopen on resume
  .log_params(params)      the flat resolved config
  .log_row(step, row)      one metrics.csv row; the step is its round
  .finish(summary)         headline numbers and status, then release everything
  .close()                 release without a summary (idempotent)
"""
from __future__ import annotations

import importlib
import sys
from pathlib import Path

from omegaconf import DictConfig

from fedbench.tracking.loggers import EXTRA, LOGGERS, chosen
from fedbench.tracking.identity import identify


def warn(name: str, doing: str, exc: BaseException) -> None:
    """The one line a failing tracker costs."""
    why = " ".join(f"{type(exc).__name__}: {exc}".split())[:300]
    hint = f"; install it with {EXTRA}" if isinstance(exc, ImportError) else ""
    print(f"fedbench: warning: {name} logging stopped while {doing} ({why}){hint}; the run goes on "
          "without it and its own files are not affected", file=sys.stderr)


class Trackers:
    """The live trackers of one run, by logger name."""

    def __init__(self, trackers: dict | None = None) -> None:
        self._live = dict(trackers or {})

    def _each(self, doing: str, call) -> None:
        for name, tracker in list(self._live.items()):
            try:
                call(tracker)
            except Exception as exc:
                del self._live[name]
                warn(name, doing, exc)
                _quietly(tracker.close)

    def log_params(self, params: dict) -> None:
        self._each("logging the config", lambda t: t.log_params(params))

    def log_row(self, step: int, row: dict) -> None:
        self._each(f"logging round {step}", lambda t: t.log_row(step, row))

    def finish(self, summary: dict) -> None:
        """Log the summary's headline numbers and status, then release every tracker."""
        self._each("logging the summary", lambda t: t.finish(summary))
        self._live.clear()


def _quietly(call) -> None:
    try:
        call()
    except Exception:
        pass


def open_all(cfg: DictConfig, run_dir: Path, resumed_from_round: int) -> Trackers:
    names = chosen(cfg)
    if not names:
        return Trackers()
    try:
        run = identify(cfg, run_dir)
    except Exception as exc:
        warn("+".join(names), "naming the run", exc)
        return Trackers()
    live = {}
    for name in names:
        try:
            module = importlib.import_module(f"fedbench.tracking.{LOGGERS[name].module}")
            live[name] = module.Tracker(cfg.logger[name], run, resumed_from_round)
        except Exception as exc:
            warn(name, "starting", exc)
    trackers = Trackers(live)
    trackers.log_params(run.params)
    return trackers
