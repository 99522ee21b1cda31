"""Each of pfedme, perfedavg (fo and hf), ditto, apfl and fedrod runs once through the command line on
the offline digits data (10 classes; IID split, 10 rounds of 4 clients, all sampled), completes, and its
personalized models clear a bar set between the correct method and broken versions of it.

Measured final accuracy (seed 0, one thread; chance 0.1) of the correct method and of broken variants:
a local update that does nothing ("noop") and the learning rates x 0.1 and x 0.01 (pfedme: both of its
steps):

  method        correct  noop   lr x0.1  lr x0.01
  pfedme        0.717    0.061  0.125    0.072
  ditto         0.831    0.061  0.169    0.075
  apfl          0.911    0.061  0.150    0.075
  fedrod        0.922    0.061  0.161    0.078
  perfedavg     0.781    0.072  0.133    0.072
  perfedavg-hf  0.761    0.072  0.142    0.075

so the bar is 0.45 (>= 0.27 below every correct run, >= 0.28 above every broken one). Not separable by
accuracy (left to the mechanism tests): pfedme without mu (0.725), pfedme evaluating w instead of
theta (0.792), Per-FedAvg HF with the Hessian term's sign flipped (0.761) or taken at w~ (0.758), a
flipped weighting (IID sizes are nearly equal). A Dirichlet split does not work here: with 4 clients
of 1-3 classes a model that only learns its client's class prior scores as well as a trained one.

pFedMe's own lr (the w step) is passed explicitly: its official 0.005 is tuned for 800 rounds and
leaves the personalized models at 0.11 after 10 (README, Methods); 0.05 = the run's lr.
Per-FedAvg's meta step is the run's lr (beta: null)."""
import json

import pytest

from tests.conftest import run_cli

BAR = 0.45
RUNS = {"pfedme": ["method.lr=0.05", "method.personal_lr=0.09"], "ditto": [], "apfl": [], "fedrod": [],
        "perfedavg": [], "perfedavg-hf": ["method.variant=hf"]}


@pytest.mark.parametrize("name", sorted(RUNS))
def test_method_runs_from_the_cli(name, tmp_path, data_root):
    method = name.split("-")[0]
    res = run_cli(f"method={method}", "rounds=10", "eval_every=10", "num_clients=4", "join_ratio=1",
                  "partition=iid", "lr=0.05", "threads=1", f"results_dir={tmp_path}", *RUNS[name])
    assert res.returncode == 0, res.stderr
    (path,) = tmp_path.glob(f"runs/**/{method}/*/seed0/summary.json")
    summary = json.loads(path.read_text())
    assert summary["status"] == "complete" and summary["rounds_done"] == 10
    assert summary["final_acc"] > BAR, summary
    assert summary["bytes_up"] > 0
