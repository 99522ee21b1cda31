"""`python -m fedbench.tune [--methods all|m1,m2] [--final-seeds 1,2] [--dry-run] [overrides ...]`

Tuning with an equal budget, selected on validation. Each method's config declares its search space,
`search` in conf/method/<name>.yaml: Hydra sweep overrides for the lr and at most two keys of its own
(e.g. `lr=0.01,0.03,0.1,0.3` and `method.lam=0.1,1,10`), with the same number of configurations for
every method (checked). For each method this runs ONE Hydra multirun, `python -m fedbench -m
method=<name> <search> <overrides>`: Hydra's sweeper makes the grid and the chosen launcher runs it
(`hydra/launcher=local` or `slurm` in the overrides); a method that needs BatchNorm (FedBN) gets
`model.bn=true`. Then `python -m fedbench.report --select val`
picks, per setting and method, the configuration with the best mean validation accuracy.

With `--final-seeds 1,2` the grid runs on the overrides' seed (e.g. seed=0) and each selected
configuration is then rerun on the extra seeds (single runs from the selected runs' recorded overrides,
one per core side by side), so every reported number has several seeds while the choice stays on the tuning
seed (the report compares configurations on the seeds they all have).

With `--screen R --carry N` (multi-fidelity tuning, the same schedule for every method): the grid
first runs for R rounds only, into <results_dir>/screening (its own directory: its runs are a
different setting and never reach the tables), then the N best configurations of each setting and
method there, by the same rule as the selection (validation score, ties nearest the grid's middle),
run for the full rounds into results_dir, where the selection picks among them.
"""
from __future__ import annotations

import argparse
import math
import shlex
import subprocess
import sys
from pathlib import Path

from omegaconf import OmegaConf

from fedbench.config import CONF_DIR, group_options
from fedbench.errors import ConfigError

MAX_OWN_KEYS = 2


def search_space(method: str) -> list[str]:
    """The method's `search`: a list of Hydra sweep overrides (key=v1,v2,...); ConfigError if malformed."""
    node = OmegaConf.load(CONF_DIR / "method" / f"{method}.yaml")
    search = node.get("search")
    where = f"conf/method/{method}.yaml search"
    if not search or not all(isinstance(s, str) and "=" in s for s in search):
        raise ConfigError(f"{where}: must be a list of sweep overrides such as \"lr=0.01,0.1\" (the lr first)")
    keys = [s.split("=", 1)[0] for s in search]
    own = [k for k in keys if k != "lr"]
    if keys[0] != "lr" or len(own) > MAX_OWN_KEYS or len(set(keys)) != len(keys):
        raise ConfigError(f"{where}: {keys}: the lr first, then at most {MAX_OWN_KEYS} keys of the method's own")
    for k in own:
        if not k.startswith("method.") or k.removeprefix("method.") not in node:
            raise ConfigError(f"{where}: {k}: not a key of conf/method/{method}.yaml (write method.<key>)")
    return list(search)


def configurations(search: list[str]) -> int:
    """How many configurations a search space holds (the product of its sweeps' lengths)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parser = OverridesParser.create()
    return math.prod(len(list(o.sweep_string_iterator())) if o.is_sweep_override() else 1
                     for o in parser.parse_overrides(search))


def plan(methods: list[str], overrides: list[str]) -> list[tuple[str, list[str]]]:
    """(method, fedbench argv) per method; ConfigError when budgets differ or an override sets a
    searched key."""
    spaces = {m: search_space(m) for m in methods}
    budgets = {m: configurations(s) for m, s in spaces.items()}
    if len(set(budgets.values())) > 1:
        raise ConfigError("unequal tuning budgets: " + ", ".join(f"{m} {n}" for m, n in sorted(budgets.items()))
                          + " configurations; make every method's search the same size")
    given = {o.split("=", 1)[0].lstrip("+~") for o in overrides}
    for m, space in spaces.items():
        clash = given & {s.split("=", 1)[0] for s in space}
        if clash:
            raise ConfigError(f"{', '.join(sorted(clash))}: tuned by method={m}'s search; drop it from the "
                              "command line (or edit search in its conf/method yaml)")
    if any(o.split("=", 1)[0] in ("method", "+method") for o in overrides):
        raise ConfigError("method=...: choose methods with --methods, not an override")
    return [(m, ["-m", f"method={m}", *spaces[m], *overrides, *required(m, given), "hydra.callbacks.report.enabled=false"])
            for m in methods]


def required(method: str, given: set) -> list[str]:
    """Overrides a method cannot run without: a BatchNorm model for a method that needs one (FedBN)."""
    from fedbench.config import method_class

    needs_bn = getattr(method_class(method), "needs_batchnorm", False)
    return ["model.bn=true"] if needs_bn and "model.bn" not in given and "model" not in given else []


def final_runs(results_dir: Path, seeds: list[str], metric: str, methods: list[str], presets: list[str] = ()
               ) -> list[list[str]]:
    """fedbench argv (one single run per selected configuration and seed: main runs them side by side,
    one per core) rerunning each selected configuration of `methods` (only these: another tune may be
    working on the others) on the settings of the `presets` (experiment=...; all when none), from its
    recorded overrides, on `seeds`."""
    from fedbench.report.collect import collect, preset_of
    from fedbench.report.select import select_by_validation

    runs = collect(results_dir)
    _, picked = select_by_validation(runs, metric)
    picked = picked[picked["method"].isin(methods)]
    if presets:   # only this tune's settings: another study may share the results directory
        picked = picked[picked["overrides"].map(preset_of).isin(presets)]
    argvs, seen = [], set()
    for line in picked["overrides"].dropna():
        base = [o for o in shlex.split(line) if not o.startswith("seed=")]
        for seed in seeds:
            if (key := (tuple(base), seed)) not in seen:
                seen.add(key)
                argvs.append([*base, f"seed={seed}"])
    return argvs


def screened(overrides: list[str], rounds: int, screen_dir: Path) -> list[str]:
    """The overrides of the screening stage: R rounds into its own directory."""
    return [o for o in overrides if not o.startswith(("rounds=", "results_dir="))] + [
        f"rounds={rounds}", f"results_dir={screen_dir}"]


def carried_runs(screen_dir: Path, carry: int, metric: str, methods: list[str], overrides: list[str]
                 ) -> list[list[str]]:
    """fedbench argv (one run each) of the `carry` best screened configurations per setting and
    method, from their recorded overrides, at the full rounds and into the main results directory
    (`overrides`' rounds and results_dir, when given, else the configuration's own)."""
    from fedbench.report.collect import collect
    from fedbench.report.select import rankings

    full = [o for o in overrides if o.startswith(("rounds=", "results_dir="))]
    argvs = []
    for (_, method), (rank, group) in rankings(collect(screen_dir), metric).items():
        if method not in methods:
            continue
        for variant in rank.order[:carry]:
            recorded = group[group["variant"] == variant]["overrides"].dropna()
            if len(recorded):
                base = [o for o in shlex.split(recorded.iloc[0]) if not o.startswith(("rounds=", "results_dir="))]
                argvs.append([*base, *full, "hydra.callbacks.report.enabled=false"])
    return argvs


def record_screening(results_dir: Path, screen_dir: Path, args, methods: list[str]) -> None:
    """tables/screening.md (report.screening) beside the tables it explains (in unpublished/ when the
    directory holds the published comparison and this tuning may not replace it)."""
    from fedbench.report import UNPUBLISHED, published
    from fedbench.report.screening import write_screening

    out = results_dir if args.replace_published or not published(results_dir) else results_dir / UNPUBLISHED
    write_screening(screen_dir, args.carry, args.screen, out / "tables" / "screening.md", args.metric)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m fedbench.tune", description=__doc__.split("\n\n")[1])
    p.add_argument("--methods", default="all", help="comma-separated method names, or all (default)")
    p.add_argument("--final-seeds", default=None, metavar="S1,S2",
                   help="after the grid, rerun each selected configuration on these seeds")
    p.add_argument("--screen", type=int, default=None, metavar="R",
                   help="multi-fidelity: run the grid for R rounds first (into <results_dir>/screening)")
    p.add_argument("--carry", type=int, default=4, metavar="N",
                   help="with --screen: configurations per setting and method carried to the full rounds")
    p.add_argument("--metric", choices=("final", "best"), default="final", help="validation number to select by")
    p.add_argument("--dry-run", action="store_true", help="print the multiruns instead of running them")
    p.add_argument("--replace-published", action="store_true",
                   help="the report may overwrite the published comparison in results_dir (fedbench.publish)")
    p.add_argument("overrides", nargs="*", help="Hydra overrides for every job, e.g. experiment=X seed=0")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    methods = group_options("method") if args.methods == "all" else [m.strip() for m in args.methods.split(",")]
    try:
        unknown = sorted(set(methods) - set(group_options("method")))
        if unknown:
            raise ConfigError(f"--methods {','.join(unknown)}: unknown; choose from {', '.join(group_options('method'))}")
        if args.screen is not None and (args.screen < 1 or args.carry < 1):
            raise ConfigError(f"--screen {args.screen} --carry {args.carry}: both must be at least 1")
        results_dir = Path(next((o.split("=", 1)[1] for o in args.overrides if o.startswith("results_dir=")),
                                "results"))
        screen_dir = results_dir / "screening"
        jobs = plan(methods, args.overrides if args.screen is None else screened(args.overrides, args.screen,
                                                                                   screen_dir))
    except ConfigError as exc:
        print(f"fedbench.tune: error: {exc}", file=sys.stderr)
        return 2
    failed = [m for m, argv in jobs if run_fedbench(argv, args.dry_run) != 0]
    if args.screen is not None and not args.dry_run:
        carried = carried_runs(screen_dir, args.carry, args.metric, methods, args.overrides)
        record_screening(results_dir, screen_dir, args, methods)
        failed += [" ".join(a[:1]) for a, code in zip(carried, run_side_by_side(carried)) if code]
    if args.final_seeds and not args.dry_run:
        seeds = [s.strip() for s in args.final_seeds.split(",") if s.strip()]
        presets = [p for o in args.overrides if o.startswith("experiment=") for p in o.split("=", 1)[1].split(",")]
        finals = final_runs(results_dir, seeds, args.metric, methods, presets)
        failed += [" ".join(a[:2]) for a, code in zip(finals, run_side_by_side(finals)) if code]
    if args.dry_run:
        return 0
    from fedbench.report import build_report

    build_report(results_dir, args.metric, select="val", echo=lambda line: print(line, file=sys.stderr),
                 replace_published=args.replace_published)
    if failed:
        print(f"fedbench.tune: error: runs failed for: {', '.join(failed)} (see above; resubmit to resume)",
              file=sys.stderr)
        return 1
    return 0


def run_side_by_side(argvs: list[list[str]]) -> list[int]:
    """Single runs side by side, one per core of this process (threads=auto gives each one thread
    outside a launcher); their exit codes, in order."""
    import os
    from concurrent.futures import ThreadPoolExecutor

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    with ThreadPoolExecutor(max_workers=max(1, cores)) as pool:
        return list(pool.map(lambda a: run_fedbench(a, False), argvs))


def run_fedbench(argv: list[str], dry_run: bool) -> int:
    print("python -m fedbench " + " ".join(argv), file=sys.stderr, flush=True)
    if dry_run:
        return 0
    return subprocess.call([sys.executable, "-m", "fedbench", *argv])


if __name__ == "__main__":
    sys.exit(main())
