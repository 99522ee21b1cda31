"""FedPer: the base (backbone) is uploaded and averaged; the personalization layers (the head) never
leave the client, are trained jointly with the base, and persist per client across rounds. After any
round every client holds the same base (the server's) and its own head. (Its n_k weighting:
tests/methods/test_weighting.py.)"""
import torch

from tests.conftest import load_live, make_federation
from tests.methods.spies import record_trained, record_uploads

HEAD = ("head.0.weight", "head.0.bias")


def clone(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_only_the_backbone_is_uploaded_and_held_by_the_server():
    fed = make_federation("fedper", rounds=3, join_ratio=0.5)
    backbone = fed.model.keys("backbone")
    assert fed.tensors.shared == backbone and fed.tensors.personal == list(HEAD)
    uploads = record_uploads(fed)
    for t in range(3):
        fed.train_round(t)
        assert set(fed.global_state) == set(backbone)
    assert len(uploads) == 3 * 2 and all(set(up) == set(backbone) for _, up in uploads)


def test_after_a_round_clients_share_the_base_and_keep_their_own_heads():
    fed = make_federation("fedper", rounds=2)
    trained = record_trained(fed, lambda client: clone(client.model))  # before aggregation
    for t in range(2):
        fed.train_round(t)
        for k in range(fed.data.num_clients):
            load_live(fed, k)
            live = fed.model.state_dict()
            assert all(torch.equal(live[n], fed.global_state[n]) for n in fed.tensors.shared)  # the server's base
            assert all(torch.equal(live[n], trained[k][n]) for n in HEAD)  # its own head, not averaged
    heads = fed.tensors.store.tensors["head.0.weight"]
    assert all(not torch.allclose(heads[i], heads[j], atol=1e-4)
               for i in range(len(heads)) for j in range(i + 1, len(heads)))
    # the server's base is not any client's trained base: it was averaged
    assert all(not torch.equal(fed.global_state["backbone.1.0.weight"], s["backbone.1.0.weight"])
               for s in trained.values())


def test_local_update_trains_base_and_head_jointly():
    fed = make_federation("fedper", rounds=1)
    load_live(fed, 0)
    client = fed.cohort([0], 0, "train")
    received = clone(client.model)
    fed.method.local_update(client)
    after = clone(client.model)
    assert all(not torch.equal(after[n], received[n]) for n in received)


def test_heads_persist_across_rounds_and_unsampled_clients_keep_the_initial_head():
    fed = make_federation("fedper", rounds=2, join_ratio=0.25)  # one client per round
    init = {n: fed.tensors.live[n].detach().clone() for n in HEAD}
    first, second = fed.schedule[:, 0]
    assert first != second
    fed.train_round(0)
    head = {n: fed.tensors.store.tensors[n][first].clone() for n in HEAD}
    assert not torch.equal(head["head.0.weight"], init["head.0.weight"])
    load_live(fed, first)  # the next time it is loaded it starts from its own trained head
    assert all(torch.equal(fed.tensors.live[n], head[n]) for n in HEAD)
    fed.train_round(1)  # another client trains: `first` keeps its head
    assert all(torch.equal(fed.tensors.store.tensors[n][first], head[n]) for n in HEAD)
    never = [k for k in range(fed.data.num_clients) if k not in (first, second)]
    assert never and all(torch.equal(fed.tensors.store.tensors[n][k], init[n]) for k in never for n in HEAD)
