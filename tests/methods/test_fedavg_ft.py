"""FedAvg-FT: training is FedAvg; before evaluation each client fine-tunes the global model on its
train split (the harness add-on), and the fine-tuned weights never reach the stored state."""
import numpy as np
import pytest
import torch

import fedbench.federation.cohort
from tests.conftest import make_federation, set_training, tiny_data
from tests.methods.spies import record_evaluated


def snapshot(fed):
    return {k: v.clone() for k, v in (fed.global_state | fed.tensors.fixed | fed.tensors.store.tensors).items()}


def evaluated_states(fed, monkeypatch, t=0):
    """One evaluation pass; the state of every model as it was tested (once per client)."""
    seen = record_evaluated(fed)
    ev = fed.evaluate(t)
    return ev, seen


def test_defaults_are_the_fedbabu_protocol():
    """5 epochs of the whole model, batch 50, at the run's final lr and momentum (FedBABU fine-tunes at
    its final training lr: 1e-3 = 0.1 after two x0.1 decays, momentum 0.9, with its official optimizer)."""
    fed = make_federation("fedavg_ft")
    assert fed.finetuning == {"epochs": 5, "lr": None, "part": "all", "momentum": None,
                                                "batch_size": 50}


def test_fine_tuning_runs_at_the_final_lr_of_the_schedule(monkeypatch):

    fed = make_federation("fedavg_ft", rounds=4, lr=0.2, momentum=0.5)
    set_training(fed, lr_schedule="step")  # 0.2 -> 0.02 -> 0.002 at rounds 2 and 3
    seen = []
    real = fedbench.federation.cohort.Cohort.sgd
    monkeypatch.setattr(fedbench.federation.cohort.Cohort, "sgd", lambda self, *a, **kw: seen.append(kw) or real(self, *a, **kw))
    fed.evaluate(0)
    assert seen and all(kw["lr"] == pytest.approx(0.002) and kw["momentum"] is None for kw in seen)


def test_evaluation_fine_tunes_a_throwaway_copy(monkeypatch):
    fed = make_federation("fedavg_ft", rounds=3)
    for t in range(2):
        fed.train_round(t)
    before = snapshot(fed)
    _, tested = evaluated_states(fed, monkeypatch, t=1)
    after = snapshot(fed)
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
    assert len(tested) == fed.data.num_clients
    for state in tested:  # every client tested a fine-tuned model, not the global one
        assert all(not torch.equal(state[k], fed.global_state[k]) for k in fed.global_state if k.endswith("weight"))
    assert not torch.equal(tested[0]["head.0.weight"], tested[1]["head.0.weight"])
    fed.train_round(2)  # and the next round starts from the untouched global model
    ref = make_federation("fedavg", rounds=3)
    for t in range(3):
        ref.train_round(t)
    assert all(torch.equal(fed.global_state[k], ref.global_state[k]) for k in ref.global_state)


def test_zero_ft_epochs_is_fedavg_exactly():
    a = make_federation("fedavg_ft", rounds=2, join_ratio=0.5, hp_overrides={"ft_epochs": 0})
    b = make_federation("fedavg", rounds=2, join_ratio=0.5)
    c = make_federation("fedavg_ft", rounds=2, join_ratio=0.5)  # fine-tuning on
    for t in range(2):
        assert a.train_round(t) == b.train_round(t) == c.train_round(t)
    ea, eb, ec = a.evaluate(1), b.evaluate(1), c.evaluate(1)
    assert all(np.array_equal(ea[k], eb[k]) for k in eb)
    assert not np.array_equal(ec["test_loss"], eb["test_loss"])


@pytest.mark.parametrize("corrupt", ["val", "test"])
def test_fine_tuning_reads_only_the_train_split(monkeypatch, corrupt):
    """Poisoning every val (or test) sample with NaN inputs and shuffled labels cannot change the
    fine-tuned weights, so fine-tuning never read them."""
    clean, poisoned = tiny_data(), tiny_data()
    idx = torch.cat([getattr(c, corrupt) for c in poisoned.clients])
    poisoned.x[idx] = float("nan")
    poisoned.y[idx] = (poisoned.y[idx] + 1) % poisoned.num_classes
    states = []
    for data in (clean, poisoned):
        fed = make_federation("fedavg_ft", rounds=1, data=data)
        fed.train_round(0)
        states.append(evaluated_states(fed, monkeypatch)[1])
    for a, b in zip(*states):
        assert all(torch.isfinite(b[k]).all() and torch.equal(a[k], b[k]) for k in a)
