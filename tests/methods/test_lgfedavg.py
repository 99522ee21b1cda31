"""LG-FedAvg: local representation (backbone never leaves the client), global head (uploaded,
plain mean, broadcast to every client)."""
import torch

from fedbench.data.types import ClientData
from tests.conftest import load_live, make_federation, tiny_data
from tests.methods.spies import record_uploads


def test_only_the_top_layers_are_global():
    fed = make_federation("lgfedavg")
    assert fed.tensors.shared == fed.model.keys("head") == ["head.0.weight", "head.0.bias"]  # the last Linear
    assert set(fed.tensors.personal) == set(fed.model.keys("backbone"))  # not FL-bench's inverse split


def test_server_never_receives_backbone_tensors_and_bytes_are_the_head():
    fed = make_federation("lgfedavg", rounds=3, join_ratio=0.5)
    uploads = record_uploads(fed)
    for t in range(3):
        fed.train_round(t)
    assert len(uploads) == 3 * 2 and all(set(u) == {"head.0.weight", "head.0.bias"} for _, u in uploads)
    assert set(fed.global_state) == {"head.0.weight", "head.0.bias"}
    head_bytes = sum(p.numel() * p.element_size() for p in fed.model.head.parameters())
    assert fed.bytes_up == fed.bytes_down == 3 * 2 * head_bytes


def test_heads_identical_everywhere_backbones_differ():
    fed = make_federation("lgfedavg", rounds=2)
    init_head = fed.global_state["head.0.weight"].clone()
    for t in range(2):
        fed.train_round(t)
    assert not torch.equal(fed.global_state["head.0.weight"], init_head)
    for k in range(fed.data.num_clients):  # after broadcast every client holds the averaged head
        load_live(fed, k)
        assert torch.equal(fed.tensors.live["head.0.weight"], fed.global_state["head.0.weight"])
        assert torch.equal(fed.tensors.live["backbone.1.0.weight"], fed.tensors.store.tensors["backbone.1.0.weight"][k])
    backbones = fed.tensors.store.tensors["backbone.1.0.weight"]
    assert all(not torch.equal(backbones[0], backbones[k]) for k in range(1, fed.data.num_clients))


def test_head_is_the_plain_mean_of_the_uploads():
    data = tiny_data()  # unequal client sizes, so a plain and an n_k-weighted mean differ
    data.clients[0] = ClientData(data.clients[0].train[:4], data.clients[0].val, data.clients[0].test)
    fed = make_federation("lgfedavg", rounds=1, data=data)
    uploads = record_uploads(fed)
    fed.train_round(0)
    mean = torch.stack([u["head.0.weight"] for _, u in uploads]).mean(0)
    assert torch.allclose(fed.global_state["head.0.weight"], mean, atol=1e-7)
