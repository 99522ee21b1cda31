"""`python -m fedbench.reproduce [SUMMARY] [--rows 3,17 | --random K] [--tolerance 0.5]`: rerun rows of
a published summary.csv from the overrides stored with them, into a scratch directory, and check that
each lands within `tolerance` accuracy points of the recorded final accuracy; a rerun whose config
hash differs from the recorded one (a default changed since the run) is said beside its number.

Without --rows, --random K picks K complete rows at random (--seed), so a reader can spot-check a
publication without choosing what to check. Exit 0 when every row reproduces, 1 when one does not,
2 on bad input (one line naming it). The published directory is never written to.
"""
from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

# keys whose recorded value says where or how visibly a run wrote, not what it computed
REPLACED = ("results_dir", "progress", "hydra/launcher", "tracking")


@dataclass
class Check:
    row: int
    label: str
    recorded: float   # final accuracy in %, from summary.csv
    rerun: float      # the same, rerun; NaN when the rerun produced no result
    seconds: float
    problem: str = ""
    note: str = ""

    def ok(self, tolerance: float) -> bool:
        return not self.problem and abs(self.rerun - self.recorded) <= tolerance


def fail(message: str):
    """Bad input: one line on stderr, exit 2."""
    print(f"fedbench.reproduce: error: {' '.join(message.split())}", file=sys.stderr)
    raise SystemExit(2)


def rerun_argv(overrides: str, scratch: Path) -> list[str]:
    """The row's command line with its output sent to `scratch`."""
    kept = [o for o in shlex.split(overrides) if o.split("=", 1)[0].lstrip("+~") not in REPLACED]
    return [*kept, f"results_dir={scratch}", "progress=false"]


def reproduce_row(summary: pd.DataFrame, index: int, scratch: Path) -> Check:
    """Rerun row `index` into scratch/row<index>; its one run there gives the rerun's accuracy. A run
    directory other than the recorded one (another config hash: the overrides no longer configure
    the recorded run exactly, e.g. a default changed since) is said in the check's note."""
    row = summary.loc[index]
    label = f"{row.get('study', '')} {row['setting']} {row['method']} seed {row['seed']}".strip()
    out = scratch / f"row{index}"
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "fedbench", *rerun_argv(row["overrides"], out)],
                          capture_output=True, text=True, check=False)
    check = Check(index, label, 100 * float(row["final_acc"]), float("nan"), time.perf_counter() - start)
    if done.returncode != 0:
        check.problem = f"the rerun failed (exit {done.returncode}): {done.stderr.strip().splitlines()[-1:]}"
        return check
    found = sorted((out / "runs").glob("**/summary.json"))
    if len(found) != 1:
        check.problem = f"the rerun wrote {len(found)} runs, not 1"
        return check
    check.rerun = 100 * float(json.loads(found[0].read_text())["final_acc"])
    rerun_dir = found[0].parent.relative_to(out).as_posix()
    if rerun_dir != row["run_dir"]:
        check.note = f"; config hash {row['config_hash']} is now {found[0].parent.parent.name} (run {rerun_dir})"
    return check


def pick(summary: pd.DataFrame, rows: str | None, count: int, seed: int) -> list[int]:
    if rows:
        try:
            wanted = [int(r) for r in rows.split(",")]
        except ValueError:
            fail(f"--rows {rows!r}: give row numbers, e.g. --rows 3,17")
        bad = [r for r in wanted if r not in summary.index]
        if bad:
            fail(f"--rows {bad} not in 0..{len(summary) - 1}")
        return wanted
    complete = summary[(summary["status"] == "complete") & summary["overrides"].notna()]
    return sorted(complete.sample(n=min(count, len(complete)), random_state=seed).index)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m fedbench.reproduce", description=__doc__.split("\n\n")[0])
    p.add_argument("summary", nargs="?", default="results/summary.csv")
    p.add_argument("--rows", help="comma-separated row numbers of summary.csv (0 = the first data row)")
    p.add_argument("--random", type=int, default=1, help="without --rows: how many complete rows to draw")
    p.add_argument("--seed", type=int, default=0, help="the draw's seed")
    p.add_argument("--tolerance", type=float, default=0.5, help="accuracy points")
    p.add_argument("--keep", help="rerun into this directory (kept) instead of a temporary one")
    args = p.parse_args(argv)
    path = Path(args.summary)
    try:
        summary = pd.read_csv(path)
    except (OSError, pd.errors.ParserError) as e:
        fail(f"cannot read {path}: {e}; give a report's summary.csv")
    missing = {"overrides", "final_acc", "run_dir", "config_hash", "setting", "method", "seed", "status"} - set(summary)
    if missing:
        fail(f"{path} lacks columns {sorted(missing)}: not a report's summary.csv")
    indices = pick(summary, args.rows, args.random, args.seed)
    with tempfile.TemporaryDirectory(prefix="fedbench-reproduce-") as tmp:
        scratch = Path(args.keep or tmp).resolve()
        checks = [reproduce_row(summary, i, scratch) for i in indices]
    for c in checks:
        verdict = "ok" if c.ok(args.tolerance) else "NOT REPRODUCED"
        detail = c.problem or f"recorded {c.recorded:.2f}, rerun {c.rerun:.2f} (diff {c.rerun - c.recorded:+.2f}){c.note}"
        print(f"row {c.row} ({c.label}): {detail}, {c.seconds:.0f} s: {verdict}")
    bad = [c for c in checks if not c.ok(args.tolerance)]
    print(f"fedbench.reproduce: {len(checks) - len(bad)} of {len(checks)} rows within {args.tolerance} points")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
