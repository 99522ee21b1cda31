"""FedProto: clients upload class prototypes only (no parameters); the alignment gradient is
2 lam (z - P[y]) / (B D) and zero for a class without a global prototype; the server's prototype of a
class is the unweighted mean over the clients that hold it; prediction is the nearest global prototype
among the client's classes; with lam = 0 training is Local's."""
import numpy as np
import torch

from fedbench.federation.server import Server, Uploads
from fedbench.federation.store import nbytes
from methods.fedproto import alignment, nearest
from tests.conftest import make_federation, tiny_data
from tests.methods.spies import record_uploads

SIZES = [30, 12, 7, 21]


def test_the_alignment_gradient_and_classes_without_a_prototype():
    torch.manual_seed(0)
    z = torch.randn(6, 4, requires_grad=True)
    y = torch.tensor([0, 1, 2, 0, 1, 2])
    protos, has = torch.randn(3, 4), torch.tensor([1.0, 1.0, 0.0])
    lam = 0.7
    (lam * alignment(z, y, protos, has).mean()).backward()
    want = 2 * lam * (z.detach() - protos[y]) / (6 * 4)
    want[y == 2] = 0                                        # class 2 has no global prototype
    assert torch.allclose(z.grad, want, atol=1e-7)


def test_the_server_averages_each_class_over_the_clients_that_hold_it():
    method = make_federation("fedproto", rounds=1).method
    p = torch.tensor([[[1.0, 1.0], [5.0, 5.0]], [[3.0, 3.0], [0.0, 0.0]]])   # 2 clients, 2 classes, D = 2
    n = torch.tensor([[4.0, 9.0], [1.0, 0.0]])              # client 1 lacks class 1
    server = Server(None, {"global_proto": torch.zeros(2, 2), "global_has": torch.zeros(2)}, 2)
    method.aggregate(server, Uploads(np.array([0, 1]), np.array([13.0, 1.0]), {"proto": p, "proto_n": n}))
    assert torch.equal(server.state["global_proto"], torch.tensor([[2.0, 2.0], [5.0, 5.0]]))   # unweighted
    assert torch.equal(server.state["global_has"], torch.tensor([1.0, 1.0]))


def test_the_nearest_prototype_rule_among_usable_classes():
    protos = torch.tensor([[0.0, 0.0], [4.0, 4.0], [8.0, 8.0]])
    z = protos.clone()
    assert nearest(z, protos, torch.ones(3)).argmax(1).tolist() == [0, 1, 2]
    assert nearest(z, protos[[1, 0, 2]], torch.ones(3)).argmax(1).tolist() == [1, 0, 2]   # swapped
    assert nearest(z, protos, torch.tensor([1.0, 0.0, 1.0])).argmax(1).tolist() == [0, 0, 2]   # class 1 not usable


def test_clients_upload_prototypes_only_and_lam_zero_trains_as_local():
    data = tiny_data(train_sizes=SIZES)
    fed = make_federation("fedproto", rounds=2, join_ratio=0.5, data=data, hp_overrides={"lam": 0.0})
    local = make_federation("local", rounds=2, join_ratio=0.5, data=data)
    ups = record_uploads(fed)
    for t in range(2):
        fed.train_round(t)
        local.train_round(t)
    assert set(ups[0][1]) == {"proto", "proto_n"}         # no parameter leaves a client
    assert fed.bytes_up == sum(nbytes(u) for _, u in ups)
    for k, own in local.tensors.store.tensors.items():
        assert torch.allclose(fed.tensors.store.tensors[k], own, atol=1e-6), k
    (k, first), counts = ups[0], data.clients[ups[0][0]]
    labels = data.y[counts.train]
    assert torch.equal(first["proto_n"], torch.bincount(labels, minlength=4).float())
