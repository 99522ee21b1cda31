"""IID: a uniform random split, optionally with log-normal client sizes (quantity skew)."""
from __future__ import annotations

import numpy as np

from fedbench.data.partitions import PartitionRecord, register
from fedbench.data.partitions.common import MIN_SAMPLES, as_int, as_labels, check_total, group, min_samples_fit
from fedbench.errors import ConfigError


def iid(labels: np.ndarray, num_clients: int, rng: np.random.Generator,
        quantity_skew: float, min_samples: int) -> list[np.ndarray]:
    """Uniform random split. With quantity_skew = 0 client sizes differ by at most one; with
    quantity_skew = sigma > 0 each client gets min_samples plus a share of the remaining samples
    proportional to a LogNormal(0, sigma) weight (largest-remainder rounding), so sizes are skewed
    but every client still has >= min_samples. Labels only set the number of samples."""
    y = as_labels(labels)
    n, min_samples = len(y), as_int(min_samples, "partition.min_samples", 0)
    check_total(n, num_clients, min_samples)
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
    return group(owner, rng.permutation(n), num_clients)


register(PartitionRecord(
    name="iid", needs="labels", ranges={"quantity_skew": "[0, inf)", "min_samples": MIN_SAMPLES},
    split=lambda labels, num_clients, rng, p: iid(labels, num_clients, rng, p["quantity_skew"], p["min_samples"]),
    check=min_samples_fit))
