"""<run dir>/tracking.json: what a tracker needs to find its own run again when the fedbench run
resumes (MLflow's run id and tracking URI, W&B's run id and the last round it finished logging).
Written atomically (fedbench.results.atomic_write); a missing or unreadable file is an empty state."""
from __future__ import annotations

import json
from pathlib import Path

from fedbench.results import atomic_write

NAME = "tracking.json"


def load(run_dir: Path) -> dict:
    try:
        state = json.loads((Path(run_dir) / NAME).read_text())
    except (OSError, ValueError):
        return {}
    return state if isinstance(state, dict) else {}


def get(run_dir: Path, logger: str) -> dict:
    entry = load(run_dir).get(logger)
    return entry if isinstance(entry, dict) else {}


def put(run_dir: Path, logger: str, entry: dict) -> None:
    state = load(run_dir)
    state[logger] = entry
    atomic_write(Path(run_dir) / NAME, json.dumps(state, indent=2, sort_keys=True) + "\n")
