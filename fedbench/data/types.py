"""Plain containers passed between the data stages: dataset -> partition -> federated data."""
from __future__ import annotations

import functools
from dataclasses import dataclass, field

import numpy as np
import torch


@dataclass
class RawDataset:
    """A whole dataset pooled into one array pair (the original train/test split is not used:
    every client's own train/val/test split is drawn from its share, the usual pFL protocol).

    x: float32 array (N, *input_shape), already normalised, unless `standardize`.
    y: int64 array (N,), labels in [0, num_classes).
    groups: optional int64 array (N,) giving a natural client (writer, device) per sample;
            the `natural` partition uses it.
    standardize: True when x still needs centring: the data stage then standardizes each channel
            with the mean and std of the clients' TRAIN samples (fedbench.data.federated).
    The dataset's static facts (image shape, pooled size, ...) are in its DatasetRecord.
    """

    name: str
    x: np.ndarray
    y: np.ndarray
    num_classes: int
    groups: np.ndarray | None = None
    standardize: bool = False

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x.shape[1:])

    def __len__(self) -> int:
        return len(self.y)


@dataclass
class Partition:
    """Per-client index arrays into the pooled dataset, one list entry per client."""

    train: list[np.ndarray]
    val: list[np.ndarray]
    test: list[np.ndarray]

    @property
    def num_clients(self) -> int:
        return len(self.train)

    def client_indices(self, k: int) -> np.ndarray:
        return np.concatenate([self.train[k], self.val[k], self.test[k]])


@dataclass
class ClientData:
    """Index tensors (on the run's device) of one client's splits."""

    train: torch.Tensor
    val: torch.Tensor
    test: torch.Tensor


@dataclass
class FederatedData:
    """The whole federation's data: one tensor per quantity on the device, clients as indices."""

    name: str
    x: torch.Tensor
    y: torch.Tensor
    num_classes: int
    clients: list[ClientData]
    info: dict = field(default_factory=dict)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x.shape[1:])

    @property
    def num_clients(self) -> int:
        return len(self.clients)

    @functools.cached_property
    def sizes(self) -> np.ndarray:
        """(K, 3) int64: each client's train, val and test sizes (computed once)."""
        return np.array([[len(c.train), len(c.val), len(c.test)] for c in self.clients],
                        dtype=np.int64).reshape(-1, 3)
