"""From run directories to results: `python -m fedbench.report` (see __main__) or `build_report()`.

Stages: collect (read every run dir, group by setting and method variant) -> aggregate (mean ± std
over seeds of usable runs only; failed/diverged/unfinished runs and missing seeds listed) -> write
summary.csv, tables/ (Markdown + LaTeX + issues.md) and plots/ (PNG).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from fedbench.metrics import COMPUTE_FIELDS
from fedbench.report.collect import ReportError

METRICS = ("final", "best")
SELECT = ("val",)
__all__ = ["METRICS", "SELECT", "Report", "ReportError", "build_report"]


@dataclass
class Report:
    """What a report wrote, and what it found wrong."""
    summary_csv: Path
    tables: list[Path] = field(default_factory=list)
    plots: list[Path] = field(default_factory=list)
    issues: list[str] = field(default_factory=list)
    runs: int = 0
    usable: int = 0
    settings: int = 0


def summary_columns(runs) -> list[str]:
    """summary.csv column order: identity, setting params, headline numbers, cost, bookkeeping."""
    first = (["setting"] + ["setting_detail"] * ("setting_detail" in runs.columns)
             + ["variant", "method", "seed", "status", "dataset", "partition"])
    part = sorted(c for c in runs.columns if c.startswith("partition."))
    heads = [f"{w}_{v}" for w in METRICS for v in ("acc", "acc_weighted", "acc_std", "acc_bottom10")]
    cost = ["best_round", "rounds", "rounds_done", "wall_time_s", "bytes_up", "bytes_down", "bytes_total",
            *COMPUTE_FIELDS, "compute_flops"]
    last = ["diverged_round", "error", "model", "setting_key", "config_hash", "partition_cache", "run_dir"]
    named = set(first + part + heads + cost + last + ["num_clients"])
    extra = sorted(c for c in runs.columns if c not in named)
    return first + part + ["num_clients"] + extra + heads + cost + last


def portable(frame):
    """The frame as written to a CSV others read: the partition cache is named by its entry, not by
    this machine's path to it."""
    if "partition_cache" not in frame.columns:
        return frame
    return frame.assign(partition_cache=frame["partition_cache"].map(
        lambda p: Path(p).name if isinstance(p, str) and p else p))


PUBLISHED_COLUMN = "study"   # fedbench.publish's summary.csv begins with it; the report's never does
UNPUBLISHED = "unpublished"


def published(out: Path) -> bool:
    """True when out/summary.csv is the published comparison (written by fedbench.publish)."""
    try:
        with open(Path(out) / "summary.csv", encoding="utf-8", errors="replace") as f:
            return f.readline().split(",")[0].strip() == PUBLISHED_COLUMN
    except OSError:
        return False


def build_report(results_dir: str | Path = "results", metric: str = "final", filters=(),
                 out_dir: str | Path | None = None, echo: Callable[[str], None] = print,
                 select: str | None = None, replace_published: bool = False, only=None) -> Report:
    """Write summary.csv, tables and plots for the runs under results_dir (into out_dir, default
    the same directory). select="val": per (setting, method) only the configuration with the best
    mean validation accuracy (fedbench.report.select): tables/selected.csv, the tables, leaderboard
    and plots of the selected runs. Raises ReportError on bad input (no runs, unknown metric, select
    or filter key). The published comparison (results/summary.csv of fedbench.publish, committed) is
    never overwritten by another report: unless replace_published, outputs then go to <out>/unpublished/.
    `only`: report just these run directories (a sweep's own)."""
    from fedbench.report.aggregate import good_runs, problem_runs
    from fedbench.report.collect import collect
    from fedbench.report.plots import write_plots
    from fedbench.report.select import select_by_validation
    from fedbench.report.tables import write_issues, write_tables
    from fedbench.files import atomic_write
    from fedbench.tuning.space import tune_settings

    if metric not in METRICS:
        raise ReportError(f"--metric {metric!r} is not one of {', '.join(METRICS)}")
    if select not in (None,) + SELECT:
        raise ReportError(f"--select {select!r}: only val (selection on test accuracy is never offered)")
    results_dir = Path(results_dir)
    out = Path(out_dir) if out_dir is not None else results_dir
    runs = collect(results_dir, list(filters), only=only)
    if not replace_published and published(out):
        echo(f"fedbench.report: {out / 'summary.csv'} is the published comparison (python -m fedbench.publish) "
             f"and stays as it is; this report goes to {out / UNPUBLISHED} (--replace-published to overwrite it)")
        out = out / UNPUBLISHED
    runs = runs.sort_values(["setting", "variant", "seed"], na_position="last").reset_index(drop=True)
    path = out / "summary.csv"
    atomic_write(path, portable(runs[summary_columns(runs)]).to_csv(index=False, float_format="%.6g"))

    ok = good_runs(runs, metric)
    tables_dir = out / "tables"
    report = Report(path, runs=len(runs), usable=len(ok), settings=runs["setting_key"].nunique())
    # with a selection, the configurations not chosen have only their tuning seeds by design: only the
    # chosen ones are checked for missing seeds
    search = tune_settings(results_dir)   # the tune's lr list and tolerance (its record in results_dir)
    selection = select_by_validation(runs, metric, probe_runs(results_dir, filters), search) \
        if select and len(ok) else None
    report.issues = write_issues(problem_runs(runs, metric), runs if selection is None else selection[1], metric,
                                 tables_dir / "issues.md", [] if selection is None else unreported(selection[0]))
    if selection is not None:
        report.tables, report.plots = write_selected(results_dir, runs, *selection, metric, tables_dir,
                                                     out / "plots", tuple(search.lr))
    elif len(ok):
        report.tables = write_tables(runs, metric, tables_dir)
        report.plots = write_plots(results_dir, runs, ok, out / "plots")
    if len(ok):   # the tests: of the selected configurations, or of every variant
        tables, plots = write_tests(runs if selection is None else selection[1], metric, tables_dir, out / "plots")
        report.tables, report.plots = report.tables + tables, report.plots + plots
    for line in mixed_code(runs):
        echo(f"fedbench.report: warning: {line}")
    counts = runs["status"].value_counts().to_dict()
    plural = lambda n, word: f"{n} {word}{'s' * (n != 1)}"  # noqa: E731
    echo(f"fedbench.report: {plural(len(runs), 'run')} in {plural(report.settings, 'setting')} "
         f"({', '.join(f'{n} {s}' for s, n in sorted(counts.items()))}); {len(ok)} usable")
    for line in report.issues:
        echo(f"fedbench.report: {line}")
    echo(f"fedbench.report: wrote {path}, {len(report.tables)} tables and issues.md under {tables_dir}, "
         f"{len(report.plots)} plots under {out / 'plots'}")
    return report


def mixed_code(runs) -> list[str]:
    """One line per setting whose finished runs come from more than one code version (code_id)."""
    if "code_id" not in runs:
        return []
    done = runs[runs["status"].isin(["complete", "diverged"])]
    lines = []
    for setting, group in done.groupby("setting"):
        ids = group["code_id"].fillna("not recorded").unique()
        if len(ids) > 1:
            lines.append(f"{setting}: its runs come from {len(ids)} code versions ({', '.join(sorted(ids))}; "
                         "summary.csv code_id): rerun the old ones (the same command reruns them) before comparing")
    return lines


def unreported(selected) -> list[str]:
    """Issue lines for the selections with no run on a reporting seed (left out of the tables)."""
    if "reported_on" not in selected:
        return []
    none = selected[selected["reported_on"].fillna("").astype(str).str.startswith("none")]
    return [f"no reporting seed: {r['setting']} | {r['method']}: its configuration ran only on the tuning seeds "
            f"{r['tuning_seeds']} (rerun python -m fedbench.tune with --seeds), left out of the tables"
            for _, r in none.iterrows()]


def probe_runs(results_dir: Path, filters=()):
    """The stability probes of fedbench.tune (init_jitter runs) among the runs the filters keep."""
    from fedbench.report.collect import collect

    try:
        return collect(results_dir, list(filters), probes=True)
    except ReportError:   # a filter key the probes lack: there are none to match
        return None


def write_tests(runs, metric: str, tables_dir: Path, plots_dir: Path):
    """What the reading cites: Friedman's test and the critical-difference diagrams, the differences to
    FedAvg and Local, newcomers beside participants, what each method shares and keeps, and the
    sentences these tests allow (findings_<metric>.md). Returns
    (tables, plots)."""
    from fedbench.report.differences import write_differences
    from fedbench.report.findings import write_findings
    from fedbench.report.methods_table import write_methods_table
    from fedbench.report.newcomers import write_newcomers
    from fedbench.report.significance import write_friedman

    tables, plots = write_friedman(runs, metric, tables_dir, plots_dir)
    tables += write_differences(runs, metric, tables_dir)
    more_tables, more_plots = write_newcomers(runs, metric, tables_dir, plots_dir)
    tables, plots = tables + more_tables, plots + more_plots
    tables += write_methods_table(runs["method"].dropna().unique(), tables_dir / "methods.md")
    tables += write_findings(runs, metric, tables_dir)
    return tables, plots


def write_selected(results_dir: Path, runs, selected, picked, metric: str, tables_dir: Path, plots_dir: Path,
                   lr: tuple | None = None):
    """--select val: tables/selected.csv (+ selected_hparams.md), the tables and leaderboard of the
    selected configurations (`selected`, their runs `picked`), and their plots. Returns (tables, plots)."""
    from fedbench.report.aggregate import good_runs
    from fedbench.report.leaderboard import write_leaderboard
    from fedbench.report.plots import write_plots
    from fedbench.report.screened import against_screening
    from fedbench.report.select import config_columns
    from fedbench.report.tables import write_tables
    from fedbench.files import atomic_write

    selected = against_screening(selected, picked, Path(results_dir) / "screening", metric, lr)
    path = tables_dir / "selected.csv"
    atomic_write(path, portable(selected.drop(columns="setting_key")).to_csv(index=False, float_format="%.6g"))
    tables = [path]
    if len(picked):
        tables += write_tables(picked, metric, tables_dir, prefix="selected_")
        tables += write_leaderboard(picked, selected, config_columns(selected), metric, tables_dir)
        plots = write_plots(results_dir, picked, good_runs(picked, metric), plots_dir)
    else:
        plots = []
    return tables, plots
