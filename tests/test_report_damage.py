"""The report survives damage: each damaged run directory is listed in tables/issues.md with its
reason and never averaged in, while the tables and plots of the good runs are written."""
from __future__ import annotations

import json

import pandas as pd
import pytest

from fedbench.rundir import completion
from fedbench.report import build_report
from tests.test_report import write_run


def _not_utf8(d):
    (d / "summary.json").write_bytes(b'{"status": "complete", "method": "fedper\xff\xfe"}')


def _null(d):
    (d / "summary.json").write_text("null")


def _no_bytes_up(d):
    pd.read_csv(d / "metrics.csv").drop(columns="bytes_up").to_csv(d / "metrics.csv", index=False)


def _binary_metrics(d):
    (d / "metrics.csv").write_bytes(bytes(range(256)) * 4)


def _files_disagree(d):
    """Complete with a checksum record, then metrics.csv lost a row (what a second writer left)."""
    s = json.loads((d / "summary.json").read_text())
    s["files"] = completion.record(d)
    (d / "summary.json").write_text(json.dumps(s))
    lines = (d / "metrics.csv").read_text().splitlines(keepends=True)
    (d / "metrics.csv").write_text("".join(lines[:-1]))


def _kept_aside(d):
    """A rerun moved the damaged files aside (and has not recomputed the run yet)."""
    completion.put_aside(d, "metrics.csv has 1 rows where summary.json records 2")


DAMAGE = {"summary.json is not a JSON object": _not_utf8, "summary.json is not a JSON object in UTF-8": _null,
          "metrics.csv has no numeric column bytes_up": _no_bytes_up, "metrics.csv": _binary_metrics,
          "metrics.csv has 1 rows where summary.json records 2": _files_disagree,
          "files kept aside by a rerun (metrics.csv has 1 rows": _kept_aside}


@pytest.mark.parametrize("reason,damage", list(DAMAGE.items()), ids=[f.__name__ for f in DAMAGE.values()])
def test_one_damaged_run_among_good_ones(tmp_path, reason, damage):
    root = tmp_path / "results"
    for seed, acc in enumerate([0.70, 0.72, 0.77]):
        write_run(root, "fedavg", seed, acc)
    bad = write_run(root, "fedavg", 1, 0.99, lr=0.5)        # another setting (lr), whose only run is damaged
    damage(bad)
    lines = []
    report = build_report(root, echo=lines.append)
    md = (root / "tables" / "final_acc.md").read_text()
    assert "73.00 ± 3.61" in md and "99.00" not in md
    issues = (root / "tables" / "issues.md").read_text()
    (listed,) = [ln for ln in issues.splitlines() if str(bad.relative_to(root)) in ln and "damaged" in ln]
    assert reason in listed, listed
    assert any(reason in ln for ln in lines)
    assert report.usable == 3 and sum(p.name.startswith("curves_") for p in report.plots) == 1
    s = pd.read_csv(root / "summary.csv")
    assert (s["status"] == "damaged").sum() == 1
