"""Validate and complete the composed config before any work: each problem is one ConfigError line
that names the key, the value and what is allowed."""
from __future__ import annotations

import os
import torch
from omegaconf import DictConfig, open_dict

from fedbench.errors import ConfigError
from fedbench.models import MODELS


def _check(ok: bool, key: str, value, allowed: str) -> None:
    if not ok:
        raise ConfigError(f"{key}={value!r} is invalid: {allowed}")


def prepare(cfg: DictConfig) -> DictConfig:
    """Return a validated copy of `cfg` (with data.root expanded)."""
    cfg = cfg.copy()
    with open_dict(cfg):
        cfg.data.root = os.path.expanduser(str(cfg.data.root))
    _check(cfg.model.name in MODELS, "model", cfg.model.name, f"choose one of {sorted(MODELS)}")
    for key in ("rounds", "local_epochs", "batch_size", "eval_every", "num_clients", "eval_final_k"):
        _check(isinstance(cfg[key], int) and cfg[key] >= 1, key, cfg[key], "must be an integer >= 1")
    _check(0 < cfg.join_ratio <= 1, "join_ratio", cfg.join_ratio, "must be in (0, 1]")
    _check(cfg.lr > 0, "lr", cfg.lr, "must be > 0")
    _check(cfg.momentum >= 0, "momentum", cfg.momentum, "must be >= 0")
    _check(cfg.weight_decay >= 0, "weight_decay", cfg.weight_decay, "must be >= 0")
    _check(cfg.device in ("auto", "cpu", "cuda") or str(cfg.device).startswith("cuda:"), "device", cfg.device,
           "choose auto, cpu, cuda or cuda:N")
    if str(cfg.device).startswith("cuda"):
        _check(torch.cuda.is_available(), "device", cfg.device, "no CUDA GPU is visible; use device=cpu or auto")
    _check(0 <= cfg.data.val_frac < 1 and 0 < cfg.data.test_frac < 1 and cfg.data.val_frac + cfg.data.test_frac < 1,
           "data.test_frac", cfg.data.test_frac, "val_frac + test_frac must be < 1 and test_frac > 0")
    return cfg


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def resolve_threads(value) -> int:
    """Threads for this run: the config value, else the CPUs this process may use (Slurm's
    allocation first), so parallel runs do not oversubscribe the cores."""
    if value not in (None, "auto"):
        return int(value)
    if os.environ.get("SLURM_CPUS_PER_TASK"):
        return int(os.environ["SLURM_CPUS_PER_TASK"])
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
