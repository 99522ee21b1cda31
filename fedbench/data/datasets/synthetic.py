"""FedProx's Synthetic(alpha, beta): generated, one device per client, no download."""
from __future__ import annotations

import numpy as np

from fedbench.data.datasets import DatasetRecord, register
from fedbench.data.types import RawDataset
from fedbench.errors import ConfigError
from fedbench.seeding import numpy_rng


def _positive_int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ConfigError(f"{name}={value!r} must be a positive integer")
    return int(value)


def check_sizes(params) -> None:
    """The size cap must allow the per-client minimum."""
    if params["max_samples"] < params["min_samples_per_client"]:
        raise ConfigError(f"dataset.max_samples={params['max_samples']!r}: must be >= "
                          f"dataset.min_samples_per_client={params['min_samples_per_client']!r}")


def load_synthetic(params, root, download, verify, seed, num_clients) -> RawDataset:
    """FedProx's Synthetic(alpha, beta) (Li et al., MLSys 2020), one generated device per client.

    For client k: u_k ~ N(0, alpha^2), B_k ~ N(0, beta^2) (alpha, beta are standard deviations,
    as in FedProx's numpy code); W_k ~ N(u_k, 1) (d x C), b_k ~ N(u_k, 1) (C);
    v_k ~ N(B_k, 1) per feature; x ~ N(v_k, Sigma) with Sigma = diag(j^-1.2), j = 1..d;
    y = argmax(softmax(x W_k + b_k)). Samples per client: int(lognormal(4, 2)) +
    min_samples_per_client, capped at max_samples (FedProx: + 50, uncapped).
    iid=true is FedProx's Synthetic-IID: one W, b ~ N(0, 1) shared by all clients, x ~ N(0, Sigma).

    Inputs are left as generated: x is centred across clients in expectation (B_k has mean 0) and
    each client's shifted mean v_k IS the heterogeneity of this dataset, so no standardization.
    Note (FedProx's recipe, kept as published): u_k shifts every logit of a sample by the same amount,
    so alpha leaves the labels unchanged; client heterogeneity comes from the independent W_k and from
    beta (feature means). groups[i] = generating client of sample i, for the `natural` partition.
    """
    alpha, beta, iid = float(params["alpha"]), float(params["beta"]), bool(params["iid"])
    d = _positive_int(params["num_features"], "dataset.num_features")
    c = _positive_int(params["num_classes"], "dataset.num_classes")
    n_min = _positive_int(params["min_samples_per_client"], "dataset.min_samples_per_client")
    n_max = _positive_int(params["max_samples"], "dataset.max_samples")
    k = _positive_int(num_clients, "num_clients")
    if alpha < 0 or beta < 0:
        raise ConfigError(f"dataset.alpha={alpha} and dataset.beta={beta} must be >= 0")
    check_sizes(params)

    rng = numpy_rng(seed, "partition", 1000)
    sizes = np.minimum(rng.lognormal(4.0, 2.0, k).astype(np.int64) + n_min, n_max)
    u = rng.normal(0.0, alpha, k)
    b_mean = rng.normal(0.0, beta, k)
    v = rng.normal(b_mean[:, None], 1.0, (k, d))
    sigma = np.arange(1, d + 1, dtype=np.float64) ** -1.2
    if iid:
        w_shared, b_shared = rng.normal(0.0, 1.0, (d, c)), rng.normal(0.0, 1.0, c)

    xs, ys = [], []
    for i in range(k):
        if iid:
            w, b, mean = w_shared, b_shared, np.zeros(d)
        else:
            w, b, mean = rng.normal(u[i], 1.0, (d, c)), rng.normal(u[i], 1.0, c), v[i]
        x = mean + rng.standard_normal((sizes[i], d)) * np.sqrt(sigma)
        xs.append(x)
        ys.append(np.argmax(x @ w + b, axis=1))  # softmax is monotone: same argmax
    groups = np.repeat(np.arange(k, dtype=np.int64), sizes)
    return RawDataset(
        name="synthetic",
        x=np.concatenate(xs).astype(np.float32),
        y=np.concatenate(ys).astype(np.int64),
        num_classes=c,
        groups=groups,
    )


register(DatasetRecord(
    name="synthetic", load=load_synthetic,
    ranges={"alpha": "[0, inf)", "beta": "[0, inf)", "num_features": "int [1, inf)", "num_classes": "int [2, inf)",
            "iid": "bool", "min_samples_per_client": "int [1, inf)", "max_samples": "int [1, inf)"},
    input_shape=lambda params: (params["num_features"],), num_classes=lambda params: params["num_classes"],
    size=None, groups=True, offline=True, check=check_sizes))
