"""<run dir>/tracking.json: what a tracker needs to find its own run again when the fedbench run
resumes (MLflow's run id and tracking URI, W&B's run id and the last round it finished logging).
Written atomically (fedbench.files.write_json); a missing or unreadable file is an empty state."""
from __future__ import annotations

from pathlib import Path

from fedbench.files import read_json_object, write_json
from fedbench.rundir.layout import TRACKING as NAME


def load(run_dir: Path) -> dict:
    return read_json_object(Path(run_dir) / NAME) or {}


def get(run_dir: Path, logger: str) -> dict:
    entry = load(run_dir).get(logger)
    return entry if isinstance(entry, dict) else {}


def put(run_dir: Path, logger: str, entry: dict) -> None:
    state = load(run_dir)
    state[logger] = entry
    write_json(Path(run_dir) / NAME, state)
