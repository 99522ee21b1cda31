"""Client partitioners: which samples of the pooled dataset each simulated client holds.

Every partitioner takes the label array (or, for `natural`, the group array), the number of clients
and a numpy Generator (the seed's "partition" stream), and returns one sorted int64 index array per
client. No sample is given to two clients; `iid`, `dirichlet` and `shards` give every sample to some
client, `pathological` drops only the classes no client holds, `natural` only unchosen groups.
Invalid settings raise ConfigError with one line naming the key, its value and what is allowed.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

from fedbench.errors import ConfigError

MAX_DIRICHLET_TRIES = 1000


def _int(value: Any, key: str, minimum: int) -> int:
    """`value` as an int >= minimum (integral floats accepted), else ConfigError naming `key`."""
    ok = not isinstance(value, bool) and isinstance(value, (int, float, np.integer, np.floating))
    if not ok or value != int(value) or int(value) < minimum:
        raise ConfigError(f"{key}={value!r}: must be an integer >= {minimum}")
    return int(value)


def _labels(labels: Any) -> np.ndarray:
    arr = np.asarray(labels)
    if arr.ndim != 1 or not np.issubdtype(arr.dtype, np.integer):
        raise ConfigError(f"labels: need a 1-D integer array, got shape {arr.shape} dtype {arr.dtype}")
    return arr


def _check_total(n: int, num_clients: int, min_samples: int) -> None:
    _int(num_clients, "num_clients", 1)
    if num_clients * min_samples > n:
        raise ConfigError(f"num_clients={num_clients}, partition.min_samples={min_samples}: "
                          f"needs {num_clients * min_samples} samples but the dataset has {n}; "
                          "use fewer clients or a smaller partition.min_samples")


def _group(owner: np.ndarray, idx: np.ndarray, num_clients: int) -> list[np.ndarray]:
    """Split sample indices `idx` by owning client `owner` (-1 = nobody) into sorted int64 arrays."""
    keep = owner >= 0
    owner, idx = owner[keep], idx[keep].astype(np.int64)
    order = np.lexsort((idx, owner))
    counts = np.bincount(owner, minlength=num_clients)
    return [a.copy() for a in np.split(idx[order], np.cumsum(counts)[:-1])]


def _class_sorted(y: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """All sample indices grouped by class (classes ascending), randomly shuffled inside each class."""
    perm = rng.permutation(len(y))
    return perm[np.argsort(y[perm], kind="stable")]


def iid(labels: np.ndarray, num_clients: int, rng: np.random.Generator,
        quantity_skew: float = 0.0, min_samples: int = 1) -> list[np.ndarray]:
    """Uniform random split. With quantity_skew = 0 client sizes differ by at most one; with
    quantity_skew = sigma > 0 each client gets min_samples plus a share of the remaining samples
    proportional to a LogNormal(0, sigma) weight (largest-remainder rounding), so sizes are skewed
    but every client still has >= min_samples. Labels only set the number of samples."""
    y = _labels(labels)
    n, min_samples = len(y), _int(min_samples, "partition.min_samples", 0)
    _check_total(n, num_clients, min_samples)
    sigma = float(quantity_skew)
    if not np.isfinite(sigma) or sigma < 0:
        raise ConfigError(f"partition.quantity_skew={quantity_skew!r}: must be a number >= 0 "
                          "(0 = equal client sizes)")
    if sigma == 0:
        sizes = np.full(num_clients, n // num_clients, dtype=np.int64)
        sizes[rng.permutation(num_clients)[: n % num_clients]] += 1
    else:
        weights = rng.lognormal(0.0, sigma, num_clients)
        spare = n - num_clients * min_samples
        share = weights / weights.sum() * spare
        sizes = np.floor(share).astype(np.int64)
        sizes[np.argsort(sizes - share, kind="stable")[: spare - sizes.sum()]] += 1
        sizes += min_samples
    owner = np.repeat(np.arange(num_clients), sizes)
    return _group(owner, rng.permutation(n), num_clients)


def _dirichlet_counts(gamma: np.ndarray, class_order: np.ndarray, class_sizes: np.ndarray,
                      cap: float) -> np.ndarray:
    """Per-class client counts (C, K) of the standard split from Gamma(alpha) draws `gamma`
    (C, K): visiting classes in `class_order`, a class's proportions are its normalised gamma
    row with clients already holding >= cap samples zeroed, cut by floor of the cumulative sum
    (the few samples lost to flooring go to the last client with a share, never a capped one)."""
    counts = np.zeros(gamma.shape, dtype=np.int64)
    held = np.zeros(gamma.shape[1], dtype=np.int64)
    for c in class_order:
        open_ = held < cap
        p = gamma[c] * open_
        total = p.sum()
        if not total > 0:  # every open client's draw underflowed: share evenly among them
            p, total = open_.astype(float), open_.sum()
        cuts = np.minimum(np.floor(np.cumsum(p) / total * class_sizes[c]), class_sizes[c])
        cuts = cuts.astype(np.int64)
        cuts[np.flatnonzero(p)[-1]:] = class_sizes[c]   # rounding leftovers: last client with a share
        counts[c] = np.diff(cuts, prepend=0)
        held += counts[c]
    return counts


def dirichlet(labels: np.ndarray, num_clients: int, rng: np.random.Generator, alpha: float,
              min_samples: int = 1, max_tries: int = MAX_DIRICHLET_TRIES) -> list[np.ndarray]:
    """Per-class Dirichlet(alpha) split (Hsu et al. 2019; as in FL-bench / PFLlib / NIID-Bench).

    For each class (in a random order) the client proportions are Dir(alpha * 1_K), drawn as
    normalised Gamma(alpha) variables; clients already holding >= N/K samples get no share of it;
    the class's shuffled indices are cut at the cumulative proportions. Small alpha = few classes
    per client, large alpha -> IID. The min_samples floor is met by rejection *per client*: the
    Gamma draws of the clients that came out short are redrawn (everyone else's are kept) until no
    client is short. Whole-partition rejection (the FL-bench/PFLlib loop) is equivalent when it
    works, but its acceptance rate is (1-q)^K: at K=1000, alpha=0.1, min_samples=10, q ~ 0.12
    and it never succeeds. After `max_tries` rounds of redraws, ConfigError.
    """
    y = _labels(labels)
    n, min_samples = len(y), _int(min_samples, "partition.min_samples", 0)
    _check_total(n, num_clients, min_samples)
    a = float(alpha) if isinstance(alpha, (int, float, np.number)) and not isinstance(alpha, bool) else np.nan
    if not (np.isfinite(a) and a > 0):
        raise ConfigError(f"partition.alpha={alpha!r}: must be a number > 0 (small = skewed, large = IID)")
    classes, yc = np.unique(y, return_inverse=True)
    class_sizes = np.bincount(yc, minlength=len(classes))
    class_order = rng.permutation(len(classes))
    gamma = rng.standard_gamma(a, size=(len(classes), num_clients))
    for _ in range(max_tries):
        counts = _dirichlet_counts(gamma, class_order, class_sizes, n / num_clients)
        short = counts.sum(axis=0) < min_samples
        if not short.any():
            break
        gamma[:, short] = rng.standard_gamma(a, size=(len(classes), int(short.sum())))
    else:
        raise ConfigError(f"partition.min_samples={min_samples}: the dirichlet partition could not give "
                          f"every client partition.min_samples samples after {max_tries} tries "
                          f"(num_clients={num_clients}, partition.alpha={a}, {n} samples); use fewer "
                          "clients, a larger partition.alpha or a smaller partition.min_samples")
    owner = np.repeat(np.tile(np.arange(num_clients), len(classes)), counts.ravel())
    return _group(owner, _class_sorted(yc, rng), num_clients)


def pathological(labels: np.ndarray, num_clients: int, rng: np.random.Generator,
                 classes_per_client: int) -> list[np.ndarray]:
    """Each client holds exactly k = classes_per_client distinct classes. The class order is
    shuffled once and client i takes positions (i*k + j) mod C, j < k, so every class is held by
    floor or ceil of K*k/C clients; each class's samples are shuffled and split as equally as
    possible among its holders. Classes no client holds (K*k < C) are left out."""
    y = _labels(labels)
    _int(num_clients, "num_clients", 1)
    classes, yc = np.unique(y, return_inverse=True)
    k = _int(classes_per_client, "partition.classes_per_client", 1)
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
    idx, owner = _class_sorted(yc, rng), np.full(len(y), -1, dtype=np.int64)
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
    return _group(owner, idx, num_clients)


def shards(labels: np.ndarray, num_clients: int, rng: np.random.Generator,
           shards_per_client: int) -> list[np.ndarray]:
    """FedAvg's pathological non-IID split (McMahan et al. 2017): sort the samples by label
    (random order within a label), cut them into num_clients * shards_per_client contiguous shards
    of equal size (+-1) and give each client shards_per_client shards chosen at random."""
    y = _labels(labels)
    _int(num_clients, "num_clients", 1)
    s = _int(shards_per_client, "partition.shards_per_client", 1)
    total = num_clients * s
    if total > len(y):
        raise ConfigError(f"partition.shards_per_client={s}: num_clients*shards_per_client={total} "
                          f"shards exceed the {len(y)} samples; use fewer clients or shards")
    shard_sizes = len(y) // total + (np.arange(total) < len(y) % total)
    shard_owner = rng.permutation(total) // s
    return _group(np.repeat(shard_owner, shard_sizes), _class_sorted(y, rng), num_clients)


def natural(groups: np.ndarray | None, num_clients: int, rng: np.random.Generator) -> list[np.ndarray]:
    """One client per natural group (writer, device). With more groups than clients, num_clients
    groups are chosen at random (clients ordered by group id); with fewer, ConfigError."""
    _int(num_clients, "num_clients", 1)
    if groups is None:
        raise ConfigError("partition=natural: this dataset has no natural groups (writer/device ids); "
                          "use iid, dirichlet, pathological or shards")
    ids, g = np.unique(np.asarray(groups), return_inverse=True)
    if len(ids) < num_clients:
        raise ConfigError(f"num_clients={num_clients}: partition=natural has only {len(ids)} groups "
                          f"in this dataset; set num_clients <= {len(ids)}")
    chosen = np.sort(rng.choice(len(ids), size=num_clients, replace=False))
    client_of_group = np.full(len(ids), -1, dtype=np.int64)
    client_of_group[chosen] = np.arange(num_clients)
    return _group(client_of_group[g.ravel()], np.arange(len(g)), num_clients)


PARTITIONERS: dict[str, Callable[..., list[np.ndarray]]] = {
    "iid": iid, "dirichlet": dirichlet, "pathological": pathological, "shards": shards, "natural": natural,
}

# name -> (what the partitioner splits, the config params it takes with their defaults)
_INPUTS: dict[str, tuple[str, dict[str, Any]]] = {
    "iid": ("labels", {"quantity_skew": 0.0, "min_samples": 1}),
    "dirichlet": ("labels", {"alpha": 0.3, "min_samples": 1}),
    "pathological": ("labels", {"classes_per_client": 2}),
    "shards": ("labels", {"shards_per_client": 2}),
    "natural": ("groups", {}),
}


def partition_indices(name: str, labels: np.ndarray, groups: np.ndarray | None, num_clients: int,
                      params: Any, rng: np.random.Generator) -> list[np.ndarray]:
    """Run partitioner `name` with its params read by `.get` from `params` (a DictConfig or dict:
    alpha, min_samples, classes_per_client, shards_per_client, quantity_skew; missing keys take
    the defaults above), then check every client has >= params.min_samples (default 1) samples."""
    if name not in PARTITIONERS:
        raise ConfigError(f"partition={name!r}: unknown partition; valid: {', '.join(PARTITIONERS)}")
    params = {} if params is None else params
    min_samples = _int(params.get("min_samples", 1), "partition.min_samples", 0)
    source, defaults = _INPUTS[name]
    kwargs = {key: params.get(key, default) for key, default in defaults.items()}
    parts = PARTITIONERS[name](labels if source == "labels" else groups, num_clients, rng, **kwargs)
    smallest = min(len(p) for p in parts)
    if smallest < min_samples:
        raise ConfigError(f"num_clients={num_clients}, partition.min_samples={min_samples}: "
                          f"partition={name} gave a client only {smallest} samples; use fewer "
                          "clients or a smaller partition.min_samples")
    return parts
