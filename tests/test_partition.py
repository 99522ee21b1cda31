"""Partitioners and per-client splits: coverage, floors, skew, determinism, errors."""
import time

import numpy as np
import pytest
from omegaconf import OmegaConf

from fedbench.data.partitions import PARTITIONS, partition_indices
from fedbench.data.partitions.dirichlet import _dirichlet_counts, dirichlet
from fedbench.data.partitions.iid import iid
from fedbench.data.partitions.natural import natural
from fedbench.data.partitions.pathological import pathological
from fedbench.data.partitions.shards import shards
from fedbench.data.splits import split_all, split_client, split_sizes
from fedbench.errors import ConfigError

C = 10


def make_labels(n=3000, seed=0):
    """Imbalanced labels: class c has weight c+1."""
    p = np.arange(1, C + 1) / np.arange(1, C + 1).sum()
    return np.random.default_rng(seed).choice(C, size=n, p=p).astype(np.int64)


LABELS = make_labels()
CASES = {  # every parameter given: defaults live only in conf/partition/*.yaml
    "iid": {"quantity_skew": 0.0, "min_samples": 1},
    "iid_skew": {"quantity_skew": 1.5, "min_samples": 5},
    "dirichlet": {"alpha": 0.3, "min_samples": 10},
    "pathological": {"classes_per_client": 2, "min_samples": 1},
    "shards": {"shards_per_client": 2, "min_samples": 1},
}


def run(case, num_clients=50, seed=0, labels=LABELS, groups=None):
    name = case.split("_")[0]
    return partition_indices(name, labels, groups, num_clients, CASES[case], np.random.default_rng(seed))


def assert_disjoint_sorted(parts, n, exactly_once):
    everything = np.concatenate(parts)
    assert len(np.unique(everything)) == len(everything), "a sample went to two clients"
    assert everything.min() >= 0 and everything.max() < n
    if exactly_once:
        assert len(everything) == n
    for p in parts:
        assert p.dtype == np.int64 and np.all(np.diff(p) > 0)


@pytest.mark.parametrize("case", list(CASES))
def test_every_sample_exactly_once_and_floor(case):
    parts = run(case)
    assert len(parts) == 50
    assert_disjoint_sorted(parts, len(LABELS), exactly_once=True)  # pathological: 50*2 >= 10 classes
    assert min(len(p) for p in parts) >= CASES[case].get("min_samples", 1)


def test_pathological_exact_k_classes_and_even_class_use():
    for k in (1, 2, 3, 7, 10):
        parts = pathological(LABELS, 23, np.random.default_rng(k), classes_per_client=k)
        held = [np.unique(LABELS[p]) for p in parts]
        assert all(len(h) == k for h in held)
        holders = np.bincount(np.concatenate(held), minlength=C)
        assert holders.max() - holders.min() <= 1
        assert_disjoint_sorted(parts, len(LABELS), exactly_once=23 * k >= C)
        for c in range(C):  # a class is split as equally as possible among its holders
            sizes = [np.sum(LABELS[p] == c) for p in parts if np.any(LABELS[p] == c)]
            assert max(sizes) - min(sizes) <= 1


def test_pathological_fewer_slots_than_classes_drops_only_unheld_classes():
    parts = pathological(LABELS, 3, np.random.default_rng(0), classes_per_client=2)
    held = np.unique(np.concatenate([LABELS[p] for p in parts]))
    assert len(held) == 6
    assert len(np.concatenate(parts)) == np.isin(LABELS, held).sum()
    assert_disjoint_sorted(parts, len(LABELS), exactly_once=False)


def test_shards_structure():
    labels = np.repeat(np.arange(C), 300)
    parts = shards(labels, 40, np.random.default_rng(0), shards_per_client=3)
    assert_disjoint_sorted(parts, len(labels), exactly_once=True)
    assert {len(p) for p in parts} == {75}           # 120 shards of 25
    assert max(len(np.unique(labels[p])) for p in parts) <= 3


def mean_tv(parts, labels):
    glob = np.bincount(labels, minlength=C) / len(labels)
    return np.mean([0.5 * np.abs(np.bincount(labels[p], minlength=C) / len(p) - glob).sum()
                    for p in parts])


def test_small_alpha_is_more_skewed():
    skewed = dirichlet(LABELS, 30, np.random.default_rng(0), alpha=0.1, min_samples=5)
    flat = dirichlet(LABELS, 30, np.random.default_rng(0), alpha=100.0, min_samples=5)
    assert mean_tv(skewed, LABELS) > 0.45
    assert mean_tv(flat, LABELS) < 0.15
    assert mean_tv(skewed, LABELS) > mean_tv(flat, LABELS) + 0.3


def test_dirichlet_gives_no_share_to_clients_at_the_cap():
    rng = np.random.default_rng(0)
    gamma, order, sizes = rng.standard_gamma(0.2, (C, 40)), rng.permutation(C), np.full(C, 100)
    counts = _dirichlet_counts(gamma, order, sizes, cap=1000 / 40)
    assert np.array_equal(counts.sum(axis=1), sizes)
    held = np.zeros(40, dtype=np.int64)
    for c in order:
        assert np.all(counts[c][held >= 25] == 0)
        held += counts[c]
    assert (held >= 25).sum() > 5       # the cap was actually reached by several clients


def test_quantity_skew_spreads_sizes():
    even = iid(LABELS, 40, np.random.default_rng(0), quantity_skew=0.0, min_samples=1)
    skew = iid(LABELS, 40, np.random.default_rng(0), quantity_skew=1.0, min_samples=5)
    assert max(map(len, even)) - min(map(len, even)) <= 1
    sizes = np.array([len(p) for p in skew])
    assert sizes.min() >= 5 and sizes.std() > 10 * np.std([len(p) for p in even]) + 5


@pytest.mark.parametrize("case", list(CASES) + ["natural"])
def test_same_seed_same_partition_different_seed_differs(case):
    groups = np.random.default_rng(9).integers(0, 80, len(LABELS))
    if case == "natural":
        get = lambda s: natural(groups, 50, np.random.default_rng(s))
    else:
        get = lambda s: run(case, seed=s)
    a, b, c = get(1), get(1), get(2)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not all(len(x) == len(y) and np.array_equal(x, y) for x, y in zip(a, c))


def test_natural_one_client_per_group():
    groups = np.repeat([7, 3, 11, 5], [10, 20, 30, 40])
    parts = natural(groups, 4, np.random.default_rng(0))
    assert [len(p) for p in parts] == [20, 40, 10, 30]       # ordered by group id 3, 5, 7, 11
    assert all(len(np.unique(groups[p])) == 1 for p in parts)
    sub = natural(groups, 2, np.random.default_rng(0))
    assert_disjoint_sorted(sub, len(groups), exactly_once=False)
    assert all(len(np.unique(groups[p])) == 1 for p in sub)


def test_dispatch_accepts_dictconfig_and_dict():
    conf = OmegaConf.create({"name": "dirichlet", "alpha": 0.5, "min_samples": 3})
    a = partition_indices("dirichlet", LABELS, None, 20, conf, np.random.default_rng(4))
    b = dirichlet(LABELS, 20, np.random.default_rng(4), alpha=0.5, min_samples=3)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert set(PARTITIONS.names()) == {"iid", "dirichlet", "pathological", "shards", "natural"}


@pytest.mark.parametrize("name,params,num_clients,words", [
    ("bogus", {}, 10, ["partition='bogus'", "dirichlet", "shards"]),
    ("dirichlet", {"alpha": 0, "min_samples": 1}, 10, ["partition.alpha=0"]),
    ("dirichlet", {"alpha": -1.0, "min_samples": 1}, 10, ["partition.alpha"]),
    ("dirichlet", {"alpha": 0.5, "min_samples": 400}, 10, ["num_clients=10", "partition.min_samples=400"]),
    ("dirichlet", {"alpha": 0.05, "min_samples": 300}, 10, ["partition.min_samples", "fewer clients",
                                                           "larger partition.alpha"]),
    ("pathological", {"classes_per_client": 0, "min_samples": 1}, 10, ["partition.classes_per_client=0"]),
    ("pathological", {"classes_per_client": 11, "min_samples": 1}, 10, ["partition.classes_per_client=11", "(10)"]),
    ("pathological", {"classes_per_client": 2.5, "min_samples": 1}, 10, ["partition.classes_per_client"]),
    ("pathological", {"classes_per_client": 1, "min_samples": 200}, 10,
     ["num_clients=10", "partition.min_samples=200"]),
    ("shards", {"shards_per_client": 400, "min_samples": 1}, 10, ["partition.shards_per_client=400"]),
    ("iid", {"quantity_skew": -1, "min_samples": 1}, 10, ["partition.quantity_skew"]),
    ("iid", {"quantity_skew": 0.0, "min_samples": 1}, 0, ["num_clients=0"]),
    ("natural", {"min_samples": 1}, 10, ["natural", "no natural groups"]),
    ("dirichlet", {"alpha": 0.5}, 10, ["partition.min_samples: missing", "conf/partition/dirichlet.yaml"]),
])
def test_bad_params_raise_one_line_config_error(name, params, num_clients, words):
    with pytest.raises(ConfigError) as err:
        partition_indices(name, LABELS, None, num_clients, params, np.random.default_rng(0))
    msg = str(err.value)
    assert "\n" not in msg
    for w in words:
        assert w in msg


def test_errors_for_rare_classes_and_too_few_groups():
    labels = np.array([0] * 50 + [1] * 2)
    with pytest.raises(ConfigError, match="class 1 has 2 samples but 3 clients"):
        pathological(labels, 6, np.random.default_rng(0), classes_per_client=1)
    with pytest.raises(ConfigError, match="num_clients=5.*only 2 groups"):
        natural(np.array([0, 0, 1]), 5, np.random.default_rng(0))


def test_dirichlet_1000_clients_is_fast():
    labels = np.random.default_rng(0).integers(0, 10, 60000)
    start = time.perf_counter()
    parts = dirichlet(labels, 1000, np.random.default_rng(0), alpha=0.1, min_samples=10)
    elapsed = time.perf_counter() - start
    assert_disjoint_sorted(parts, 60000, exactly_once=True)
    assert min(map(len, parts)) >= 10
    assert mean_tv(parts, labels) > 0.5
    assert elapsed < 5.0, f"took {elapsed:.2f} s"


# ---- per-client stratified splits -------------------------------------------------------------

def test_split_client_exact_fractions_stratified_disjoint():
    labels = make_labels(5000, seed=3)
    idx = np.sort(np.random.default_rng(1).choice(5000, 997, replace=False))
    tr, va, te = split_client(idx, labels, np.random.default_rng(0), val_frac=0.1, test_frac=0.2)
    assert (len(va), len(te), len(tr)) == (100, 199, 997 - 299)
    both = np.concatenate([tr, va, te])
    assert len(np.unique(both)) == len(both) and np.array_equal(np.sort(both), idx)
    for split, frac in ((te, 199 / 997), (va, 100 / (997 - 199))):
        pool = idx if split is te else np.setdiff1d(idx, te)
        for c in range(C):
            assert abs(np.sum(labels[split] == c) - frac * np.sum(labels[pool] == c)) <= 1


def test_split_sizes_edge_cases():
    assert split_sizes(2, 0.0, 0.1) == (0, 1)        # at least one test sample from n >= 2
    assert split_sizes(1, 0.1, 0.2) == (0, 0)        # a single sample stays in train
    assert split_sizes(10, 0.25, 0.25) == (3, 3)     # halves round up (round(2.5) would give 2)
    assert split_sizes(3, 0.4, 0.4) == (1, 1)        # train is never emptied
    assert split_sizes(100, 0.0, 0.0) == (0, 0)


def test_split_all_deterministic_and_errors():
    parts = run("dirichlet")
    make = lambda: split_all(parts, LABELS, lambda k: np.random.default_rng([7, k]), 0.15, 0.2)
    a, b = make(), make()
    assert a.num_clients == 50
    for k in range(50):
        assert np.array_equal(a.test[k], b.test[k]) and np.array_equal(a.val[k], b.val[k])
        assert np.array_equal(np.sort(a.client_indices(k)), parts[k])
    other = split_all(parts, LABELS, lambda k: np.random.default_rng([8, k]), 0.15, 0.2)
    assert any(not np.array_equal(a.test[k], other.test[k]) for k in range(50))
    for bad in ((0.5, 0.5), (-0.1, 0.2), (0.1, "x")):
        with pytest.raises(ConfigError, match="val_frac"):
            split_all(parts, LABELS, np.random.default_rng, *bad)
