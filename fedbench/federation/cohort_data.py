"""The data side of a cohort: each client's data-order stream, the batches of its local epochs, and
sub-cohorts of some of its rows. A client's stream is keyed (seed, stream, round, client): it does not
depend on the method, the engine or which other clients share the cohort."""
from __future__ import annotations

import numpy as np
import torch

from fedbench.federation.batches import Plan, epochs_of, make_plan, steps_of
from fedbench.seeding import torch_generator


class CohortData:
    """The base of Cohort: reads its `ids`, `training`, `data`, `stream`, `round`, `state`,
    `_generators` (each client's generator, made on first use) and its constructor (for `rows`)."""

    def _generator(self, k: int) -> torch.Generator:
        if k not in self._generators:  # made on first use, then drawn from for the whole round
            self._generators[k] = torch_generator(self.training.seed, self.stream, self.round, int(k))
        return self._generators[k]

    def batches(self, epochs: int | None = None, split: str = "train", batch_size: int | None = None,
                fraction: float = 1.0) -> Plan:
        """`epochs` shuffled passes (default: the run's local_epochs) over each client's `split`, or
        over a random `fraction` of it (floor(fraction x n) samples, drawn once for these epochs)."""
        epochs = self.training.local_epochs if epochs is None else epochs
        size = batch_size or self.training.batch_size
        plans = []
        for k in self.ids:
            idx, g = getattr(self.data.clients[k], split), self._generator(k)
            if fraction < 1.0:
                idx = idx[torch.randperm(len(idx), generator=g)[:int(fraction * len(idx))].to(idx.device)]
            plans.append(epochs_of(idx, g, epochs, size))
        return make_plan(plans, self.data.x.dtype)

    def rows(self, selected: np.ndarray) -> "CohortData":
        """The cohort of the clients at rows `selected` (a boolean mask, in row order): copies of their
        tensors, the same data streams (their order goes on where this cohort's is); write back with
        `update_rows`."""
        rows = torch.as_tensor(np.flatnonzero(selected), device=self.data.x.device)
        state = {n: t.index_select(0, rows) for n, t in self.state.items()}
        sub = type(self)(self.setup, self.ids[selected], self.round, state, self.stream, self.vmapped, self.phase)
        sub._generators = self._generators
        return sub

    @torch.no_grad()
    def update_rows(self, selected: np.ndarray, sub: "CohortData") -> None:
        """Write the tensors of `sub` (made by `rows(selected)`) back into this cohort's rows."""
        rows = torch.as_tensor(np.flatnonzero(selected), device=self.data.x.device)
        for n, t in self.state.items():
            t.index_copy_(0, rows, sub.state[n])

    def minibatches(self, n: int, batch_size: int | None = None) -> Plan:
        """`n` single train minibatches per client, in its data stream's order (a fixed number of
        steps: every client of the cohort takes all n)."""
        size = batch_size or self.training.batch_size
        return make_plan([steps_of(self.data.clients[k].train, self._generator(k), n, size) for k in self.ids],
                         self.data.x.dtype)
