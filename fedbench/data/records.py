"""Registries of named records, each filled by the modules of one package, as methods/ is for methods.

A record module calls its registry's `register(record)` at import; the registry imports every module
of its package on the first lookup. So adding a dataset or a partition needs one module (or one record
in an existing module) and one yaml under conf/, and no edit anywhere else. The records themselves are
`fedbench.data.datasets.DatasetRecord` and `fedbench.data.partitions.PartitionRecord`.
"""
from __future__ import annotations

import importlib
import pkgutil
from typing import Any, Callable, Mapping

from fedbench.errors import ConfigError


def either(names: list[str]) -> str:
    """'a, b or c'."""
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"


class Registry:
    """The records of one config group (`group`: 'dataset', 'partition') by name, found in `package`.
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


def require_params(group: str, name: str, params: Mapping, ranges: Mapping) -> None:
    """ConfigError unless `params` (a config group, or a dict from a direct caller) holds every key of
    `ranges`: defaults live only in conf/<group>/<name>.yaml, never in the code."""
    missing = [key for key in ranges if key not in params]
    if missing:
        raise ConfigError(f"{group}.{missing[0]}: missing; {group}={name} needs {', '.join(ranges)} "
                          f"(their defaults are in conf/{group}/{name}.yaml)")
