"""Numbers that say how much they depend on the machine: every run records the float path its kernels
took; init_jitter is a rounding-size nudge left out of the config hash at 0; the stability probe marks
the second publication's chaotic FedBN configuration (digits_rotated, lr 0.5, seed 2: published 73.95,
80.14 on another machine, 76.45 and 81.44 on other float paths) unstable and a stable FedAvg one
stable; the publication's reproduce check fails on a number that moved on the same float path only."""
from __future__ import annotations

import json

import pandas as pd
import pytest
import torch

from fedbench.models import build_model
from fedbench.report import build_report
from fedbench.rundir import config_hash
from fedbench.seeding import jitter_
from tests.conftest import run_cli
from tests.runs_helpers import compose_cfg
from tests.test_select import read_md

CHAOTIC = ["method=fedbn", "lr=0.5", "experiment=digits_rotated", "model.bn=true", "seed=2"]
STABLE = ["method=fedavg", "lr=0.1", "experiment=digits_rotated", "seed=2"]


def test_init_jitter_is_rounding_sized_and_left_out_of_the_hash():
    model = build_model({"name": "mlp", "hidden": [32]}, (64,), 10)
    before = [p.detach().clone() for p in model.parameters()]
    jitter_(model, 1e-6, seed=0)
    moved = [((p - b).abs() / b.abs().clamp(min=1e-12)).max().item() for p, b in zip(model.parameters(), before)]
    assert 0 < max(moved) < 1e-5                                    # ~ulps, nothing more
    assert config_hash(compose_cfg("init_jitter=0.0")) == config_hash(compose_cfg())   # old runs keep their dirs
    assert config_hash(compose_cfg("init_jitter=1e-6")) != config_hash(compose_cfg())


@pytest.fixture(scope="module")
def probed(tmp_path_factory):
    """The chaotic and the stable configuration, each with its probe, in one multirun (trials sweeper)."""
    root = tmp_path_factory.mktemp("stability")
    results, trials = root / "results", root / "trials.txt"
    lines = [c + extra for c in (CHAOTIC, STABLE) for extra in ([], ["init_jitter=1e-06"])]
    trials.write_text("".join(" ".join(line) + "\n" for line in lines))
    proc = run_cli("-m", "hydra/sweeper=trials", f"hydra.sweeper.trials={trials}", f"results_dir={results}",
                   "progress=false", "hydra.callbacks.report.enabled=false", f"data.root={root / 'data'}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return results


def test_every_run_records_its_float_path(probed):
    for path in probed.glob("runs/**/summary.json"):
        machine = json.loads(path.read_text())["machine"]
        assert machine["float_path"] == f"cpu {torch.backends.cpu.get_cpu_capability()}, 1 thread"
        assert machine["cpu_capability"] and machine["torch"] == torch.__version__


def test_the_probe_marks_the_chaotic_configuration_unstable_and_the_stable_one_stable(probed):
    build_report(probed, echo=lambda s: None, select="val")
    sel = pd.read_csv(probed / "tables" / "selected.csv").set_index("method")
    assert sel.loc["fedbn", "unstable"] and sel.loc["fedbn", "rounding_delta"] > 0.5
    assert not sel.loc["fedavg", "unstable"] and sel.loc["fedavg", "rounding_delta"] < 0.5
    runs = pd.read_csv(probed / "summary.csv")
    assert len(runs) == 2 and "init_jitter" not in runs.columns       # a probe is never a configuration
    board = read_md(probed / "tables" / "leaderboard_final.md")
    assert board["fedbn"][0].endswith("§") and "§" not in board["fedavg"][0]


def test_the_publications_reproduce_check_fails_only_on_the_same_float_path(probed, tmp_path):
    from fedbench.publish import reproduce_check

    build_report(probed, echo=lambda s: None)
    summary = pd.read_csv(probed / "summary.csv")
    stable = summary[summary["method"] == "fedavg"].index[0]
    published = tmp_path / "published"
    (published / "tables").mkdir(parents=True)
    moved = summary.copy()
    moved.loc[stable, "final_acc"] += 0.006                         # 0.6 points off, same float path
    moved.to_csv(published / "summary.csv", index=False)
    assert reproduce_check(published, [], dry_run=False) == 1
    record = (published / "tables" / "reproduce.md").read_text()
    assert "NOT REPRODUCED" in record and "fedbn" in record          # FedBN's row is always among the checked
    moved.loc[stable, "float_path"] = "cpu DEFAULT, 1 thread"        # recorded on another float path
    moved.to_csv(published / "summary.csv", index=False)
    assert reproduce_check(published, [], dry_run=False) == 0
    assert "differs (another float path)" in (published / "tables" / "reproduce.md").read_text()
