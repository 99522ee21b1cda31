"""One fast CLI run of each of fedavg_ft, fedprox, fedrep, lgfedavg, fedbabu and fedbn with its own
default hyperparameters (offline digits, IID split so that accuracy is a meaningful check)."""
import json

import pandas as pd
import pytest

from tests.conftest import run_cli

METHODS = {
    "fedavg_ft": [], "fedprox": [], "fedrep": [], "lgfedavg": [], "fedbabu": [],
    "fedbn": ["model=mlp", "model.bn=true"],  # digits is flat (64,): the MLP with BatchNorm1d
}


@pytest.mark.parametrize("method", METHODS)
def test_method_runs_from_the_cli(method, tmp_path, data_root):
    res = run_cli(f"method={method}", *METHODS[method], f"results_dir={tmp_path}", "rounds=4", "eval_every=2",
                  "num_clients=4", "join_ratio=1", "local_epochs=2", "partition=iid", "threads=1")
    assert res.returncode == 0, res.stderr
    (summary_path,) = tmp_path.glob("runs/**/summary.json")
    summary = json.loads(summary_path.read_text())
    assert summary["status"] == "complete" and summary["method"] == method and summary["rounds_done"] == 4
    assert summary["bytes_up"] > 0
    last = pd.read_csv(summary_path.parent / "metrics.csv").iloc[-1]
    assert last["round"] == 4 and 0.3 < last["test_acc"] <= 1.0, (method, last["test_acc"])  # chance: 0.1
