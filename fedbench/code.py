"""The code a run ran, recorded in its summary.json (`code`) so that a finished run is never silently
reused by other code (fedbench.rundir.completion):

  code_id    a hash of the source a run executes: every .py file of methods/ and of fedbench/ except
             the parts that never run inside a run (the report, tuning, publication and benchmark
             tools), so that editing a method or the harness gives new results, and editing a table
             or a README does not
  version    the installed package's version
  commit     in a git checkout: HEAD, `dirty` when fedbench/ or methods/ differ from it, and
             `diff_hash`, a hash of that difference (two dirty trees with the same diff share it)
"""
from __future__ import annotations

import hashlib
import subprocess
from functools import lru_cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("fedbench", "methods")
NOT_RUN = ("fedbench/report/", "fedbench/tuning/", "fedbench/bench/", "fedbench/tune.py", "fedbench/publish.py",
           "fedbench/reproduce.py", "fedbench/sittings.py")


def source_files() -> list[Path]:
    """The .py files whose contents make the code id, in a fixed order."""
    files = [p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")]
    rel = sorted((p.relative_to(ROOT).as_posix(), p) for p in files)
    return [p for r, p in rel if not r.startswith(NOT_RUN) and "__pycache__" not in r]


@lru_cache(maxsize=1)
def code_id() -> str:
    digest = hashlib.sha256()
    for path in source_files():
        digest.update(path.relative_to(ROOT).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:12]


def _git(*args: str) -> str | None:
    try:
        done = subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.decode(errors="replace") if done.returncode == 0 else None


def code_record() -> dict:
    """What summary.json records as `code`."""
    return {"code_id": code_id(), **_checkout()}


@lru_cache(maxsize=1)
def _checkout() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    try:
        installed = version("fedbench")
    except PackageNotFoundError:
        installed = None
    record = {"version": installed, "commit": None, "dirty": None, "diff_hash": None}
    head = _git("rev-parse", "HEAD")
    if head:
        diff = _git("diff", "HEAD", "--", *PACKAGES) or ""
        untracked = _git("ls-files", "--others", "--exclude-standard", "--", *PACKAGES) or ""
        record |= {"commit": head.strip(), "dirty": bool(diff or untracked),
                   "diff_hash": hashlib.sha256((diff + untracked).encode()).hexdigest()[:12] if diff or untracked
                   else None}
    return record


def recorded_id(summary: dict) -> str | None:
    code = summary.get("code") if isinstance(summary, dict) else None
    return code.get("code_id") if isinstance(code, dict) else None
