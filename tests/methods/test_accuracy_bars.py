"""One fast run of each method on the offline digits data (in process, composed exactly as the command
line composes it: the CLI itself is tests/test_end_to_end.py's) (IID split so that accuracy is a
meaningful check; 4 clients, all sampled), whose final accuracy must clear a per-method bar set between
the correct method and broken versions of it. Two settings: SHARED (8 rounds, 2 local epochs) for the
methods that share a part of one model, PERSONAL (10 rounds, 1 epoch) for those with a second model or head.

SHARED: fedavg_ft, fedprox, fedrep, lgfedavg, fedbabu, fedbn and fedper. The method-specific optimizer keys are passed explicitly (their current official values), so that a
change of their yaml defaults does not move these numbers. Measured final test accuracy (seed 0, one
thread; chance 0.1) of the correct method and of broken variants: a local update that does nothing
("noop"), the learning rates x 0.1 and x 0.01, and the personal part not kept (personal = "none": the
head, or LG-FedAvg's backbone, stays at its random init):

  method     correct  noop   lr x0.1  lr x0.01  personal not kept   bar
  fedavg_ft  0.950    0.089  0.319    0.108     -                   0.65
  fedprox    0.753    0.061  0.175    0.083     -                   0.50
  fedrep     0.922    0.061  0.197    0.078     0.428               0.70
  lgfedavg   0.928    0.061  0.258    0.086     0.422               0.70
  fedbabu    0.972    0.089  0.869*   0.161     -                   0.60
  fedbn      0.983    0.061  0.944*   0.506     -                   0.75
  fedper     0.944    0.061  0.308    0.086     0.711               0.83

* momentum 0.9 (fedbabu) and BatchNorm (fedbn) still learn at a tenth of the lr: a slower, not a broken
run. Not separable by accuracy (left to the mechanism tests): a flipped weighting (IID sizes are
nearly equal), FedPer's head shared as well (0.944: its personal copy still overrides it), FedAvg-FT
or FedBABU without fine-tuning (0.942, 0.975).

PERSONAL: each of pfedme, perfedavg (fo and hf), ditto, apfl and fedrod.
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

import pandas as pd
import pytest

from fedbench.run import run
from tests.runs_helpers import compose_cfg

SHARED = ["rounds=8", "eval_every=4", "local_epochs=2"]
PERSONAL = ["rounds=10", "eval_every=10"]
RUNS = {  # name: (overrides, minimum final test accuracy)
    "fedavg_ft": (SHARED, 0.65),
    "fedprox": (SHARED, 0.50),
    "fedrep": (SHARED + ["method.lr=0.01", "method.momentum=0.5", "method.weight_decay=1e-4"], 0.70),
    "lgfedavg": (SHARED, 0.70),
    "fedbabu": (SHARED + ["method.lr=0.1", "method.momentum=0.9"], 0.60),
    "fedbn": (SHARED + ["model=mlp", "model.bn=true"], 0.75),  # digits is flat (64,): the MLP with BatchNorm1d
    "fedper": (SHARED, 0.83),
    "pfedme": (PERSONAL + ["method.lr=0.05", "method.personal_lr=0.09"], 0.45),
    "ditto": (PERSONAL, 0.45),
    "apfl": (PERSONAL, 0.45),
    "fedrod": (PERSONAL, 0.45),
    "perfedavg": (PERSONAL, 0.45),
    "perfedavg-hf": (PERSONAL + ["method.variant=hf"], 0.45),
}


@pytest.mark.parametrize("name", RUNS)
def test_method_clears_its_accuracy_bar(name, tmp_path, data_root):
    method, (overrides, bar) = name.split("-")[0], RUNS[name]
    run(compose_cfg("progress=false", f"method={method}", *overrides, f"results_dir={tmp_path}", "num_clients=4",
                    "join_ratio=1", "partition=iid", "lr=0.05", "threads=1"))
    (summary_path,) = tmp_path.glob("runs/**/summary.json")
    summary = json.loads(summary_path.read_text())
    rounds = int(next(o for o in overrides if o.startswith("rounds=")).split("=")[1])
    assert summary["status"] == "complete" and summary["method"] == method and summary["rounds_done"] == rounds
    assert summary["bytes_up"] > 0
    last = pd.read_csv(summary_path.parent / "metrics.csv").iloc[-1]
    assert last["round"] == rounds and bar < last["test_acc"] <= 1.0, (name, last["test_acc"])
