"""The wall time of a publication that runs across sittings. Each `python -m fedbench.publish` appends
one row to <results>/publish_times.csv when it ends: when it started and ended (UTC), its minutes, the
run directories with a summary before and after, and how it ended (done, stopped by a signal or
Ctrl-C, failed). The publication's wall time is the sum of its rows."""
from __future__ import annotations

import signal
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

FILE = "publish_times.csv"
COLUMNS = ["started", "ended", "minutes", "runs_before", "runs_after", "ended_by", "what"]


def count_runs(results: Path) -> int:
    """Run directories with a summary.json under results (runs/, screening/runs/, ablation/runs/)."""
    return sum(1 for p in Path(results).rglob("summary.json") if "runs" in p.relative_to(results).parts)


def _stop(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


@contextmanager
def sitting(results: Path, what: str):
    """Record this sitting in results/publish_times.csv however it ends; SIGTERM ends it like Ctrl-C."""
    # the code as the sitting starts (its runs start from it; HEAD may move while it runs)
    started, before, code = datetime.now(timezone.utc), count_runs(results), code_text()
    previous = signal.signal(signal.SIGTERM, _stop)
    ended_by = "failed"
    try:
        yield
        ended_by = "done"
    except KeyboardInterrupt:
        ended_by = "stopped"
        raise
    finally:
        signal.signal(signal.SIGTERM, previous)
        ended = datetime.now(timezone.utc)
        row = {"started": started.isoformat(timespec="seconds"), "ended": ended.isoformat(timespec="seconds"),
               "minutes": round((ended - started).total_seconds() / 60, 1), "runs_before": before,
               "runs_after": count_runs(results), "ended_by": ended_by, "what": f"{what} ({code})"}
        path = Path(results) / FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        pd.DataFrame([row], columns=COLUMNS).to_csv(path, mode="a", header=not path.exists(), index=False)


def code_text() -> str:
    """The code of this sitting: its commit (and whether the tree was dirty) and fedbench's code id."""
    from fedbench.code import code_record

    code = code_record()
    commit = f"commit {code['commit'][:12]}{', dirty' if code['dirty'] else ''}; " if code.get("commit") else ""
    return f"{commit}code {code['code_id']}"


def total_minutes(results: Path) -> float:
    """The publication's wall time so far: the sum of its sittings' minutes (0 without a record)."""
    path = Path(results) / FILE
    return float(pd.read_csv(path)["minutes"].sum()) if path.is_file() else 0.0
