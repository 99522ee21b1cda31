"""The compute every run counts (fedbench.federation.compute): samples and FLOPs of the local updates'
forward + backward passes, of the forward-only passes they need (a teacher), and of the work done
before evaluation, counted in the cohort's gradient primitive so that no method can do uncounted work.
Clients have unequal train sizes, so a count per client (not per step) shows."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

import methods
from fedbench.engines import ENGINES
from fedbench.federation.compute import FIELDS
from methods.fedavg import FedAvg
from tests.conftest import make_federation, tiny_data

SIZES = [4, 22, 9, 40]  # train samples per client


def flops_per_sample(module, x, trained=True) -> int:
    """FLOPs of one sample's forward (and, when `trained`, backward into every parameter) by hand."""
    with FlopCounterMode(display=False) as counter:
        out = module(x[:1])
        if trained:
            F.cross_entropy(out, torch.zeros(1, dtype=torch.long)).backward()
    return counter.get_total_flops()


def run(fed, rounds: int, evaluate: bool = False):
    for t in range(rounds):
        fed.train_round(t)
        if evaluate:
            fed.evaluate(t)
    return fed.compute.counts


@pytest.mark.parametrize("engine", ["sequential", "vmap"])
def test_fedavg_counts_every_train_sample_of_every_epoch_by_hand(engine):
    fed = make_federation("fedavg", rounds=3, join_ratio=0.5, local_epochs=2, data=tiny_data(train_sizes=SIZES),
                          engine=ENGINES[engine]())
    counts = run(fed, 3, evaluate=True)
    want = sum(2 * SIZES[k] for t in range(3) for k in fed.schedule[t])
    assert counts["train_samples"] == want
    assert counts["train_flops"] == want * flops_per_sample(fed.model, fed.data.x)
    assert counts["train_forward_samples"] == counts["personalize_train_samples"] == 0  # evaluation is not counted


def test_a_method_cannot_take_an_uncounted_step():
    """A method that trains twice per round is counted twice: the count lives in the primitives."""
    class TwiceAvg(FedAvg):
        name = "twice_avg_test"

        def local_update(self, cohort):
            cohort.sgd(self.loss)
            return cohort.sgd(self.loss)

    once = make_federation("fedavg", rounds=2, data=tiny_data(train_sizes=SIZES))
    twice = make_federation("fedavg", rounds=2, data=tiny_data(train_sizes=SIZES))
    twice.method.__class__ = TwiceAvg
    a, b = run(once, 2), run(twice, 2)
    assert b["train_samples"] == 2 * a["train_samples"] and b["train_flops"] == 2 * a["train_flops"]


def test_a_teacher_forward_is_counted_apart_and_the_engines_agree():
    data = tiny_data(train_sizes=SIZES)
    seq = make_federation("fedbsd", rounds=2, data=data)
    vm = make_federation("fedbsd", rounds=2, data=data, engine=ENGINES["vmap"]())
    counts = run(seq, 2)
    assert run(vm, 2) == counts  # the same counts on every engine
    backbone = flops_per_sample(seq.model.backbone, data.x, trained=False)
    assert counts["train_forward_samples"] == counts["train_samples"] > 0
    assert counts["train_forward_flops"] == counts["train_samples"] * backbone
    # the student's own pass: the whole model forward and backward, as FedAvg's
    assert counts["train_flops"] == counts["train_samples"] * flops_per_sample(seq.model, data.x)
    no_teacher = make_federation("fedbsd", rounds=2, data=data, hp_overrides={"lam": 0.0})
    assert run(no_teacher, 2)["train_forward_samples"] == 0


def test_fine_tuning_before_evaluation_is_personalization_work():
    fed = make_federation("fedavg_ft", rounds=2, data=tiny_data(train_sizes=SIZES), hp_overrides={"ft_epochs": 3})
    counts = run(fed, 2, evaluate=True)
    assert counts["personalize_train_samples"] == 2 * 3 * sum(SIZES)  # 2 evaluations, every client, 3 epochs
    assert counts["personalize_train_flops"] == counts["personalize_train_samples"] * flops_per_sample(fed.model, fed.data.x)
    assert counts["train_samples"] == sum(SIZES[k] for t in range(2) for k in fed.schedule[t])
    assert counts["personalize_once_samples"] == 3 * sum(SIZES)  # the last evaluation's alone


def test_headline_compute_does_not_depend_on_eval_every(tmp_path, data_root):
    """compute_flops = training + one personalization: FedAvg-FT evaluated every round and every 5th
    round computes the same; the personalization of every evaluation is its own column."""
    from tests.runs_helpers import run_inprocess

    every = {n: run_inprocess(f"results_dir={tmp_path / str(n)}", "rounds=10", f"eval_every={n}", "method=fedavg_ft")
             for n in (1, 5)}
    assert every[1]["compute_flops"] == every[5]["compute_flops"]
    assert every[1]["personalize_train_flops"] == 5 * every[5]["personalize_train_flops"] > 0
    assert every[1]["compute_flops"] == (every[1]["train_flops"] + every[1]["train_forward_flops"]
                                         + every[1]["personalize_once_flops"])


def test_counts_survive_a_checkpoint():
    whole = make_federation("ditto", rounds=3, data=tiny_data(train_sizes=SIZES))
    first = make_federation("ditto", rounds=3, data=tiny_data(train_sizes=SIZES))
    run(whole, 3)
    run(first, 2)
    resumed = make_federation("ditto", rounds=3, data=tiny_data(train_sizes=SIZES))
    resumed.load_state_dict(first.state_dict())
    resumed.train_round(2)
    assert resumed.compute.counts == whole.compute.counts and set(whole.compute.counts) == set(FIELDS)


def test_every_method_counts_its_work_in_the_summary(tmp_path, data_root):
    """Every registered method's run writes every count, and trains at least FedAvg's samples."""
    from tests.runs_helpers import run_inprocess

    base = run_inprocess(f"results_dir={tmp_path}", "rounds=2", "method=fedavg")
    for name in methods.available():
        extra = ["model.bn=true"] if methods.get(name).needs_batchnorm else []
        s = run_inprocess(f"results_dir={tmp_path}", "rounds=2", f"method={name}", *extra)
        assert all(isinstance(s[k], int) for k in FIELDS) and s["compute_flops"] >= s["train_flops"] > 0, name
        assert s["train_samples"] >= base["train_samples"], name
        once = s["train_flops"] + s["train_forward_flops"] + s["personalize_once_flops"]
        assert s["compute_flops"] == once and s["personalize_train_flops"] >= s["personalize_once_flops"], name
