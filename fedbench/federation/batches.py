"""Minibatches: which samples every client of a cohort trains on, step by step.

A client's data order comes from its own generator, keyed (seed, stream, round, client), so it does
not depend on the method, the engine, or which other clients train with it. An epoch is one shuffled
pass in fixed-size batches; a trailing batch of one sample joins the previous one (BatchNorm cannot
train on one). A `Plan` is the cohort's sequence of steps: clients are ordered by decreasing number of
steps, so the clients still training at a step are a prefix of the cohort; a batch shorter than its
step's longest is padded with copies of its first sample and weighted 1/len (padding 0), which with
an objective's per-sample terms gives exactly that batch's mean and gradient.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


def batch_bounds(n: int, size: int) -> list[tuple[int, int]]:
    """(start, end) of each minibatch of an epoch over n samples: fixed-size batches, and a trailing
    batch of one sample joins the previous one (BatchNorm cannot train on one)."""
    starts = list(range(0, n, size))
    if len(starts) > 1 and n - starts[-1] == 1:
        starts.pop()
    return list(zip(starts, starts[1:] + [n]))


def epochs_of(idx: torch.Tensor, generator: torch.Generator, epochs: int, size: int) -> list[torch.Tensor]:
    """The batches (sample indices, on idx's device) of `epochs` shuffled passes over `idx`."""
    bounds = batch_bounds(len(idx), size)
    out = []
    for _ in range(epochs):
        order = idx[torch.randperm(len(idx), generator=generator).to(idx.device)]
        out += [order[a:b] for a, b in bounds]
    return out


def steps_of(idx: torch.Tensor, generator: torch.Generator, n: int, size: int) -> list[torch.Tensor]:
    """`n` single batches in the order of the data stream: a new shuffled pass starts whenever one
    ends (a fixed number of steps, not epochs). None for a client without samples."""
    if n <= 0 or len(idx) == 0:
        return []
    per_epoch = len(batch_bounds(len(idx), size))
    return epochs_of(idx, generator, -(-n // per_epoch), size)[:n]


@dataclass
class Step:
    """One step of the cohort's first `active` clients on the sample indices `idx` (active, b).
    When their batches differ in length, `w` (active, b) weighs each row's samples 1/len and its
    padding 0, and `lens` holds the true lengths (both None otherwise)."""

    active: int
    idx: torch.Tensor
    w: torch.Tensor | None = None
    lens: list[int] | None = None

    def rows(self, i: int) -> torch.Tensor:
        """Row i's true sample indices."""
        return self.idx[i] if self.lens is None else self.idx[i, :self.lens[i]]


class Plan:
    """A cohort's steps (iterable, reusable: e.g. two models that train on the same batches) and
    each client's number of steps."""

    def __init__(self, steps: list[Step], counts: np.ndarray):
        self.steps, self.counts = steps, counts

    def __iter__(self):
        return iter(self.steps)

    def __len__(self) -> int:
        return len(self.steps)

    def repeat(self, times: int) -> "Plan":
        """Every step `times` times in a row (K inner steps on one minibatch)."""
        return Plan([s for s in self.steps for _ in range(times)], self.counts * times)

    def split(self) -> list["Plan"]:
        """One plan per step (a loop over single minibatches)."""
        return [Plan([s], (self.counts > i).astype(np.int64)) for i, s in enumerate(self.steps)]


def make_plan(batches: list[list[torch.Tensor]], dtype=torch.float32) -> Plan:
    """The plan of per-client batch lists (cohort order; step counts must not increase along it)."""
    counts = np.array([len(b) for b in batches], dtype=np.int64)
    if len(counts) and (np.diff(counts) > 0).any():
        raise ValueError("a cohort's clients must be ordered by decreasing number of steps")
    S = int(counts.max()) if len(counts) else 0
    if S == 0:
        return Plan([], counts)
    if len(batches) == 1:  # one client: its batches as they are
        return Plan([Step(1, b.unsqueeze(0)) for b in batches[0]], counts)
    m = len(batches)
    start, length = np.zeros((S, m), np.int64), np.zeros((S, m), np.int64)
    flat, offset = [], 0
    for row, client in enumerate(batches):
        for i, batch in enumerate(client):
            start[i, row], length[i, row] = offset, len(batch)
            offset += len(batch)
        flat += client
    b_max = int(length.max())
    cols = np.arange(b_max)
    pos = np.where(cols < length[..., None], start[..., None] + cols, start[..., None])  # pad: 1st sample
    w = (cols < length[..., None]) / np.maximum(length, 1)[..., None]
    dev = flat[0].device
    all_idx = torch.cat(flat)[torch.from_numpy(pos).to(dev)]  # one gather for the whole plan
    all_w = torch.from_numpy(w).to(dev, dtype)
    steps = []
    for s in range(S):
        G = int((length[s] > 0).sum())
        lens = length[s, :G]
        b = int(lens.max())
        padded = int(lens.min()) != b
        steps.append(Step(G, all_idx[s, :G, :b], all_w[s, :G, :b] if padded else None,
                          lens.tolist() if padded else None))
    return Plan(steps, counts)
