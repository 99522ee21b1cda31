"""FedRep: head epochs with the body frozen, then body epochs with the head frozen; heads private."""

import pytest
import torch

from tests.looking import batches_xy, forward
from tests.conftest import load_live, make_federation, set_training


def clone(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def same(a, b, prefix):
    return all(torch.equal(a[k], b[k]) for k in a if k.startswith(prefix))


def run_local_update(fed, k=0, t=0):
    """Client k's local update with a spy on client.sgd: the received state, the state after each
    phase, and the epochs each phase asked for."""
    client = fed.cohort([k], t, "train")
    received, after, epochs = clone(client.model), [], []
    real_sgd, real_batches = client.sgd, client.batches

    def sgd(*args, **kwargs):
        loss = real_sgd(*args, **kwargs)
        after.append(clone(client.model))
        return loss

    def batches(n=1, *args, **kwargs):
        epochs.append(n)
        return real_batches(n, *args, **kwargs)

    client.sgd, client.batches = sgd, batches
    fed.method.local_update(client)
    return received, after, epochs


@pytest.mark.parametrize("official", [False, True])
def test_head_phase_then_body_phase_each_freezing_the_other(official):
    # momentum 0.5 and weight decay 1e-4 (the official optimizer's), which would move a part "frozen"
    # by zeroing its gradients
    fed = make_federation("fedrep", rounds=1, momentum=0.5, hp_overrides={"official": official})
    set_training(fed, weight_decay=1e-4)
    received, (after_head, after_body), epochs = run_local_update(fed)
    assert epochs == [10, 1]  # 10 head epochs, then the run's local_epochs (1) body epochs
    assert same(after_head, received, "backbone.")  # body bitwise the received global
    assert not same(after_head, received, "head.")  # the head trained
    assert same(after_body, after_head, "head.")  # head bitwise the end-of-head-phase head
    assert not same(after_body, received, "backbone.")  # the body trained


def test_one_head_epoch_still_trains_the_head():
    """PFLlib's default (-pls 1) and local_epochs=1 must not leave the head untrained."""
    fed = make_federation("fedrep", rounds=1, local_epochs=1, hp_overrides={"head_epochs": 1})
    received, (after_head, _), epochs = run_local_update(fed)
    assert epochs == [1, 1] and not same(after_head, received, "head.")


def test_zero_epochs_skip_a_phase_instead_of_running_the_default():
    fed = make_federation("fedrep", rounds=1, local_epochs=3, hp_overrides={"head_epochs": 0, "body_epochs": 2})
    received, (after,), epochs = run_local_update(fed)
    assert epochs == [2] and same(after, received, "head.")


def test_server_never_holds_heads_and_heads_stay_personal():
    fed = make_federation("fedrep", rounds=3, hp_overrides={"head_epochs": 2})
    for t in range(3):
        fed.train_round(t)
        assert fed.global_state and all(k.startswith("backbone.") for k in fed.global_state)
    client = fed.cohort([0], 3, "train")
    assert all(k.startswith("backbone.") for k in fed.upload(client))
    heads = fed.tensors.store.tensors["head.0.weight"]
    assert not torch.equal(heads[0], heads[1])
    load_live(fed, 1)  # a client evaluates its own stored head on the current global body
    assert torch.equal(fed.tensors.live["head.0.weight"], heads[1])
    assert torch.equal(fed.tensors.live["backbone.1.0.weight"], fed.global_state["backbone.1.0.weight"])


def test_official_weight_decay_covers_weights_not_biases():
    fed = make_federation("fedrep", rounds=1, hp_overrides={"official": True})
    set_training(fed, weight_decay=0.5)
    client = fed.cohort([0], 0, "train")
    x, y = next(batches_xy(client.batches(), client.data))
    head = {n: client.state[n][0].detach().requires_grad_() for n in client.model.names("head")}  # the head phase
    ce = torch.nn.functional.cross_entropy(forward(client.model, x), y)
    weight = client.model.state_dict()["head.0.weight"]
    assert torch.allclose(client.call(fed.method.loss, head, 0, x, y) - ce, 0.25 * weight.pow(2).sum())


def test_run_weight_decay_is_sgds_on_every_trained_tensor():
    """Without official=true FedRep trains with the run's optimizer, like every method: the loss is
    plain CE and SGD's weight decay (biases included) is the run's."""
    fed = make_federation("fedrep", rounds=1)
    set_training(fed, weight_decay=0.5)
    client = fed.cohort([0], 0, "train")
    x, y = next(batches_xy(client.batches(), client.data))
    assert torch.equal(client.call(fed.method.loss, {}, 0, x, y), torch.nn.functional.cross_entropy(forward(client.model, x), y))
