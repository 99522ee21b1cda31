"""CIFAR-10/100 through torchvision's own dataset classes, train and test pooled into one array."""
from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np

from fedbench.data.datasets import DatasetRecord, register
from fedbench.data.types import RawDataset
from fedbench.errors import DataMissingError, one_line

# Per-channel mean/std of the training images (pixels scaled to [0, 1]).
_STATS = {
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
}
_CLASSES = {"cifar10": 10, "cifar100": 100}
_PAGE = "https://www.cs.toronto.edu/~kriz/cifar.html"


def _unverified(cls: type) -> type:
    """`cls` with every md5 set to None: torchvision's `check_integrity(path, None)` then only checks
    that the file exists (this covers `_check_integrity`, `_load_meta` and `download`)."""
    return type(
        f"Unverified{cls.__name__}",
        (cls,),
        {
            "train_list": [[name, None] for name, _ in cls.train_list],
            "test_list": [[name, None] for name, _ in cls.test_list],
            "meta": {**cls.meta, "md5": None},
        },
    )


def _files(cls: type, root: str) -> list[str]:
    names = [n for n, _ in cls.train_list + cls.test_list] + [cls.meta["filename"]]
    return [os.path.join(root, cls.base_folder, n) for n in names]


def _load(name: str, root, download: bool, verify: bool) -> RawDataset:
    from torchvision import datasets  # imported here: it costs seconds, and most runs need no CIFAR

    cls = datasets.CIFAR10 if name == "cifar10" else datasets.CIFAR100
    root = os.path.expanduser(os.fspath(root))
    folder = os.path.join(root, cls.base_folder) + os.sep
    klass = cls if verify else _unverified(cls)
    try:
        parts = [klass(root, train=True, download=bool(download)), klass(root, train=False)]
    except Exception as exc:  # torchvision raises RuntimeError; a failed download URLError/OSError
        missing = [p for p in _files(cls, root) if not os.path.isfile(p)]
        if missing:
            why = f" (download failed: {one_line(exc)})" if download else ""
            raise DataMissingError(
                f"{name} not found: expected {folder} (missing {os.path.basename(missing[0])}){why}; "
                f"set data.download=true where the network allows, or download {cls.filename} from "
                f"{_PAGE} and extract it under data.root={root} (or set FEDBENCH_DATA)"
            ) from None
        if verify:
            raise DataMissingError(
                f"{name} files under {folder} fail torchvision's md5 check (corrupt, or not the official "
                f"release): delete them and set data.download=true, or extract {cls.filename} from {_PAGE} "
                f"again, or set data.verify=false to load them unchecked"
            ) from None
        raise DataMissingError(f"{name} files under {folder} could not be read: {one_line(exc)}") from None

    data = np.concatenate([p.data for p in parts])  # uint8 (N, 32, 32, 3)
    y = np.concatenate([np.asarray(p.targets, dtype=np.int64) for p in parts])
    x = data.transpose(0, 3, 1, 2).astype(np.float32)  # NCHW copy
    mean, std = (np.asarray(s, dtype=np.float32).reshape(1, 3, 1, 1) for s in _STATS[name])
    x /= 255.0
    x -= mean
    x /= std
    return RawDataset(name=name, x=x, y=y, num_classes=_CLASSES[name], groups=None)


def load_cifar10(params, root, download, verify, seed, num_clients) -> RawDataset:
    """CIFAR-10 (60000 images, 10 classes) from `<root>/cifar-10-batches-py/`; x: float32 (N, 3, 32, 32),
    per-channel standardised. verify=False skips torchvision's md5 checks (files must still exist)."""
    return _load("cifar10", root, download, verify)


def load_cifar100(params, root, download, verify, seed, num_clients) -> RawDataset:
    """CIFAR-100 (60000 images, 100 fine classes) from `<root>/cifar-100-python/`; x: float32
    (N, 3, 32, 32), per-channel standardised. verify=False skips torchvision's md5 checks."""
    return _load("cifar100", root, download, verify)


# -- tiny files in the real format (DatasetRecord.fixture) ------------------------------------------
def _pickle(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as fh:
        pickle.dump(obj, fh, protocol=2)


def write_cifar10(root: Path, per_batch=10):
    """cifar-10-batches-py/ as in the official tarball; returns the (uint8 rows, labels) in load order."""
    rng = np.random.default_rng(0)
    rows, labels = [], []
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8)
        lab = rng.integers(0, 10, per_batch).tolist()
        _pickle(root / "cifar-10-batches-py" / name,
                {"batch_label": name, "labels": lab, "data": data, "filenames": [f"{i}.png" for i in lab]})
        rows.append(data), labels.extend(lab)
    _pickle(root / "cifar-10-batches-py" / "batches.meta",
            {"num_cases_per_batch": per_batch, "label_names": [f"c{i}" for i in range(10)], "num_vis": 3072})
    return np.concatenate(rows), np.asarray(labels)


def write_cifar100(root: Path, n_train=10, n_test=10):
    """cifar-100-python/ as in the official tarball; returns the (uint8 rows, fine labels) in load order."""
    rng = np.random.default_rng(1)
    rows, labels = [], []
    for name, n in (("train", n_train), ("test", n_test)):
        data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        fine = rng.integers(0, 100, n).tolist()
        _pickle(root / "cifar-100-python" / name,
                {"filenames": [f"{i}.png" for i in range(n)], "batch_label": name, "fine_labels": fine,
                 "coarse_labels": [f // 5 for f in fine], "data": data})
        rows.append(data), labels.extend(fine)
    _pickle(root / "cifar-100-python" / "meta",
            {"fine_label_names": [f"f{i}" for i in range(100)], "coarse_label_names": [f"c{i}" for i in range(20)]})
    return np.concatenate(rows), np.asarray(labels)


def _record(name: str, load, fixture) -> DatasetRecord:
    """Both CIFARs: 60000 RGB 32x32 images (train and test pooled), no parameters, no natural groups."""
    return DatasetRecord(name=name, load=load, ranges={}, input_shape=(3, 32, 32), num_classes=_CLASSES[name],
                         size=60000, groups=False, image_shape=(3, 32, 32), fixture=fixture)


register(_record("cifar10", load_cifar10, write_cifar10))
register(_record("cifar100", load_cifar100, write_cifar100))
