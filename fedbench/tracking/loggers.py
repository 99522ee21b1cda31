"""The `logger` config group's options: which module, library and config keys each tracker has, and
which ones a config chooses (fedbench.tracking re-exports them; composite.py reads them)."""
from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field

from omegaconf import DictConfig

EXTRA = "pip install -e '.[tracking]'"


@dataclass(frozen=True)
class Logger:
    """One option of the `logger` group: its module here, the package it needs, its config keys."""
    module: str                 # fedbench.tracking.<module>, imported only when the logger is chosen
    package: str                # the top-level import the library provides
    pip_name: str               # what pip installs it as
    specs: dict = field(default_factory=dict)   # keys under logger.<name> (fedbench.config.specs language)


LOGGERS: dict[str, Logger] = {
    "tensorboard": Logger("to_tensorboard", "tensorboard", "tensorboard"),
    "mlflow": Logger("to_mlflow", "mlflow", "mlflow-skinny",
                     {"tracking_uri": "null or str", "experiment": "str"}),
    "wandb": Logger("to_wandb", "wandb", "wandb",
                    {"project": "str", "entity": "null or str", "mode": ("auto", "offline", "online")}),
}


def chosen(cfg: DictConfig) -> list[str]:
    """The loggers `cfg` chooses (the keys of cfg.logger), in LOGGERS order."""
    node = cfg.get("logger")
    return [name for name in LOGGERS if isinstance(node, DictConfig) and name in node]


def is_installed(name: str) -> bool:
    """Whether the library logger `name` needs can be imported here (without importing it)."""
    try:
        return importlib.util.find_spec(LOGGERS[name].package) is not None
    except (ImportError, ValueError):
        return False
