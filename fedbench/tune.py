"""`python -m fedbench.tune [--methods all|m1,m2] [--seeds 1,2,3] [--screen R --carry N] [--dry-run] [overrides ...]`

Tuning that is fair to every method, selected on validation, reported on other seeds.
  - One search for all (fedbench.tuning): the same lr list for every method (conf/tune.yaml), then each
    of the method's own keys (`search` in conf/method/<name>.yaml) at the best lr, then the lr's
    neighbours again; a choice at an end of what was tried is extended until it is interior or the
    key's declared range ends; at most `max_trials` configurations per setting and method, so no
    method gets more than twice another's.
  - On the tuning seed (`seed=S`, default 0); each selected configuration then runs on the reporting
    seeds (--seeds), the only ones the tables average, and once more on the tuning seed with a
    rounding-size nudge (init_jitter): a configuration that moves by more than the tolerance is marked
    unstable.
  - Every stage is one multirun through the launcher the overrides name (hydra/launcher=local, or
    hydra/launcher=slurm with its keys), and a stopped tune resumes where it stopped.
  - Wherever FedBN runs (on a BatchNorm model), FedAvg on the same model (fedavg+bn) runs beside it.
With --screen R --carry N the search runs at R rounds into <results_dir>/screening and the N best
configurations of each setting and method go on to the full rounds, where the selection chooses.
Ends with `python -m fedbench.report --select val` on results_dir.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from fedbench.config import group_options
from fedbench.errors import ConfigError


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m fedbench.tune", description=__doc__.split("\n\n")[1])
    p.add_argument("--methods", default="all", help="comma-separated method names, or all (default)")
    p.add_argument("--seeds", "--final-seeds", dest="seeds", default=None, metavar="S1,S2",
                   help="reporting seeds: each selected configuration reruns on them (the tuning seed never reports)")
    p.add_argument("--screen", type=int, default=None, metavar="R",
                   help="multi-fidelity: search at R rounds first (into <results_dir>/screening)")
    p.add_argument("--carry", type=int, default=2, metavar="N",
                   help="with --screen: configurations per setting and method carried to the full rounds")
    p.add_argument("--metric", choices=("final", "best"), default="final", help="validation number to select by")
    p.add_argument("--lr", default=None, metavar="L1,L2,...",
                   help="the lr list of every method (default: conf/tune.yaml's; at least 7 over two decades)")
    p.add_argument("--max-trials", type=int, default=None, metavar="N",
                   help="configurations per setting and method (default: conf/tune.yaml's, twice the lr list)")
    p.add_argument("--dry-run", action="store_true", help="print the first stage's runs instead of running them")
    p.add_argument("--replace-published", action="store_true",
                   help="the report may overwrite the published comparison in results_dir (fedbench.publish)")
    p.add_argument("overrides", nargs="*", help="Hydra overrides for every job, e.g. experiment=X seed=0 "
                                                "hydra/launcher=slurm")
    return p


def plan(args) -> "Tune":
    """The tune the command line describes; ConfigError on the first problem."""
    from fedbench.tuning.driver import Tune, Unit, labels
    from fedbench.tuning.jobs import check_no_searched_keys, split_command_line
    from fedbench.tuning.space import space_of

    methods = group_options("method") if args.methods == "all" else [m.strip() for m in args.methods.split(",")]
    unknown = sorted(set(methods) - set(group_options("method")))
    if unknown:
        raise ConfigError(f"--methods {','.join(unknown)}: unknown; choose from {', '.join(group_options('method'))}")
    if args.screen is not None and (args.screen < 1 or args.carry < 1):
        raise ConfigError(f"--screen {args.screen} --carry {args.carry}: both must be at least 1")
    settings, launch, seeds = split_command_line(args.overrides)
    if len(seeds) > 1:
        raise ConfigError(f"seed={','.join(seeds)}: the tuning seed is one seed; name the reporting seeds with "
                          "--seeds (e.g. seed=0 --seeds 1,2,3)")
    tuning = int(seeds[0]) if seeds else 0
    report = [int(s) for s in (args.seeds or "").split(",") if s.strip()]
    if tuning in report:
        raise ConfigError(f"--seeds {args.seeds}: the tuning seed {tuning} cannot report (its choice favours it)")
    dirs = {o.split("=", 1)[1] for s in settings for o in s if o.startswith("results_dir=")}
    if len(dirs) > 1:
        raise ConfigError("results_dir: one directory per tune")
    results_dir = Path(dirs.pop() if dirs else "results")
    settings = [[o for o in s if not o.startswith("results_dir=")] for s in settings]
    search = record_search(results_dir, args, write=not args.dry_run)
    lr = tuple(float(v) for v in search.lr)
    spaces = [space_of(m, lr) for m in methods]   # malformed `search` fails here, before any run
    check_no_searched_keys(settings, {k.name for sp in spaces for k in sp.keys})
    units = [Unit(tuple(s), label, lr) for s in settings for label in labels(methods, settings)]
    return Tune(units, tuning, report, launch, results_dir, args.metric, args.screen, args.carry, args.dry_run,
                int(search.max_trials))


def record_search(results_dir: Path, args, write: bool):
    """The search of this tune (conf/tune.yaml with --lr/--max-trials), recorded as <results_dir>/tune.yaml,
    which the report reads; ConfigError when results_dir was tuned with another search (its methods
    would not have been searched alike)."""
    from omegaconf import OmegaConf

    from fedbench.tuning.space import RECORD, check_settings, tune_settings

    search = OmegaConf.merge(tune_settings(), {} if args.lr is None else
                             {"lr": sorted(float(v) for v in args.lr.split(",") if v.strip())},
                             {} if args.max_trials is None else {"max_trials": args.max_trials})
    if args.lr is not None and args.max_trials is None:
        search.max_trials = 2 * len(search.lr)
    check_settings(search, "--lr/--max-trials")
    path = results_dir / RECORD
    if path.is_file() and OmegaConf.load(path) != search:
        raise ConfigError(f"{path} records another search ({OmegaConf.to_container(OmegaConf.load(path))}); "
                          "tune into another results_dir, or delete it to start over")
    if write and not path.is_file():
        from fedbench.files import atomic_write

        atomic_write(path, "# fedbench.tune's search for the runs of this directory (conf/tune.yaml, --lr, --max-trials)\n"
                     + OmegaConf.to_yaml(search))
    return search


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_intermixed_args(argv)   # overrides may stand on either side of the options
    try:
        tune = plan(args)
    except ConfigError as exc:
        print(f"fedbench.tune: error: {exc}", file=sys.stderr)
        return 2
    if not tune.report_seeds and not args.dry_run:
        print("fedbench.tune: warning: no --seeds: the tables will report the tuning seed, which chose the "
              "configuration (optimistic); add e.g. --seeds 1,2,3", file=sys.stderr)
    try:
        failed = tune.run()
    except KeyboardInterrupt:   # the stage's sweep stops its runs with checkpoints and says so
        print("fedbench.tune: stopped by Ctrl-C; run the same command again to resume (complete runs are kept)",
              file=sys.stderr)
        return 130
    if args.dry_run:
        from fedbench.tuning.estimate import Timings, describe, tune_plan

        timings = Timings([tune.results_dir, tune.screen_dir], [tune.results_dir / "summary.csv"])
        print(f"fedbench.tune: estimate: {describe(tune_plan(tune, timings), timings)}", file=sys.stderr)
        return 0
    from fedbench.report import ReportError, build_report

    try:
        build_report(tune.results_dir, args.metric, select="val", echo=lambda line: print(line, file=sys.stderr),
                     replace_published=args.replace_published)
    except ReportError as exc:
        print(f"fedbench.report: {exc}", file=sys.stderr)
        return 1
    if tune.screen is not None:
        record_screening(tune, args)
    if failed:
        print(f"fedbench.tune: error: {len(failed)} runs failed (rerun the same command to retry them), e.g. "
              f"python -m fedbench {failed[0]}", file=sys.stderr)
        return 1
    return 0


def record_screening(tune, args) -> None:
    """tables/screening.md (report.screening) beside the tables it explains (in unpublished/ when the
    directory holds the published comparison and this tuning may not replace it)."""
    from fedbench.report import UNPUBLISHED, published
    from fedbench.report.screening import write_screening

    out = tune.results_dir
    if not args.replace_published and published(out):
        out = out / UNPUBLISHED
    write_screening(tune.screen_dir, tune.carry, tune.screen, out / "tables" / "screening.md", args.metric)


if __name__ == "__main__":
    sys.exit(main())
