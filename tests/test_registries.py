"""Dataset and partition registries: one record + one yaml each, nothing else.

Every yaml has a record and every record a yaml with exactly the record's keys (so a default cannot
live anywhere but the yaml), the facts a record states are those of the data its loader returns, and
a record registered at runtime is picked up by config validation and by the data stage with no
other edit."""
from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from fedbench.config import prepare
from fedbench.data.datasets import DATASETS, DatasetRecord, load_dataset
from fedbench.data.federated import load_federated
from fedbench.data.partitions import PARTITIONS, PartitionRecord
from fedbench.data.partitions.common import MIN_SAMPLES
from fedbench.data.types import RawDataset
from fedbench.errors import ConfigError
from fedbench.config.specs import check
from tests.runs_helpers import compose_cfg

CONF = Path(__file__).resolve().parents[1] / "conf"
REGISTRIES = [("dataset", DATASETS), ("partition", PARTITIONS)]


@pytest.mark.parametrize("group,registry", REGISTRIES, ids=[g for g, _ in REGISTRIES])
def test_every_yaml_has_a_record_and_every_record_a_yaml_with_its_keys(group, registry):
    yamls = {p.stem: OmegaConf.load(p) for p in (CONF / group).glob("*.yaml")}
    assert sorted(yamls) == sorted(registry.names())
    for name, yaml in yamls.items():
        record = registry.get(name)
        assert yaml.name == name
        assert set(yaml) - {"name", "defaults"} == set(record.ranges), f"conf/{group}/{name}.yaml vs its record's ranges"
        for key, spec in record.ranges.items():
            check(f"{group}.{key}", yaml[key], spec)  # every default within its range
        if group == "dataset":  # its default model: the dataset yaml's defaults list picks it
            assert compose_cfg(f"dataset={name}").model.name in {p.stem for p in (CONF / "model").glob("*.yaml")}


def _load(name: str, params, tmp_path: Path) -> RawDataset:
    """Dataset `name` with `params`: offline ones as they are, the others from the tiny files in their
    real format that their record's fixture writes."""
    record = DATASETS.get(name)
    assert record.offline or record.fixture is not None, f"dataset {name} reads files but has no fixture writer"
    if record.fixture is not None:
        record.fixture(tmp_path)
    return load_dataset(name, params, tmp_path, False, False, 0, 5)


@pytest.mark.parametrize("name", DATASETS.names())
def test_a_records_facts_are_those_of_its_data(name, tmp_path):
    record = DATASETS.get(name)
    params = OmegaConf.load(CONF / "dataset" / f"{name}.yaml")
    info, raw = record.info(params), _load(name, params, tmp_path)
    assert info["shape"] == raw.input_shape and info["classes"] == raw.num_classes
    assert raw.y.min() >= 0 and raw.y.max() < info["classes"]
    assert info["groups"] == (raw.groups is not None)
    if record.offline:
        assert info["size"] in (None, len(raw))
    if record.images:
        assert np.prod(record.image_shape) == np.prod(info["shape"])


# ---------------------------------------------------------------- a partition added at runtime
def blocks(labels, num_clients, rng, skip):
    """Toy partition: drop the first `skip` samples, then contiguous blocks of (nearly) equal size."""
    return [a.astype(np.int64) for a in np.array_split(np.arange(skip, len(labels)), num_clients)]


def skip_fits(params, num_clients, info):
    if info["size"] is not None and info["size"] - params["skip"] < num_clients:
        raise ConfigError(f"partition.skip={params['skip']}: leaves fewer samples than clients")


TOY_PARTITION = PartitionRecord(
    name="toy_blocks", needs="labels", ranges={"skip": "int [0, inf)", "min_samples": MIN_SAMPLES},
    split=lambda labels, k, rng, p: blocks(labels, k, rng, p["skip"]), check=skip_fits)


@contextmanager
def registered(registry, record):
    """`record` in `registry` for the duration, then removed."""
    registry.register(record)
    try:
        yield record
    finally:
        del registry.by_name[record.name]


def with_group(group: str, node: dict, *overrides):
    """The composed config with `group` replaced by `node` (an option with no yaml)."""
    cfg = compose_cfg(*overrides)
    cfg[group] = OmegaConf.create(node)
    return cfg


@pytest.mark.parametrize("node,message", [
    ({"skip": -1, "min_samples": 1}, "partition.skip=-1: must be an integer >= 0"),
    ({"skip": 1795, "min_samples": 1}, "partition.skip=1795: leaves fewer samples than clients"),
    ({"skip": 10, "min_samples": 1, "skipp": 3}, "partition.skipp=3: unknown key for partition=toy_blocks"),
    ({"min_samples": 1}, "partition.skip: missing; partition=toy_blocks needs skip, min_samples"),
])
def test_a_partition_registered_at_runtime_is_validated(node, message):
    with registered(PARTITIONS, TOY_PARTITION), pytest.raises(ConfigError, match=message):
        prepare(with_group("partition", {"name": "toy_blocks", **node}, "num_clients=5"), machine=False)


def test_a_partition_registered_at_runtime_runs_then_goes_away(tmp_path):
    node, overrides = {"name": "toy_blocks", "skip": 97, "min_samples": 1}, ["num_clients=5", f"data.root={tmp_path}"]
    with registered(PARTITIONS, TOY_PARTITION):
        data = load_federated(prepare(with_group("partition", node, *overrides), machine=False), torch.device("cpu"))
        held = [torch.cat([c.train, c.val, c.test]).sort().values.numpy() for c in data.clients]
        assert all(np.array_equal(h, e) for h, e in zip(held, np.array_split(np.arange(97, 1797), 5)))
        with pytest.raises(ConfigError, match="partition.min_samples=400: partition=toy_blocks gave a client only 340"):
            load_federated(with_group("partition", {**node, "min_samples": 400}, *overrides), torch.device("cpu"))
    assert "toy_blocks" not in PARTITIONS.names()
    with pytest.raises(ConfigError, match="partition='toy_blocks' is not a partition; choose one of: dirichlet"):
        prepare(with_group("partition", node, *overrides), machine=False)


# ---------------------------------------------------------------- a dataset added at runtime
def load_blobs(params, root, download, verify, seed, num_clients) -> RawDataset:
    """Toy dataset: n samples of 5 features, 3 classes, one Gaussian blob per class."""
    rng = np.random.default_rng(seed)
    y = np.arange(params["n"]) % 3
    return RawDataset("toy_blobs", (rng.normal(size=(len(y), 5)) + y[:, None]).astype(np.float32), y, 3)


TOY_DATASET = DatasetRecord(name="toy_blobs", load=load_blobs, ranges={"n": "int [3, inf)"}, input_shape=(5,),
                            num_classes=3, size=lambda params: params["n"], groups=False, offline=True)


@pytest.mark.parametrize("overrides,message", [
    (["partition=pathological", "partition.classes_per_client=4"],
     r"partition.classes_per_client=4: must be an integer in \[1, 3\] \(dataset=toy_blobs has 3 classes\)"),
    (["partition=natural"], "partition='natural': dataset=toy_blobs has no natural groups"),
    (["partition=iid", "num_clients=400"], "the clients need 400 samples but dataset=toy_blobs has 300"),
    (["data.rotations=2"], "dataset=toy_blobs has no images to rotate"),
    (["model=cnn"], r"model='cnn' does not fit dataset=toy_blobs \(inputs of shape \(5,\)\)"),
])
def test_a_dataset_registered_at_runtime_is_validated_from_its_facts(overrides, message):
    with registered(DATASETS, TOY_DATASET), pytest.raises(ConfigError, match=message):
        prepare(with_group("dataset", {"name": "toy_blobs", "n": 300}, *overrides), machine=False)


def test_a_dataset_registered_at_runtime_loads(tmp_path):
    with registered(DATASETS, TOY_DATASET):
        cfg = prepare(with_group("dataset", {"name": "toy_blobs", "n": 90}, "partition=pathological",
                                 "num_clients=6", f"data.root={tmp_path}"), machine=False)
        data = load_federated(cfg, torch.device("cpu"))
        assert data.x.shape == (90, 5) and data.num_classes == 3 and data.num_clients == 6
        for c in data.clients:
            assert len(torch.unique(data.y[torch.cat([c.train, c.val, c.test])])) == 2  # classes_per_client
        with pytest.raises(ConfigError, match="dataset.n: missing; dataset=toy_blobs needs n"):
            load_dataset("toy_blobs", {}, tmp_path, False, False, 0, 6)
    assert "toy_blobs" not in DATASETS
