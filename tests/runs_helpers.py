"""Helpers for the trust tests (determinism, resume, bad input, divergence): compose a run config
in-process exactly as the command line would, run it in-process, start CLI runs in parallel."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from hydra import compose, initialize_config_dir

ROOT = Path(__file__).resolve().parents[1]
CONF = str(ROOT / "conf")
# small and quick: digits, 6 clients, one thread (parallel test processes never oversubscribe)
SMALL = ["progress=false", "threads=1", "num_clients=6", "partition.min_samples=5", "method=fedavg"]


def compose_cfg(*overrides: str):
    with initialize_config_dir(config_dir=CONF, version_base="1.3", job_name="test"):
        return compose(config_name="config", overrides=list(overrides))


def run_inprocess(*overrides: str) -> dict:
    from fedbench.run import run

    return run(compose_cfg(*SMALL, *overrides))


def run_dirs(results: Path) -> list[Path]:
    """The run directories under results (not the copies a rerun kept aside inside them)."""
    return sorted(p.parent for p in Path(results).glob("runs/**/summary.json")
                  if not any(part.startswith(("damaged-", "superseded-")) for part in p.parent.parts))


def summary(run: Path) -> dict:
    return json.loads((Path(run) / "summary.json").read_text())


def popen_cli(*args: str, env: dict | None = None) -> subprocess.Popen:
    e = dict(os.environ)
    e.update(env or {})
    return subprocess.Popen([sys.executable, "-m", "fedbench", *args], cwd=ROOT, env=e, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def finish(proc: subprocess.Popen, timeout: float = 600) -> tuple[int, str]:
    _, err = proc.communicate(timeout=timeout)
    return proc.returncode, err

