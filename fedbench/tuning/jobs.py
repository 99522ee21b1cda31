"""The jobs of a tune: the settings a command line names, where each job's run lives and what it scored,
and a list of jobs launched as ONE multirun through the launcher the user names (hydra/sweeper=trials:
hydra/launcher=slurm with its keys submits one array job; the local launcher shares out the cores)."""
from __future__ import annotations

import itertools
import shlex
import subprocess
import sys
import time
from pathlib import Path

from fedbench.errors import ConfigError


def split_command_line(overrides: list[str]) -> tuple[list[list[str]], list[str], list[str]]:
    """(settings: one list of overrides per combination of the command line's sweeps, without seed;
    launch: the hydra overrides every multirun gets (launcher and its keys); seeds: the seed values)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    axes, launch, seeds = [], [], []
    for o in OverridesParser.create().parse_overrides(list(overrides)):
        if o.is_hydra_override() or o.get_key_element().startswith("hydra."):
            launch.append(o.input_line)
            continue
        key = o.get_key_element()
        values = list(o.sweep_string_iterator()) if o.is_sweep_override() else [o.get_value_element_as_str()]
        if key == "seed":
            seeds = values
            continue
        axes.append([f"{key}={v}" for v in values])
    return [list(combo) for combo in itertools.product(*axes)], launch, seeds


class RunIndex:
    """Where the run a list of overrides configures lives (its config composed as the run composes it)
    and what it scored; composition is cached per job."""

    def __init__(self, metric: str):
        from hydra import initialize_config_dir

        from fedbench.config import CONF_DIR

        self.metric = metric
        self._context = initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3", job_name="fedbench.tune")
        self._context.__enter__()
        self._configs: dict[tuple, object] = {}

    def close(self) -> None:
        self._context.__exit__(None, None, None)

    def config(self, job: list[str]):
        """The job's validated config, as its run will have it."""
        from hydra import compose

        from fedbench.config import prepare

        key = tuple(job)
        if key not in self._configs:
            self._configs[key] = prepare(compose(config_name="config", overrides=list(job)), machine=False)
        return self._configs[key]

    def path(self, job: list[str]) -> Path:
        from fedbench.rundir import path_for

        return path_for(self.config(job))

    def setting_key(self, job: list[str]) -> str:
        """The setting the job's run belongs to, as the report groups runs (report.collect.setting_key)."""
        from fedbench.report.collect import flatten, setting_key
        from fedbench.rundir import scientific_config

        return setting_key(flatten(scientific_config(self.config(job))))

    def summary(self, job: list[str]) -> dict | None:
        from fedbench.rundir import RunDir

        return RunDir(self.path(job)).summary()

    def score(self, job: list[str]) -> float | None:
        """The job's validation score: its <metric>_val_acc when complete, 0 when it diverged (it lost),
        None when it has no finished run of this code."""
        from fedbench.code import code_id, recorded_id

        s = self.summary(job)
        if not s or s.get("status") not in ("complete", "diverged") or recorded_id(s) != code_id():
            return None   # not finished, or by other code (the launched run reruns it)
        value = s.get(f"{self.metric}_val_acc") if s["status"] == "complete" else 0.0
        return float(value) if value is not None and value == value else 0.0


def launch(jobs: list[list[str]], launch_overrides: list[str], results_dir: Path, stage: str,
           dry_run: bool = False) -> int:
    """Run `jobs` as one multirun (hydra/sweeper=trials) with the user's launcher; the trials file is
    kept under <results_dir>/sweeps/trials/. Returns the multirun's exit code (0 when no job)."""
    if not jobs:
        return 0
    folder = Path(results_dir) / "sweeps" / "trials"
    path = folder / f"{time.strftime('%Y-%m-%d_%H-%M-%S')}_{stage}.txt"
    if not dry_run:
        folder.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(shlex.join(j) + "\n" for j in jobs), encoding="utf-8")
    argv = ["-m", "hydra/sweeper=trials", f"hydra.sweeper.trials={path}", f"hydra.sweep.dir={folder.parent / path.stem}",
            *launch_overrides, "hydra.callbacks.report.enabled=false"]
    print(f"fedbench.tune: {stage}: {len(jobs)} run{'s' * (len(jobs) != 1)}: python -m fedbench "
          + " ".join(argv), file=sys.stderr, flush=True)
    if dry_run:
        for job in jobs:
            print("  " + shlex.join(job), file=sys.stderr)
        return 0
    return subprocess.call([sys.executable, "-m", "fedbench", *argv])


def check_no_searched_keys(settings: list[list[str]], searched: set[str]) -> None:
    """ConfigError when the command line fixes a key the search varies."""
    given = {o.split("=", 1)[0].lstrip("+~") for s in settings for o in s}
    clash = sorted(given & searched)
    if clash:
        raise ConfigError(f"{', '.join(clash)}: searched by fedbench.tune; drop it from the command line (the "
                          "lr list is conf/tune.yaml's, a method's own keys are `search` in its yaml)")
    if "method" in given:
        raise ConfigError("method=...: choose methods with --methods, not an override")
