"""A multirun whose jobs would share a run directory is refused before any job starts.

The run directory is named by the config hash, which leaves out the keys that do not change the
numbers (results.NON_SCIENTIFIC: engine, threads, device, checkpoint_every, data.root, ...). Two jobs
of one sweep that differ only in such keys would write one directory at the same time, and the
directory would end up with one job's config.yaml and the other's summary.json. fedbench.cli's
precheck hands every job it composes to `RunDirClaims.claim`, which raises one ConfigError line
naming the keys. Jobs that are identical (the same config listed twice) are let through: they
compute the same numbers, and the run directory's lock (fedbench.rundir.lock) keeps them from running at
the same time.
"""
from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from fedbench.errors import ConfigError
from fedbench.report.collect import flatten
from fedbench.rundir import path_for


class RunDirClaims:
    """The run directory of every job seen so far, with that job's flattened config."""

    def __init__(self) -> None:
        self._seen: dict[Path, dict] = {}

    def claim(self, cfg: DictConfig) -> None:
        path = path_for(cfg)
        flat = flatten(OmegaConf.to_container(cfg, resolve=True))
        other = self._seen.setdefault(path, flat)
        differ = sorted(k for k in flat.keys() | other.keys() if flat.get(k) != other.get(k))
        if not differ:
            return
        values = "; ".join(f"{k} ({other.get(k)!r} vs {flat.get(k)!r})" for k in differ)
        raise ConfigError(f"two jobs of this sweep would write one run directory ({path}): they differ only in "
                          f"{values}, which the config hash leaves out because it does not change the numbers; "
                          f"run each value of {', '.join(differ)} as its own command with its own results_dir=...")
