"""Method registry. A method is one module in this package that decorates its class with
`@register`; every module here is imported on first lookup, so adding a method needs no edit to the
harness: drop `methods/<name>.py` and `conf/method/<name>.yaml`.
"""
from __future__ import annotations

from fedbench.registry import Registry

METHODS = Registry(__name__, "method")
register = METHODS.register   # class decorator: the class's `name` must be new


def available() -> list[str]:
    return METHODS.names()


def get(name: str) -> type:
    """The method class `name`; ConfigError listing the methods otherwise."""
    return METHODS.get(name)
