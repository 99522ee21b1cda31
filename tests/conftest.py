"""Shared fixtures: a tiny in-memory federation (no files), and a subprocess runner for the CLI."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

import methods
from fedbench.config.method_parts import build_method
from fedbench.data.types import ClientData, FederatedData
from fedbench.engines.sequential import SequentialEngine
from fedbench.federation import Federation
from fedbench.federation.finetune import finetune_settings
from fedbench.federation.training import TrainingSettings
from fedbench.models import build_model
from fedbench.optimizer import resolve_optimizer
from fedbench.seeding import stream_seed

ROOT = Path(__file__).resolve().parents[1]
torch.set_num_threads(1)  # in-process tests: tiny models, and CLI subprocesses share the cores


def tiny_data(num_clients=4, per_client=24, dim=8, classes=4, seed=0, train_sizes=None) -> FederatedData:
    """Random features and labels; each client holds `per_client` samples: all but 8 for train, then 4
    val and 4 test. `train_sizes` (one per client, overriding num_clients and per_client) gives the
    clients unequal train splits (train_sizes[k] + 8 samples each), e.g. to tell n_k-weighted from
    plain means apart."""
    sizes = [per_client] * num_clients if train_sizes is None else [int(n) + 8 for n in train_sizes]
    g = torch.Generator().manual_seed(seed)
    n = sum(sizes)
    x = torch.randn(n, dim, generator=g)
    y = torch.randint(0, classes, (n,), generator=g)
    clients, start = [], 0
    for size in sizes:
        idx = torch.arange(start, start + size)
        clients.append(ClientData(idx[: size - 8], idx[size - 8: size - 4], idx[size - 4:]))
        start += size
    return FederatedData("tiny", x, y, classes, clients)


def method_hp(name: str, **overrides):
    """The method config `method=<name>` composes to (the harness defaults of conf/config.yaml's
    `method:` block, then conf/method/<name>.yaml), with `overrides`."""
    harness = OmegaConf.load(ROOT / "conf" / "config.yaml").method
    return OmegaConf.merge(harness, OmegaConf.load(ROOT / "conf" / "method" / f"{name}.yaml"), overrides)


def make_federation(method: str, rounds=3, join_ratio=1.0, data=None, model=None, hp_overrides=None,
                    seed=0, lr=0.1, batch_size=5, local_epochs=1, momentum=0.0, engine=None, newcomers=None,
                    newcomer_epochs=2):
    data = data or tiny_data()
    torch.manual_seed(stream_seed(seed, "init"))
    model = build_model(model or {"name": "mlp", "hidden": [16, 8]}, data.input_shape, data.num_classes)
    cls = methods.get(method) if isinstance(method, str) else method   # a registered name, or a class
    node = method_hp(cls.name if cls.name in methods.available() else "fedavg", **(hp_overrides or {}))
    m = build_method(cls, node, model)
    run = OmegaConf.create({"method": node, "lr": lr, "momentum": momentum, "weight_decay": 0.0,
                            "lr_schedule": "constant", "lr_milestones": [0.5, 0.75], "lr_gamma": 0.1})
    opt = resolve_optimizer(run)  # the method's own optimizer keys (official, lr, ...) as a run resolves them
    hp = TrainingSettings(seed, opt["lr"], opt["momentum"], opt["weight_decay"], batch_size, local_epochs, rounds,
                     lr_schedule=opt["lr_schedule"], lr_milestones=tuple(opt["lr_milestones"]), lr_gamma=opt["lr_gamma"])
    return Federation(hp, data, model, m, rounds, join_ratio, engine or SequentialEngine(), finetune_settings(node),
                      newcomers, newcomer_epochs)


def set_training(fed: Federation, **changes) -> None:
    """Change the federation's training settings (e.g. weight_decay) after it was built."""
    import dataclasses

    fed.training = dataclasses.replace(fed.training, **changes)
    fed.setup = dataclasses.replace(fed.setup, training=fed.training)


@torch.no_grad()
def load_live(fed: Federation, k: int, phase: str = "train") -> None:
    """Put client k's `phase` model into the federation's model (to inspect it; the round never needs it)."""
    for n, t in fed.cohort([k], 0, phase).model.state_dict().items():
        fed.tensors.live[n].copy_(t)


def run_cli(*args, cwd=None, env=None, timeout=600) -> subprocess.CompletedProcess:
    e = dict(os.environ)
    e.update(env or {})
    return subprocess.run([sys.executable, "-m", "fedbench", "progress=false", *args], cwd=cwd or ROOT,
                          env=e, capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def data_root(tmp_path, monkeypatch):
    root = tmp_path / "data"
    monkeypatch.setenv("FEDBENCH_DATA", str(root))
    return root
