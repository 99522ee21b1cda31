"""Hydra callback: a multirun ends with its report (summary.csv, tables, plots) in its results_dir.

Registered in conf/config.yaml under hydra.callbacks.report; turn it off with
`hydra.callbacks.report.enabled=false`. Hydra calls on_multirun_end only when every run returned:
a run that raised makes the sweep stop with that error first. So that such a sweep still ends with
the report of what did finish (listing the failure), on_multirun_start also registers an exit hook
that reports if on_multirun_end never came; it runs `python -m fedbench.report` in a fresh process,
because imports are no longer safe in an interpreter that is shutting down. The report never
changes the sweep's own outcome.
"""
from __future__ import annotations

import atexit
import subprocess
import sys
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

STOPPED = False   # set by fedbench.cli when the user stopped the sweep (Ctrl-C): no report of half a sweep


def sweep_results_dirs(config: DictConfig) -> list[str]:
    """The results_dir(s) of a sweep: the config's value, or every value of a swept results_dir."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    task = list(config.hydra.overrides.task) if "hydra" in config else []
    for override in OverridesParser.create().parse_overrides(task):
        if override.get_key_element() == "results_dir" and override.is_sweep_override():
            return list(dict.fromkeys(override.sweep_string_iterator()))
    return [str(config.results_dir)]


class ReportCallback(Callback):
    """Run fedbench.report.build_report at the end of a multirun."""

    def __init__(self, enabled: bool = True, metric: str = "final") -> None:
        self.enabled, self.metric = bool(enabled), metric
        self._pending: list[str] = []

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        if self.enabled:
            self._pending = sweep_results_dirs(config)
            atexit.register(self._report_after_error)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        if self.enabled:
            dirs = self._pending or sweep_results_dirs(config)
            self._pending = []
            self._report(dirs)

    def _report_after_error(self) -> None:
        dirs = [d for d in self._pending if (Path(d) / "runs").is_dir()]   # no runs yet: nothing to say
        self._pending = []
        if dirs and STOPPED:
            print(f"fedbench: no report of a stopped sweep (python -m fedbench.report --results-dir {dirs[0]} "
                  "writes one)", file=sys.stderr)
        elif dirs:
            print("fedbench: the sweep stopped with an error; reporting the runs that exist", file=sys.stderr)
            for results_dir in dirs:
                subprocess.run([sys.executable, "-m", "fedbench.report", "--results-dir", results_dir,
                                "--metric", self.metric], check=False)

    def _report(self, dirs: list[str]) -> None:
        from fedbench.report import ReportError, build_report

        for results_dir in dirs:
            try:
                build_report(results_dir, self.metric, echo=lambda line: print(line, file=sys.stderr))
            except ReportError as exc:
                print(f"fedbench.report: {exc}", file=sys.stderr)
            except Exception as exc:  # the report must never turn a finished sweep into a failure
                print(f"fedbench.report: failed: {type(exc).__name__}: {exc}", file=sys.stderr)
