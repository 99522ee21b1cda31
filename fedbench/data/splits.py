"""Each client's own train / val / test split of its share, stratified by class."""
from __future__ import annotations

import math
from typing import Callable, Sequence

import numpy as np

from fedbench.data.partitions.common import class_sorted
from fedbench.data.types import Partition
from fedbench.errors import ConfigError


def _half_up(x: float) -> int:
    """round() with halves rounded up (Python's round(2.5) == 2 would surprise here)."""
    return int(math.floor(x + 0.5))


def _systematic(length: int, m: int, rng: np.random.Generator) -> np.ndarray:
    """m distinct positions in [0, length), evenly spaced with one random offset (systematic
    sampling): on a list grouped by class, each class gets its proportional share +-1."""
    if m >= length:
        return np.arange(length, dtype=np.int64)
    if m <= 0:  # e.g. data.val_frac=0, or a client too small to spare a validation sample
        return np.zeros(0, dtype=np.int64)
    pos = np.floor((np.arange(m) + rng.random()) * (length / m)).astype(np.int64)
    return np.minimum(pos, length - 1)


def stratified_subset(labels: np.ndarray, m: int, rng: np.random.Generator) -> np.ndarray:
    """Sorted int64 indices of m distinct samples of `labels`, stratified by class the way each
    client's test split is drawn: systematic sampling over the samples shuffled within each class
    and laid out class by class, so every class holds its proportional share of m, +-1."""
    ordered = class_sorted(np.asarray(labels), rng)
    return np.sort(ordered[_systematic(len(ordered), int(m), rng)]).astype(np.int64)


def split_sizes(n: int, val_frac: float, test_frac: float) -> tuple[int, int]:
    """(n_val, n_test) for a client with n samples: round-half-up of n*frac; at least one test
    sample when n >= 2 and test_frac > 0; never leaving the train split empty (val shrinks first)."""
    n_test = _half_up(n * test_frac)
    if test_frac > 0 and n >= 2:
        n_test = max(n_test, 1)
    n_test = min(n_test, max(n - 1, 0))
    n_val = min(_half_up(n * val_frac), max(n - 1 - n_test, 0))
    return n_val, n_test


def _check_fracs(val_frac: float, test_frac: float) -> None:
    ok = all(isinstance(f, (int, float, np.number)) and not isinstance(f, bool) and f >= 0
             for f in (val_frac, test_frac))
    if not ok or not val_frac + test_frac < 1:
        raise ConfigError(f"data.val_frac={val_frac!r}, data.test_frac={test_frac!r}: each must be a number >= 0 "
                          "and their sum < 1")


def split_client(indices: np.ndarray, labels: np.ndarray, rng: np.random.Generator,
                 val_frac: float, test_frac: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Stratified split of one client's sample `indices` into sorted int64 (train, val, test).

    The samples are shuffled within each class and laid out class by class; test takes
    n_test = round(n*test_frac) positions by systematic sampling (random offset, even spacing),
    val takes n_val = round(n*val_frac) of the rest the same way, train keeps the remainder
    (sizes as in `split_sizes`). So the counts are exact and every class's count in each split is
    within one of its proportional share of the client's class mix.
    """
    _check_fracs(val_frac, test_frac)
    idx = np.asarray(indices, dtype=np.int64)
    n_val, n_test = split_sizes(len(idx), val_frac, test_frac)
    shuffled = idx[rng.permutation(len(idx))]
    ordered = shuffled[np.argsort(np.asarray(labels)[shuffled], kind="stable")]
    is_test = np.zeros(len(ordered), dtype=bool)
    is_test[_systematic(len(ordered), n_test, rng)] = True
    rest = ordered[~is_test]
    is_val = np.zeros(len(rest), dtype=bool)
    is_val[_systematic(len(rest), n_val, rng)] = True
    return np.sort(rest[~is_val]), np.sort(rest[is_val]), np.sort(ordered[is_test])


def split_all(parts: Sequence[np.ndarray], labels: np.ndarray,
              rng_factory: Callable[[int], np.random.Generator],
              val_frac: float, test_frac: float) -> Partition:
    """Split every client's share with `split_client`; client k draws from `rng_factory(k)`
    (e.g. `lambda k: numpy_rng(seed, "split", k)`), so one client's split never depends on another's."""
    _check_fracs(val_frac, test_frac)
    train, val, test = [], [], []
    for k, part in enumerate(parts):
        tr, va, te = split_client(part, labels, rng_factory(k), val_frac, test_frac)
        train.append(tr)
        val.append(va)
        test.append(te)
    return Partition(train=train, val=val, test=test)
