"""Models: every model is a `backbone` followed by a `head`, with stable parameter names, registered by
name like datasets and methods (one module each in this package, with the keys its yaml may set).

Methods say what is shared by naming a part ("backbone", "head", "bn", "all", "none"), never by
listing layers. The head is the last `head_layers` blocks (default 1: the final linear layer).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from fedbench.models.split import PARTS, SplitModel
from fedbench.registry import Registry

MODELS = Registry(__name__, "model")


@dataclass(frozen=True)
class ModelRecord:
    """A model: its name (model=<name>), its builder build(input_shape, num_classes, **keys), the specs
    of the keys conf/model/<name>.yaml may set (fedbench.config checks them) and an input shape it takes."""

    name: str
    build: Callable[..., SplitModel]
    specs: dict[str, Any] = field(default_factory=dict)
    example: tuple = ()   # an input shape it takes (the tests build every model with it)


def register(name: str, specs: dict, example: tuple):
    """Decorator: register the builder function as model `name` with the specs of its keys."""
    def wrap(build):
        MODELS.register(ModelRecord(name, build, specs, example))
        return build
    return wrap


def build_model(params: dict, input_shape, num_classes: int) -> SplitModel:
    """Build the model named by `params['name']` with the remaining params as keyword arguments."""
    params = dict(params)
    return MODELS.get(params.pop("name")).build(tuple(input_shape), num_classes, **params)


__all__ = ["MODELS", "PARTS", "ModelRecord", "SplitModel", "build_model", "register"]
