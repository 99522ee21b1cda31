"""Dataset registry: the `dataset` config group. One module here per dataset (or family: cifar.py holds
CIFAR-10 and CIFAR-100) defines its loader and registers a `DatasetRecord`; its defaults live in
conf/dataset/<name>.yaml. Adding a dataset = one module here + one yaml, nothing else.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping

from fedbench.data.params import require_params
from fedbench.registry import Registry
from fedbench.data.types import RawDataset

# (params, root, download, verify, seed, num_clients) -> RawDataset
Loader = Callable[[Mapping, Any, bool, bool, int, int], RawDataset]


@dataclass(frozen=True)
class DatasetRecord:
    """One dataset: its loader, the ranges of its parameters, and the static facts that let a whole
    config be checked before any data is loaded.

    name         the option name: conf/dataset/<name>.yaml
    load         (params, root, download, verify, seed, num_clients) -> RawDataset (pooled): params is
                 the dataset config group holding every key of `ranges`; root the data folder;
                 download/verify allow downloading / checking md5 sums; seed and num_clients drive
                 generated data
    ranges       every key of the yaml but `name` -> its spec (fedbench.config.specs); the values (defaults
                 included) come only from the yaml
    input_shape  the shape of one sample as the model sees it
    num_classes  the number of classes
    size         the pooled number of samples; None when only the files or the draw tell
                 (input_shape, num_classes and size may each be a function of the params instead)
    groups       True when samples carry natural clients (writers, devices): partition=natural
    image_shape  (C, H, W) of the image behind each sample (data.rotations turns it); None: no images
    offline      True when it loads without files or network (bundled or generated)
    check        optional (params) -> None raising ConfigError: what `ranges` cannot say key by key
    fixture      for a dataset read from files: (root) -> writes a tiny copy of them in their real on-disk
                 format where the loader looks under data.root `root` (tests load it through the real
                 loader; also a quick check of an install); returns what it wrote, for checks
    """

    name: str
    load: Loader
    ranges: Mapping[str, Any]
    input_shape: tuple[int, ...] | Callable[[Mapping], tuple[int, ...]]
    num_classes: int | Callable[[Mapping], int]
    size: int | None | Callable[[Mapping], int | None]
    groups: bool
    image_shape: tuple[int, int, int] | None = None
    offline: bool = False
    check: Callable[[Mapping], None] | None = None
    fixture: Callable[[Any], Any] | None = None

    @property
    def images(self) -> bool:
        return self.image_shape is not None

    def info(self, params: Mapping) -> dict:
        """The facts for these params: name, shape, classes, size, groups, images."""
        def value(fact):
            return fact(params) if callable(fact) else fact

        return {"name": self.name, "shape": tuple(value(self.input_shape)), "classes": int(value(self.num_classes)),
                "size": value(self.size), "groups": self.groups, "images": self.images}


# listed offline datasets first (the ones that run anywhere), then by name
DATASETS = Registry(__name__, "dataset", order=lambda record: (not record.offline, record.name))
register = DATASETS.register


def load_dataset(name, params, root, download, verify, seed, num_clients) -> RawDataset:
    """Load dataset `name` with `params`, its config group (a DictConfig, or a dict holding every key of
    the record's ranges); the other arguments as `DatasetRecord.load`. Unknown names and missing
    parameters raise ConfigError."""
    record = DATASETS.get(name)
    params = {} if params is None else params
    require_params("dataset", name, params, record.ranges)
    return record.load(params, root, download, verify, seed, num_clients)
