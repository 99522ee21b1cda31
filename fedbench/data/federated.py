"""data -> partition -> split: build the federation's data for a run config."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from fedbench.data.cache import cached_partition
from fedbench.data.datasets import DATASETS, load_dataset
from fedbench.data.holdout import total_clients, unseen_count, unseen_ids
from fedbench.data.partitions import partition_indices
from fedbench.data.splits import split_all
from fedbench.data.types import ClientData, FederatedData
from fedbench.seeding import numpy_rng


def partition_key(cfg: DictConfig, n_samples: int) -> dict:
    return {"dataset": cfg.dataset.name, "dataset_params": OmegaConf.to_container(cfg.dataset, resolve=True),
            "n_samples": int(n_samples), "partition": cfg.partition.name,
            "params": OmegaConf.to_container(cfg.partition, resolve=True), "num_clients": total_clients(cfg),
            "val_frac": float(cfg.data.val_frac), "test_frac": float(cfg.data.test_frac), "seed": int(cfg.seed)}


def standardized(x: np.ndarray, train: np.ndarray) -> np.ndarray:
    """x centred and scaled per channel (axis 1) by the mean and std of the samples `train` only
    (no statistic of a validation or test sample reaches the inputs)."""
    axes = (0,) + tuple(range(2, x.ndim))
    ref = x[train].astype(np.float64)
    mean, std = ref.mean(axis=axes, keepdims=True), ref.std(axis=axes, keepdims=True)
    return ((x - mean) / np.where(std > 0, std, 1.0)).astype(np.float32)


def rotated(x: np.ndarray, partition, rotations: int, image_shape) -> np.ndarray:
    """A feature-shift federation (FedBN's regime, the rotated-MNIST of clustered FL): every image of
    client k turned by (k mod rotations) quarter turns x 4/rotations (exact: np.rot90, no
    interpolation); labels and splits unchanged. `image_shape`: (C, H, W) behind each row of x."""
    images = x.reshape((len(x),) + tuple(image_shape)).copy()
    for k in range(partition.num_clients):
        quarter = (k % rotations) * (4 // rotations)
        if quarter:
            idx = partition.client_indices(k)
            images[idx] = np.rot90(images[idx], quarter, axes=(-2, -1))
    return images.reshape(x.shape)


def load_federated(cfg: DictConfig, device: torch.device) -> FederatedData:
    """Load the dataset, partition it across clients (cached on disk), split each client. With
    unseen_frac > 0 the clients are the participants and the newcomers (fedbench.data.holdout; their ids
    in info["unseen"]), and the inputs are standardized by the participants' train samples alone."""
    root = Path(cfg.data.root)
    total = total_clients(cfg)
    raw = load_dataset(cfg.dataset.name, cfg.dataset, root, bool(cfg.data.download), bool(cfg.data.verify),
                       int(cfg.seed), total)

    def build():
        parts = partition_indices(cfg.partition.name, raw.y, raw.groups, total, cfg.partition,
                                  numpy_rng(cfg.seed, "partition"))
        return split_all(parts, raw.y, lambda k: numpy_rng(cfg.seed, "split", k),
                         float(cfg.data.val_frac), float(cfg.data.test_frac))

    partition, cache_path = cached_partition(root / "partitions", partition_key(cfg, len(raw)), build,
                                             raw.num_classes, raw.y)
    held = unseen_ids(total, unseen_count(int(cfg.num_clients), float(cfg.get("unseen_frac", 0.0) or 0.0)),
                      int(cfg.seed))
    if raw.standardize:
        seen = np.setdiff1d(np.arange(total), held)
        raw.x = standardized(raw.x, np.concatenate([partition.train[k] for k in seen]))
    rotations = int(cfg.data.get("rotations", 1))
    if rotations > 1:
        raw.x = rotated(raw.x, partition, rotations, DATASETS.get(cfg.dataset.name).image_shape)
    as_idx = lambda a: torch.as_tensor(np.asarray(a, dtype=np.int64), device=device)  # noqa: E731
    clients = [ClientData(as_idx(tr), as_idx(va), as_idx(te))
               for tr, va, te in zip(partition.train, partition.val, partition.test)]
    return FederatedData(raw.name, torch.as_tensor(raw.x, device=device),
                         torch.as_tensor(raw.y, dtype=torch.int64, device=device), raw.num_classes, clients,
                         info={"partition_cache": str(cache_path), "unseen": held})
