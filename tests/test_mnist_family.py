"""fmnist and mnist: the four idx files written here in their real format (magic numbers, big-endian
dimensions; gzipped and plain) and read through torchvision by the real loader; where the files are
looked for and in which order; the [-1, 1] scaling; the stratified subsample; the one-line missing-files
error (in-process and through the command line); and one run on the real Fashion-MNIST of Debian's
`dataset-fashion-mnist` package (skipped without it, unless FEDBENCH_REQUIRE_FMNIST=1)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torchvision.datasets.mnist
from torchvision.datasets.utils import extract_archive
from omegaconf import OmegaConf

from fedbench.data.datasets import DATASETS, load_dataset
from fedbench.data.datasets import mnist_family
from fedbench.data.datasets.mnist_family import write_fixture, write_mnist
from fedbench.errors import ConfigError, DataMissingError
from tests.conftest import run_cli
from tests.runs_helpers import ROOT, finish, popen_cli, run_dirs

FOLDER = {"fmnist": "FashionMNIST", "mnist": "MNIST"}
NAMES = list(FOLDER)


@pytest.fixture
def debian(tmp_path, monkeypatch) -> Path:
    """Debian's directory, moved to an empty temp folder (this machine may have the real one)."""
    path = tmp_path / "debian" / "fashion-mnist"
    monkeypatch.setattr(mnist_family, "FMNIST_DEBIAN_DIR", str(path))
    return path


def load(name, root, samples=None, seed=0, download=False):
    return load_dataset(name, {"samples": samples}, root, download, True, seed, 5)


def scaled(images: np.ndarray) -> np.ndarray:
    """PFLlib's inputs: ToTensor (p / 255) then Normalize(0.5, 0.5)."""
    return ((images.astype(np.float32) / 255 - 0.5) / 0.5).reshape(-1, 1, 28, 28)


@pytest.mark.parametrize("gz", [True, False, "mixed"], ids=["gz", "plain", "mixed"])
@pytest.mark.parametrize("name", NAMES)
def test_loads_the_idx_files_through_torchvision_scaled_to_pm1(tmp_path, debian, name, gz):
    images, labels = write_fixture(name, tmp_path, gz=gz)
    ds = load(name, tmp_path)
    assert ds.name == name and ds.num_classes == 10 and ds.groups is None and not ds.standardize
    assert ds.x.shape == (40, 1, 28, 28) and ds.x.dtype == np.float32 and ds.y.dtype == np.int64
    np.testing.assert_array_equal(ds.y, labels)                       # train then test, in file order
    np.testing.assert_allclose(ds.x, scaled(images), rtol=0, atol=1e-6)
    assert ds.x[0, 0, 0, :3].tolist() == [-1.0, 1.0, pytest.approx(-0.6)]  # 0 -> -1, 255 -> 1, 51 -> 0.2*2-1
    assert ds.x.min() == -1.0 and ds.x.max() == 1.0


def test_fmnist_reads_debians_directory(tmp_path, debian):
    images, labels = write_mnist(debian, gz=True, seed=1)  # the package ships the four .gz files
    ds = load("fmnist", tmp_path / "empty-root")
    np.testing.assert_array_equal(ds.y, labels)
    np.testing.assert_allclose(ds.x, scaled(images), rtol=0, atol=1e-6)


def test_data_root_wins_over_debians_directory_unless_incomplete(tmp_path, debian):
    theirs, _ = write_mnist(debian, seed=1)
    mine, _ = write_fixture("fmnist", tmp_path, seed=2, gz=False)
    np.testing.assert_allclose(load("fmnist", tmp_path).x, scaled(mine), rtol=0, atol=1e-6)
    (tmp_path / "FashionMNIST" / "raw" / "t10k-labels-idx1-ubyte").unlink()  # three of four: not a source
    np.testing.assert_allclose(load("fmnist", tmp_path).x, scaled(theirs), rtol=0, atol=1e-6)


def test_mnist_never_reads_the_fashion_mnist_package(tmp_path, debian):
    write_mnist(debian)
    with pytest.raises(DataMissingError, match="mnist not found"):
        load("mnist", tmp_path)


def test_download_lands_in_data_root_and_is_read(tmp_path, debian, monkeypatch):
    """data.download=true: torchvision fetches the .gz files into <root>/<Class>/raw/ and extracts them
    there (here a fake fetch copies them from a folder), and the loader reads them."""
    images, labels = write_mnist(tmp_path / "server", gz=True, seed=3)

    def fetch(url, download_root, filename=None, md5=None, **kwargs):
        path = Path(download_root, filename)
        path.write_bytes((tmp_path / "server" / filename).read_bytes())
        extract_archive(str(path), download_root)

    monkeypatch.setattr(torchvision.datasets.mnist, "download_and_extract_archive", fetch)
    ds = load("fmnist", tmp_path / "root", download=True)
    np.testing.assert_array_equal(ds.y, labels)
    np.testing.assert_allclose(ds.x, scaled(images), rtol=0, atol=1e-6)
    assert sorted(p.name for p in (tmp_path / "root" / "FashionMNIST" / "raw").iterdir()) == \
        sorted(f + gz for f in mnist_family.FILES for gz in ("", ".gz"))


# ---------------------------------------------------------------- the subsample
def _rows(ds) -> list[bytes]:
    return [row.tobytes() for row in ds.x]


def test_subsample_is_stratified_deterministic_per_seed_and_differs_across_seeds(tmp_path, debian):
    skewed = np.repeat(np.arange(10), [100, 60, 40, 30, 20, 20, 10, 10, 5, 5])  # 300 images, unequal classes
    write_fixture("fmnist", tmp_path, n_train=240, n_test=60, labels=np.random.default_rng(0).permutation(skewed))
    full = load("fmnist", tmp_path)
    position = {row: i for i, row in enumerate(_rows(full))}
    a, again, b = (load("fmnist", tmp_path, 60, seed=seed) for seed in (0, 0, 1))
    for sub in (a, b):
        picked = [position[row] for row in _rows(sub)]                 # every image one of the pool's ...
        assert len(set(picked)) == 60 and picked == sorted(picked)     # ... each once, in pool order
        np.testing.assert_array_equal(sub.y, full.y[picked])           # with its own label
        share = 60 * np.bincount(full.y, minlength=10) / len(full)
        assert np.all(np.abs(np.bincount(sub.y, minlength=10) - share) < 1)  # each class its share, +-1
    assert np.array_equal(a.x, again.x) and np.array_equal(a.y, again.y)
    assert not np.array_equal(a.x, b.x)


def test_subsample_size_is_the_records_size_and_is_checked(tmp_path, debian):
    record = DATASETS.get("fmnist")
    assert record.info({"samples": None})["size"] == 70000 and record.info({"samples": 2000})["size"] == 2000
    write_fixture("fmnist", tmp_path)
    with pytest.raises(ConfigError, match=r"dataset.samples=41: dataset=fmnist has only 40 images"):
        load("fmnist", tmp_path, 41)


# ---------------------------------------------------------------- missing files
@pytest.mark.parametrize("download", [False, True], ids=["no-download", "failed-download"])
@pytest.mark.parametrize("name", NAMES)
def test_missing_files_are_one_line_naming_the_path_and_every_way(tmp_path, debian, monkeypatch, name, download):
    def offline(url, *args, **kwargs):
        raise urllib.error.URLError("[Errno -2] Name or service not known")

    monkeypatch.setattr(torchvision.datasets.mnist, "download_and_extract_archive", offline)
    with pytest.raises(DataMissingError) as err:
        load(name, tmp_path, download=download)
    msg = str(err.value)
    assert "\n" not in msg and f"{tmp_path}/{FOLDER[name]}/raw/" in msg and "data.download=true" in msg
    assert ("download failed: RuntimeError" in msg) == download
    if name == "fmnist":
        assert "one of 3 ways" in msg and "apt-get install dataset-fashion-mnist" in msg and f"{debian}/" in msg
    else:
        assert "one of 2 ways" in msg and "apt-get" not in msg


def test_unreadable_files_are_one_line(tmp_path, debian):
    write_fixture("fmnist", tmp_path, gz=False)
    (tmp_path / "FashionMNIST" / "raw" / "train-images-idx3-ubyte").write_bytes(b"\x00\x00\x0d\x03junk")
    with pytest.raises(DataMissingError, match="could not be read as idx files") as err:
        load("fmnist", tmp_path)
    assert "\n" not in str(err.value)


def test_labels_outside_the_ten_classes_are_one_line(tmp_path, debian):
    write_fixture("mnist", tmp_path, labels=np.arange(40) % 12)  # not (F)MNIST: 12 classes
    with pytest.raises(DataMissingError, match=r"expected 28x28 images, one label in \[0, 10\) each") as err:
        load("mnist", tmp_path)
    assert "\n" not in str(err.value)


PATCHED_CLI = ("import sys; import fedbench.data.datasets.mnist_family as m; m.FMNIST_DEBIAN_DIR = sys.argv.pop(1); "
               "from fedbench.cli import main; main()")


def test_missing_files_through_the_command_line_exit_2_without_a_run_directory(tmp_path, data_root):
    """The real entry point; for fmnist with Debian's directory pointed at an empty folder."""
    args = ["progress=false", "rounds=1", "data.download=false", f"results_dir={tmp_path / 'results'}"]
    procs = {"mnist": popen_cli(*args, "dataset=mnist"),
             "fmnist": subprocess.Popen([sys.executable, "-c", PATCHED_CLI, str(tmp_path / "none"), *args,
                                         "dataset=fmnist"], cwd=ROOT, text=True, stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE)}
    for name, proc in procs.items():
        code, err = finish(proc, timeout=300)
        lines = [ln for ln in err.splitlines() if ln.strip()]
        assert code == 2 and len(lines) == 1, err
        assert lines[0].startswith(f"fedbench: error: {name} not found")
        assert f"{data_root}/{FOLDER[name]}/raw/" in lines[0]
        assert ("apt-get install dataset-fashion-mnist" in lines[0]) == (name == "fmnist")
    assert not (tmp_path / "results").exists()


# ---------------------------------------------------------------- the real Fashion-MNIST
CNN_PARAMS = 32 * 1 * 25 + 32 + 64 * 32 * 25 + 64 + 1024 * 512 + 512 + 512 * 10 + 10  # PFLlib's FedAvgCNN, 1x28x28


def require_real_fmnist() -> None:
    """Skip without Debian's Fashion-MNIST files (fail instead when FEDBENCH_REQUIRE_FMNIST=1, as in CI)."""
    folder = mnist_family.FMNIST_DEBIAN_DIR
    if mnist_family._find(folder) is None:
        why = f"Debian's Fashion-MNIST is not in {folder}/"
        if os.environ.get("FEDBENCH_REQUIRE_FMNIST") == "1":
            pytest.fail(f"FEDBENCH_REQUIRE_FMNIST=1 but {why}")
        pytest.skip(f"{why}; install it with `apt-get install dataset-fashion-mnist` (as root)")


def test_real_fashion_mnist_trains_the_cnn_through_the_command_line(tmp_path, data_root):
    """2000 real images (stratified), Dirichlet(0.5) over 10 clients, PFLlib's CNN, FedAvg, 3 rounds:
    the inputs are in [-1, 1], the partition holds exactly the subset, and the model learns (about 50%
    test accuracy after 3 rounds on this seed; chance is 10%)."""
    require_real_fmnist()
    started = time.perf_counter()
    res = run_cli(f"results_dir={tmp_path}", "dataset=fmnist", "dataset.samples=2000", "partition=dirichlet",
                  "partition.alpha=0.5", "num_clients=10", "join_ratio=1", "method=fedavg", "rounds=3",
                  "eval_every=1", "threads=1", timeout=300)
    assert res.returncode == 0, res.stderr
    (run,) = run_dirs(tmp_path)
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "complete" and summary["model"] == "cnn"
    assert OmegaConf.load(run / "config.yaml").dataset == {"name": "fmnist", "samples": 2000}
    metrics = pd.read_csv(run / "metrics.csv")
    assert metrics["bytes_up"].iloc[0] == 10 * CNN_PARAMS * 4          # the 1x28x28 FedAvgCNN, all 10 clients
    assert metrics["train_loss"].is_monotonic_decreasing and metrics["test_acc"].iloc[-1] > 0.35, metrics
    (counts,) = [pd.read_csv(p) for p in (data_root / "partitions").glob("fmnist-dirichlet-*/class_counts.csv")]
    per_class = counts.filter(like="class_").sum()
    assert counts["total"].sum() == 2000 and (per_class == 200).all()  # every image of the subset, once
    assert (counts[counts.split == "train"]["total"] > 0).sum() == 10
    raw = load_dataset("fmnist", {"samples": 2000}, data_root, False, True, 0, 10)  # what the run was given
    assert raw.x.min() == -1.0 and raw.x.max() == 1.0 and np.bincount(raw.y).tolist() == [200] * 10
    print(f"real Fashion-MNIST end to end: {time.perf_counter() - started:.1f} s")
