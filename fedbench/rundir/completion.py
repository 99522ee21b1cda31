"""When a run directory holds a finished run: its summary says so AND its files agree.

A finished run's summary.json records, under `files`, the data row count and the sha256 of
metrics.csv and clients.csv (`record`). `damage` compares the files on disk with that record, so a
run marked complete whose files were cut short, rewritten or lost is found out. `finished` is what a
run does first: a complete, consistent run is skipped; a complete run whose files disagree is moved
aside into `<run dir>/damaged-<time>/` (kept, with the reason in why.txt) and rerun from round 0.
Summaries written before these records existed carry no `files`: their files need only be readable
with the columns the report draws from. The report (fedbench.report.collect) uses the same `damage`.

A finished run is reused only by the code that computed it (fedbench.code: summary.json `code`): one
of other code (or of no recorded code) is, by `code_change`, rerun (the default: its files are kept in
`<run dir>/superseded-<time>/` and the run starts again), reused with a warning, or refused; `rerun=true`
reruns a finished run whatever its code.
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
SUPERSEDED_PREFIX = "superseded-"   # a finished run's files, kept aside when other code reruns it
REASON_FILE = "why.txt"
CODE_CHANGE = ("rerun", "reuse", "refuse")


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


def put_aside(run_dir: Path, why: str, prefix: str = ASIDE_PREFIX) -> Path:
    """Move every file of `run_dir` (not earlier copies kept aside) into a new <prefix><time>/ folder
    inside it, with `why` in why.txt; return that folder."""
    run_dir = Path(run_dir)
    stem = f"{prefix}{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
    aside = next(run_dir / f"{stem}{f'-{n}' if n else ''}" for n in range(1000)
                 if not (run_dir / f"{stem}{f'-{n}' if n else ''}").exists())
    try:
        aside.mkdir()
        for entry in run_dir.iterdir():
            if entry != aside and not entry.name.startswith((ASIDE_PREFIX, SUPERSEDED_PREFIX)):
                os.replace(entry, aside / entry.name)
    except OSError as exc:
        raise WriteError.of(aside, exc) from None
    atomic_write(aside / REASON_FILE, why + "\n")
    return aside


def finished(rd: RunDir, locked: bool, code_change: str = "rerun", rerun: bool = False) -> dict | None:
    """The summary of a finished run (complete, or diverged: a NaN is as deterministic as a number)
    whose files agree with it and whose code is this code (see the module docstring), else None: the
    run is computed.

    Unlocked (read-only, before any work): a run that would need anything written, i.e. leftovers
    to clean, damage or other code's files to put aside, is left for the locked check (returns None).
    Locked (this process holds fedbench.rundir.lock): a kill between the final summary and the cleanup
    left a checkpoint or temp files, removed now; a damaged complete run is put aside (returns None:
    rerun), and so is one of other code unless code_change says reuse (a warning line) or refuse
    (ConfigError)."""
    from fedbench.code import code_id
    from fedbench.rundir import checkpoint  # (torch) here: the report reads `damage` without importing torch

    summary = rd.summary()
    if not summary or summary.get("status") not in ("complete", "diverged"):
        return None
    why = damage(rd.path, summary)
    leftovers = rd.checkpoint.exists() or any(rd.path.glob(".*.tmp"))
    stale = "rerun=true" if rerun else other_code(summary, code_id(), code_change, rd.path)
    if not locked and (why or leftovers or stale):
        return None
    if why:
        aside = put_aside(rd.path, why)
        print(f"fedbench: warning: {rd.path} says complete but {why}; its files are kept in {aside.name}/ "
              "and the run starts again from round 0", file=sys.stderr)
        return None
    if stale:
        aside = put_aside(rd.path, stale, SUPERSEDED_PREFIX)
        print(f"fedbench: {rd.path}: {stale}: rerunning it (the finished run's files are kept in {aside.name}/)",
              file=sys.stderr)
        return None
    checkpoint.remove(rd.checkpoint)  # left behind when a kill came between summary and cleanup
    checkpoint.remove_temp_files(rd.path)
    print(f"fedbench: skip, already {summary['status']}: {rd.path}", file=sys.stderr)
    return summary


def other_code(summary: dict, current: str, code_change: str, where: Path) -> str:
    """Why a finished run's code is not this code ("" when it is, or when code_change=reuse, which says
    so in a warning line); ConfigError with code_change=refuse."""
    from fedbench.code import recorded_id
    from fedbench.errors import ConfigError

    old = recorded_id(summary)
    if old == current:
        return ""
    what = f"computed by other code (code {old or 'not recorded'}, now {current})"
    if code_change == "reuse":
        print(f"fedbench: warning: {where}: {what}; reused as it is (code_change=reuse)", file=sys.stderr)
        return ""
    if code_change == "refuse":
        raise ConfigError(f"{where} was {what}; rerun it with code_change=rerun (its files are kept aside) or "
                          "keep it with code_change=reuse")
    return what
