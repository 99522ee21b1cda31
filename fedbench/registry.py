"""Registries of named records (method classes, dataset and partition records), each filled by the
modules of one package: a module calls its registry's `register(record)` at import (as a decorator for
a class), and the registry imports every module of its package on the first lookup. So adding a
method, a dataset or a partition needs its module and its yaml under conf/, and no edit elsewhere.
"""
from __future__ import annotations

import importlib
import pkgutil
from typing import Any, Callable

from fedbench.errors import ConfigError


class Registry:
    """The records of one config group (`group`: 'method', 'dataset', 'partition') by name, found in `package`.
    `order` sorts them for listings (default: by name)."""

    def __init__(self, package: str, group: str, order: Callable[[Any], Any] = lambda record: record.name):
        self.package, self.group, self.order = package, group, order
        self.by_name: dict[str, Any] = {}
        self._discovered = False

    def register(self, record):
        """Add `record` (its `name` must be new); returns it."""
        if record.name in self.by_name:
            raise ValueError(f"{self.group} {record.name!r} is registered twice")
        self.by_name[record.name] = record
        return record

    def _discover(self) -> None:
        if not self._discovered:
            self._discovered = True
            for info in pkgutil.iter_modules(importlib.import_module(self.package).__path__):
                importlib.import_module(f"{self.package}.{info.name}")

    def records(self) -> list:
        self._discover()
        return sorted(self.by_name.values(), key=self.order)

    def names(self) -> list[str]:
        return [record.name for record in self.records()]

    def __contains__(self, name) -> bool:
        self._discover()
        return name in self.by_name

    def get(self, name: str):
        """The record `name`; ConfigError listing the valid names otherwise."""
        if name not in self:
            raise ConfigError(f"{self.group}={name!r} is not a {self.group}; choose one of: {', '.join(self.names())}")
        return self.by_name[name]
