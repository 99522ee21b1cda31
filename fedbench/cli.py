"""`python -m fedbench [overrides] [-m overrides]`: Hydra entry point.

Hydra's parser wants `-m/--multirun` before the overrides; users write it anywhere (the product
card's own example puts it in the middle), so the flag is moved to the front first.

Before Hydra starts, `precheck` validates every job the command line describes (each combination of
a sweep) with fedbench.config.prepare, so a bad value costs one line (`fedbench: error: ...`, exit
code 2) before any job runs, instead of Hydra's multi-line errors or a sweep that stops half-way.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf, open_dict

from fedbench.errors import FedbenchError

CONF_DIR = str(Path(__file__).resolve().parents[1] / "conf")
MULTIRUN_FLAGS = ("-m", "--multirun")


def normalize_argv(args: list[str]) -> list[str]:
    flags = [a for a in args if a in MULTIRUN_FLAGS]
    return flags[:1] + [a for a in args if a not in MULTIRUN_FLAGS]


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="config")
def hydra_main(cfg: DictConfig):
    from fedbench.rundir.checkpoint import Interrupted
    from fedbench.run import run

    try:
        return run(cfg)
    except Interrupted as exc:   # Ctrl-C or SIGTERM: stopped at a round's end, with a checkpoint
        stopped(str(exc), exc.exit_code)
    except FedbenchError as exc:
        print(f"fedbench: error: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)


def stopped(message: str, code: int = 130):
    """A run or sweep stopped by the user: one line, no report of a half sweep, exit `code`."""
    from fedbench import callbacks

    callbacks.STOPPED = True
    print(f"fedbench: {message}", file=sys.stderr, flush=True)
    sys.exit(code)


# launchers whose jobs run on other machines: skip the checks that depend on this one (GPU present)
REMOTE_LAUNCHERS = ("slurm", "submitit_slurm")
MAX_PRECHECK_JOBS = 1000  # a larger sweep checks its first 1000 combinations up front (every job checks itself)


def _one_line(exc: BaseException) -> str:
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip() and not ln.strip().startswith("See https")]
    return "; ".join(lines[:2]) or type(exc).__name__


def precheck(args: list[str]) -> None:
    """Compose and validate every job of `args` (Hydra overrides, `-m` anywhere); ConfigError with
    one line on the first problem. Command lines with other Hydra flags (--help, --cfg, ...), or a
    sweep kind that cannot be listed up front, are left to Hydra; so is anything this check itself
    fails on unexpectedly (every job still validates itself before touching disk)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import OverrideParseException

    from fedbench.config import group_options
    from fedbench.errors import ConfigError

    groups = {p.name for p in Path(CONF_DIR).iterdir() if p.is_dir() and p.name != "hydra"}

    if any(a.startswith("-") and a not in MULTIRUN_FLAGS for a in args):
        return
    multirun = any(a in MULTIRUN_FLAGS for a in args)
    parser = OverridesParser.create()
    overrides = []
    for arg in (a for a in args if a not in MULTIRUN_FLAGS):
        try:
            overrides += parser.parse_overrides([arg])
        except OverrideParseException as exc:
            raise ConfigError(f"{arg}: not a valid override ({_one_line(exc)}); write key=value") from None
    remote = False
    fixed: list[str] = []                  # overrides every job has
    structural: list[list[str]] = []       # sweeps over groups or added/deleted keys: composed per value
    plain: list[list[tuple[str, object]]] = []  # sweeps over plain values: set on the composed config
    for o in overrides:
        if o.is_hydra_override():
            if o.key_or_group == "hydra/launcher" and not o.is_sweep_override():
                remote = str(o.value()) in REMOTE_LAUNCHERS
            continue
        key = o.get_key_element()
        if o.key_or_group == "logger" and o.is_sweep_override():
            raise ConfigError(f"{o.input_line}: a sweep over loggers would run the same job once per logger, "
                              "in one run directory; to log to several trackers at once write "
                              "logger=[tensorboard,mlflow]")
        if o.is_sweep_override():
            if not multirun:
                raise ConfigError(f"{o.input_line}: several values need -m (--multirun) to run one job per "
                                  "value; for a list value write key=[a,b]")
            if not o.is_discrete_sweep() or o.value_type.name == "GLOB_CHOICE_SWEEP":
                return
            values = list(o.sweep_string_iterator())
        else:
            values = [o.get_value_element_as_str()] if not o.is_delete() else []
        if o.key_or_group in groups and o.package is None and not o.is_delete():
            files = {p.stem for p in Path(CONF_DIR, o.key_or_group).glob("*.yaml")}
            for v in (c for v in values for c in _choices(parser, key, v, o.key_or_group)):
                if v not in files:
                    raise ConfigError(f"{o.key_or_group}={v!r}: unknown {o.key_or_group}; choose one of: "
                                      f"{', '.join(group_options(o.key_or_group))}")
        if not o.is_sweep_override():
            fixed.append(o.input_line)
        elif o.key_or_group in groups or o.is_add() or o.is_force_add() or o.package is not None:
            structural.append([f"{key}={v}" for v in values])
        else:
            plain.append([(o.key_or_group, parser.parse_override(f"{key}={v}").value()) for v in values])
    given = {o.key_or_group for o in overrides}
    _validate_jobs(fixed, structural, plain, machine=not remote, multirun=multirun, given=given, groups=groups)


def _validate_jobs(fixed: list[str], structural: list[list[str]], plain: list[list[tuple[str, object]]],
                   machine: bool, multirun: bool = False, given: set = frozenset(), groups=()) -> None:
    """Compose once per combination of the structural sweeps (Hydra composition is the slow part),
    then set each combination of the plain sweeps on a copy, as Hydra's override would, and check it.
    A multirun also sweeps the plain `hydra.sweeper.params` of the config (e.g. an experiment preset)
    that the command line does not override."""
    import itertools

    from hydra import compose, initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from fedbench.config import prepare
    from fedbench.errors import ConfigError
    from fedbench.sweep_dirs import RunDirClaims

    claims = RunDirClaims()  # a sweep whose jobs would share a run directory is refused here
    first = [f"{axis[0][0]}={_override_str(axis[0][1])}" for axis in plain]
    checked = 0
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3", job_name="fedbench"):
        for combo in itertools.product(*structural):
            job = fixed + list(combo)
            try:
                base = compose(config_name="config", overrides=job + first, return_hydra_config=multirun)
            except (HydraException, OmegaConfBaseException) as exc:
                raise ConfigError(_unknown_key(str(exc), job + first, compose) or _one_line(exc)) from None
            axes = list(plain)
            if multirun:
                axes += _config_sweeps(base, given, groups)
                with open_dict(base):
                    del base["hydra"]
            for values in itertools.product(*axes):
                cfg = base.copy()
                for key, value in values:
                    OmegaConf.update(cfg, key, value, merge=True)
                claims.claim(prepare(cfg, machine=machine))
                checked += 1
                if checked >= MAX_PRECHECK_JOBS:
                    return


def _config_sweeps(cfg, given: set, groups) -> list[list[tuple[str, object]]]:
    """The plain sweeps a config declares under hydra.sweeper.params (keys not on the command line)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    params = OmegaConf.select(cfg, "hydra.sweeper.params") or {}
    parser, axes = OverridesParser.create(), []
    for key, value in params.items():
        o = parser.parse_override(f"{key}={value}")
        if key in given or o.key_or_group in groups or o.is_hydra_override():
            continue
        values = list(o.sweep_string_iterator()) if o.is_discrete_sweep() else [o.get_value_element_as_str()]
        axes.append([(o.key_or_group, parser.parse_override(f"{key}={v}").value()) for v in values])
    return axes


MULTI_CHOICE = ("logger",)   # groups of which a run may choose several options: logger=[tensorboard,mlflow]


def _choices(parser, key: str, value: str, group: str) -> list[str]:
    """The group options one override value names: one, or several for a list (logger=[a,b])."""
    parsed = parser.parse_override(f"{key}={value}").value() if value.startswith("[") else value
    if not isinstance(parsed, list):
        return [str(parsed)]
    if group not in MULTI_CHOICE:
        from fedbench.errors import ConfigError

        raise ConfigError(f"{key}={value}: a run has one {group}; to run one job per {group} write "
                          f"-m {key}={','.join(map(str, parsed))}")
    return [str(v) for v in parsed]


def _override_str(value) -> str:
    from hydra.core.override_parser.types import Override

    return Override._get_value_element_as_str(value)


def _unknown_key(message: str, job: list[str], compose) -> str | None:
    """Hydra's "Could not override 'k'" as one line that lists the keys that do exist there."""
    import re

    m = re.match(r"Could not override '([^']+)'", message)
    if not m:
        return None
    key = m.group(1)
    bad = next((o for o in job if o.split("=", 1)[0] == key), f"{key}=...")
    parent, _, leaf = key.rpartition(".")
    node = None
    try:
        cfg = compose(config_name="config", overrides=[o for o in job if o != bad])
        node = OmegaConf.select(cfg, parent) if parent else cfg
        valid = ", ".join(sorted(str(k) for k in node.keys() if k != "name")) if node is not None else "?"
    except Exception:
        valid = "?"
    name = key.split(".")[1] if key.startswith("logger.") and key.count(".") >= 2 else ""
    if node is None and name and Path(CONF_DIR, "logger", f"{name}.yaml").is_file():
        return f"{bad}: logger {name!r} is not chosen; add logger={name} (or several: logger=[tensorboard,{name}])"
    where = f"{parent}" if parent else "the top level"
    return f"{bad}: unknown key {leaf!r} in {where}; valid keys: {valid}"


def main() -> None:
    if any(a in ("--help", "-h") for a in sys.argv[1:]):   # fedbench's own help (Hydra's: --hydra-help)
        from fedbench.help import text

        sys.stdout.write(text())
        return
    sys.argv = [sys.argv[0]] + normalize_argv(sys.argv[1:])
    try:
        precheck(sys.argv[1:])
    except FedbenchError as exc:
        print(f"fedbench: error: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except Exception:  # the check must never block a command Hydra itself would accept
        if os.environ.get("FEDBENCH_DEBUG"):
            raise
    try:
        hydra_main()
    except KeyboardInterrupt as exc:   # Ctrl-C outside a run's rounds, or a sweep the launcher stopped
        stopped(str(exc) if str(exc) else "stopped by Ctrl-C; run the same command again to resume "
                "(finished runs are skipped, interrupted ones resume from their last checkpoint)")
