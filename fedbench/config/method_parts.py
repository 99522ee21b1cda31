"""A method config (the run config's `method` group) in parts, each read by the one module that uses it:

  own           the method's own hyperparameters: the keys its class declares in `ranges` (with
                their specs), defaults in conf/method/<name>.yaml; read by the method as `self.hp`,
                frozen into plain attributes once (Hyperparameters)
  capabilities  `weighting` (null: the class's declaration); set on the method instance (build_method)
  optimizer     lr, momentum, weight_decay, lr_schedule, lr_milestones, lr_gamma (null: the run's),
                official, official_optimizer; read by fedbench.optimizer
  finetune      ft_epochs, ft_lr, ft_momentum, ft_batch_size, ft_part; read by the fine-tuning add-on
                (fedbench.federation.finetune)
  search        the tuning grid; read by fedbench.tune
Every key but a method's own has its default once, in conf/config.yaml's `method:` block, so a
method's yaml holds its own keys and only the harness keys it changes.
"""
from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from omegaconf import DictConfig, OmegaConf

from fedbench.config.keys import TOP_SPECS, or_null
from fedbench.optimizer import OPTIMIZER_KEYS

FINETUNE_KEYS = ("ft_epochs", "ft_lr", "ft_momentum", "ft_batch_size", "ft_part")

# The harness's keys of every method config and what each may hold.
HARNESS_METHOD_SPECS: dict[str, Any] = {
    "weighting": "samples or uniform or null",
    **{key: or_null(TOP_SPECS[key]) for key in OPTIMIZER_KEYS},
    "official": "bool",
    "ft_epochs": "int [0, inf)",
    "ft_lr": "(0, inf) or null",
    "ft_momentum": "[0, 1) or null",
    "ft_batch_size": "int [1, inf) or null",
    "ft_part": ("all", "head", "backbone"),
}
# keys whose values are checked by their own readers (fedbench.config.method_checks, fedbench.tune)
STRUCTURED_KEYS = ("official_optimizer", "search")


class Hyperparameters(SimpleNamespace):
    """A method's own hyperparameters as plain, read-only attributes (built once; reading one costs
    what reading any attribute does, not an OmegaConf lookup), and `official` (whether the run
    trains with the method's official optimizer, which some methods' updates depend on)."""

    def __setattr__(self, key, value):
        raise AttributeError(f"method hyperparameters are read-only (set method.{key}=... on the command line)")


def own_specs(cls) -> dict[str, Any]:
    """The specs of the method's own keys: its classes' `ranges`, base classes first."""
    specs: dict[str, Any] = {}
    for klass in reversed(cls.__mro__):
        specs.update(vars(klass).get("ranges") or {})
    return specs


def method_specs(cls) -> dict[str, Any]:
    """Every spec of a method config: the harness's and the method's own."""
    return {**HARNESS_METHOD_SPECS, **own_specs(cls)}


def hyperparameters(cls, node: DictConfig | dict) -> Hyperparameters:
    """The own part of method config `node` for method class `cls`."""
    plain = OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else dict(node)
    return Hyperparameters(**{k: plain[k] for k in own_specs(cls)}, official=bool(plain.get("official", False)))


def build_method(cls, node: DictConfig, model):
    """The method instance: `cls(hyperparameters, model)`, then the config's capability overrides."""
    method = cls(hyperparameters(cls, node), model)
    if node.get("weighting") is not None:
        method.weighting = str(node.weighting)
    return method
