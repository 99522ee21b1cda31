"""engine=vmap's batch plan for one round: which clients step together, on which sample indices.

Each step is one group of every client still training; clients are stacked by decreasing number of
steps so that group is a prefix of the stack. A client's batches are exactly those of the sequential
engine (`Client(k, round=t, stream="data").batches(local_epochs)`); a batch shorter than its step's
longest is padded with copies of its first sample and carries weights 1/len (padding 0).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from fedbench.client import batch_bounds
from fedbench.seeding import torch_generator


@dataclass
class Group:
    """Step `step` of the clients still training, `pos` (indices into the round's sampled clients, in
    stack order: the first G rows of the stack), on the batches `idx` (G, b) of sample indices.
    Batches shorter than the step's longest (a client's last, partial batch) are padded by repeating
    their first sample: `lens` are the true lengths and `w` (G, b) weighs a row's samples 1/len and
    its padding 0 (both None when nothing is padded)."""

    step: int
    pos: torch.Tensor
    idx: torch.Tensor
    lens: list[int] | None = None
    w: torch.Tensor | None = None


def plan_round(data, hp, t: int, sampled: np.ndarray) -> tuple[list[Group], np.ndarray, np.ndarray]:
    """The steps of round t, each one group of every client still training; each sampled client's
    number of steps; and the round's stack order (clients by decreasing number of steps, so the
    clients still training at any step are a prefix of the stack). Client k's batches are exactly
    those of `Client(k, round=t, stream="data").batches(local_epochs)`."""
    dev, size, epochs = data.x.device, hp.batch_size, hp.local_epochs
    per_client, steps = [], np.zeros(len(sampled), dtype=np.int64)
    for j, k in enumerate(sampled):
        idx = data.clients[k].train
        n = len(idx)
        g = torch_generator(hp.seed, "data", t, int(k))
        bounds = batch_bounds(n, size)
        idx_cpu = idx.cpu()
        batches = []
        for _ in range(epochs):
            perm = idx_cpu[torch.randperm(n, generator=g)]
            batches += [perm[a:b] for a, b in bounds]
        per_client.append(batches)
        steps[j] = len(batches)
    order = np.argsort(-steps, kind="stable")
    groups: list[Group] = []
    S = int(steps.max()) if len(steps) else 0
    if S == 0:
        return groups, steps, order
    # every (step, stack row) batch as (start, length) in the concatenation of the clients' orders
    start, length = np.zeros((S, len(sampled)), np.int64), np.zeros((S, len(sampled)), np.int64)
    flat, offset = [], 0
    for row, j in enumerate(order):
        for i, batch in enumerate(per_client[j]):
            start[i, row], length[i, row] = offset, len(batch)
            offset += len(batch)
        flat += per_client[j]
    b_max = int(length.max())
    cols = np.arange(b_max)
    pos = np.where(cols < length[..., None], start[..., None] + cols, start[..., None])  # pad: 1st sample
    w = (cols < length[..., None]) / np.maximum(length, 1)[..., None]
    all_idx = torch.cat(flat)[torch.from_numpy(pos)].to(dev, non_blocking=True)  # one copy per round
    all_w = torch.from_numpy(w).to(dev, data.x.dtype, non_blocking=True)
    for s in range(S):
        G = int((length[s] > 0).sum())  # a prefix of the stack
        lens = length[s, :G]
        b = int(lens.max())
        padded = int(lens.min()) != b
        groups.append(Group(s, torch.from_numpy(order[:G].copy()), all_idx[s, :G, :b],
                            lens.tolist() if padded else None, all_w[s, :G, :b] if padded else None))
    return groups, steps, order
