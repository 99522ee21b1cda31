"""Dirichlet label skew: per-class client proportions drawn from Dir(alpha)."""
from __future__ import annotations

import numpy as np

from fedbench.data.partitions import PartitionRecord, register
from fedbench.data.partitions.common import MIN_SAMPLES, as_int, as_labels, check_total, class_sorted, group, min_samples_fit
from fedbench.errors import ConfigError

MAX_DIRICHLET_TRIES = 1000


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
              min_samples: int, max_tries: int = MAX_DIRICHLET_TRIES) -> list[np.ndarray]:
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
    y = as_labels(labels)
    n, min_samples = len(y), as_int(min_samples, "partition.min_samples", 0)
    check_total(n, num_clients, min_samples)
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
    return group(owner, class_sorted(yc, rng), num_clients)


register(PartitionRecord(
    name="dirichlet", needs="labels", ranges={"alpha": "(0, inf)", "min_samples": MIN_SAMPLES},
    split=lambda labels, num_clients, rng, p: dirichlet(labels, num_clients, rng, p["alpha"], p["min_samples"]),
    check=min_samples_fit))
