"""Dataset names (the `dataset` config group) -> loaders returning a pooled `RawDataset`."""
from __future__ import annotations

from fedbench.data.cifar import load_cifar10, load_cifar100
from fedbench.data.femnist import load_femnist
from fedbench.data.offline import load_digits, load_synthetic
from fedbench.data.types import RawDataset
from fedbench.errors import ConfigError

# Every loader: (params, root, download, verify, seed, num_clients) -> RawDataset.
DATASETS = {
    "digits": load_digits,
    "synthetic": load_synthetic,
    "cifar10": load_cifar10,
    "cifar100": load_cifar100,
    "femnist": load_femnist,
}


def load_dataset(name, params, root, download, verify, seed, num_clients) -> RawDataset:
    """Load dataset `name`. `params` is the `dataset` config group (DictConfig or dict, read with
    `.get`); `root` the data folder; `download`/`verify` allow downloading / checking md5 sums (CIFAR);
    `seed`, `num_clients` drive generated data (synthetic). Unknown names raise ConfigError."""
    if name not in DATASETS:
        raise ConfigError(f"dataset={name!r} is not a dataset; choose one of: {', '.join(DATASETS)}")
    return DATASETS[name](params if params is not None else {}, root, download, verify, seed, num_clients)
