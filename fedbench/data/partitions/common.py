"""What the partition modules share: argument checks, index grouping by client, the class-sorted
order, and the check that min_samples per client fits a dataset of known size."""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from fedbench.errors import ConfigError

MIN_SAMPLES = "int [0, inf)"  # the spec of min_samples, a key every partition has


def as_int(value: Any, key: str, minimum: int) -> int:
    """`value` as an int >= minimum (integral floats accepted), else ConfigError naming `key`."""
    ok = not isinstance(value, bool) and isinstance(value, (int, float, np.integer, np.floating))
    if not ok or value != int(value) or int(value) < minimum:
        raise ConfigError(f"{key}={value!r}: must be an integer >= {minimum}")
    return int(value)


def as_labels(labels: Any) -> np.ndarray:
    arr = np.asarray(labels)
    if arr.ndim != 1 or not np.issubdtype(arr.dtype, np.integer):
        raise ConfigError(f"labels: need a 1-D integer array, got shape {arr.shape} dtype {arr.dtype}")
    return arr


def check_total(n: int, num_clients: int, min_samples: int) -> None:
    as_int(num_clients, "num_clients", 1)
    if num_clients * min_samples > n:
        raise ConfigError(f"num_clients={num_clients}, partition.min_samples={min_samples}: "
                          f"needs {num_clients * min_samples} samples but the dataset has {n}; "
                          "use fewer clients or a smaller partition.min_samples")


def group(owner: np.ndarray, idx: np.ndarray, num_clients: int) -> list[np.ndarray]:
    """Split sample indices `idx` by owning client `owner` (-1 = nobody) into sorted int64 arrays."""
    keep = owner >= 0
    owner, idx = owner[keep], idx[keep].astype(np.int64)
    order = np.lexsort((idx, owner))
    counts = np.bincount(owner, minlength=num_clients)
    return [a.copy() for a in np.split(idx[order], np.cumsum(counts)[:-1])]


def class_sorted(y: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """All sample indices grouped by class (classes ascending), randomly shuffled inside each class."""
    perm = rng.permutation(len(y))
    return perm[np.argsort(y[perm], kind="stable")]


def min_samples_fit(params: Mapping, num_clients: int, info: dict) -> None:
    """Feasibility of a partition that gives every sample out (iid, dirichlet): num_clients x
    min_samples <= the dataset's size, when the size is known."""
    n, min_samples = info["size"], int(params["min_samples"] or 0)
    need = num_clients * min_samples
    if n is not None and need > n:
        raise ConfigError(f"num_clients={num_clients}: with partition.min_samples={params['min_samples']} the "
                          f"clients need {need} samples but dataset={info['name']} has {n}; use num_clients <= "
                          f"{n // max(min_samples, 1)} or a smaller partition.min_samples")
