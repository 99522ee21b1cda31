"""Dataset loaders: offline data, CIFAR in its real on-disk format via torchvision, LEAF FEMNIST JSON."""
import urllib.error
from pathlib import Path

import numpy as np
import torch
import pytest
import torchvision.datasets.cifar
from omegaconf import OmegaConf

from fedbench.data.datasets import DATASETS, load_dataset
from fedbench.data.datasets.cifar import _STATS, load_cifar10, load_cifar100, write_cifar10, write_cifar100
from fedbench.data.datasets.digits import load_digits
from fedbench.data.datasets.femnist import load_femnist, write_femnist
from fedbench.data.datasets.synthetic import load_synthetic
from fedbench.errors import ConfigError, DataMissingError
from tests.runs_helpers import compose_cfg

CONF = Path(__file__).resolve().parents[1] / "conf" / "dataset"
SYNTHETIC = OmegaConf.load(CONF / "synthetic.yaml")  # the defaults live only in the yaml


def synth(seed=0, num_clients=20, **params):
    return load_synthetic(OmegaConf.merge(SYNTHETIC, params), None, False, True, seed, num_clients)


def label_heterogeneity(ds):
    """Mean total-variation distance between each group's label histogram and the pooled one."""
    pooled = np.bincount(ds.y, minlength=ds.num_classes) / len(ds)
    tv = [0.5 * np.abs(np.bincount(ds.y[ds.groups == g], minlength=ds.num_classes) / np.sum(ds.groups == g)
                       - pooled).sum() for g in np.unique(ds.groups)]
    return float(np.mean(tv))


def test_digits_is_real_8x8_digits():
    ds = load_digits({}, None, False, True, 0, 10)
    assert ds.x.shape == (1797, 64) and ds.x.dtype == np.float32
    assert ds.y.dtype == np.int64 and set(ds.y.tolist()) == set(range(10)) and ds.num_classes == 10
    assert ds.x.min() == -1.0 and ds.x.max() == 1.0 and ds.groups is None  # (x/16 - 0.5)/0.5, as PFLlib
    assert np.allclose((ds.x + 1) * 8, np.round((ds.x + 1) * 8))  # 17 grey levels
    assert not ds.standardize


def test_standardized_uses_train_samples_only():
    from fedbench.data.federated import standardized

    x = np.arange(2 * 3 * 2 * 2, dtype=np.float32).reshape(6, 2, 2, 1) ** 2  # 6 samples, 2 channels
    train = np.array([0, 2, 3])
    z = standardized(x, train)
    for c in range(2):
        ref = z[train, c]
        assert abs(ref.mean()) < 1e-5 and abs(ref.std() - 1) < 1e-4  # zero mean, unit std on train
    assert abs(z[:, 0].mean()) > 0.1  # the other samples did not enter the statistics
    assert z.dtype == np.float32


def test_synthetic_is_deterministic_and_seeded():
    a, b, c = synth(seed=3), synth(seed=3), synth(seed=4)
    assert np.array_equal(a.x, b.x) and np.array_equal(a.y, b.y) and np.array_equal(a.groups, b.groups)
    assert len(a) != len(c) or not np.array_equal(a.x, c.x)
    assert a.x.dtype == np.float32 and a.x.shape[1] == 60 and a.y.dtype == np.int64 and a.num_classes == 10


def test_synthetic_one_group_per_client_with_capped_sizes():
    ds = synth(num_clients=30, min_samples_per_client=20, max_samples=300, num_features=12, num_classes=5)
    sizes = np.bincount(ds.groups)
    assert len(sizes) == 30 and sizes.min() >= 20 and sizes.max() <= 300
    assert ds.x.shape == (sizes.sum(), 12) and ds.y.max() < 5
    assert np.all(np.diff(ds.groups) >= 0)  # samples are stored client by client


def test_synthetic_iid_is_far_less_heterogeneous():
    noniid, iid = synth(num_clients=40), synth(num_clients=40, iid=True)
    assert label_heterogeneity(iid) < 0.2 < 0.6 < label_heterogeneity(noniid)
    # IID: every client's features come from N(0, Sigma)
    means = np.stack([iid.x[iid.groups == g].mean(0) for g in range(40)])
    assert np.abs(means[:, :5]).max() < 0.5


def test_synthetic_beta_spreads_client_feature_means():
    def spread(beta):
        ds = synth(num_clients=40, alpha=1.0, beta=beta)
        return np.std([ds.x[ds.groups == g].mean() for g in range(40)])

    assert spread(0.0) < 0.5 < 2.0 < spread(5.0)


def test_synthetic_alpha_only_shifts_all_logits_alike_as_in_fedprox():
    # FedProx's recipe: W_k ~ N(u_k, 1), b_k ~ N(u_k, 1) add u_k * (sum(x) + 1) to every class logit,
    # so argmax labels do not depend on alpha. Kept as published; this test documents it.
    a, b = synth(alpha=0.0), synth(alpha=10.0)
    assert np.array_equal(a.x, b.x) and np.array_equal(a.y, b.y)


def test_synthetic_rejects_bad_params():
    with pytest.raises(ConfigError, match="max_samples"):
        synth(min_samples_per_client=100, max_samples=50)
    with pytest.raises(ConfigError, match="num_clients"):
        synth(num_clients=0)


# ---------------------------------------------------------------- CIFAR, real on-disk format
CIFARS = [("cifar10", load_cifar10, write_cifar10, 60, 10, "cifar-10-batches-py"),
          ("cifar100", load_cifar100, write_cifar100, 20, 100, "cifar-100-python")]


@pytest.mark.parametrize("name,load,write,n,classes,folder", CIFARS)
def test_cifar_loads_exact_pixels_through_torchvision(tmp_path, name, load, write, n, classes, folder):
    rows, labels = write(tmp_path)
    ds = load({}, tmp_path, False, False, 0, 5)
    assert ds.name == name and ds.num_classes == classes and ds.groups is None
    assert ds.x.shape == (n, 3, 32, 32) and ds.x.dtype == np.float32 and ds.y.dtype == np.int64
    mean, std = (np.asarray(s, dtype=np.float32).reshape(1, 3, 1, 1) for s in _STATS[name])
    expected = (rows.reshape(n, 3, 32, 32).astype(np.float32) / 255 - mean) / std  # rows are R, G, B planes
    np.testing.assert_allclose(ds.x, expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(ds.y, labels)


@pytest.mark.parametrize("name,load,write,n,classes,folder", CIFARS)
def test_cifar_verify_rejects_files_failing_md5(tmp_path, name, load, write, n, classes, folder):
    write(tmp_path)
    with pytest.raises(DataMissingError, match="md5") as err:
        load({}, tmp_path, False, True, 0, 5)
    assert "\n" not in str(err.value) and "data.verify=false" in str(err.value)


@pytest.mark.parametrize("name,load,write,n,classes,folder", CIFARS)
def test_cifar_missing_is_one_line_naming_path(tmp_path, name, load, write, n, classes, folder):
    for verify in (True, False):
        with pytest.raises(DataMissingError) as err:
            load({}, tmp_path, False, verify, 0, 5)
        msg = str(err.value)
        assert "\n" not in msg and f"{tmp_path}/{folder}/" in msg
        assert "data.download=true" in msg and "cs.toronto.edu" in msg and "FEDBENCH_DATA" in msg


@pytest.mark.parametrize("name,load,write,n,classes,folder", CIFARS)
def test_cifar_failed_download_is_one_line(tmp_path, monkeypatch, name, load, write, n, classes, folder):
    def offline(url, *args, **kwargs):
        raise urllib.error.URLError("[Errno -2] Name or service not known")

    monkeypatch.setattr(torchvision.datasets.cifar, "download_and_extract_archive", offline)
    with pytest.raises(DataMissingError) as err:
        load({}, tmp_path, True, True, 0, 5)
    msg = str(err.value)
    assert "\n" not in msg and f"{tmp_path}/{folder}/" in msg and "download failed: URLError" in msg


# ---------------------------------------------------------------- FEMNIST, LEAF JSON
@pytest.mark.parametrize("layout", ["femnist/data", "femnist"])
def test_femnist_pools_train_and_test_per_writer(tmp_path, layout):
    write_femnist(tmp_path, base=tmp_path / layout)
    ds = load_femnist({}, tmp_path, False, True, 0, 3)
    assert ds.x.shape == (10, 1, 28, 28) and ds.x.dtype == np.float32 and ds.num_classes == 62
    np.testing.assert_array_equal(ds.groups, [0, 0, 0, 0, 1, 1, 1, 2, 2, 2])  # f0, f1, f2
    np.testing.assert_array_equal(ds.y, [0, 1, 2, 4, 10, 35, 36, 61, 3, 5])
    np.testing.assert_array_equal(ds.x[:, 0, 5, 7], [0.5, 0.5, 0.5, 1.0, 0.75, 0, 0, 0.25, 0.25, 0.125])
    assert ds.standardize  # LEAF's [0, 1] pixels are centred by the data stage, from train samples


def test_femnist_inputs_are_standardized_from_train_samples(tmp_path):
    from fedbench.data.federated import load_federated

    write_femnist(tmp_path)
    cfg = compose_cfg("dataset=femnist", "partition=natural", "num_clients=3",
                      f"data.root={tmp_path}")
    data = load_federated(cfg, torch.device("cpu"))
    train = torch.cat([c.train for c in data.clients])
    assert abs(float(data.x[train].mean())) < 1e-5 and abs(float(data.x[train].std(unbiased=False)) - 1) < 1e-4


def test_femnist_missing_is_one_line(tmp_path):
    with pytest.raises(DataMissingError) as err:
        load_femnist({}, tmp_path, True, True, 0, 3)
    msg = str(err.value)
    assert "\n" not in msg and f"{tmp_path}/femnist/data/train/" in msg and "preprocess.sh" in msg


def test_femnist_malformed_json_is_one_line(tmp_path):
    (tmp_path / "femnist" / "data" / "train").mkdir(parents=True)
    (tmp_path / "femnist" / "data" / "train" / "x.json").write_text('{"users": ["a"]}')
    with pytest.raises(DataMissingError, match="LEAF's JSON format") as err:
        load_femnist({}, tmp_path, False, True, 0, 3)
    assert "\n" not in str(err.value)


# ---------------------------------------------------------------- registry and configs
def test_registry_dispatches_and_rejects_unknown_names():
    params = OmegaConf.merge(SYNTHETIC, {"num_features": 8, "max_samples": 60})
    ds = load_dataset("synthetic", params, None, False, True, 0, 4)
    assert ds.x.shape[1] == 8 and len(np.unique(ds.groups)) == 4
    with pytest.raises(ConfigError, match=r"dataset='kmnist' is not a dataset; choose one of: digits, synthetic"):
        load_dataset("kmnist", {}, None, False, True, 0, 4)


@pytest.mark.parametrize("name,model", [("digits", ("mlp", [100])), ("synthetic", ("mlp", [128, 64])),
                                        ("cifar10", ("cnn", [512])), ("cifar100", ("cnn", [512])),
                                        ("femnist", ("lenet", None)),
                                        ("fmnist", ("cnn", [512])), ("mnist", ("cnn", [512]))])
def test_dataset_configs(name, model):
    cfg = OmegaConf.load(CONF / f"{name}.yaml")
    assert cfg.name == name and name in DATASETS
    composed = compose_cfg(f"dataset={name}").model  # the dataset's yaml picks its default model
    assert (composed.name, composed.get("hidden")) == model
    if name == "synthetic":
        ds = load_dataset(name, cfg, None, False, True, 0, 5)
        assert ds.x.shape[1] == cfg.num_features and np.bincount(ds.groups).max() <= cfg.max_samples


def test_rotations_turn_each_clients_images_by_its_own_angle(tmp_path):
    """data.rotations=4: client k's images are turned by (k mod 4) quarter turns, exactly; labels,
    splits and every other client untouched."""
    from fedbench.data.federated import load_federated

    base = ["num_clients=8", "partition=iid", f"data.root={tmp_path}"]
    plain = load_federated(compose_cfg(*base), torch.device("cpu"))
    turned = load_federated(compose_cfg(*base, "data.rotations=4"), torch.device("cpu"))
    assert torch.equal(plain.y, turned.y)
    for k, c in enumerate(plain.clients):
        idx = torch.cat([c.train, c.val, c.test])
        assert torch.equal(idx, torch.cat([turned.clients[k].train, turned.clients[k].val, turned.clients[k].test]))
        want = torch.rot90(plain.x[idx].view(-1, 8, 8), k % 4, dims=(1, 2)).reshape(len(idx), 64)
        assert torch.equal(turned.x[idx], want)
        assert (k % 4 == 0) == torch.equal(turned.x[idx], plain.x[idx])


@pytest.mark.parametrize("overrides,message", [
    (["data.rotations=3"], r"data.rotations=3: must be 1 \(none\), 2 or 4"),
    (["dataset=synthetic", "data.rotations=4"], "dataset=synthetic has no images to rotate"),
])
def test_bad_rotations_are_one_line(overrides, message):
    from fedbench.config import prepare
    from fedbench.errors import ConfigError

    with pytest.raises(ConfigError, match=message):
        prepare(compose_cfg(*overrides), machine=False)
