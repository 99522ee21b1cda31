"""MNIST and Fashion-MNIST: the four original idx files, read by torchvision, train and test pooled.

The files (each plain or gzipped) are looked for, in this order, in `<data.root>/<Class>/raw/`
(torchvision's own layout: FashionMNIST/raw/, MNIST/raw/), then, for fmnist, in the directory of
Debian's `dataset-fashion-mnist` package; when neither holds all four and data.download=true,
torchvision downloads them into `<data.root>/<Class>/raw/`.
"""
from __future__ import annotations

import gzip
import os
import struct
import tempfile
from pathlib import Path

import numpy as np

from fedbench.data.datasets import DatasetRecord, register
from fedbench.data.splits import stratified_subset
from fedbench.data.types import RawDataset
from fedbench.errors import ConfigError, DataMissingError, one_line
from fedbench.seeding import numpy_rng

# Where `apt-get install dataset-fashion-mnist` (Debian/Ubuntu, MIT licence) puts the four .gz files.
FMNIST_DEBIAN_DIR = "/usr/share/datasets/fashion-mnist"
FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
CLASSES = {"fmnist": "FashionMNIST", "mnist": "MNIST"}  # dataset -> its torchvision.datasets class
SIZE = 70000           # 60000 train + 10000 test images, pooled
IMAGE = (1, 28, 28)
NUM_CLASSES = 10


def _folders(name: str, root: str) -> list[str]:
    """The folders searched for the four files, in order: <root>/<Class>/raw, then Debian's (fmnist)."""
    folders = [os.path.join(root, CLASSES[name], "raw")]
    return folders + ([FMNIST_DEBIAN_DIR] if name == "fmnist" else [])


def _find(folder: str) -> dict[str, str] | None:
    """Each of the four files -> its path in `folder` (a plain file preferred over its .gz); None when
    one of them is in neither form."""
    found = {}
    for name in FILES:
        paths = [p for p in (os.path.join(folder, name), os.path.join(folder, name + ".gz")) if os.path.isfile(p)]
        if not paths:
            return None
        found[name] = paths[0]
    return found


def _missing(name: str, root: str, why: str) -> DataMissingError:
    """The one-line error for files found nowhere: where they were expected, and every way to get them."""
    from torchvision import datasets

    folders = _folders(name, root)
    absent = next(f for f in FILES if not any(os.path.isfile(os.path.join(folders[0], f + gz)) for gz in ("", ".gz")))
    ways = [f"put them in {folders[0]}/ (under data.root, default $FEDBENCH_DATA; files from "
            f"{getattr(datasets, CLASSES[name]).mirrors[0]})"]
    if name == "fmnist":
        ways.append(f"`apt-get install dataset-fashion-mnist` as root (installs them in {FMNIST_DEBIAN_DIR}/)")
    ways.append("set data.download=true where the network allows")
    return DataMissingError(
        f"{name} not found: expected the four idx files ({', '.join(FILES)}; each plain or .gz) in "
        f"{' or '.join(f + '/' for f in folders)} (missing {absent}){why}; get them in one of {len(ways)} ways: "
        + "; ".join(f"({i}) {way}" for i, way in enumerate(ways, 1)))


def _read(cls: type, files: dict[str, str]) -> tuple[np.ndarray, np.ndarray]:
    """uint8 images (N, 28, 28) and int64 labels, train then test, as torchvision's `cls` reads them from
    a scratch root whose <Class>/raw/ holds the four files: .gz ones decompressed there by torchvision's
    extract_archive, plain ones linked."""
    from torchvision.datasets.utils import extract_archive

    with tempfile.TemporaryDirectory(prefix="fedbench-idx-") as scratch:
        raw = os.path.join(scratch, cls.__name__, "raw")
        os.makedirs(raw)
        for name, path in files.items():
            if path.endswith(".gz"):
                extract_archive(path, raw)
            else:
                os.symlink(os.path.abspath(path), os.path.join(raw, name))
        parts = [cls(scratch, train=train) for train in (True, False)]
        return np.concatenate([p.data.numpy() for p in parts]), np.concatenate([p.targets.numpy() for p in parts])


def _located(name: str, root: str, download: bool) -> dict[str, str]:
    """The four files: from the first folder of `_folders` holding all of them, else downloaded by
    torchvision into <root>/<Class>/raw/ when `download`; DataMissingError otherwise."""
    for folder in _folders(name, root):
        if (files := _find(folder)) is not None:
            return files
    why = ""
    if download:
        from torchvision import datasets

        try:  # fetches the .gz files (md5-checked) and extracts them next to them
            getattr(datasets, CLASSES[name])(root, train=True, download=True)
        except Exception as exc:  # torchvision: RuntimeError naming every mirror tried; OSError
            why = f" (download failed: {one_line(exc)})"
        if (files := _find(_folders(name, root)[0])) is not None:
            return files
    raise _missing(name, root, why)


def load_images(name: str, root, download: bool) -> tuple[np.ndarray, np.ndarray]:
    """The pooled uint8 images (N, 28, 28) and int64 labels of `name` ('fmnist' or 'mnist'), found as
    the module docstring says; DataMissingError (one line) when absent or unreadable."""
    from torchvision import datasets

    root = os.path.expanduser(os.fspath(root))
    files = _located(name, root, download)
    folder = os.path.dirname(next(iter(files.values()))) + os.sep
    try:
        images, labels = _read(getattr(datasets, CLASSES[name]), files)
    except Exception as exc:  # torchvision's reader: AssertionError/TypeError/ValueError; gzip: OSError, EOFError
        raise DataMissingError(f"{name} files in {folder} could not be read as idx files: {one_line(exc)}") from None
    if images.shape[1:] != IMAGE[1:] or not 0 < len(images) == len(labels) or labels.max() >= NUM_CLASSES:
        raise DataMissingError(f"{name} files in {folder} hold {len(images)} images of {images.shape[1:]} and "
                               f"{len(labels)} labels: expected 28x28 images, one label in [0, 10) each")
    return images, labels.astype(np.int64)


def load_mnist_family(name: str, params, root, download: bool, seed: int) -> RawDataset:
    """`name` ('fmnist' or 'mnist'): x float32 (N, 1, 28, 28) scaled to [-1, 1] as PFLlib does
    (ToTensor then Normalize(0.5, 0.5): (p/255 - 0.5)/0.5, so pixel 0 -> -1 and 255 -> 1); y int64 in
    [0, 10). params["samples"]: None keeps every pooled image; an integer n keeps a subset of n images
    stratified by class (each class its proportional share, +-1), drawn from the seed's own
    `subsample` stream, so one seed gives the same subset to every method."""
    images, labels = load_images(name, root, download)
    samples = params["samples"]
    if samples is not None:
        if samples > len(labels):
            raise ConfigError(f"dataset.samples={samples}: dataset={name} has only {len(labels)} images")
        keep = stratified_subset(labels, samples, numpy_rng(seed, "subsample"))
        images, labels = images[keep], labels[keep]
    x = images.reshape((-1,) + IMAGE).astype(np.float32)  # in place from here: 220 MB at full size
    x /= 255.0
    x -= 0.5
    x /= 0.5
    return RawDataset(name=name, x=x, y=labels, num_classes=NUM_CLASSES, groups=None)


def _size(params) -> int:
    """The pooled size: every image, or the subsample's."""
    return SIZE if params["samples"] is None else int(params["samples"])


# -- tiny files in the real format (DatasetRecord.fixture) ------------------------------------------
def _idx(path: Path, array: np.ndarray, gz: bool) -> None:
    """`array` (uint8) as an idx file: magic 0x00 0x00 0x08 (unsigned byte) <ndim>, each dimension as a
    big-endian int32, then the bytes; gzipped to `path`.gz when `gz`."""
    data = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    if gz:
        path.with_name(path.name + ".gz").write_bytes(gzip.compress(data))
    else:
        path.write_bytes(data)


def write_mnist(folder: Path, n_train=30, n_test=10, gz=True, seed=0, labels=None):
    """The four original files in `folder` (gz: True, False, or 'mixed': the image files gzipped, the
    label files plain); returns the pooled (uint8 images (N, 28, 28), labels), train first. Image 0
    holds the pixel values 0, 255 and 51 at row 0, columns 0-2."""
    rng = np.random.default_rng(seed)
    n = n_train + n_test
    images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
    images[0, 0, :3] = (0, 255, 51)
    labels = rng.permutation(np.arange(n) % 10).astype(np.uint8) if labels is None else np.asarray(labels, np.uint8)
    for split, part in (("train", slice(0, n_train)), ("t10k", slice(n_train, n))):
        _idx(folder / f"{split}-images-idx3-ubyte", images[part], gz in (True, "mixed"))
        _idx(folder / f"{split}-labels-idx1-ubyte", labels[part], gz is True)
    return images, labels.astype(np.int64)


def write_fixture(name: str, root, **kwargs):
    """Tiny files for dataset `name` where the loader looks first: <root>/<Class>/raw/."""
    return write_mnist(Path(root) / CLASSES[name] / "raw", **kwargs)


def _record(name: str) -> DatasetRecord:
    """fmnist and mnist: 70000 grey 28x28 images (train and test pooled), 10 classes, no natural groups;
    one parameter, `samples` (null: all; n: a stratified subset of n). data.verify has nothing to check
    here: torchvision checks the md5 sums of the MNIST files it downloads, always, and none on load."""
    return DatasetRecord(
        name=name, load=lambda params, root, download, verify, seed, num_clients:
            load_mnist_family(name, params, root, download, seed),
        ranges={"samples": f"null or int [1, {SIZE}]"}, input_shape=IMAGE, num_classes=NUM_CLASSES, size=_size,
        groups=False, image_shape=IMAGE, fixture=lambda root: write_fixture(name, root))


register(_record("fmnist"))
register(_record("mnist"))
