"""Validate and complete the composed config before any work: each problem is one ConfigError line
that names the key, the value and what is allowed.

`prepare(cfg)` checks everything that can be checked without loading data: every top-level key's
type and range, the method/dataset/partition/model names, their parameters (method hyperparameters
through the method class's declarative `ranges`, e.g. `ranges = {"lam": "[0, inf)"}`; dataset and
partition parameters through their records' `ranges`, fedbench.data.datasets / .partitions), whether
the model fits the dataset's input shape and has the BatchNorm a method needs, whether the partition
can be built for the dataset (its record's feasibility check against the dataset record's facts), the
device, and whether results_dir is writable. It creates nothing on disk. What needs the data itself
(e.g. a Dirichlet split that cannot meet min_samples) is checked by the data stage, still before the
run directory is created.

Range specs (a small, readable language; alternatives joined by " or "):
  "(0, inf)", "[0, 1)", "int [1, inf)"   numbers in an interval (int: integers only; bools never)
  "null", "bool", "str", "auto"          None, true/false, any non-empty string, the literal word
  "list of int [1, inf)"                 a list whose items all satisfy the spec after "list of"
  ("kl", "mse", "cosine")                a tuple: one of these values
"""
from __future__ import annotations

import functools
import os
import tempfile
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf, open_dict

from fedbench.config.keys import TOP_SPECS
from fedbench.data.datasets import DATASETS
from fedbench.data.holdout import total_clients
from fedbench.data.partitions import PARTITIONS, check_feasible
from fedbench.data.params import require_params
from fedbench.errors import ConfigError
from fedbench.config.method_checks import (check_method_config, method_class,
                                            require_backbone_and_head, require_batchnorm)
from fedbench.config.specs import _show, check, check_mapping

CONF_DIR = Path(__file__).resolve().parents[2] / "conf"
GROUPS = ("method", "dataset", "partition", "model")

# -- the checks ----------------------------------------------------------------------------------
@functools.lru_cache(maxsize=None)
def _yaml_keys(relpath: str) -> frozenset:
    path = CONF_DIR / relpath
    return frozenset(OmegaConf.load(path).keys()) if path.is_file() else frozenset()


def group_options(group: str) -> list[str]:
    """The options of a config group: conf/<group>/*.yaml."""
    return sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))


def _check_top(cfg: DictConfig, machine: bool = True) -> None:
    known = set(_yaml_keys("config.yaml")) | set(GROUPS) | {"hydra", "logger"}
    check_mapping("", cfg, {}, ", ".join(sorted(known - {"hydra", "defaults"})), extra=known)
    for key, spec in TOP_SPECS.items():
        value = OmegaConf.select(cfg, key, default=KeyError)
        if value is not KeyError:
            check(key, value, spec)
    device = cfg.device
    if not isinstance(device, str) or (device not in ("auto", "cpu", "cuda") and not device.startswith("cuda:")):
        raise ConfigError(f"device={device!r}: must be one of: auto, cpu, cuda, cuda:N")
    if device.startswith("cuda") and machine:
        if not torch.cuda.is_available():
            raise ConfigError(f"device={device!r}: no CUDA GPU is visible here; use device=cpu or device=auto")
        if ":" in device:
            index = device.split(":", 1)[1]
            count = torch.cuda.device_count()
            if not index.isdigit() or int(index) >= count:
                raise ConfigError(f"device={device!r}: must be cuda:N with N in [0, {count - 1}] "
                                  f"({count} GPU(s) visible)")
    if cfg.data.val_frac + cfg.data.test_frac >= 1:
        raise ConfigError(f"data.test_frac={cfg.data.test_frac!r}: data.val_frac + data.test_frac must be < 1 "
                          f"(data.val_frac={cfg.data.val_frac!r}); every client needs training samples")


def _check_logger(cfg: DictConfig, machine: bool) -> None:
    """logger: the chosen trackers (keys of cfg.logger, conf/logger/), their keys, their packages."""
    from fedbench.tracking.loggers import EXTRA, LOGGERS, is_installed

    node = cfg.get("logger")
    choose = f"choose from: none, {', '.join(LOGGERS)}, or several as logger=[tensorboard,mlflow]"
    if node is None:
        return
    if not isinstance(node, DictConfig):
        raise ConfigError(f"logger={_show(node)}: not a logger; {choose}")
    for name in node:
        if name not in LOGGERS:
            raise ConfigError(f"logger.{name}: unknown logger; {choose}")
        specs, sub = LOGGERS[name].specs, node.get(name)
        if not isinstance(sub, DictConfig):
            raise ConfigError(f"logger.{name}={_show(sub)}: must hold the keys of conf/logger/{name}.yaml "
                              f"({', '.join(specs) or 'none'}); choose it with logger={name}")
        check_mapping(f"logger.{name}", sub, specs, f"{', '.join(specs) or '(none)'} (logger={name})")
        if machine and not is_installed(name):
            raise ConfigError(f"logger={name}: the package {LOGGERS[name].pip_name!r} is not installed; "
                              f"install fedbench's tracking extra: {EXTRA}")


def _check_directory(key: str, value: str, writable: bool = True) -> None:
    """`value` must be (or be creatable as) a directory, and writable unless writable=False;
    nothing is left on disk."""
    path = Path(os.path.expanduser(value)).absolute()
    probe = path
    while not os.path.lexists(probe) and probe != probe.parent:
        probe = probe.parent
    from_env = key == "data.root" and os.path.expanduser(os.environ.get("FEDBENCH_DATA", "")) == value
    source = " (from $FEDBENCH_DATA)" if from_env else ""
    if not probe.is_dir():
        what = "is not a directory" if probe == path else f"cannot be created: {probe} is not a directory"
        raise ConfigError(f"{key}={value!r}{source}: {what}; choose a {'writable ' * writable}directory")
    if not writable:
        return
    try:
        if not os.access(probe, os.W_OK | os.X_OK):
            raise PermissionError(f"no write permission on {probe}")
        with tempfile.TemporaryFile(dir=probe, prefix=".fedbench-probe-"):
            pass
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise ConfigError(f"{key}={value!r}: not writable ({reason} in {probe}); choose a writable "
                          "directory") from None


def _check_record(group: str, registry, node: DictConfig):
    """The record of `node`'s option (dataset, partition); every key of its ranges present and valid."""
    record = registry.get(node.name)
    check_mapping(group, node, record.ranges, owner=f"{group}={node.name}")
    require_params(group, record.name, node, record.ranges)
    return record


def _check_dataset(cfg: DictConfig) -> dict:
    """The dataset's parameters against its record; returns its facts (`DatasetRecord.info`)."""
    record = _check_record("dataset", DATASETS, cfg.dataset)
    if record.check is not None:
        record.check(cfg.dataset)
    return record.info(cfg.dataset)


def _check_partition(cfg: DictConfig, info: dict) -> None:
    """The partition's parameters against its record, and whether it can be built for this dataset."""
    record = _check_record("partition", PARTITIONS, cfg.partition)
    check_feasible(record.name, cfg.partition, total_clients(cfg), info)


@functools.lru_cache(maxsize=32)
def _probe_model(params_json: str, shape: tuple, classes: int):
    """The model built on CPU once per (params, shape, classes), to check it fits and has BatchNorm."""
    import json

    from fedbench.models import build_model

    with torch.random.fork_rng(devices=[]):
        return build_model(json.loads(params_json), shape, classes)


def _check_model(cfg: DictConfig, info: dict | None):
    from fedbench.models import MODELS

    m = cfg.model
    if m.name not in MODELS:
        raise ConfigError(f"model={m.name!r}: unknown model; choose one of: {', '.join(MODELS.names())}")
    check_mapping("model", m, MODELS.get(m.name).specs, extra=_yaml_keys(f"model/{m.name}.yaml"),
                  owner=f"model={m.name}")
    if info is None:
        return None
    import json

    try:
        return _probe_model(json.dumps(OmegaConf.to_container(m, resolve=True), sort_keys=True),
                            tuple(info["shape"]), int(info["classes"]))
    except (ValueError, TypeError, RuntimeError) as exc:
        msg = " ".join(str(exc).split())
        if msg.startswith("model."):
            raise ConfigError(msg) from None
        raise ConfigError(f"model={m.name!r} does not fit dataset={cfg.dataset.name} (inputs of shape "
                          f"{tuple(info['shape'])}): {msg}") from None


def _check_method(cfg: DictConfig, model) -> None:
    cls = method_class(cfg.method.name)
    check_method_config(cfg.method, cls)
    if model is not None:
        require_batchnorm(cfg, cls, model)
        require_backbone_and_head(cfg, cls, model)


def prepare(cfg: DictConfig, machine: bool = True) -> DictConfig:
    """Return a validated copy of `cfg` (with data.root expanded); ConfigError on the first problem.
    machine=False leaves out what depends on the machine the run will use (GPU present, results_dir
    writable): the command line of a Slurm sweep is checked on a login node."""
    cfg = cfg.copy()
    for group in GROUPS:
        if not isinstance(cfg.get(group), DictConfig) or "name" not in cfg[group]:
            raise ConfigError(f"{group}={_show(cfg.get(group))}: must be one of: {', '.join(group_options(group))}")
    _check_top(cfg, machine)
    with open_dict(cfg):
        cfg.data.root = os.path.expanduser(str(cfg.data.root))
    info = _check_dataset(cfg)
    rotations = cfg.data.get("rotations", 1)
    if rotations not in (1, 2, 4):
        raise ConfigError(f"data.rotations={rotations!r}: must be 1 (none), 2 or 4 (client k's images turned by "
                          "(k mod R) x 360/R degrees)")
    if rotations > 1 and not info["images"]:
        images = ", ".join(r.name for r in DATASETS.records() if r.images)
        raise ConfigError(f"data.rotations={rotations}: dataset={cfg.dataset.name} has no images to rotate; use "
                          f"data.rotations=1 or an image dataset ({images})")
    _check_partition(cfg, info)
    model = _check_model(cfg, info)
    _check_method(cfg, model)
    _check_logger(cfg, machine)
    if machine:
        _check_directory("results_dir", str(cfg.results_dir))
        _check_directory("data.root", str(cfg.data.root), writable=False)
    return cfg
