"""Who trains in each round, and how the server sums what they upload."""
from __future__ import annotations

import math

import numpy as np
import torch

from fedbench.seeding import numpy_rng


def clients_per_round(num_clients: int, join_ratio: float) -> int:
    """m = max(floor(join_ratio * K), 1)."""
    return max(int(math.floor(join_ratio * num_clients + 1e-9)), 1)


def sampling_schedule(seed: int, rounds: int, num_clients: int, join_ratio: float) -> np.ndarray:
    """(rounds, m) client ids, m = clients_per_round(K, join_ratio), drawn per round from the
    sampling stream before training: identical for every method at a given seed."""
    m = clients_per_round(num_clients, join_ratio)
    return np.stack([np.sort(numpy_rng(seed, "sampling", t).choice(num_clients, m, replace=False))
                     for t in range(rounds)]) if rounds else np.zeros((0, m), dtype=np.int64)


class Aggregator:
    """Running weighted sums of the round's uploads (float32, or float64 for float64 tensors)."""

    def __init__(self, global_state: dict[str, torch.Tensor]):
        self.acc = {k: torch.zeros_like(v, dtype=torch.float64 if v.dtype == torch.float64 else torch.float32)
                    for k, v in global_state.items()}
        self.total = 0.0

    @torch.no_grad()
    def add(self, uploads: dict[str, torch.Tensor], weights: np.ndarray) -> None:
        """Add the uploads of a cohort ({key: (m, ...) tensor}) with one weight per client."""
        for name, acc in self.acc.items():
            stacked = uploads[name]
            if len(weights) == 1:
                acc.add_(stacked[0].detach(), alpha=float(weights[0]))
            else:
                w = torch.as_tensor(weights, dtype=acc.dtype, device=acc.device)
                acc.add_(torch.tensordot(w, stacked.detach().to(acc.dtype), dims=1))
        self.total += float(np.sum(weights))

    def mean(self, like: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {k: (v / self.total).to(like[k].dtype) if like[k].is_floating_point()
                else (v / self.total).round().to(like[k].dtype) for k, v in self.acc.items()}
