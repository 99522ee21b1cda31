"""FedBABU: the head stays at its random init (same on every client) during federation, only the body
is trained and shared, and evaluation fine-tunes a copy. Its official optimizer (lr 0.1, momentum
0.9, x0.1 at 50%/75% of rounds) is method.official=true: tests/test_optimizer.py."""
import torch

from tests.conftest import make_federation
from tests.methods.spies import record_evaluated

HEAD = ("head.0.weight", "head.0.bias")


def test_head_never_trains_and_is_identical_on_all_clients():
    fed = make_federation("fedbabu", rounds=3, join_ratio=0.5)
    init = {k: fed.tensors.live[k].detach().clone() for k in HEAD}
    body_init = fed.global_state["backbone.1.0.weight"].clone()
    assert set(fed.tensors.fixed) == set(HEAD) and not fed.tensors.personal and set(fed.tensors.shared) == set(fed.model.keys("backbone"))
    real = fed.method.local_update

    def checked(client):  # right after local training, before the harness reloads anything
        loss = real(client)
        assert all(torch.equal(client.model.state_dict()[k], init[k]) for k in HEAD)
        return loss

    fed.method.local_update = checked
    for t in range(3):
        fed.train_round(t)
    assert not torch.equal(fed.global_state["backbone.1.0.weight"], body_init)  # the body did train
    for k in range(fed.data.num_clients):
        loaded = fed.cohort([k], 3, "train").model.state_dict()
        assert all(torch.equal(loaded[name], init[name]) for name in HEAD)


def test_fine_tuning_moves_the_evaluated_head_but_not_the_stored_one():
    fed = make_federation("fedbabu", rounds=2)
    fed.train_round(0)
    init = {k: v.clone() for k, v in fed.tensors.fixed.items()}
    body = {k: v.clone() for k, v in fed.global_state.items()}
    tested = record_evaluated(fed)
    fed.evaluate(0)
    assert tested and all(not torch.equal(s["head.0.weight"], init["head.0.weight"]) for s in tested)
    assert all(torch.equal(fed.tensors.fixed[k], init[k]) for k in init)
    assert all(torch.equal(fed.global_state[k], body[k]) for k in body)
    assert torch.equal(fed.cohort([0], 1, "train").model.state_dict()["head.0.weight"], init["head.0.weight"])
