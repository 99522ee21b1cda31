"""The checks of a run's `method` config group: the method exists, its hyperparameters satisfy its
class's declared `ranges` (and the harness's), its official optimizer holds optimizer keys only, and
the model has what the method needs (BatchNorm, a backbone and a head). Part of fedbench.config."""
from __future__ import annotations

from omegaconf import DictConfig, OmegaConf

from fedbench.config.keys import TOP_SPECS
from fedbench.config.method_parts import STRUCTURED_KEYS, method_specs, own_specs
from fedbench.config.specs import _show, check_mapping
from fedbench.errors import ConfigError


def check_method_config(node: DictConfig, cls) -> None:
    """Every key of the method config is the harness's or the method's own, with a valid value; every
    own key has a value (its default is in conf/method/<name>.yaml); the official optimizer is sound."""
    specs = method_specs(cls)
    own = ", ".join(own_specs(cls)) or "none"
    check_mapping("method", {k: node.get(k) for k in node if k not in ("name", *STRUCTURED_KEYS)}, specs,
                  f"its own ({own}) and the harness's ({', '.join(k for k in specs if k not in own_specs(cls))})")
    missing = [k for k in own_specs(cls) if k not in node]
    if missing:
        raise ConfigError(f"method.{missing[0]}: missing; method={node.name} needs {own} (their defaults are in "
                          f"conf/method/{node.name}.yaml)")
    _check_official_optimizer(node, cls)


def method_class(name: str) -> type:
    """The registered method class `name`; ConfigError listing the valid names otherwise."""
    import methods

    names = methods.available()
    if name not in names:
        raise ConfigError(f"method={name!r}: unknown method; choose one of: {', '.join(names)}")
    return methods.get(name)


def require_batchnorm(cfg: DictConfig, cls: type, model) -> None:
    """ConfigError (with the override that fixes it) when the method needs BatchNorm and `model` has none."""
    name = cfg.method.name
    if getattr(cls, "needs_batchnorm", False) and not model.has_batchnorm():
        hint = ("model.bn=true" if "bn" in cfg.model else
                "model=cnn model.bn=true" if str(OmegaConf.select(cfg, "dataset.name", default="")).startswith("cifar")
                else "+model.bn=true")
        raise ConfigError(f"method={name!r} needs a model with BatchNorm, but model={cfg.model.name!r} has none; "
                          f"use {hint} (or model=resnet18)")


def _check_official_optimizer(method: DictConfig, cls) -> None:
    """method.official_optimizer holds run-level optimizer keys with valid values; official=true
    needs one, or an official local schedule of the method's class (`official_schedule`)."""
    from fedbench.optimizer import OPTIMIZER_KEYS

    official = method.get("official_optimizer")
    if method.get("official", False) and not official and not getattr(cls, "official_schedule", None):
        raise ConfigError(f"method.official=true: method={method.name} has no official_optimizer in "
                          f"conf/method/{method.name}.yaml and no official schedule; it trains with the run's "
                          "optimizer (drop method.official)")
    if official is None:
        return
    if not isinstance(official, DictConfig):
        raise ConfigError(f"method.official_optimizer={_show(official)}: must be a mapping of optimizer keys "
                          f"({', '.join(OPTIMIZER_KEYS)})")
    check_mapping("method.official_optimizer", official, {k: TOP_SPECS[k] for k in OPTIMIZER_KEYS},
                  ", ".join(OPTIMIZER_KEYS))


def _parts(part) -> set:
    return {part} if isinstance(part, str) else set(part)


def require_backbone_and_head(cfg: DictConfig, cls: type, model) -> None:
    """ConfigError when the method treats the backbone and the head differently (its shared or
    personal part, or its fine-tuned part, names one of them without the other) but one of them has
    no parameters (e.g. model.hidden=[]): shared and personal would collapse into FedAvg or Local,
    reported under this method's name."""
    named = {"shared": getattr(cls, "shared", "all"), "personal": getattr(cls, "personal", "none")}
    if cfg.method.get("ft_epochs", 0):
        named["method.ft_part"] = cfg.method.get("ft_part", "all")
    split = [f"{k}: {v}" for k, v in named.items() if len(_parts(v) & {"backbone", "head"}) == 1]
    empty = [part for part in ("backbone", "head") if not model.parameters_of(part)]
    if split and empty:
        shape = ", ".join(f"model.{k}={_show(cfg.model[k])}" for k in ("channels", "hidden", "head_layers")
                          if k in cfg.model)
        raise ConfigError(f"method={cfg.method.name!r} treats the backbone and the head differently "
                          f"({'; '.join(split)}), but model={cfg.model.name!r} ({shape}) has no parameters in "
                          f"its {empty[0]}; give it a hidden layer (e.g. model.hidden=[64]) or a smaller "
                          "model.head_layers")
