"""Clients held out of training (`unseen_frac`): newcomers, evaluated once after the last round.

`num_clients` stays the number of clients that train (the participants); `unseen_frac` is the share of
ALL clients held out beside them, so the federation's data is partitioned over
num_clients + unseen_count(...) clients and the participants' numbers stay comparable to a run without
newcomers (pFL-Bench's `unseen_clients_rate`, with the participants' count kept). Which clients are held
out is drawn from the seed in its own RNG stream ("unseen") after the partition: the same clients for
every method of a setting. A newcomer's data reaches nothing before the end: not the sampling, not the
aggregation, not a server statistic, not the standardization of the inputs (fedbench.data.federated).
"""
from __future__ import annotations

import numpy as np

from fedbench.data.types import FederatedData
from fedbench.seeding import numpy_rng


def unseen_count(num_clients: int, unseen_frac: float) -> int:
    """How many newcomers join `num_clients` participants so that they are `unseen_frac` of all clients."""
    if unseen_frac <= 0:
        return 0
    return max(1, int(round(num_clients * unseen_frac / (1.0 - unseen_frac))))


def total_clients(cfg) -> int:
    """The clients the data is partitioned over: the participants and the newcomers."""
    n = int(cfg.num_clients)
    return n + unseen_count(n, float(cfg.get("unseen_frac", 0.0) or 0.0))


def unseen_ids(total: int, count: int, seed: int) -> np.ndarray:
    """The held-out clients among `total` (sorted ids), drawn from the seed's "unseen" stream."""
    if count <= 0:
        return np.zeros(0, dtype=np.int64)
    return np.sort(numpy_rng(seed, "unseen").choice(total, size=count, replace=False)).astype(np.int64)


def subset(data: FederatedData, ids: np.ndarray) -> FederatedData:
    """The federation of clients `ids` (renumbered 0..len-1, in id order) over the same tensors."""
    return FederatedData(data.name, data.x, data.y, data.num_classes, [data.clients[int(k)] for k in ids],
                         dict(data.info))


def split(data: FederatedData) -> tuple[FederatedData, FederatedData | None]:
    """(participants, newcomers): the clients that train and those held out (None when there are none)."""
    held = np.asarray(data.info.get("unseen", []), dtype=np.int64)
    if not len(held):
        return data, None
    seen = np.setdiff1d(np.arange(data.num_clients), held)
    participants, newcomers = subset(data, seen), subset(data, held)
    participants.info["client_ids"], newcomers.info["client_ids"] = seen, held
    return participants, newcomers
