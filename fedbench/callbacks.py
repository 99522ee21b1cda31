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


def sweep_run_dirs(config: DictConfig) -> list[Path]:
    """The run directories of a sweep's jobs: its command line's product (times the trials file of
    hydra/sweeper=trials), each job's config composed as the run composes it."""
    from hydra import compose
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from omegaconf import OmegaConf

    from fedbench.config import prepare
    from fedbench.rundir import path_for

    task = list(config.hydra.overrides.task)
    jobs = BasicSweeper.split_arguments(OverridesParser.create().parse_overrides(task), None)[0]
    trials = OmegaConf.select(config, "hydra.sweeper.trials")
    if trials:
        from hydra_plugins.fedbench_sweeper.trials import read_trials

        jobs = [job + extra for job in jobs for extra in read_trials(trials)]
    return [path_for(prepare(compose(config_name="config", overrides=list(job)), machine=False)) for job in jobs]


def results_table(summary_csv, metric: str = "final", most: int = 30) -> str:
    """A short console table of a report's runs: per setting and variant, the seeds that completed and
    the mean ± std accuracy (%), the best first within each setting; the whole tables are in tables/."""
    import pandas as pd

    runs = pd.read_csv(summary_csv)
    ok = runs[runs["status"] == "complete"]
    if not len(ok):
        return "fedbench: no complete run to show"
    acc = ok.groupby(["setting", "variant"])[f"{metric}_acc"].agg(["count", "mean", "std"]).reset_index()
    acc = acc.sort_values(["setting", "mean"], ascending=[True, False]).head(most)
    lines = [f"fedbench: {metric} accuracy (%) of the complete runs, mean ± std over seeds:"]
    for setting, group in acc.groupby("setting", sort=False):
        lines.append(f"  {setting}")
        lines += [f"    {r.variant:<40} {100 * r['mean']:6.2f} ± {100 * (r['std'] if r['std'] == r['std'] else 0):5.2f}"
                  f"  ({int(r['count'])} seed{'s' * (r['count'] != 1)})" for _, r in group.iterrows()]
    return "\n".join(lines)


class ReportCallback(Callback):
    """Run fedbench.report.build_report at the end of a multirun."""

    def __init__(self, enabled: bool = True, metric: str = "final", scope: str = "sweep") -> None:
        self.enabled, self.metric, self.scope = bool(enabled), metric, scope
        self._pending: list[str] = []
        self._sweep = None   # (its directory, its runs' directories) with scope=sweep

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        if self.enabled:
            self._pending = sweep_results_dirs(config)
            atexit.register(self._report_after_error)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        if self.enabled:
            dirs = self._pending or sweep_results_dirs(config)
            self._pending = []
            if self.scope == "sweep":
                try:
                    self._sweep = (Path(str(config.hydra.sweep.dir)), sweep_run_dirs(config))
                except Exception as exc:  # noqa: BLE001 -- fall back to the whole directory, said once
                    print(f"fedbench.report: cannot list the sweep's runs ({type(exc).__name__}: {exc}); "
                          "reporting the whole results directory", file=sys.stderr)
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
                scoped = {} if self._sweep is None else {"only": self._sweep[1], "out_dir": self._sweep[0] / "report"}
                report = build_report(results_dir, self.metric, echo=lambda line: print(line, file=sys.stderr),
                                      **scoped)
                print(results_table(report.summary_csv, self.metric), file=sys.stderr)
            except ReportError as exc:
                print(f"fedbench.report: {exc}", file=sys.stderr)
            except Exception as exc:  # the report must never turn a finished sweep into a failure
                print(f"fedbench.report: failed: {type(exc).__name__}: {exc}", file=sys.stderr)
