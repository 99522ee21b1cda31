"""Partition cache: reuse, separate keys, corruption detection, reports, concurrent builders."""
import json
import logging
import multiprocessing as mp
import threading
import time

import numpy as np
import pandas as pd
import pytest

from fedbench.data.cache import cache_path, cached_partition
from fedbench.data.partitions.dirichlet import dirichlet
from fedbench.data.splits import split_all
from fedbench.data.types import Partition

C = 10
LABELS = np.random.default_rng(0).integers(0, C, 2000)


def key(seed=0, **extra):
    return {"dataset": "toy", "partition": "dirichlet", "seed": seed, "num_clients": 20,
            "alpha": 0.3, **extra}


class Builder:
    """Counts calls; builds a real split partition from `seed`."""

    def __init__(self, seed=0, delay=0.0):
        self.seed, self.delay, self.calls = seed, delay, 0

    def __call__(self):
        self.calls += 1
        time.sleep(self.delay)
        parts = dirichlet(LABELS, 20, np.random.default_rng(self.seed), alpha=0.3, min_samples=5)
        return split_all(parts, LABELS, lambda k: np.random.default_rng([self.seed, k]), 0.1, 0.2)


def same(a: Partition, b: Partition) -> bool:
    return a.num_clients == b.num_clients and all(
        np.array_equal(x, y) for s in ("train", "val", "test")
        for x, y in zip(getattr(a, s), getattr(b, s)))


def entries(root):
    return sorted(p.name for p in root.iterdir())


def test_second_call_loads_without_building(tmp_path):
    build = Builder()
    first, path = cached_partition(tmp_path, key(), build, C, LABELS)
    second, path2 = cached_partition(tmp_path, key(), build, C, LABELS)
    assert build.calls == 1 and path == path2 and same(first, second) and same(first, Builder()())
    assert path == cache_path(tmp_path, key()) and path.name.startswith("toy-dirichlet-")
    assert len(path.name.split("-")[-1]) == 12
    assert entries(tmp_path) == [path.name]          # no temp directories left behind
    meta = json.loads((path / "meta.json").read_text())
    assert meta["key"] == key() and len(meta["partition_sha256"]) == 64


def test_reports_exist_and_match(tmp_path):
    part, path = cached_partition(tmp_path, key(), Builder(), C, LABELS)
    table = pd.read_csv(path / "class_counts.csv")
    assert len(table) == 3 * part.num_clients
    assert list(table.columns[:3]) == ["client", "split", "total"]
    row = table[(table.client == 4) & (table.split == "val")].iloc[0]
    assert row["total"] == len(part.val[4])
    assert [row[f"class_{c}"] for c in range(C)] == list(np.bincount(LABELS[part.val[4]], minlength=C))
    assert table["total"].sum() == sum(len(part.client_indices(k)) for k in range(part.num_clients))
    png = (path / "heatmap.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 1000


def test_heatmap_for_1000_clients(tmp_path):
    labels = np.random.default_rng(1).integers(0, C, 30000)
    parts = dirichlet(labels, 1000, np.random.default_rng(0), alpha=0.1, min_samples=10)
    build = lambda: split_all(parts, labels, lambda k: np.random.default_rng([0, k]), 0.1, 0.2)
    _, path = cached_partition(tmp_path, key(num_clients=1000), build, C, labels)
    assert (path / "heatmap.png").stat().st_size > 1000
    assert len(pd.read_csv(path / "class_counts.csv")) == 3000


def test_different_keys_coexist(tmp_path):
    a, pa = cached_partition(tmp_path, key(seed=0), Builder(0), C, LABELS)
    b, pb = cached_partition(tmp_path, key(seed=1), Builder(1), C, LABELS)
    assert pa != pb and not same(a, b)
    again = Builder(0)
    a2, _ = cached_partition(tmp_path, key(seed=0), again, C, LABELS)
    assert again.calls == 0 and same(a, a2)
    assert len(entries(tmp_path)) == 2


def truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def flip(path):
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("damage", [
    lambda d: truncate(d / "partition.npz"),
    lambda d: flip(d / "partition.npz"),
    lambda d: (d / "partition.npz").unlink(),
    lambda d: (d / "meta.json").write_text("{not json"),
    lambda d: (d / "heatmap.png").write_bytes(b""),
], ids=["truncated", "flipped", "missing", "bad-meta", "empty-png"])
def test_damaged_entry_is_detected_and_rebuilt(tmp_path, caplog, damage):
    original, path = cached_partition(tmp_path, key(), Builder(), C, LABELS)
    damage(path)
    build = Builder()
    with caplog.at_level(logging.WARNING, logger="fedbench.data.cache"):
        rebuilt, path2 = cached_partition(tmp_path, key(), build, C, LABELS)
    assert build.calls == 1 and path2 == path and same(rebuilt, original)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "unusable" in warnings[0].getMessage()
    assert "\n" not in warnings[0].getMessage()
    after = Builder()
    third, _ = cached_partition(tmp_path, key(), after, C, LABELS)   # the rebuilt entry is valid
    assert after.calls == 0 and same(third, original)
    assert entries(tmp_path) == [path.name]


def test_consistent_but_tampered_npz_fails_checksum(tmp_path, caplog):
    original, path = cached_partition(tmp_path, key(), Builder(), C, LABELS)
    with np.load(path / "partition.npz") as z:
        arrays = dict(z)
    arrays["test_idx"][0], arrays["train_idx"][0] = arrays["train_idx"][0], arrays["test_idx"][0]
    np.savez(path / "partition.npz", **arrays)  # still a valid, consistent partition
    build = Builder()
    with caplog.at_level(logging.WARNING, logger="fedbench.data.cache"):
        again, _ = cached_partition(tmp_path, key(), build, C, LABELS)
    assert build.calls == 1 and "sha256" in caplog.text and same(again, original)


def test_inconsistent_arrays_with_matching_checksum_are_rejected(tmp_path, caplog):
    _, path = cached_partition(tmp_path, key(), Builder(), C, LABELS)
    bad = Partition(train=[np.array([1, 2])], val=[np.array([2])], test=[np.array([3])])
    import fedbench.data.cache as cache
    cache._write_entry(path, bad, key(), C, LABELS)  # valid checksum, sample 2 assigned twice
    build = Builder()
    with caplog.at_level(logging.WARNING, logger="fedbench.data.cache"):
        cached_partition(tmp_path, key(), build, C, LABELS)
    assert build.calls == 1 and "assigned twice" in caplog.text


def test_changed_labels_invalidate_entry(tmp_path, caplog):
    cached_partition(tmp_path, key(), Builder(), C, LABELS)
    build = Builder()
    with caplog.at_level(logging.WARNING, logger="fedbench.data.cache"):
        cached_partition(tmp_path, key(), build, C, (LABELS + 1) % C)
    assert build.calls == 1 and "labels_sha256" in caplog.text


def test_concurrent_threads_end_with_one_valid_entry(tmp_path):
    barrier, results = threading.Barrier(4), [None] * 4

    def worker(i):
        barrier.wait()
        # different content per builder (same key) makes a clobbered or mixed entry visible
        results[i] = cached_partition(tmp_path, key(), Builder(seed=i, delay=0.2), C, LABELS)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(r is not None and same(r[0], results[0][0]) for r in results)
    assert entries(tmp_path) == [results[0][1].name]
    check = Builder()
    loaded, _ = cached_partition(tmp_path, key(), check, C, LABELS)
    assert check.calls == 0 and same(loaded, results[0][0])


def _process_worker(root, seed, start, queue):
    while time.time() < start:
        time.sleep(0.001)
    part, path = cached_partition(root, key(), Builder(seed=seed, delay=0.1), C, LABELS)
    queue.put((path.name, [a.tolist() for a in part.test]))


def test_concurrent_processes_end_with_one_valid_entry(tmp_path):
    ctx = mp.get_context("fork")
    queue, start = ctx.Queue(), time.time() + 0.5
    procs = [ctx.Process(target=_process_worker, args=(tmp_path, i, start, queue)) for i in range(3)]
    for p in procs:
        p.start()
    got = [queue.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    assert len({name for name, _ in got}) == 1 and all(t == got[0][1] for _, t in got)
    assert entries(tmp_path) == [got[0][0]]
    check = Builder()
    loaded, _ = cached_partition(tmp_path, key(), check, C, LABELS)
    assert check.calls == 0 and [a.tolist() for a in loaded.test] == got[0][1]
