"""FEMNIST from LEAF's preprocessed JSON files, pooled per writer (natural partition by writer)."""
from __future__ import annotations

import glob
import json
import os
from pathlib import Path

import numpy as np

from fedbench.data.datasets import DatasetRecord, register
from fedbench.data.types import RawDataset
from fedbench.errors import DataMissingError, one_line

NUM_CLASSES = 62  # 10 digits, 26 upper-case and 26 lower-case letters


def _json_files(root: str) -> tuple[str, list[str]]:
    """The first layout under `root` holding LEAF JSON files, and those files (train before test)."""
    for base in (os.path.join(root, "femnist", "data"), os.path.join(root, "femnist")):
        files = [f for split in ("train", "test") for f in sorted(glob.glob(os.path.join(base, split, "*.json")))]
        if files:
            return base, files
    return os.path.join(root, "femnist", "data"), []


def load_femnist(params, root, download, verify, seed, num_clients) -> RawDataset:
    """All writers in `<root>/femnist/data/{train,test}/*.json` (or `<root>/femnist/{train,test}/`).

    Each file: {"users": [...], "num_samples": [...], "user_data": {user: {"x": [[784 floats]], "y": [...]}}}.
    A writer's train and test samples are pooled (train files first). Writers are sorted by id;
    groups[i] = index of sample i's writer in that order. x: float32 (N, 1, 28, 28) as LEAF stores it
    (values in [0, 1], mostly white background: not centred), standardized by the data stage with the
    training samples' mean and std (`standardize`); y: int64 in [0, 62). FEMNIST is never downloaded
    (`download` is ignored).
    """
    root = os.path.expanduser(os.fspath(root))
    base, files = _json_files(root)
    if not files:
        raise DataMissingError(
            f"femnist not found: expected LEAF JSON files in {base}/train/ and {base}/test/; FEMNIST cannot "
            f"be downloaded automatically: run `./preprocess.sh -s niid --sf 1.0 -k 0 -t sample` in "
            f"leaf/data/femnist (https://github.com/TalwalkarLab/leaf) and set data.root (or FEDBENCH_DATA) "
            f"to the folder containing femnist/data"
        )

    xs: dict[str, list] = {}
    ys: dict[str, list] = {}
    for path in files:
        try:
            with open(path) as fh:
                blob = json.load(fh)
            for user, d in blob["user_data"].items():
                if len(d["x"]) != len(d["y"]):
                    raise ValueError(f"writer {user!r} has {len(d['x'])} images but {len(d['y'])} labels")
                if any(len(row) != 784 for row in d["x"]):
                    raise ValueError(f"writer {user!r} has an image that is not 784 = 28x28 values")
                xs.setdefault(user, []).extend(d["x"])
                ys.setdefault(user, []).extend(d["y"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise DataMissingError(f"femnist file {path} is not in LEAF's JSON format ({one_line(exc)})") from None

    writers = sorted(u for u in xs if ys[u])
    counts = [len(ys[u]) for u in writers]
    x = np.empty((sum(counts), 784), dtype=np.float32)
    pos = 0
    for u, n in zip(writers, counts):
        x[pos : pos + n] = np.asarray(xs.pop(u), dtype=np.float32).reshape(n, 784)
        pos += n
    y = np.concatenate([np.asarray(ys[u], dtype=np.int64) for u in writers])
    if y.size and (y.min() < 0 or y.max() >= NUM_CLASSES):
        raise DataMissingError(f"femnist labels under {base} lie outside [0, {NUM_CLASSES}): not LEAF's FEMNIST")
    groups = np.repeat(np.arange(len(writers), dtype=np.int64), counts)
    return RawDataset(name="femnist", x=x.reshape(-1, 1, 28, 28), y=y, num_classes=NUM_CLASSES, groups=groups,
                      standardize=True)


# -- tiny files in the real format (DatasetRecord.fixture) ------------------------------------------
def _leaf(path: Path, users: dict):
    path.parent.mkdir(parents=True, exist_ok=True)
    blob = {"users": list(users), "num_samples": [len(d["y"]) for d in users.values()],
            "user_data": {u: {"x": d["x"].reshape(len(d["y"]), 784).tolist(), "y": d["y"]} for u, d in users.items()}}
    path.write_text(json.dumps(blob))


def write_femnist(root: Path, base: Path | None = None):
    """LEAF JSON under `base` (default <root>/femnist/data): writers f2, f0 in train file 1, f1 in train
    file 2, all three in the test file."""
    base = Path(root) / "femnist" / "data" if base is None else Path(base)
    def w(value, labels):
        return {"x": np.full((len(labels), 28, 28), value, dtype=np.float32), "y": labels}

    _leaf(base / "train" / "all_data_0_niid_0_keep_0_train_9.json", {"f2": w(0.25, [61, 3]), "f0": w(0.5, [0, 1, 2])})
    _leaf(base / "train" / "all_data_1_niid_0_keep_0_train_9.json", {"f1": w(0.75, [10])})
    _leaf(base / "test" / "all_data_0_niid_0_keep_0_test_9.json",
          {"f0": w(1.0, [4]), "f1": w(0.0, [35, 36]), "f2": w(0.125, [5])})


register(DatasetRecord(name="femnist", load=load_femnist, ranges={}, input_shape=(1, 28, 28), num_classes=NUM_CLASSES,
                       size=None, groups=True, image_shape=(1, 28, 28), fixture=write_femnist))
