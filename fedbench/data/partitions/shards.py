"""Shards: FedAvg's label-sorted shards, a fixed number per client."""
from __future__ import annotations

import numpy as np

from fedbench.data.partitions import label_partition, register
from fedbench.data.partitions.common import as_int, as_labels, class_sorted, group
from fedbench.errors import ConfigError


def shards(labels: np.ndarray, num_clients: int, rng: np.random.Generator,
           shards_per_client: int) -> list[np.ndarray]:
    """FedAvg's pathological non-IID split (McMahan et al. 2017): sort the samples by label
    (random order within a label), cut them into num_clients * shards_per_client contiguous shards
    of equal size (+-1) and give each client shards_per_client shards chosen at random."""
    y = as_labels(labels)
    as_int(num_clients, "num_clients", 1)
    s = as_int(shards_per_client, "partition.shards_per_client", 1)
    total = num_clients * s
    if total > len(y):
        raise ConfigError(f"partition.shards_per_client={s}: num_clients*shards_per_client={total} "
                          f"shards exceed the {len(y)} samples; use fewer clients or shards")
    shard_sizes = len(y) // total + (np.arange(total) < len(y) % total)
    shard_owner = rng.permutation(total) // s
    return group(np.repeat(shard_owner, shard_sizes), class_sorted(y, rng), num_clients)


def fits(params, num_clients: int, info: dict) -> None:
    """num_clients x shards_per_client <= the dataset's size, when the size is known."""
    n, total = info["size"], num_clients * params["shards_per_client"]
    if n is not None and total > n:
        raise ConfigError(f"partition.shards_per_client={params['shards_per_client']!r}: num_clients x "
                          f"shards_per_client = {total} shards exceed the {n} samples of dataset={info['name']}")


register(label_partition("shards", "shards_per_client", "int [1, inf)", shards, check=fits))
