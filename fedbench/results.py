"""Run directories: where a run's files live, atomic writes, and the complete-run check.

Layout: <results_dir>/runs/<dataset>/<partition tag>/<method>/<config hash>/seed<seed>/ holding
config.yaml (resolved), metrics.csv, clients.csv and summary.json (status running | complete |
diverged | failed). The hash covers every config value that can change the numbers (not paths,
device or thread count), so runs that differ in e.g. lr never share a directory.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

import pandas as pd
from omegaconf import DictConfig, OmegaConf

# Keys that do not change the numbers a run produces (execution details), left out of the hash.
NON_SCIENTIFIC = ("results_dir", "device", "threads", "progress", "checkpoint_every", "deterministic", "engine",
                  "logger", "data.root", "data.download", "data.verify")


def scientific_config(cfg: DictConfig) -> dict:
    d = OmegaConf.to_container(cfg, resolve=True)
    d.pop("hydra", None)
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


def run_dir(cfg: DictConfig) -> Path:
    return (Path(cfg.results_dir) / "runs" / cfg.dataset.name / partition_tag(cfg.partition)
            / cfg.method.name / config_hash(cfg) / f"seed{cfg.seed}")


_UMASK = os.umask(0)
os.umask(_UMASK)


def atomic_write(path: Path, text: str) -> None:
    """Write to a temp file in the same directory, fsync, rename: readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; results are shared on clusters
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class RunDir:
    def __init__(self, path: Path):
        self.path = Path(path)

    def summary(self) -> dict | None:
        try:
            return json.loads((self.path / "summary.json").read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return None

    def is_complete(self) -> bool:
        s = self.summary()
        return bool(s) and s.get("status") == "complete"

    def write_config(self, cfg: DictConfig) -> None:
        atomic_write(self.path / "config.yaml", OmegaConf.to_yaml(cfg, resolve=True))

    def write_csv(self, name: str, frame: pd.DataFrame) -> None:
        atomic_write(self.path / name, frame.to_csv(index=False, float_format="%.6g"))

    def write_summary(self, summary: dict) -> None:
        atomic_write(self.path / "summary.json", json.dumps(summary, indent=2, sort_keys=True, default=str) + "\n")
