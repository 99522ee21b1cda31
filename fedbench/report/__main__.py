"""`python -m fedbench.report [--results-dir results] [--metric final|best] [--select val] [--filter key=value ...]`

Reads every run directory under <results-dir>/runs and writes <results-dir>/summary.csv,
<results-dir>/tables/*.md|*.tex|issues.md and <results-dir>/plots/*.png.
Exit status: 0 when at least one run was usable, 1 when runs exist but none completed,
2 on bad input (no results dir, no runs, unknown filter key), 74 when an output cannot be written.
"""
from __future__ import annotations

import argparse
import sys

from fedbench.errors import WriteError
from fedbench.report import METRICS, SELECT, ReportError, build_report


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m fedbench.report",
                                description="All finished fedbench runs -> summary.csv, tables and plots.")
    p.add_argument("--results-dir", default="results", help="the results_dir the runs wrote to (default: results)")
    p.add_argument("--metric", choices=METRICS, default="final",
                   help="final = mean of the last k evaluations; best = round chosen by validation accuracy")
    p.add_argument("--filter", dest="filters", action="extend", nargs="+", default=[], metavar="KEY=VALUE",
                   help="keep runs whose summary field or config key equals VALUE (comma = any of), "
                        "e.g. method=fedavg,fedper partition.alpha=0.1; repeatable, all must hold")
    p.add_argument("--select", choices=SELECT, default=None,
                   help="val: per setting and method, keep the configuration (lr and the method's searched keys) "
                        "with the best mean validation accuracy; writes tables/selected.csv and the tables, "
                        "leaderboard and plots of the selected runs (test accuracy never enters the choice)")
    p.add_argument("--out", default=None, help="write outputs here instead of into --results-dir")
    p.add_argument("--replace-published", action="store_true",
                   help="overwrite a published comparison (fedbench.publish's summary.csv) in the output "
                        "directory; without it, the report goes to <out>/unpublished/ there")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        report = build_report(args.results_dir, args.metric, args.filters, args.out,
                              echo=lambda line: print(line, file=sys.stderr), select=args.select,
                              replace_published=args.replace_published)
    except (ReportError, WriteError) as exc:
        print(f"fedbench.report: error: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, ReportError) else exc.exit_code
    if report.usable == 0:
        print("fedbench.report: error: no usable run (none complete); see tables/issues.md", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
