"""When a run directory holds a finished run: its summary says so AND its files agree.

A finished run's summary.json records, under `files`, the data row count and the sha256 of
metrics.csv and clients.csv (`record`). `damage` compares the files on disk with that record, so a
run marked complete whose files were cut short, rewritten or lost is found out. `finished` is what a
run does first: a complete, consistent run is skipped; a complete run whose files disagree is moved
aside into `<run dir>/damaged-<time>/` (kept, with the reason in why.txt) and rerun from round 0.
Summaries written before these records existed carry no `files`: their files need only be readable
with the columns the report draws from. The report (fedbench.report.collect) uses the same `damage`.
"""
from __future__ import annotations

import hashlib
import os
import sys
import time
from pathlib import Path

import pandas as pd

from fedbench.errors import WriteError
from fedbench.files import atomic_write
from fedbench.rundir.layout import CLIENTS, METRICS, RunDir

FILES = (METRICS, CLIENTS)
REQUIRED_COLUMNS = {METRICS: ("round", "test_acc", "bytes_up", "bytes_down"), CLIENTS: ("test_acc",)}
ASIDE_PREFIX = "damaged-"
REASON_FILE = "why.txt"


def file_facts(path: Path) -> dict:
    """{"rows": data rows (lines after the header), "sha256": hex digest} of one CSV file."""
    data = Path(path).read_bytes()
    return {"rows": max(data.count(b"\n") - 1, 0), "sha256": hashlib.sha256(data).hexdigest()}


def record(run_dir: Path) -> dict:
    """What summary.json stores under `files`: the facts of each of FILES that exists."""
    return {name: file_facts(Path(run_dir) / name) for name in FILES if (Path(run_dir) / name).is_file()}


def csv_problem(run_dir: Path) -> str:
    """Why FILES cannot be read as a finished run's tables ("" when they can)."""
    for name, columns in REQUIRED_COLUMNS.items():
        try:
            frame = pd.read_csv(Path(run_dir) / name)
        except (OSError, ValueError) as exc:  # ValueError: also UnicodeDecodeError, ParserError
            return f"{name} is unreadable ({type(exc).__name__})"
        bad = [c for c in columns if c not in frame or not pd.api.types.is_numeric_dtype(frame[c])]
        if bad:
            return f"{name} has no numeric column {', '.join(bad)}"
    return ""


def damage(run_dir: Path, summary: dict) -> str:
    """Why the files of `run_dir` disagree with `summary["files"]`; "" when they agree. A summary
    without that record (older fedbench versions) only needs readable files with the columns the
    report draws from."""
    files = summary.get("files")
    if files is None:
        return csv_problem(run_dir)
    if not isinstance(files, dict):
        return "summary.json has an unreadable `files` record"
    for name, want in sorted(files.items()):
        try:
            have = file_facts(Path(run_dir) / name)
        except OSError as exc:
            return f"{name} is unreadable ({exc.strerror or type(exc).__name__})"
        want = want if isinstance(want, dict) else {}
        if have["rows"] != want.get("rows"):
            return f"{name} has {have['rows']} rows where summary.json records {want.get('rows')}"
        if have["sha256"] != want.get("sha256"):
            return f"{name} does not match the sha256 that summary.json records"
    return ""


def put_aside(run_dir: Path, why: str) -> Path:
    """Move every file of `run_dir` (not earlier damaged-* copies) into a new damaged-<time>/ folder
    inside it, with `why` in why.txt; return that folder."""
    run_dir = Path(run_dir)
    aside = run_dir / f"{ASIDE_PREFIX}{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
    try:
        aside.mkdir()
        for entry in run_dir.iterdir():
            if entry != aside and not entry.name.startswith(ASIDE_PREFIX):
                os.replace(entry, aside / entry.name)
    except OSError as exc:
        raise WriteError.of(aside, exc) from None
    atomic_write(aside / REASON_FILE, why + "\n")
    return aside


def finished(rd: RunDir, locked: bool) -> dict | None:
    """The summary of a finished run (complete, or diverged: a NaN is as deterministic as a number)
    whose files agree with it (the run is skipped), else None.

    Unlocked (read-only, before any work): a run that would need anything written, i.e. leftovers
    to clean or damage to put aside, is left for the locked check (returns None). Locked (this
    process holds fedbench.rundir.lock): a kill between the final summary and the cleanup left a
    checkpoint or temp files, removed now; a damaged complete run is put aside (returns None: rerun)."""
    from fedbench.rundir import checkpoint  # (torch) here: the report reads `damage` without importing torch

    summary = rd.summary()
    if not summary or summary.get("status") not in ("complete", "diverged"):
        return None
    why = damage(rd.path, summary)
    leftovers = rd.checkpoint.exists() or any(rd.path.glob(".*.tmp"))
    if not locked and (why or leftovers):
        return None
    if why:
        aside = put_aside(rd.path, why)
        print(f"fedbench: warning: {rd.path} says complete but {why}; its files are kept in {aside.name}/ "
              "and the run starts again from round 0", file=sys.stderr)
        return None
    checkpoint.remove(rd.checkpoint)  # left behind when a kill came between summary and cleanup
    checkpoint.remove_temp_files(rd.path)
    print(f"fedbench: skip, already {summary['status']}: {rd.path}", file=sys.stderr)
    return summary
