"""Partition registry: the `partition` config group, which samples of the pooled dataset each
simulated client holds. One module here per partition defines its split and registers a
`PartitionRecord`; its defaults live in conf/partition/<name>.yaml. Adding a partition = one module
here + one yaml, nothing else.

Every split returns one sorted int64 index array per client; no sample goes to two clients. `iid`,
`dirichlet` and `shards` give every sample to some client, `pathological` drops only the classes no
client holds, `natural` only unchosen groups. Invalid settings raise ConfigError with one line naming
the key, its value and what is allowed.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping

import numpy as np

from fedbench.data.partitions.common import MIN_SAMPLES, as_int
from fedbench.data.params import either, require_params
from fedbench.registry import Registry
from fedbench.errors import ConfigError

# (labels or groups, num_clients, rng, params) -> one sorted int64 index array per client
Split = Callable[[np.ndarray, int, np.random.Generator, Mapping], list[np.ndarray]]


@dataclass(frozen=True)
class PartitionRecord:
    """One partition: what it divides, how, the ranges of its parameters and when it is feasible.

    name    the option name: conf/partition/<name>.yaml
    needs   "labels" (the split divides the label array) or "groups" (the dataset's natural groups:
            only datasets whose record has groups=True)
    split   (labels or groups, num_clients, rng, params) -> one sorted int64 index array per client;
            params is the partition config group holding every key of `ranges`; rng is the seed's
            "partition" stream
    ranges  every key of the yaml but `name` -> its spec (fedbench.config.specs); the values (defaults
            included) come only from the yaml. Always includes min_samples: the harness checks
            after the split that every client got at least that many samples
    check   optional (params, num_clients, info) -> None raising ConfigError when this partition
            cannot be built for a dataset with these facts (`DatasetRecord.info`: name, shape,
            classes, size (None: unknown), groups, images), before any data is loaded
    """

    name: str
    needs: str
    split: Split
    ranges: Mapping[str, Any]
    check: Callable[[Mapping, int, dict], None] | None = None

    def __post_init__(self):
        if self.needs not in ("labels", "groups") or "min_samples" not in self.ranges:
            raise ValueError(f"partition {self.name!r}: needs must be 'labels' or 'groups' and ranges must "
                             "include min_samples")


PARTITIONS = Registry(__name__, "partition")
register = PARTITIONS.register


def label_partition(name: str, key: str, spec: str, split, check=None) -> PartitionRecord:
    """The record of a partition of the labels with one parameter `key` (and min_samples):
    `split(labels, num_clients, rng, value of key)`."""
    return PartitionRecord(name=name, needs="labels", ranges={key: spec, "min_samples": MIN_SAMPLES},
                           split=lambda labels, num_clients, rng, p: split(labels, num_clients, rng, p[key]),
                           check=check)


def _no_groups(name: str, dataset: str) -> ConfigError:
    from fedbench.data.datasets import DATASETS

    labels = [r.name for r in PARTITIONS.records() if r.needs == "labels"]
    grouped = [r.name for r in DATASETS.records() if r.groups]
    return ConfigError(f"partition={name!r}: {dataset} has no natural groups (writers, devices); use "
                       f"partition={either(labels)}, or dataset={either(grouped)}")


def check_feasible(name: str, params: Mapping, num_clients: int, info: dict) -> None:
    """ConfigError when partition `name` cannot be built with `params` for `num_clients` clients of a
    dataset with the facts `info` (`DatasetRecord.info`): its input, its own check, then
    one sample per client at least."""
    record = PARTITIONS.get(name)
    if record.needs == "groups" and not info["groups"]:
        raise _no_groups(name, f"dataset={info['name']}")
    if record.check is not None:
        record.check(params, num_clients, info)
    if info["size"] is not None and num_clients > info["size"]:
        raise ConfigError(f"num_clients={num_clients}: dataset={info['name']} has only {info['size']} samples; "
                          "use fewer clients")


def partition_indices(name: str, labels: np.ndarray, groups: np.ndarray | None, num_clients: int,
                      params: Mapping, rng: np.random.Generator) -> list[np.ndarray]:
    """Run partition `name` with `params` (its config group, or a dict holding every key of the
    record's ranges) on `labels` or `groups` (None: the dataset has none), then check every client
    has >= params["min_samples"] samples."""
    record = PARTITIONS.get(name)
    require_params("partition", name, params, record.ranges)
    min_samples = as_int(params["min_samples"], "partition.min_samples", 0)
    if record.needs == "groups" and groups is None:
        raise _no_groups(name, "this dataset")
    parts = record.split(labels if record.needs == "labels" else groups, num_clients, rng, params)
    smallest = min(len(p) for p in parts)
    if smallest < min_samples:
        raise ConfigError(f"num_clients={num_clients}, partition.min_samples={min_samples}: "
                          f"partition={name} gave a client only {smallest} samples; use fewer "
                          "clients or a smaller partition.min_samples")
    return parts
