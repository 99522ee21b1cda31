"""The publication pipeline's own pieces (the runs themselves are fedbench.tune's and the CLI's,
tested elsewhere): its commands, the merged summary.csv, the ablation plot."""
from __future__ import annotations

import subprocess
import sys

import pandas as pd
import pytest

from fedbench.publish import ABLATION, ABLATION_BASE, ABLATION_CROSSED, STUDIES, merge_summaries
from fedbench.report.ablation import plot_ablation
from tests.conftest import ROOT


def test_dry_run_lists_one_tuning_per_study_then_one_ablation_multirun_per_factor():
    out = subprocess.run([sys.executable, "-m", "fedbench.publish", "--dry-run", "--results-dir", "r"], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    lines = out.stderr.strip().splitlines()
    tunes = [line for line in lines if line.startswith("python -m fedbench.tune ")]
    assert len(tunes) == len(STUDIES) == 2 and all("--replace-published" in t and "hydra/launcher=local" in t
                                                   for t in tunes)
    fmnist, digits = tunes
    assert "experiment=fmnist_skew_unseen,fmnist_rotated_unseen" in fmnist and "--screen 15 --carry 2" in fmnist
    assert "experiment=digits_pathological2,digits_skew,digits_rotated" in digits and "--screen" not in digits
    assert "--seeds 1,2,3,4,5 " in fmnist and "--seeds 1,2,3 " in digits and all("seed=0 " in t for t in tunes)
    ablation = [line for line in lines if "results_dir=r/ablation" in line]
    assert lines.index(fmnist) < lines.index(ablation[0]) < lines.index(ablation[-1]) < lines.index(digits)
    assert len(ablation) == len(ABLATION) + len(ABLATION_CROSSED)
    # the study's reporting seeds: seed 0 chose the base's lr and lam, so it never reports, here neither
    assert all("seed=1,2,3,4,5 " in line and "experiment=fmnist_rotated_unseen" in line for line in ablation)
    # the base's lam joins its factor's values (the reference); every other line fixes it at the selected one
    assert "method.lam=0.0,0.1,1.0,10.0,30.0,100.0,<selected> " in ablation[0]
    assert "method.lam=" not in ablation[0].split("<selected> ", 1)[1]
    assert "method.eval_backbone=global method.lam=0.0 lr=<selected> " in ablation[-1]
    assert lines[-2] == "python -m fedbench.report --results-dir r/ablation"
    # the publication ends with its reproduce check: 10 random rows, FedBN's among them, fresh processes
    assert lines[-1].startswith("python -m fedbench.reproduce r/summary.csv --random 10 --include fedbn ")


def test_every_stage_goes_through_the_launcher_named():
    out = subprocess.run([sys.executable, "-m", "fedbench.publish", "--dry-run", "--results-dir", "r",
                          "hydra/launcher=slurm", "hydra.launcher.partition=gpu"], cwd=ROOT, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    runs = [line for line in out.stderr.splitlines() if line.startswith(("python -m fedbench ", "python -m fedbench.tune",
                                                                         "python -m fedbench.reproduce"))]
    assert runs and all("hydra/launcher=slurm hydra.launcher.partition=gpu" in line and "launcher=local" not in line
                        for line in runs)
    bad = subprocess.run([sys.executable, "-m", "fedbench.publish", "--dry-run", "lr=0.1"], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "only launcher overrides" in bad.stderr


def test_report_only_starts_no_run():
    out = subprocess.run([sys.executable, "-m", "fedbench.publish", "--dry-run", "--report-only", "--results-dir", "r"],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stderr.strip().splitlines() == ["python -m fedbench.report --results-dir r --select val --replace-published",
                                               "python -m fedbench.report --results-dir r/ablation"]


def test_summary_holds_both_studies_and_the_ablation_plot_is_drawn(tmp_path):
    (tmp_path / "ablation").mkdir()
    pd.DataFrame({"method": ["fedavg", "fedbsd", "fedavg"], "dataset": ["fmnist", "fmnist", "digits"], "seed": [0, 0, 0],
                  "final_acc": [0.5, 0.6, 0.7]}).to_csv(tmp_path / "summary.csv", index=False)
    rows = []
    for seed in range(3):
        base_row = {"method.lam": 1.0, "method.loss": "kl", "method.tau": 1.0, "method.student_init": "global",
                    "method.eval_backbone": "local", "seed": seed, "status": "complete"}
        rows += [{**base_row, "method.lam": lam, "final_acc": 0.7 + lam / 100} for lam in (0.0, 0.1, 1.0, 10.0)]
        rows += [{**base_row, key: value, "final_acc": 0.5} for key, value in (
            ("method.loss", "mse"), ("method.tau", 4.0), ("method.student_init", "personal"),
            ("method.eval_backbone", "global"))]
    pd.DataFrame(rows).to_csv(tmp_path / "ablation" / "summary.csv", index=False)
    merged = pd.read_csv(merge_summaries(tmp_path))
    assert list(merged.columns[:2]) == ["study", "method"]
    assert list(merged["study"][:3]) == ["fmnist", "fmnist", "digits"] and (merged["study"] == "ablation").sum() == len(rows)
    base = {"lr": "0.1", "method.lam": "1.0"} | ABLATION_BASE
    path = plot_ablation(tmp_path / "ablation" / "summary.csv", base, ABLATION, tmp_path / "plots" / "ablation.png")
    assert path.stat().st_size > 10_000


def test_a_later_report_never_overwrites_the_published_comparison(tmp_path):
    """A user's sweep into results/ (its report callback) must not replace the committed comparison: the
    report goes to results/unpublished/; publish alone (--replace-published) rewrites it."""
    from fedbench.report import build_report
    from tests.test_report import write_run

    results = tmp_path / "results"
    for seed in (0, 1):
        write_run(results, "fedavg", seed, 0.7)
    (results / "ablation").mkdir()
    build_report(results, echo=lambda s: None)
    (results / "ablation" / "summary.csv").write_text("method,seed,final_acc\nfedbsd,0,0.6\n")
    merge_summaries(results)
    published = (results / "summary.csv").read_bytes()
    lines = []
    build_report(results, echo=lines.append)
    assert (results / "summary.csv").read_bytes() == published
    assert (results / "unpublished" / "summary.csv").is_file() and "unpublished" in lines[0]
    out = subprocess.run([sys.executable, "-m", "fedbench.report", "--results-dir", str(results)], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and (results / "summary.csv").read_bytes() == published, out.stderr
    build_report(results, echo=lambda s: None, replace_published=True)
    assert pd.read_csv(results / "summary.csv").columns[0] == "setting"          # the report's own, replaced


def test_ablation_variants_are_tested_against_the_base_paired_over_seeds(tmp_path):
    """Seeds differ by 5 points; lam=0 is 3 points below the base on every seed (a tested difference only
    when paired), mse only noise, personal init 10 below; the base's own lam value is not a variant."""
    from fedbench.report.ablation import ablation_tests, write_ablation_tests

    noise = [0.001, -0.001, 0.0005]
    rows = []
    for seed in range(3):
        base_row = {"lr": 0.1, "method.lam": 1.0, "method.loss": "kl", "method.tau": 1.0,
                    "method.student_init": "global", "method.eval_backbone": "local", "seed": seed,
                    "status": "complete"}
        acc = 0.70 + 0.05 * seed
        shift = {0.0: -0.03 + noise[seed], 0.1: noise[seed], 1.0: 0.0, 10.0: -noise[seed]}
        rows += [{**base_row, "method.lam": lam, "final_acc": acc + d} for lam, d in shift.items()]
        rows += [{**base_row, "method.loss": "mse", "final_acc": acc + (0.02, -0.02, 0.01)[seed]},
                 {**base_row, "method.student_init": "personal", "final_acc": acc - 0.10 + noise[seed]},
                 {**base_row, "method.eval_backbone": "global", "final_acc": acc + noise[seed]},
                 {**base_row, "method.eval_backbone": "global", "method.lam": 0.0, "final_acc": acc - 0.05 + noise[seed]}]
    csv = tmp_path / "summary.csv"
    pd.DataFrame(rows).to_csv(csv, index=False)
    base = {"lr": "0.1", "method.lam": "1.0"} | ABLATION_BASE
    found = ablation_tests(csv, base, ABLATION, crossed=ABLATION_CROSSED).set_index("variant")
    assert "lam=1.0" not in found.index and found.loc["selected (base)", "mean"] == 75.0
    assert found.loc["lam=0.0", "verdict"] == "worse" and abs(found.loc["lam=0.0", "diff"] + 3.0) < 0.1
    assert found.loc["student_init=personal", "verdict"] == "worse"
    assert found.loc["loss=mse", "verdict"] == "no tested difference"
    assert found.loc["eval_backbone=global", "verdict"] == "no tested difference"
    assert found.loc["eval_backbone=global, lam=0.0", "verdict"] == "worse"   # both keys changed, not one
    assert abs(found.loc["eval_backbone=global, lam=0.0", "diff"] + 5.0) < 0.1
    assert (found.loc[found["n"] > 0, "n"] == 3).all() and (found["n"] > 0).sum() == 8   # the variants with runs
    text = write_ablation_tests(csv, base, ABLATION, tmp_path / "t.md").read_text()
    assert "| lam=0.0 | 3 | 72.02 ± 4.9" in text and "| -2.98 [" in text and "| selected (base) | 3 | 75.00 ± 5.00 |" in text


def test_headline_is_generated_into_the_marked_blocks(tmp_path):
    """The first-screen table comes from summary.csv and selected.csv, never by hand: only the study's
    selected configurations, its settings, accuracy with significance marks, compute, the tie mark."""
    from fedbench.report.headline import write_headlines

    rows = []
    for seed in range(3):
        for method, acc, flops in (("fedavg", 0.80, 1e9), ("fedper", 0.90, 1e9), ("ditto", 0.85, 2e9)):
            for setting in ("fmnist_skew", "fmnist_rotated"):
                rows.append({"study": "fmnist", "setting": setting, "setting_key": setting, "variant": f"{method}(lr=0.1)",
                             "method": method, "seed": seed, "status": "complete", "final_acc": acc + seed / 100, "final_acc_bottom10": acc,
                             "compute_flops": flops, "bytes_total": 1.0, "dataset": "fmnist", "unseen_clients": 8,
                             "seen_acc": acc + seed / 100, "unseen_acc": acc - 0.02 + seed / 50,
                             "participation_gap": 0.02 - seed / 100, "unseen_flops": 1e8})
        rows.append({"study": "fmnist", "setting": "fmnist_skew", "setting_key": "fmnist_skew", "method": "fedper",
                     "variant": "fedper(lr=1)", "seed": 0, "status": "complete", "final_acc": 0.99, "dataset": "fmnist"})
        rows.append({"study": "digits", "setting": "digits_skew", "setting_key": "digits_skew", "method": "fedavg",
                     "variant": "fedavg(lr=0.1)", "seed": seed, "status": "complete", "final_acc": 0.5, "dataset": "digits"})
    (tmp_path / "tables").mkdir()
    pd.DataFrame(rows).to_csv(tmp_path / "summary.csv", index=False)
    selected = [{"setting": s, "method": m, "variant": f"{m}(lr=0.1)", "tied": 3 if m == "ditto" else 1}
                for s in ("fmnist_skew", "fmnist_rotated") for m in ("fedavg", "fedper", "ditto")]
    pd.DataFrame(selected).to_csv(tmp_path / "tables" / "selected.csv", index=False)
    readme = tmp_path / "README.md"
    readme.write_text("# Results\n<!-- headline:fmnist -->\nold numbers\n<!-- /headline:fmnist -->\nrest\n")
    written = write_headlines(tmp_path, ["fmnist", "cifar"], [readme, tmp_path / "absent.md"])   # cifar: no runs
    assert written == [tmp_path / "tables" / "headline_fmnist.md", readme]
    text = readme.read_text()
    assert "old numbers" not in text and text.startswith("# Results\n<!-- headline:fmnist -->\n| method |")
    table = [line for line in text.splitlines() if line.startswith("| ")]
    # per setting: accuracy, compute, newcomers, gap (the lr=1 run's 99 is not selected)
    assert table[1].startswith("| fedper | **91.00 ± 1.00** | 1.00× | 90.00 ± 2.00 | +1.00 ± 1.00 | **91.00 ± 1.00** |")
    assert table[2].startswith("| ditto | 86.00 ± 1.00 ‡ | 2.00× |") and "digits" not in text
    assert "unseen = the newcomers' accuracy" in text
    assert "over 3 seeds" in text and text.endswith("<!-- /headline:fmnist -->\nrest\n")


def test_ctrl_c_stops_publish_and_tune_with_one_line_and_the_sitting_recorded(tmp_path, monkeypatch, capsys):
    """Ctrl-C (KeyboardInterrupt in the parent while its stage's sweep stops with checkpoints): exit 130,
    one line each, no traceback, the sitting in publish_times.csv as stopped."""
    import fedbench.publish as publish
    import fedbench.tune as tune

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(publish, "publish", interrupted)
    assert publish.main(["--results-dir", str(tmp_path)]) == 130
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("fedbench.publish: stopped by Ctrl-C") and "resume" in err[0]
    assert pd.read_csv(tmp_path / "publish_times.csv")["ended_by"].tolist() == ["stopped"]

    class Plan:
        report_seeds = (1,)
        run = staticmethod(interrupted)

    monkeypatch.setattr(tune, "plan", lambda args: Plan())
    assert tune.main(["--methods", "fedavg", "seed=0", "--seeds", "1"]) == 130
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["fedbench.tune: stopped by Ctrl-C; run the same command again to resume (complete runs are kept)"]


def test_the_crossed_control_tests_the_distillations_effect_through_each_backbone(tmp_path):
    """lam=0 costs 3 points with the client's own backbone and 5 with the shared one (every seed, the
    seeds 5 points apart): both effects and their 2-point difference are tested, paired over seeds, in
    the direction 'selected lam minus lam 0'; a broken pairing (seeds shuffled) would not separate them."""
    from fedbench.report.ablation import crossed_effects, write_ablation_tests

    noise, rows = [0.001, -0.001, 0.0005], []
    for seed in range(3):
        acc = 0.70 + 0.05 * seed
        common = {"lr": 0.1, "method.loss": "kl", "method.tau": 1.0, "method.student_init": "global", "seed": seed,
                  "status": "complete"}
        rows += [{**common, "method.eval_backbone": "local", "method.lam": 1.0, "final_acc": acc},
                 {**common, "method.eval_backbone": "local", "method.lam": 0.0, "final_acc": acc - 0.03 + noise[seed]},
                 {**common, "method.eval_backbone": "global", "method.lam": 1.0, "final_acc": acc + noise[seed]},
                 {**common, "method.eval_backbone": "global", "method.lam": 0.0, "final_acc": acc - 0.05 + noise[seed]}]
    csv = tmp_path / "summary.csv"
    pd.DataFrame(rows).to_csv(csv, index=False)
    base = {"lr": "0.1", "method.lam": "1.0"} | ABLATION_BASE
    found = crossed_effects(csv, base, ABLATION_CROSSED).set_index("at")
    local, shared = found.loc["method.eval_backbone=local"], found.loc["method.eval_backbone=global"]
    interaction = found.loc["method.eval_backbone=global - method.eval_backbone=local (interaction)"]
    assert abs(local["diff"] - 2.98) < 0.01 and abs(shared["diff"] - 5.0) < 1e-6 and abs(interaction["diff"] - 2.02) < 0.01
    assert (found["verdict"] == "better").all() and (found["n"] == 3).all()
    assert shared["with"] == pytest.approx(75.0, abs=0.1) and shared["without"] == pytest.approx(70.0, abs=0.1)
    text = write_ablation_tests(csv, base, ABLATION, tmp_path / "t.md", crossed=ABLATION_CROSSED).read_text()
    assert "## The crossed control (eval_backbone=global, lam=0.0): method.lam=1.0 − method.lam=0.0" in text
    assert "| method.eval_backbone=global | 3 | 75.02 | 70.02 | +5.00 [+5.00, +5.00] |" in text


def test_a_study_short_of_reporting_seeds_stops_the_publication_with_one_line(tmp_path):
    """A tune that silently ran no reporting seeds (a screened tune did, before its fix) must not be
    published as whole: the check after each study reads its selections."""
    import methods

    from fedbench.publish import Study, check_study

    study = Study("s", ("a", "b"), (0, 1, 2))
    rows = [{"setting": s, "method": m, "variant": f"{m}(lr=0.1)", "unexplored_edge": None}
            for s in study.settings for m in methods.available()]
    rows[3]["unexplored_edge"] = "lr=1 (largest)"
    runs = [{"setting": r["setting"], "variant": r["variant"], "seed": seed, "status": "complete"}
            for r in rows for seed in (0, 1, 2)]
    runs[2 * 3 + 1]["status"] = "diverged"   # a finished result: the publication goes on
    (tmp_path / "tables").mkdir()
    pd.DataFrame(rows).to_csv(tmp_path / "tables" / "selected.csv", index=False)
    pd.DataFrame(runs).to_csv(tmp_path / "summary.csv", index=False)
    assert check_study(tmp_path, study) == [f"s: a | {rows[3]['method']}: selected at an unexplored edge, lr=1 (largest)"]
    runs[5 * 3 + 2]["status"] = "running"       # unfinished
    runs = [r for r in runs if not (r["variant"] == rows[6]["variant"] and r["seed"] > 0)]   # never run
    pd.DataFrame(rows[1:]).to_csv(tmp_path / "tables" / "selected.csv", index=False)
    pd.DataFrame(runs).to_csv(tmp_path / "summary.csv", index=False)
    with pytest.raises(SystemExit) as stop:
        check_study(tmp_path, study)
    message = str(stop.value)
    assert "\n" not in message and f"a: no selection for {rows[0]['method']}" in message
    assert f"a | {rows[5]['method']}: 1 of 2 reporting seeds finished" in message and message.endswith("rerun to resume")
    assert f"a | {rows[6]['method']}: 0 of 2" in message
