"""The parameter checks and listings the dataset and partition records share (helpers, not records).
The records are `fedbench.data.datasets.DatasetRecord` and `fedbench.data.partitions.PartitionRecord`,
kept in a fedbench.registry.Registry each (adding a dataset or a partition needs one module, or one
record in an existing module, and one yaml under conf/, and no edit anywhere else).
"""
from __future__ import annotations

from typing import Mapping

from fedbench.errors import ConfigError


def either(names: list[str]) -> str:
    """'a, b or c'."""
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"


def require_params(group: str, name: str, params: Mapping, ranges: Mapping) -> None:
    """ConfigError unless `params` (a config group, or a dict from a direct caller) holds every key of
    `ranges`: defaults live only in conf/<group>/<name>.yaml, never in the code."""
    missing = [key for key in ranges if key not in params]
    if missing:
        raise ConfigError(f"{group}.{missing[0]}: missing; {group}={name} needs {', '.join(ranges)} "
                          f"(their defaults are in conf/{group}/{name}.yaml)")
