"""`python -m fedbench.reproduce [SUMMARY] [--rows 3,17 | --random K [--include fedbn]] [--tolerance 0.5] [launcher overrides]`:
rerun rows of a published summary.csv from the overrides stored with them, into a scratch directory,
in fresh processes, and check that each lands within `tolerance` accuracy points of the recorded final
accuracy; a rerun whose config hash differs from the recorded one (a default changed since the run) is
said beside its number, and so is a rerun on another float path than the row's (another CPU
capability, thread count or GPU: fedbench.execution.machine), where a chaotic configuration may move by
points (README, stability) and a difference is reported but does not fail.

Without --rows, --random K picks K complete rows at random (--seed), plus one of each method named by
--include when none was drawn, so a reader can spot-check a publication without choosing what to check.
The reruns are one multirun through the launcher the overrides name (default: the local launcher, a
fresh process per run). Exit 0 when every row on the same float path reproduces, 1 when one does not,
2 on bad input (one line naming it). The published directory is never written to.
"""
from __future__ import annotations

import argparse
import json
import shlex
import sys
import tempfile
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
    other_path: bool = False   # the rerun took another float path than the recorded run

    def ok(self, tolerance: float) -> bool:
        return not self.problem and abs(self.rerun - self.recorded) <= tolerance

    def fails(self, tolerance: float) -> bool:
        """Not reproduced where it must be: a problem, or a difference on the same float path."""
        return bool(self.problem) or (not self.ok(tolerance) and not self.other_path)


def fail(message: str):
    """Bad input: one line on stderr, exit 2."""
    print(f"fedbench.reproduce: error: {' '.join(message.split())}", file=sys.stderr)
    raise SystemExit(2)


def rerun_argv(overrides: str, scratch: Path) -> list[str]:
    """The row's command line with its output sent to `scratch`."""
    kept = [o for o in shlex.split(overrides) if o.split("=", 1)[0].lstrip("+~") not in REPLACED]
    return [*kept, f"results_dir={scratch}", "progress=false"]


def label_of(row) -> str:
    return f"{row.get('study', '')} {row['setting']} {row['method']} seed {row['seed']}".strip()


def reproduce_rows(summary: pd.DataFrame, indices: list[int], scratch: Path, launch: list[str]) -> list[Check]:
    """Rerun the rows `indices`, each into scratch/row<index>, as one multirun through `launch` (the
    launcher overrides); one Check per row, from the one run its directory then holds. A run directory
    other than the recorded one (another config hash: the overrides no longer configure the recorded
    run exactly, e.g. a default changed since) is said in the check's note."""
    from fedbench.tuning.jobs import launch as run_jobs

    jobs = [rerun_argv(summary.loc[i, "overrides"], scratch / f"row{i}") for i in indices]
    code = run_jobs(jobs, launch, scratch, "reproduce")
    return [check_row(summary, i, scratch / f"row{i}", code) for i in indices]


def check_row(summary: pd.DataFrame, index: int, out: Path, code: int) -> Check:
    row = summary.loc[index]
    check = Check(index, label_of(row), 100 * float(row["final_acc"]), float("nan"), 0.0)
    found = sorted((out / "runs").glob("**/summary.json"))
    if len(found) != 1:
        check.problem = (f"the rerun wrote {len(found)} runs, not 1" if found or code == 0 else
                         f"the rerun failed (the multirun exited {code}; its log is under {out.parent / 'sweeps'}, "
                         "kept with --keep DIR)")
        return check
    rerun = json.loads(found[0].read_text())
    if rerun.get("status") != "complete":
        check.problem = f"the rerun ended {rerun.get('status')}: {rerun.get('error', '')}".strip()
        return check
    check.rerun, check.seconds = 100 * float(rerun["final_acc"]), float(rerun.get("wall_time_s") or 0.0)
    rerun_dir = found[0].parent.relative_to(out).as_posix()
    if rerun_dir != row["run_dir"]:
        check.note = f"; config hash {row['config_hash']} is now {found[0].parent.parent.name} (run {rerun_dir})"
    recorded_path = row.get("float_path")
    now_path = (rerun.get("machine") or {}).get("float_path")
    if isinstance(recorded_path, str) and now_path and recorded_path != now_path:
        check.other_path = True
        check.note += f"; another float path: recorded on {recorded_path}, rerun on {now_path}"
    return check


def launcher_overrides(given: list[str]) -> list[str]:
    """The launcher of the reruns: the given overrides (hydra/launcher=..., hydra.launcher.*), by default
    the local launcher; every rerun in a fresh process (the local launcher's persistent workers off)."""
    bad = [o for o in given if not o.split("=", 1)[0].lstrip("+~").startswith("hydra")]
    if bad:
        fail(f"{' '.join(bad)}: only launcher overrides (hydra/launcher=..., hydra.launcher.*) go after the "
             "summary; a row's own overrides come from summary.csv")
    kept = [o for o in given if not o.startswith("hydra.launcher.reuse_processes=")]
    if not any(o.startswith("hydra/launcher=") for o in kept):
        kept = ["hydra/launcher=local", *kept]
    local = any(o in ("hydra/launcher=local",) for o in kept)
    return kept + (["hydra.launcher.reuse_processes=false"] if local else [])


def pick(summary: pd.DataFrame, rows: str | None, count: int, seed: int, include: tuple = ()) -> list[int]:
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
    drawn = set(complete.sample(n=min(count, len(complete)), random_state=seed).index)
    for method in include:   # one row of each named method, when the draw has none
        theirs = complete[complete["method"] == method]
        if len(theirs) and not drawn & set(theirs.index):
            drawn.add(theirs.sample(n=1, random_state=seed).index[0])
    return sorted(drawn)


def parse(argv: list[str] | None):
    p = argparse.ArgumentParser(prog="python -m fedbench.reproduce", description=__doc__.split("\n\n")[0])
    p.add_argument("args", nargs="*", metavar="SUMMARY|OVERRIDE",
                   help="the summary.csv (default results/published/summary.csv), then launcher overrides, e.g. hydra/launcher=slurm")
    p.add_argument("--rows", help="comma-separated row numbers of summary.csv (0 = the first data row)")
    p.add_argument("--random", type=int, default=1, help="without --rows: how many complete rows to draw")
    p.add_argument("--include", default="", help="without --rows: methods to draw one row of when none was drawn")
    p.add_argument("--seed", type=int, default=0, help="the draw's seed")
    p.add_argument("--tolerance", type=float, default=0.5, help="accuracy points")
    p.add_argument("--keep", help="rerun into this directory (kept) instead of a temporary one")
    p.add_argument("--out", help="also write the checks to this Markdown file")
    args = p.parse_intermixed_args(argv)
    paths = [a for a in args.args if "=" not in a]
    if len(paths) > 1:
        fail(f"{' '.join(paths)}: one summary.csv")
    args.summary, args.launch = (paths[0] if paths else "results/published/summary.csv"), [a for a in args.args if "=" in a]
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    path = Path(args.summary)
    launch = launcher_overrides(args.launch)
    try:
        summary = pd.read_csv(path)
    except (OSError, pd.errors.ParserError) as e:
        fail(f"cannot read {path}: {e}; give a report's summary.csv")
    missing = {"overrides", "final_acc", "run_dir", "config_hash", "setting", "method", "seed", "status"} - set(summary)
    if missing:
        fail(f"{path} lacks columns {sorted(missing)}: not a report's summary.csv")
    indices = pick(summary, args.rows, args.random, args.seed, tuple(m for m in args.include.split(",") if m))
    with tempfile.TemporaryDirectory(prefix="fedbench-reproduce-") as tmp:
        scratch = Path(args.keep or tmp).resolve()
        checks = reproduce_rows(summary, indices, scratch, launch)
    lines = []
    for c in checks:
        verdict = "ok" if c.ok(args.tolerance) else "differs (another float path)" if not c.fails(args.tolerance) \
            else "NOT REPRODUCED"
        detail = c.problem or f"recorded {c.recorded:.2f}, rerun {c.rerun:.2f} (diff {c.rerun - c.recorded:+.2f}){c.note}"
        lines.append(f"row {c.row} ({c.label}): {detail}, {c.seconds:.0f} s: {verdict}")
    bad = [c for c in checks if c.fails(args.tolerance)]
    lines.append(f"fedbench.reproduce: {sum(c.ok(args.tolerance) for c in checks)} of {len(checks)} rows within "
                 f"{args.tolerance} points" + (f"; {len(bad)} not reproduced on the same float path" if bad else ""))
    print("\n".join(lines))
    if args.out:
        from fedbench.files import atomic_write

        atomic_write(Path(args.out), "# Reproduce check\n\nEach row rerun from its stored overrides in a fresh "
                     f"process (python -m fedbench.reproduce, tolerance {args.tolerance} points):\n\n"
                     + "".join(f"- {line}\n" for line in lines))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
