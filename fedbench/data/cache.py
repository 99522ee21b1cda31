"""On-disk cache of client partitions, safe under concurrent runs and verified on every load.

A cache entry is one directory `<cache_dir>/<dataset>-<partition>-<sha256(key)[:12]>/` holding
  partition.npz      all clients' train/val/test indices: `<split>_idx` (concatenated over
                     clients) and `<split>_off` (num_clients + 1 offsets into it)
  meta.json          the key, the sha256 of partition.npz, num_clients, num_classes, the number
                     of samples and the sha256 of the label array the partition was built on
  class_counts.csv   one row per client and split: total and per-class counts (class_<c>)
  heatmap.png        clients x classes train counts
It is built in a temp directory next to the target and renamed into place in one step, so a
reader sees either nothing or a complete entry; when another run placed the entry first, its entry
wins and ours is discarded. Loading re-checks the checksum, the key, the labels and the arrays;
an entry failing any check is reported with one warning line and rebuilt, never used.
"""
from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import Callable

import numpy as np

from fedbench.data.types import Partition

FORMAT = 1
SPLITS = ("train", "val", "test")
FILES = ("partition.npz", "meta.json", "class_counts.csv", "heatmap.png")
log = logging.getLogger(__name__)


def _key_json(key: dict) -> str:
    return json.dumps(key, sort_keys=True)


def cache_path(cache_dir: Path, key: dict) -> Path:
    """The entry directory for `key` (which must hold 'dataset' and 'partition')."""
    digest = hashlib.sha256(_key_json(key).encode()).hexdigest()[:12]
    return Path(cache_dir) / f"{key['dataset']}-{key['partition']}-{digest}"


def _labels_digest(labels: np.ndarray) -> str:
    arr = np.ascontiguousarray(labels, dtype=np.int64)
    return hashlib.sha256(arr.tobytes()).hexdigest()


def _class_counts(part: Partition, split: str, labels: np.ndarray, num_classes: int) -> np.ndarray:
    """(num_clients, num_classes) sample counts of `split`."""
    lists = getattr(part, split)
    idx = np.concatenate(lists).astype(np.int64) if lists else np.zeros(0, np.int64)
    client = np.repeat(np.arange(len(lists)), [len(a) for a in lists])
    flat = np.bincount(client * num_classes + labels[idx], minlength=len(lists) * num_classes)
    return flat.reshape(len(lists), num_classes)


def _write_reports(path: Path, part: Partition, labels: np.ndarray, num_classes: int, title: str) -> None:
    import pandas as pd
    from matplotlib.colors import PowerNorm
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    frames = []
    for order, split in enumerate(SPLITS):
        counts = _class_counts(part, split, labels, num_classes)
        frame = pd.DataFrame(counts, columns=[f"class_{c}" for c in range(num_classes)])
        frame.insert(0, "total", counts.sum(axis=1))
        frame.insert(0, "split", split)
        frame.insert(0, "client", np.arange(len(counts)))
        frame["_order"] = order
        frames.append(frame)
    table = pd.concat(frames).sort_values(["client", "_order"], kind="stable").drop(columns="_order")
    table.to_csv(path / "class_counts.csv", index=False)

    train = _class_counts(part, "train", labels, num_classes)
    k = len(train)
    # ~1.5 px per client row at 1000 clients; imshow keeps one row per client at any count.
    fig = Figure(figsize=(min(20.0, 3.0 + 0.15 * num_classes), min(16.0, 2.5 + 0.25 * k)), dpi=100)
    ax = fig.add_subplot()
    image = ax.imshow(train, aspect="auto", interpolation="none", cmap="viridis",
                      norm=PowerNorm(0.5, vmin=0, vmax=max(1, int(train.max()))))
    ax.set_xlabel("class")
    ax.set_ylabel(f"client (0..{k - 1})")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))   # clients are whole numbers
    if num_classes <= 30:
        ax.set_xticks(range(num_classes))
    ax.set_title(f"{title}: train samples per client and class")
    fig.colorbar(image, ax=ax, label="train samples (sqrt colour scale)")
    fig.savefig(path / "heatmap.png", format="png", bbox_inches="tight")


def _write_entry(path: Path, part: Partition, key: dict, num_classes: int, labels: np.ndarray) -> None:
    arrays: dict[str, np.ndarray] = {}
    for split in SPLITS:
        lists = [np.asarray(a, dtype=np.int64) for a in getattr(part, split)]
        arrays[f"{split}_idx"] = np.concatenate(lists) if lists else np.zeros(0, np.int64)
        arrays[f"{split}_off"] = np.concatenate([[0], np.cumsum([len(a) for a in lists])]).astype(np.int64)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    data = buffer.getvalue()
    meta = {"format": FORMAT, "key": key, "partition_sha256": hashlib.sha256(data).hexdigest(),
            "num_clients": part.num_clients, "num_classes": int(num_classes),
            "num_samples": int(len(labels)), "labels_sha256": _labels_digest(labels)}
    for name, content in (("partition.npz", data), ("meta.json", json.dumps(meta, indent=1).encode())):
        with open(path / name, "wb") as f:
            f.write(content)
            f.flush()
            os.fsync(f.fileno())
    _write_reports(path, part, labels, num_classes, f"{key['dataset']} / {key['partition']}")


def _load_entry(path: Path, key: dict, num_classes: int, labels: np.ndarray) -> Partition:
    """The verified partition in `path`; ValueError saying what is wrong otherwise."""
    meta = json.loads((path / "meta.json").read_text())
    data = (path / "partition.npz").read_bytes()   # hash and parse the very same bytes
    if hashlib.sha256(data).hexdigest() != meta.get("partition_sha256"):
        raise ValueError("partition.npz does not match the sha256 in meta.json")
    expected = {"format": FORMAT, "num_classes": int(num_classes), "num_samples": len(labels),
                "labels_sha256": _labels_digest(labels)}
    for field, value in expected.items():
        if meta.get(field) != value:
            raise ValueError(f"meta.json {field}={meta.get(field)!r}, expected {value!r}")
    if _key_json(meta.get("key")) != _key_json(key):
        raise ValueError("meta.json holds a different key")
    for name in FILES[2:]:
        if (path / name).stat().st_size == 0:
            raise ValueError(f"{name} is empty")
    with np.load(io.BytesIO(data), allow_pickle=False) as z:
        arrays = {name: z[name] for name in z.files}
    k, splits = meta["num_clients"], {}
    for split in SPLITS:
        idx, off = arrays[f"{split}_idx"], arrays[f"{split}_off"]
        if idx.ndim != 1 or off.shape != (k + 1,) or idx.dtype != np.int64 or off.dtype != np.int64:
            raise ValueError(f"{split} arrays have the wrong shape or dtype")
        if off[0] != 0 or off[-1] != len(idx) or np.any(np.diff(off) < 0):
            raise ValueError(f"{split} offsets are inconsistent")
        if len(idx) and (idx.min() < 0 or idx.max() >= len(labels)):
            raise ValueError(f"{split} indices out of range")
        splits[split] = [idx[off[c]:off[c + 1]].copy() for c in range(k)]
    everything = np.concatenate([arrays[f"{s}_idx"] for s in SPLITS])
    if len(np.unique(everything)) != len(everything):
        raise ValueError("a sample is assigned twice")
    return Partition(**splits)


def _try_load(path: Path, key: dict, num_classes: int, labels: np.ndarray) -> tuple[Partition | None, str]:
    try:
        return _load_entry(path, key, num_classes, labels), ""
    except Exception as exc:  # any failure means: do not use this entry
        return None, f"{type(exc).__name__}: {exc}".replace("\n", " ")


def _remove_aside(path: Path) -> None:
    """Move `path` out of the way in one rename (readers never see it half-deleted), then delete."""
    aside = path.parent / f".{path.name}.stale-{uuid.uuid4().hex}"
    try:
        os.rename(path, aside)
    except FileNotFoundError:
        return
    if aside.is_dir():
        shutil.rmtree(aside, ignore_errors=True)
    else:
        aside.unlink(missing_ok=True)


def cached_partition(cache_dir: Path, key: dict, build: Callable[[], Partition], num_classes: int,
                     labels: np.ndarray) -> tuple[Partition, Path]:
    """The partition for `key` and its entry directory: loaded and verified when a valid entry
    exists, else `build()` is called and its result stored atomically. `key` must be JSON
    serialisable and hold 'dataset' and 'partition'; it should hold everything the partition
    depends on (seed, num_clients, params, fractions). `labels` is the pooled label array."""
    labels = np.asarray(labels, dtype=np.int64)
    target = cache_path(cache_dir, key)
    if os.path.lexists(target):
        part, reason = _try_load(target, key, num_classes, labels)
        if part is not None:
            return part, target
        log.warning("partition cache %s is unusable (%s); rebuilding it", target, reason)
    built = build()
    built = Partition(*[[np.asarray(a, dtype=np.int64) for a in getattr(built, s)] for s in SPLITS])
    tmp = None
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
        _write_entry(tmp, built, key, num_classes, labels)
        for _ in range(10):
            try:
                os.rename(tmp, target)
                return built, target
            except OSError:
                if not os.path.lexists(target):
                    raise
            part, _ = _try_load(target, key, num_classes, labels)
            if part is not None:           # another run placed a valid entry first: use it
                return part, target
            _remove_aside(target)          # still the unusable one: replace it
        log.warning("partition cache %s could not be replaced; using the partition uncached", target)
        return built, target
    except OSError as exc:  # a read-only data root or a full disk: the run goes on without the cache
        log.warning("partition cache %s could not be written (%s); using the partition uncached", target,
                    exc.strerror or exc)
        return built, target
    finally:
        if tmp is not None and tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
