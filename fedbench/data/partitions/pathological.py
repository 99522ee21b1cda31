"""Pathological label skew: every client holds exactly k classes."""
from __future__ import annotations

import numpy as np

from fedbench.data.partitions import label_partition, register
from fedbench.data.partitions.common import as_int, as_labels, class_sorted, group
from fedbench.errors import ConfigError


def pathological(labels: np.ndarray, num_clients: int, rng: np.random.Generator,
                 classes_per_client: int) -> list[np.ndarray]:
    """Each client holds exactly k = classes_per_client distinct classes. The class order is
    shuffled once and client i takes positions (i*k + j) mod C, j < k, so every class is held by
    floor or ceil of K*k/C clients; each class's samples are shuffled and split as equally as
    possible among its holders. Classes no client holds (K*k < C) are left out."""
    y = as_labels(labels)
    as_int(num_clients, "num_clients", 1)
    classes, yc = np.unique(y, return_inverse=True)
    k = as_int(classes_per_client, "partition.classes_per_client", 1)
    if k > len(classes):
        raise ConfigError(f"partition.classes_per_client={k}: must be between 1 and the number of "
                          f"classes ({len(classes)})")
    slots = (np.arange(num_clients)[:, None] * k + np.arange(k)[None, :]) % len(classes)
    held_class = rng.permutation(len(classes))[slots].ravel()        # (K*k,) class of each slot
    holder = np.repeat(np.arange(num_clients), k)
    assert all(len(set(row)) == k for row in held_class.reshape(num_clients, k))
    by_class = np.argsort(held_class, kind="stable")
    holder_starts = np.searchsorted(held_class[by_class], np.arange(len(classes) + 1))
    class_sizes = np.bincount(yc, minlength=len(classes))
    sample_starts = np.concatenate([[0], np.cumsum(class_sizes)])
    idx, owner = class_sorted(yc, rng), np.full(len(y), -1, dtype=np.int64)
    for c in range(len(classes)):
        holders = holder[by_class[holder_starts[c]:holder_starts[c + 1]]]
        size = class_sizes[c]
        if len(holders) == 0:
            continue
        if size < len(holders):
            raise ConfigError(f"partition.classes_per_client={k}: class {classes[c]} has {size} samples "
                              f"but {len(holders)} clients hold it; use fewer clients or a smaller "
                              "partition.classes_per_client")
        sizes = size // len(holders) + (rng.permutation(len(holders)) < size % len(holders))
        owner[sample_starts[c]:sample_starts[c + 1]] = np.repeat(holders, sizes)
    return group(owner, idx, num_clients)


def fits(params, num_clients: int, info: dict) -> None:
    """classes_per_client <= the dataset's number of classes."""
    if params["classes_per_client"] > info["classes"]:
        raise ConfigError(f"partition.classes_per_client={params['classes_per_client']!r}: must be an integer in "
                          f"[1, {info['classes']}] (dataset={info['name']} has {info['classes']} classes)")


register(label_partition("pathological", "classes_per_client", "int [1, inf)", pathological, check=fits))
