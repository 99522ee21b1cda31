"""`python -m fedbench.publish [--results-dir results] [--dry-run] [--estimate] [--report-only] [launcher
overrides]`: the published comparison and the FedBSD ablation, regenerated from nothing by one command, every run
through the launcher the overrides name (default: the local launcher with persistent workers; e.g.
`hydra/launcher=slurm hydra.launcher.partition=gpu`).

  1. The studies (fedbench.tune, one per study, into <results-dir>): every method searched alike (the
     same lr list, its own keys beside, edges extended) on the study's tuning seed, each configuration
     selected on validation, then rerun on the study's reporting seeds, the only ones the tables
     average, and probed for stability. Fashion-MNIST searches at SCREEN rounds first and carries the
     CARRY best configurations per setting and method to the full rounds (tune --screen/--carry; the
     same for every method); digits searches at full rounds (it is cheap).
  2. (Right after the study of its setting, so that its reading need not wait for the others.)
     The FedBSD ablation on ABLATION_SETTING, ABLATION_SEEDS, one factor at a time around FedBSD's
     selected configuration there (its lr and lam): lam 0 / 0.1 / 1 / 10 / 30 / 100, tau 0.5 / 4, loss
     mse instead of kl, student_init personal, eval_backbone global; and eval_backbone global crossed
     with lam 0 (ABLATION_CROSSED: with lam 0 and eval_backbone global at the selected lam, the control
     that says whether the distillation helps the shared backbone or only pulls the local one back);
     reported into <results-dir>/ablation (its own directory: its variants must not join the tuning
     budget of the selection).
  3. The report of both studies (--select val: tables with tested differences, Friedman tests and
     critical-difference diagrams per dataset), <results-dir>/summary.csv with every run of the
     studies and the ablation (column `study`), plots/ablation_fedbsd.png and the ablation's tested
     differences to its base configuration, ablation/tables/tests.md; tables/headline_<study>.md and
     tables/pfllib_fmnist.md (ours beside PFLlib's published Fashion-MNIST numbers, weighted as PFLlib's).
  4. The reproduce check: CHECK_ROWS random rows of summary.csv (FedBN's among them) rerun in fresh
     processes (fedbench.reproduce, tables/reproduce.md); a row that moves by more than 0.5 points on
     the same float path fails the publication.
Runs already complete are read, not recomputed, so a stopped publication resumes where it stopped;
--report-only rewrites the tables and plots from the runs on disk without starting any run.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd


@dataclass(frozen=True)
class Study:
    """One dataset's comparison: its settings (presets), its seeds (the first one tunes, the others
    report), and its tuning schedule (screen: rounds of the screening stage, None = the grid at full rounds; carry:
    configurations carried from the screening to the full rounds)."""

    name: str
    settings: tuple[str, ...]
    seeds: tuple[int, ...]
    screen: int | None = None
    carry: int = 0

    def tune_argv(self, results: Path, launch: list[str]) -> list[str]:
        schedule = [] if self.screen is None else ["--screen", str(self.screen), "--carry", str(self.carry)]
        return [*schedule, "--seeds", ",".join(map(str, self.seeds[1:])), "--replace-published",
                f"experiment={','.join(self.settings)}", f"seed={self.seeds[0]}", f"results_dir={results}",
                "progress=false", *launch]


# the first seed tunes, the others report (never the tuning seed: its choice favours it)
# Fashion-MNIST with newcomers (20% of all clients held out beside the same 30 participants); its screening cut
# from 25 to 15 rounds so that 27 methods x 5 reporting seeds come near the ~12 h budget (~16 h estimated)
STUDIES = (Study("fmnist", ("fmnist_skew_unseen", "fmnist_rotated_unseen"), (0, 1, 2, 3, 4, 5), screen=15, carry=2),
           Study("digits", ("digits_pathological2", "digits_skew", "digits_rotated"), (0, 1, 2, 3)))
SETTINGS = tuple(s for study in STUDIES for s in study.settings)
# feature and label shift: where a client's own (distilled) backbone has the most to gain or lose
ABLATION_SETTING = "fmnist_rotated_unseen"
ABLATION_SEEDS = (1, 2, 3, 4, 5)   # the study's reporting seeds, never seed 0 (it chose the base's lr and lam): ~65 runs, ~1 h
ABLATION = {"lam": ("method.lam", ["0.0", "0.1", "1.0", "10.0", "30.0", "100.0"]), "tau": ("method.tau", ["0.5", "4.0"]),
            "loss": ("method.loss", ["mse"]), "student_init": ("method.student_init", ["personal"]),
            "eval_backbone": ("method.eval_backbone", ["global"])}
ABLATION_CROSSED = {"eval_backbone=global, lam=0.0": {"method.eval_backbone": "global", "method.lam": "0.0"}}
# the other factors' values in the base configuration (conf/method/fedbsd.yaml)
ABLATION_BASE = {"method.loss": "kl", "method.tau": "1.0", "method.student_init": "global",
                 "method.eval_backbone": "local"}
LOCAL = ["hydra/launcher=local", "hydra.launcher.reuse_processes=true"]   # the default launcher
PUBLISHED = Path("results") / "published"   # the published comparison; a user's runs go to results/
CHECK_ROWS = 10          # rows of summary.csv the reproduce check reruns (one of FedBN's among them)


def fedbench(*argv: str, dry_run: bool = False, module: str = "fedbench") -> None:
    print(f"python -m {module} " + " ".join(argv), file=sys.stderr, flush=True)
    if not dry_run and subprocess.call([sys.executable, "-m", module, *argv]) != 0:
        raise SystemExit(f"fedbench.publish: error: python -m {module} failed (rerun to resume)")


def selected_fedbsd(results: Path, setting: str) -> dict[str, str]:
    """FedBSD's configuration selected on validation on the preset `setting` (its lr and lam), from the
    comparison's runs (the ones whose overrides name the preset)."""
    from omegaconf import OmegaConf

    from fedbench.report.collect import collect, preset_of
    from fedbench.report.select import select_by_validation
    from fedbench.rundir.layout import CONFIG

    runs = collect(results, ["method=fedbsd"])
    runs = runs[runs["overrides"].map(preset_of) == setting]
    selected, _ = select_by_validation(runs, "final")
    if len(selected) != 1 or pd.isna(selected.iloc[0]["variant"]):
        raise SystemExit(f"fedbench.publish: error: no FedBSD selection on {setting} in {results}")
    # from the chosen run's config: the selection's columns name only the keys its candidates differ in
    run = runs[runs["variant"] == selected.iloc[0]["variant"]].iloc[0]
    cfg = OmegaConf.load(results / run["run_dir"] / CONFIG)
    # as floats, the form the ablation's values take (10.0, not 10: another config hash)
    return {"lr": repr(float(cfg.lr)), "method.lam": repr(float(cfg.method.lam))}


def check_study(results: Path, study: Study) -> list[str]:
    """After a study's tune, its tables/selected.csv and summary.csv: every method selected in every
    setting, its configuration finished (complete, or diverged: a result too) on every reporting seed,
    else the publication stops here with one line (tables built on less would be published as if whole).
    Returns the warnings: selections at an unexplored edge (the search's budget ran out; rerunning
    cannot move them, the tables say so)."""
    import methods

    selected = pd.read_csv(results / "tables" / "selected.csv")
    runs = pd.read_csv(results / "summary.csv")
    rows = selected[selected["setting"].isin(study.settings)]
    reporting, problems = set(study.seeds[1:]), []
    for setting in study.settings:
        missing = set(methods.available()) - set(rows.loc[rows["setting"] == setting, "method"])
        if missing:
            problems.append(f"{setting}: no selection for {', '.join(sorted(missing))}")
    finished = runs[runs["status"].isin(["complete", "diverged"])].groupby(["setting", "variant"])["seed"].agg(set)
    for _, r in rows.iterrows():
        have = finished.get((r["setting"], r["variant"]), set()) & reporting
        if have != reporting:
            problems.append(f"{r['setting']} | {r['method']}: {len(have)} of {len(reporting)} reporting seeds finished")
    if problems:
        raise SystemExit(f"fedbench.publish: error: {study.name}: {'; '.join(problems[:3])}"
                         f"{f' (and {len(problems) - 3} more)' if len(problems) > 3 else ''} in "
                         f"{results / 'tables' / 'selected.csv'}; rerun to resume")
    edges = rows[rows["unexplored_edge"].notna()] if "unexplored_edge" in rows else rows.iloc[:0]
    return [f"{study.name}: {r['setting']} | {r['method']}: selected at an unexplored edge, {r['unexplored_edge']}"
            for _, r in edges.iterrows()]


def ablation_runs(results: Path, base: dict[str, str], launch: list[str], dry_run: bool) -> None:
    """One multirun per factor and per crossed variant, the other keys at FedBSD's selected configuration."""
    out = results / "ablation"
    # the base's own values among its factor's (the reference every variant is tested against)
    changes = [{key: ",".join(dict.fromkeys([*values, *([base[key]] if key in base else [])]))}
               for key, values in ABLATION.values()] + list(ABLATION_CROSSED.values())
    for change in changes:
        fixed = {k: v for k, v in base.items() if k not in change}
        fedbench("-m", "method=fedbsd", f"experiment={ABLATION_SETTING}", f"seed={','.join(map(str, ABLATION_SEEDS))}",
                 *[f"{k}={v}" for k, v in change.items()],
                 *[f"{k}={v}" for k, v in fixed.items()], f"results_dir={out}", "progress=false", *launch,
                 "hydra.callbacks.report.enabled=false", dry_run=dry_run)


def merge_summaries(results: Path) -> Path:
    """<results>/summary.csv: the studies' runs (`study`: the study of their dataset) and the ablation's
    (`study` ablation)."""
    comparison = pd.read_csv(results / "summary.csv").drop(columns=["study"], errors="ignore")
    by_dataset = {s.name: s.name for s in STUDIES}
    names = comparison["dataset"].map(by_dataset).fillna("comparison") if "dataset" in comparison else "comparison"
    parts = [comparison.assign(study=names),
             pd.read_csv(results / "ablation" / "summary.csv").drop(columns=["study"], errors="ignore").assign(
                 study="ablation")]
    merged = pd.concat(parts, ignore_index=True)
    merged = merged[["study"] + [c for c in merged.columns if c != "study"]]
    path = results / "summary.csv"
    merged.to_csv(path, index=False, float_format="%.6g")
    return path


def headline_documents(results: Path) -> list[Path]:
    """Where the studies' headline tables go (between their markers): <results>/README.md, and the
    repository's README.md when `results` is the repository's results/published/."""
    repo = Path(__file__).resolve().parents[1]
    return [results / "README.md"] + ([repo / "README.md"] if results.resolve() == repo / PUBLISHED else [])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m fedbench.publish", description=__doc__.split("\n\n")[0])
    p.add_argument("--results-dir", default=str(PUBLISHED))
    p.add_argument("--dry-run", action="store_true", help="print the commands instead of running them")
    p.add_argument("--estimate", action="store_true",
                   help="with the commands, the runs left and their wall time here (composes every run's "
                        "config: a few minutes)")
    p.add_argument("--report-only", action="store_true",
                   help="rewrite tables and plots from the runs on disk; start no run")
    p.add_argument("launch", nargs="*", metavar="OVERRIDE",
                   help="launcher overrides for every run, e.g. hydra/launcher=slurm hydra.launcher.partition=gpu "
                        "(default: " + " ".join(LOCAL) + ")")
    args = p.parse_intermixed_args(argv)
    results = Path(args.results_dir)
    bad = [o for o in args.launch if not o.split("=", 1)[0].lstrip("+~").startswith("hydra")]
    if bad:
        p.error(f"{' '.join(bad)}: only launcher overrides (hydra/launcher=..., hydra.launcher.*); the studies "
                "are fixed in fedbench/publish.py")
    launch = args.launch if any(o.startswith("hydra/launcher=") for o in args.launch) else LOCAL + args.launch
    if args.dry_run or args.estimate:
        code = publish(results, args.report_only, launch, dry_run=True)
        if args.estimate and not args.report_only:
            for line in estimate(results, launch):
                print(f"fedbench.publish: estimate: {line}", file=sys.stderr)
        return code
    from fedbench.sittings import sitting, total_minutes

    try:
        with sitting(results, "report-only" if args.report_only else "publish"):
            code = publish(results, args.report_only, launch, dry_run=False)
    except KeyboardInterrupt:
        print(f"fedbench.publish: stopped by Ctrl-C after {total_minutes(results) / 60:.2f} h over the sittings "
              f"({results / 'publish_times.csv'}); run the same command again to resume", file=sys.stderr)
        return 130
    print(f"fedbench.publish: {'done' if code == 0 else 'done, but the reproduce check failed'}; "
          f"{total_minutes(results) / 60:.2f} h over the sittings in {results / 'publish_times.csv'}", file=sys.stderr)
    return code


def estimate(results: Path, launch: list[str]) -> list[str]:
    """The runs the publication has left and their wall time here (fedbench.tuning.estimate), one line
    per study, the ablation's variants on its seeds with the reproduce check's rows, and the total."""
    from fedbench import tune as tune_cli
    from fedbench.code import code_id
    from fedbench.tuning.estimate import Plan, Timings, describe, finished, runs_on_disk, tune_plan
    from fedbench.tuning.jobs import RunIndex

    timings = Timings([results, results / "screening", results / "ablation"], [results / "summary.csv"])
    # the studies share `results`: its runs are read once (collect reads every run directory)
    full, probes = runs_on_disk(results), runs_on_disk(results, probes=True)
    total, lines = Plan(), []
    for study in STUDIES:
        tune = tune_cli.plan(tune_cli.parser().parse_intermixed_args([*study.tune_argv(results, launch), "--dry-run"]))
        tune.index.close()
        part = tune_plan(tune, timings, full, probes)
        lines.append(f"{study.name}: {describe(part, timings)}")
        total += part
    index = RunIndex("final")
    try:
        cfg = index.config(["method=fedbsd", f"experiment={ABLATION_SETTING}"])
    finally:
        index.close()
    variants = sum(len(values) for _, values in ABLATION.values()) + 1 + len(ABLATION_CROSSED)   # + the selected lam
    done = finished(runs_on_disk(results / "ablation"), code_id())
    wanted, rest = variants * len(ABLATION_SEEDS), Plan()
    rest.add("ablation", max(0, wanted - done), min(done, wanted),
             timings.run_seconds(str(cfg.dataset.name), "fedbsd", int(cfg.rounds)))
    each = total.each.get("final") or [0.0]
    rest.add("reproduce check", CHECK_ROWS, 0, sum(each) / len(each))
    lines.append(f"ablation and check: {describe(rest, timings)}")
    total += rest
    return lines + [f"in all: {describe(total, timings)}"]


def reproduce_check(results: Path, launch: list[str], dry_run: bool) -> int:
    """CHECK_ROWS random rows of the comparison (FedBN's among them) rerun in fresh processes through the
    launcher; tables/reproduce.md. The draw's seed is the number of runs, so a new publication draws anew."""
    from fedbench.reproduce import main as reproduce

    summary = results / "summary.csv"
    seed = sum(1 for _ in open(summary, encoding="utf-8")) if summary.is_file() else 0
    argv = [str(summary), "--random", str(CHECK_ROWS), "--include", "fedbn", "--seed", str(seed),
            "--out", str(results / "tables" / "reproduce.md"), *launch]
    print("python -m fedbench.reproduce " + " ".join(argv), file=sys.stderr, flush=True)
    return 0 if dry_run else reproduce(argv)


def publish(results: Path, report_only: bool, launch: list[str], dry_run: bool) -> int:
    """The studies, the ablation, the report and the reproduce check into `results` (main's steps)."""
    start = time.perf_counter()
    if report_only:
        fedbench("--results-dir", str(results), "--select", "val", "--replace-published", dry_run=dry_run,
                 module="fedbench.report")
    for study in STUDIES:   # the ablation right after the study it needs (its selection), before the others
        if not report_only:
            fedbench(*study.tune_argv(results, launch), dry_run=dry_run, module="fedbench.tune")
        if not dry_run:
            for warning in check_study(results, study):
                print(f"fedbench.publish: warning: {warning}", file=sys.stderr)
        if ABLATION_SETTING in study.settings:
            base = {"lr": "<selected>", "method.lam": "<selected>"} if dry_run else \
                selected_fedbsd(results, ABLATION_SETTING)
            if not report_only:
                ablation_runs(results, base, launch, dry_run)
    fedbench("--results-dir", str(results / "ablation"), dry_run=dry_run, module="fedbench.report")
    if dry_run:
        return 0 if report_only else reproduce_check(results, launch, dry_run=True)
    from fedbench.report.ablation import plot_ablation, write_ablation_tests
    from fedbench.report.headline import write_headlines
    from fedbench.report.pfllib import write_pfllib

    merge_summaries(results)  # fedbench.tune wrote the comparison's report (--select val)
    ablation = results / "ablation"
    plot_ablation(ablation / "summary.csv", base | ABLATION_BASE, ABLATION, results / "plots" / "ablation_fedbsd.png",
                  crossed=ABLATION_CROSSED)
    write_ablation_tests(ablation / "summary.csv", base | ABLATION_BASE, ABLATION, ablation / "tables" / "tests.md",
                         crossed=ABLATION_CROSSED)
    write_headlines(results, [s.name for s in STUDIES], headline_documents(results))
    write_pfllib(results, "fmnist")   # beside PFLlib's published Fashion-MNIST numbers, in its weighted measure
    code = 0 if report_only else reproduce_check(results, launch, dry_run=False)
    print(f"fedbench.publish: {'done' if code == 0 else 'the reproduce check failed (tables/reproduce.md)'} in "
          f"{(time.perf_counter() - start) / 60:.1f} min", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
