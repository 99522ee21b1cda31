"""What a report writes is usable as it is: PNGs readable by the group (a mkstemp file is 0600), a
compute plot of one run without collapsed axes or warnings, and compute cells without a FedAvg run to
compare with that say n/a, not the dash of a failed cell."""
from __future__ import annotations

import os
import stat
import warnings

from fedbench.report import build_report
from tests.test_report import write_run


def test_plots_are_readable_by_others_and_one_run_plots_without_warnings(tmp_path):
    root = tmp_path / "r"
    write_run(root, "local", 0, 0.7)   # one run, no FedAvg in its setting
    old = os.umask(0o022)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")              # matplotlib's divide-by-zero on a collapsed log axis
            report = build_report(root, echo=lambda s: None)
    finally:
        os.umask(old)
    pngs = [p for p in report.plots if p.suffix == ".png"]
    assert pngs and any(p.name.startswith("compute_") for p in pngs)
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o644 for p in pngs)
    table = (root / "tables" / "final_acc.md").read_text()
    assert "| **70.00** | n/a | n/a |" in table and "n/a = no FedAvg run" in table
