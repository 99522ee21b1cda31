"""Natural: one client per natural group of the dataset (writer, device)."""
from __future__ import annotations

import numpy as np

from fedbench.data.partitions import PartitionRecord, register
from fedbench.data.partitions.common import MIN_SAMPLES, as_int, group
from fedbench.errors import ConfigError


def natural(groups: np.ndarray, num_clients: int, rng: np.random.Generator) -> list[np.ndarray]:
    """One client per natural group (writer, device). With more groups than clients, num_clients
    groups are chosen at random (clients ordered by group id); with fewer, ConfigError."""
    as_int(num_clients, "num_clients", 1)
    ids, g = np.unique(np.asarray(groups), return_inverse=True)
    if len(ids) < num_clients:
        raise ConfigError(f"num_clients={num_clients}: partition=natural has only {len(ids)} groups "
                          f"in this dataset; set num_clients <= {len(ids)}")
    chosen = np.sort(rng.choice(len(ids), size=num_clients, replace=False))
    client_of_group = np.full(len(ids), -1, dtype=np.int64)
    client_of_group[chosen] = np.arange(num_clients)
    return group(client_of_group[g.ravel()], np.arange(len(g)), num_clients)


register(PartitionRecord(name="natural", needs="groups", ranges={"min_samples": MIN_SAMPLES},
                         split=lambda groups, num_clients, rng, p: natural(groups, num_clients, rng)))
