"""Run directories: where a run's files live, atomic writes, and the complete-run check.

Layout: <results_dir>/runs/<dataset>/<partition tag>/<method>/<config hash>/seed<seed>/ holding
config.yaml (resolved), metrics.csv, clients.csv and summary.json (status running | complete |
diverged | failed). The hash covers every config value that can change the numbers (not paths,
device or thread count), so runs that differ in e.g. lr never share a directory.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from pathlib import Path

import pandas as pd
from omegaconf import DictConfig, OmegaConf

from fedbench.errors import WriteError

# Keys that do not change the numbers a run produces (execution details), left out of the hash.
NON_SCIENTIFIC = ("results_dir", "device", "threads", "progress", "checkpoint_every", "deterministic", "engine",
                  "logger", "data.root", "data.download", "data.verify", "method.search")


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


@contextlib.contextmanager
def atomic_open(path: Path, mode: str = "w"):
    """Yield a file whose content replaces `path` only once it is complete: a temp file in the same
    directory, fsync, group-readable mode (mkstemp makes 0600; results are shared on clusters),
    rename. Readers never see half a file; on any failure `path` is as it was, the temp file is
    gone, and an OSError (full disk, read-only directory) becomes one WriteError line naming `path`."""
    path, tmp = Path(path), None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)
        os.replace(tmp, path)
        tmp = None
    except OSError as exc:
        raise WriteError.of(path, exc) from None
    finally:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)


def atomic_write(path: Path, text: str) -> None:
    """Write `text` to `path` atomically (atomic_open)."""
    with atomic_open(path) as f:
        f.write(text)


def read_json_object(path: Path) -> dict | None:
    """The JSON object in `path`; None when it is absent or unreadable (not UTF-8, not JSON, not an object)."""
    try:
        found = json.loads(Path(path).read_text())
    except (OSError, ValueError):  # ValueError: also JSONDecodeError and UnicodeDecodeError
        return None
    return found if isinstance(found, dict) else None


def write_json(path: Path, obj: dict) -> None:
    """`obj` as indented, key-sorted JSON, written atomically (atomic_write)."""
    atomic_write(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


class RunDir:
    def __init__(self, path: Path):
        self.path = Path(path)

    def summary(self) -> dict | None:
        """summary.json as a dict; None when it is absent or unreadable (not UTF-8, not JSON, not an object)."""
        return read_json_object(self.path / "summary.json")

    def write_config(self, cfg: DictConfig) -> None:
        atomic_write(self.path / "config.yaml", OmegaConf.to_yaml(cfg, resolve=True))

    def write_csv(self, name: str, frame: pd.DataFrame) -> None:
        atomic_write(self.path / name, frame.to_csv(index=False, float_format="%.6g"))

    def write_summary(self, summary: dict) -> None:
        write_json(self.path / "summary.json", summary)

    def try_write_summary(self, summary: dict) -> None:
        """write_summary where the disk still allows it (a run that failed to write marks itself failed)."""
        try:
            self.write_summary(summary)
        except WriteError:
            pass
