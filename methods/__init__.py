"""Method registry. A method is one module in this package that decorates its class with
`@register`; every module here is imported on first lookup, so adding a method needs no edit to the
harness: drop `methods/<name>.py` and `conf/method/<name>.yaml`.
"""
from __future__ import annotations

import importlib
import pkgutil

REGISTRY: dict[str, type] = {}


def register(cls: type) -> type:
    REGISTRY[cls.name] = cls
    return cls


def _discover() -> None:
    for info in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{info.name}")


def available() -> list[str]:
    _discover()
    return sorted(REGISTRY)


def get(name: str) -> type:
    if name not in REGISTRY:
        _discover()
    return REGISTRY[name]
