"""Local work by epochs (fair tuning): pFedMe and Per-FedAvg walk the round's local epochs as every
method does, so their training samples are FedAvg's times their work per minibatch (pFedMe: its K inner
steps; Per-FedAvg: one extra batch per meta-step, two for HF), whatever a client's size; their official
schedules (a fixed number of minibatches per round) only with method.official=true. Unequal client
sizes, so a fixed step count and an epoch cannot agree by chance."""
import pytest

from tests.conftest import make_federation, tiny_data

SIZES = [30, 12, 7, 21]   # train samples per client: 6, 3, 2 (a trailing 1 joins) and 5 batches of 5


def train_samples(method, rounds=2, **hp):
    fed = make_federation(method, rounds=rounds, join_ratio=0.5, data=tiny_data(train_sizes=SIZES), hp_overrides=hp)
    for t in range(rounds):
        fed.train_round(t)
    return fed.compute.counts["train_samples"], fed


def test_pfedme_costs_its_inner_steps_times_fedavg():
    fedavg, _ = train_samples("fedavg")
    for k in (1, 3):
        pfedme, _ = train_samples("pfedme", inner_steps=k)
        assert pfedme == k * fedavg
    once, _ = train_samples("pfedme", inner_steps=1, local_steps=20, official=True)
    thrice, _ = train_samples("pfedme", inner_steps=3, local_steps=20, official=True)
    assert thrice == 3 * once and once > 3 * fedavg  # R = 20 minibatches, more than 3 epochs of any client


@pytest.mark.parametrize("variant, extra", [("fo", 1), ("hf", 3)])
def test_perfedavg_costs_fedavg_plus_its_extra_batches(variant, extra):
    fedavg, _ = train_samples("fedavg")
    per, _ = train_samples("perfedavg", variant=variant)
    assert per == (1 + extra) * fedavg   # D walks FedAvg's epoch; D' (and D'' twice, hf) per step


def test_perfedavg_takes_fedavg_step_count():
    """One meta-step per minibatch of the epoch: the number of w updates equals FedAvg's SGD steps."""
    _, fed = train_samples("perfedavg", rounds=1)
    steps = []
    client = fed.cohort([0], 0, "train")
    grad = client.grad
    client.grad = lambda *a, **kw: steps.append(1) or grad(*a, **kw)
    fed.method.local_update(client)
    assert len(steps) == 2 * 6   # client 0: 30 samples in batches of 5, two gradients per meta-step
