"""Selection on validation (python -m fedbench.report --select val): per setting and method the
configuration with the best mean VALIDATION accuracy on the tuning seed wins, whatever its test
accuracy; diverged configurations lose; every configuration is judged on the same seeds; the tables and
the leaderboard show only the chosen configurations, on the reporting seeds alone."""
from __future__ import annotations

import pandas as pd
import pytest
from omegaconf import OmegaConf

from fedbench.report import build_report
from fedbench.report.__main__ import main as report_main
from tests.test_report import write_run


def read_md(path):
    return {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:-1]]
            for line in path.read_text().splitlines() if line.startswith("| ") and "method" not in line}


@pytest.fixture
def tuned(tmp_path):
    """fedavg with lr 0.01/0.05/0.1 and fedprox with lr x mu tuned on seed 0, on two settings; the chosen
    configurations also on the reporting seeds 1, 2, 3. The best test accuracy is never the best
    validation accuracy, and the tuning seed's test accuracy (0.99) is far above the others'."""
    root = tmp_path / "r"
    for alpha in (0.1, 0.5):
        # fedavg: lr 0.05 has the best val (0.80) but not the best test; lr 0.1 the best test (0.95)
        write_run(root, "fedavg", 0, 0.99, lr=0.05, val=0.80, alpha=alpha)
        write_run(root, "fedavg", 0, 0.95, lr=0.1, val=0.60, alpha=alpha)
        write_run(root, "fedavg", 0, 0.50, lr=0.01, val=0.50, alpha=alpha)
        for mu, val in ((0.01, 0.7), (0.1, 0.9)):
            for lr in (0.05, 0.1):
                write_run(root, "fedprox", 0, 0.99 if (lr, mu) == (0.05, 0.1) else 0.6 + mu, lr=lr, hp={"mu": mu},
                          val=val - (lr == 0.1) / 10, alpha=alpha)
        for seed in (1, 2, 3):
            write_run(root, "fedavg", seed, 0.69 + seed / 100, lr=0.05, val=0.80, alpha=alpha)
            write_run(root, "fedprox", seed, 0.70, lr=0.05, hp={"mu": 0.1}, val=0.9, alpha=alpha)
    return root


def test_the_best_mean_validation_accuracy_is_selected_never_test(tuned):
    report = build_report(tuned, echo=lambda s: None, select="val")
    sel = pd.read_csv(tuned / "tables" / "selected.csv")
    assert len(sel) == 4 and set(sel["method"]) == {"fedavg", "fedprox"}
    fedavg = sel[sel["method"] == "fedavg"].iloc[0]
    assert fedavg["lr"] == 0.05 and fedavg["val_acc"] == pytest.approx(0.80) and fedavg["configs_tried"] == 3
    # the reporting seeds alone: the tuning seed's 0.99 is not in the mean
    assert fedavg["final_acc_mean"] == pytest.approx(0.71) and fedavg["final_acc_std"] == pytest.approx(0.01)
    assert (fedavg["tuning_seeds"], str(fedavg["report_seeds"]), fedavg["seeds"]) == (0, "1,2,3", 3)
    fedprox = sel[sel["method"] == "fedprox"].iloc[0]
    assert (fedprox["lr"], fedprox["method.mu"], fedprox["configs_tried"]) == (0.05, 0.1, 4)
    # the tables hold the selected configuration only, labelled by the method name
    rows = read_md(tuned / "tables" / "selected_final_acc.md")
    same = ["1.00×", "1.00×"]  # compute and bytes x FedAvg's (the fixture's runs all cost the same)
    # fedprox (70, 70, 70) is not significantly worse than fedavg (70, 71, 72): paired one-sided p = 0.11
    assert rows["fedavg"] == ["**71.00 ± 1.00**", *same] * 2 and rows["fedprox"] == ["**70.00 ± 0.00**", *same] * 2
    assert any(p.name.startswith("curves_") for p in report.plots)
    # summary.csv keeps every run of the sweep, with the configuration columns
    runs = pd.read_csv(tuned / "summary.csv")
    assert len(runs) == 2 * (3 + 4 + 3 * 2) and {"lr", "method.mu"} <= set(runs.columns)


def test_a_grid_on_one_seed_is_reported_on_it_and_marked(tmp_path):
    """No reporting seeds at all (a grid on seed 0): the tuning seed's numbers, marked optimistic (°)."""
    root = tmp_path / "r"
    write_run(root, "fedavg", 0, 0.70, lr=0.05, val=0.80)
    write_run(root, "fedavg", 0, 0.95, lr=0.1, val=0.60)
    build_report(root, echo=lambda s: None, select="val")
    sel = pd.read_csv(root / "tables" / "selected.csv").iloc[0]
    assert sel["final_acc_mean"] == pytest.approx(0.70) and sel["reported_on"].startswith("tuning seeds")
    assert read_md(root / "tables" / "leaderboard_final.md")["fedavg"][0] == "**70.00** °"


def test_leaderboard_has_bottom_decile_and_average_rank(tuned):
    build_report(tuned, echo=lambda s: None, select="val")
    rows = read_md(tuned / "tables" / "leaderboard_final.md")
    # per setting: mean ± std, bottom 10% (write_run: acc / 2), compute and bytes x FedAvg's; then the average rank
    assert rows["fedavg"] == ["**71.00 ± 1.00**", "35.50", "1.00×", "1.00×"] * 2 + ["1.00"]
    assert rows["fedprox"] == ["**70.00 ± 0.00**", "35.00", "1.00×", "1.00×"] * 2 + ["2.00"]  # not significantly worse
    assert list(rows) == ["fedavg", "fedprox"]  # sorted by average rank
    hp = (tuned / "tables" / "selected_hparams.md").read_text()
    assert "lr=0.05, method.mu=0.1 (4 tried)" in hp and "lr=0.05 (3 tried)" in hp


def test_a_diverged_configuration_is_never_selected(tmp_path):
    root = tmp_path / "r"
    for seed in range(2):
        write_run(root, "fedavg", seed, 0.5, lr=0.01, val=0.5)
        # lr 1.0: the best validation accuracy on seed 0, diverged on seed 1
        write_run(root, "fedavg", seed, 0.9, lr=1.0, val=0.99, status="complete" if seed == 0 else "diverged")
    build_report(root, echo=lambda s: None, select="val")
    sel = pd.read_csv(root / "tables" / "selected.csv")
    assert sel["lr"].tolist() == [0.01] and sel["configs_tried"].tolist() == [2]


def test_configurations_are_compared_on_their_common_seeds(tmp_path):
    """Tuned on seed 0, another configuration rerun on seeds 1 and 2: the choice is made on seed 0 alone
    (the rerun's seeds cannot favour it)."""
    root = tmp_path / "r"
    write_run(root, "fedavg", 0, 0.80, lr=0.05, val=0.70)
    write_run(root, "fedavg", 0, 0.60, lr=0.01, val=0.72)  # the best on the common seed
    for seed in (1, 2):
        write_run(root, "fedavg", seed, 0.90, lr=0.05, val=0.99)
    build_report(root, echo=lambda s: None, select="val")
    sel = pd.read_csv(root / "tables" / "selected.csv").iloc[0]
    assert sel["lr"] == 0.01 and sel["val_seeds"] == 1 and sel["val_acc"] == pytest.approx(0.72)


def test_select_is_validation_only(tuned, capsys):
    with pytest.raises(SystemExit) as exc:
        report_main(["--results-dir", str(tuned), "--select", "test"])
    assert exc.value.code == 2
    assert report_main(["--results-dir", str(tuned), "--select", "val"]) == 0
    assert (tuned / "tables" / "selected.csv").exists()


def test_a_configuration_still_running_neither_wins_nor_breaks_the_selection(tmp_path):
    root = tmp_path / "r"
    write_run(root, "fedavg", 0, 0.5, lr=0.01, val=0.5)
    write_run(root, "fedavg", 0, 0.9, lr=0.1, val=0.9, status="running")  # no result yet
    build_report(root, echo=lambda s: None, select="val")
    sel = pd.read_csv(root / "tables" / "selected.csv")
    assert sel["lr"].tolist() == [0.01] and sel["configs_tried"].tolist() == [2]


def test_a_model_switch_a_method_requires_is_its_configuration_not_a_setting(tmp_path):
    """FedBN runs with model.bn=true (it needs BatchNorm): it is compared in the same setting column."""
    root = tmp_path / "r"
    write_run(root, "fedavg", 0, 0.5)
    d = write_run(root, "fedbn", 0, 0.6)
    cfg = OmegaConf.load(d / "config.yaml")
    cfg.model.bn = True
    OmegaConf.save(cfg, d / "config.yaml")
    report = build_report(root, echo=lambda s: None, select="val")
    assert report.settings == 1


def test_configurations_not_chosen_are_not_reported_missing_seeds(tmp_path):
    """Tuned on seed 0, the winner on seeds 1 and 2: only a chosen configuration lacking seeds is an
    issue; one with no run beside the setting's tuning seed is left out of the tables, said once."""
    root = tmp_path / "r"
    write_run(root, "fedavg", 0, 0.6, lr=0.01, val=0.5)
    for seed in range(3):
        write_run(root, "fedavg", seed, 0.8, lr=0.1, val=0.9)
        write_run(root, "fedper", seed, 0.8, lr=0.1, val=0.9) if seed != 2 else None  # chosen, seed 2 missing
    write_run(root, "local", 0, 0.7, lr=0.1, val=0.9)  # chosen, but only on the setting's tuning seed
    build_report(root, echo=lambda s: None, select="val")
    issues = (root / "tables" / "issues.md").read_text()
    assert "fedavg" not in issues and "fedper: 1/2 seeds, missing seed 2" in issues
    assert "no reporting seed: " in issues and "| local: " in issues
    assert "local" not in read_md(root / "tables" / "leaderboard_final.md")
