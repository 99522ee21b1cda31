"""A run directory's place and layout: which directory a config's run writes, and the files in it.

Place: <results_dir>/runs/<dataset>/<partition tag>/<method>/<config hash>/seed<seed>/ (path_for). The
hash covers every config value that can change the numbers (not paths, device, thread count or
engine), so runs that differ in e.g. lr never share a directory. Files (the names below, known only
here): config.yaml (resolved), metrics.csv (one row per evaluation), timing.csv (wall time per
evaluation), clients.csv (per-client final accuracy), summary.json (status running | complete |
diverged | failed | interrupted, the headline numbers), checkpoint.pt while a run is unfinished,
tracking.json (the experiment trackers' run ids); beside the directory, <seed dir>.lock (fedbench.rundir.lock).
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pandas as pd
from omegaconf import DictConfig, OmegaConf

from fedbench.errors import WriteError
from fedbench.files import atomic_write, read_json_object, write_json

CONFIG, METRICS, TIMING, CLIENTS, SUMMARY = "config.yaml", "metrics.csv", "timing.csv", "clients.csv", "summary.json"
CHECKPOINT, TRACKING = "checkpoint.pt", "tracking.json"

# Keys that do not change the numbers a run produces (execution details), left out of the hash.
NON_SCIENTIFIC = ("results_dir", "device", "threads", "progress", "checkpoint_every", "deterministic", "engine",
                  "logger", "data.root", "data.download", "data.verify", "method.search", "rerun", "code_change")

# Keys added after runs were published, left out while at their default (the value that reproduces what
# runs did before the key existed), so those runs keep their config hash and directory.
OMITTED_AT_DEFAULT = {"init_jitter": 0.0, "unseen_frac": 0.0, "unseen_epochs": 5}


def scientific_config(cfg: DictConfig) -> dict:
    d = OmegaConf.to_container(cfg, resolve=True)
    d.pop("hydra", None)
    for key, default in OMITTED_AT_DEFAULT.items():
        if key in d and d[key] == default:
            d.pop(key)
    for key in NON_SCIENTIFIC:
        *parents, leaf = key.split(".")
        node = d
        for p in parents:
            node = node.get(p, {})
        node.pop(leaf, None)
    return d


def config_hash(cfg: DictConfig, exclude_seed: bool = True) -> str:
    d = scientific_config(cfg)
    if exclude_seed:
        d.pop("seed", None)
    return hashlib.sha256(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()[:10]


def partition_tag(partition: DictConfig) -> str:
    params = {k: v for k, v in OmegaConf.to_container(partition).items() if k != "name"}
    return "_".join([partition.name] + [f"{k}{v}" for k, v in sorted(params.items())])


def path_for(cfg: DictConfig) -> Path:
    """The run directory of the run that `cfg` configures."""
    return (Path(cfg.results_dir) / "runs" / cfg.dataset.name / partition_tag(cfg.partition)
            / cfg.method.name / config_hash(cfg) / f"seed{cfg.seed}")


class RunDir:
    """One run directory: its files by name, read and written atomically."""

    def __init__(self, path: Path):
        self.path = Path(path)

    @property
    def checkpoint(self) -> Path:
        return self.path / CHECKPOINT

    def summary(self) -> dict | None:
        """summary.json as a dict; None when it is absent or unreadable (not UTF-8, not JSON, not an object)."""
        return read_json_object(self.path / SUMMARY)

    def write_config(self, cfg: DictConfig) -> None:
        atomic_write(self.path / CONFIG, OmegaConf.to_yaml(cfg, resolve=True))

    def write_csv(self, name: str, frame: pd.DataFrame) -> None:
        atomic_write(self.path / name, frame.to_csv(index=False, float_format="%.6g"))

    def write_summary(self, summary: dict) -> None:
        write_json(self.path / SUMMARY, summary)

    def try_write_summary(self, summary: dict) -> None:
        """write_summary where the disk still allows it (a run that failed to write marks itself failed)."""
        try:
            self.write_summary(summary)
        except WriteError:
            pass
