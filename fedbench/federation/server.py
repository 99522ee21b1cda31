"""The server side of a method: what its server step sees and what it may change.

  Uploads   the round's uploads: each sampled client's id and weight (its train size, or 1 with
            uniform weighting) and, stacked in id order (a leading client dimension, so a step can be
            vectorized), the tensors it sent: its shared model tensors (by model key) and the client
            state the method declares in `uploads` (e.g. class prototypes, control variates). `mean()` is the
            weighted mean of the default server step; `tensors` holds the stack, collected only for a
            method that overrides `aggregate` (the default's mean is summed as the cohorts come).
  Server    the global state (the averaged shared tensors every client downloads), the method's own
            server state (`server_state(model, num_clients)`: tensors, kept in every checkpoint, e.g. a global control
            variate, every client's latest model), and `send(ids, tensors)`: a per-client download
            written into those clients' own tensors (a model built for each, a combined head). What `send` and
            a method's `download` hook hand out is counted as downloaded bytes, what Uploads holds as
            uploaded bytes.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from fedbench.federation.aggregation import Aggregator
from fedbench.federation.store import nbytes


@dataclass
class Uploads:
    """The round's uploads (see the module docstring)."""

    ids: np.ndarray
    weights: np.ndarray
    tensors: dict = field(default_factory=dict)
    _sums: Aggregator | None = None

    def mean(self, like: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The weighted mean of the uploads of `like`'s keys (the global state's), in their dtypes."""
        if self._sums is not None:
            return self._sums.mean(like)
        w = torch.as_tensor(self.weights / self.weights.sum())
        out = {}
        for k, v in like.items():
            mean = torch.tensordot(w.to(self.tensors[k].device, torch.float64), self.tensors[k].double(), dims=1)
            out[k] = mean.to(v.dtype) if v.is_floating_point() else mean.round().to(v.dtype)
        return out


class Collector:
    """The round's uploads as the cohorts come: summed (the default step's mean) or kept to be stacked."""

    def __init__(self, global_state: dict[str, torch.Tensor], stacked: bool):
        self.stacked = stacked
        self.sums = None if stacked else Aggregator(global_state)
        self.parts: list[tuple[np.ndarray, np.ndarray, dict]] = []
        self.bytes = 0

    def add(self, ids: np.ndarray, weights: np.ndarray, uploads: dict[str, torch.Tensor]) -> None:
        self.bytes += nbytes(uploads)
        if self.stacked:
            self.parts.append((np.asarray(ids), np.asarray(weights, dtype=np.float64),
                               {k: v.detach().clone() for k, v in uploads.items()}))
        elif self.sums.acc:
            self.sums.add(uploads, weights)

    def uploads(self) -> Uploads:
        if not self.stacked:
            return Uploads(np.zeros(0, np.int64), np.zeros(0), {}, self.sums)
        if not self.parts:
            return Uploads(np.zeros(0, np.int64), np.zeros(0))
        ids = np.concatenate([p[0] for p in self.parts])
        order = np.argsort(ids, kind="stable")
        index = torch.as_tensor(order)
        stacked = {k: torch.cat([p[2][k] for p in self.parts]).index_select(0, index.to(self.parts[0][2][k].device))
                   for k in self.parts[0][2]}
        return Uploads(ids[order], np.concatenate([p[1] for p in self.parts])[order], stacked)


class Server:
    """What a method's `aggregate(server, uploads)` and `download(server, ids, phase)` may read and
    change (see the module docstring)."""

    def __init__(self, tensors, state: dict[str, torch.Tensor], num_clients: int):
        self._tensors = tensors
        self.state = {k: v.detach().clone() for k, v in state.items()}
        self.num_clients = num_clients
        self.bytes_sent = 0

    @property
    def global_state(self) -> dict[str, torch.Tensor]:
        return self._tensors.global_state

    @global_state.setter
    def global_state(self, value: dict[str, torch.Tensor]) -> None:
        self._tensors.global_state = value
        self._tensors.refresh_global()

    @torch.no_grad()
    def send(self, ids, tensors: dict[str, torch.Tensor]) -> None:
        """Write `tensors` ({name: (len(ids), ...)}) into clients `ids`' own tensors: a model tensor by
        its key (a personal one), anything else by its client-state name."""
        store = self._tensors.store.tensors
        rows = torch.as_tensor(np.asarray(ids, dtype=np.int64))
        for name, value in tensors.items():
            if name not in store:
                raise KeyError(f"server.send: {name!r} is neither a personal model tensor nor a client state")
            store[name].index_copy_(0, rows.to(store[name].device), value.to(store[name].dtype))
        self.bytes_sent += nbytes(tensors)

    def state_dict(self) -> dict:
        return dict(self.state)

    @torch.no_grad()
    def load_state_dict(self, state: dict) -> None:
        if set(state) != set(self.state) or any(state[k].shape != v.shape for k, v in self.state.items()):
            raise ValueError("checkpoint server state does not match this run's")
        self.state = {k: state[k].to(v.device).clone() for k, v in self.state.items()}
