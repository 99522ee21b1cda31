"""FedRoD: with uniform class counts the balanced softmax is CE, so body and generic head follow
FedAvg bit for bit; the personal head never leaves the client and gets no gradient into the body;
the evaluated logits are g(z) + p(z); absent classes are masked in the prior."""
import torch

from fedbench.data.types import ClientData, FederatedData
from methods.fedrod import log_prior
from tests.looking import copy_of
from tests.conftest import make_federation
from tests.methods.side_by_side import assert_same_global, train_both
from tests.methods.spies import record_uploads


def balanced_data(num_clients=4, per_class=4, classes=4, dim=8):
    """Every client's train split holds each class exactly `per_class` times."""
    g = torch.Generator().manual_seed(1)
    per_client = per_class * classes + 8
    x = torch.randn(num_clients * per_client, dim, generator=g)
    y = torch.randint(0, classes, (num_clients * per_client,), generator=g)
    clients = []
    for k in range(num_clients):
        idx = torch.arange(k * per_client, (k + 1) * per_client)
        train = idx[: per_class * classes]
        y[train] = torch.arange(per_class * classes) % classes
        clients.append(ClientData(train, idx[-8:-4], idx[-4:]))
    return FederatedData("balanced", x, y, classes, clients)


def test_uniform_counts_body_and_generic_head_follow_fedavg_bitwise():
    data = balanced_data()
    a = make_federation("fedrod", rounds=3, join_ratio=0.5, data=data, local_epochs=2)
    b = make_federation("fedavg", rounds=3, join_ratio=0.5, data=data, local_epochs=2)
    train_both(a, b, 3)
    assert_same_global(a, b)
    trained = a.tensors.store.tensors["phead.0.weight"]
    assert not torch.equal(trained[0], trained[1])  # the personal heads did train, apart


def test_personal_head_is_never_uploaded():
    fed = make_federation("fedrod", rounds=2)
    assert fed.tensors.personal and all(k.startswith("phead.") for k in fed.tensors.personal)
    uploads = record_uploads(fed)
    for t in range(2):
        fed.train_round(t)
    assert uploads and not any(k.startswith("phead.") for _, up in uploads for k in up)
    assert not any(k.startswith("phead.") for k in fed.global_state)


def test_evaluated_logits_are_generic_plus_personal():
    fed = make_federation("fedrod", rounds=1)
    fed.train_round(0)
    client = fed.evaluated(1, 0)
    model, x = copy_of(client.model), fed.data.x[fed.data.clients[1].test]
    assert torch.equal(model.phead[0].weight, fed.tensors.store.tensors["phead.0.weight"][1])
    with torch.no_grad():
        z = model.backbone(x)
        expected = model.head(z) + model.phead(z)
        got = client.call(None, {}, 0, x, None)  # the method's predict on the evaluated model
    assert torch.equal(got, expected)
    assert not torch.allclose(got, model.head(z), atol=1e-4)


def test_personal_loss_sends_no_gradient_to_body_or_generic_head():
    fed = make_federation("fedrod", rounds=1)
    client = fed.cohort([0], 0, "train")
    step = client.batches().steps[0]
    names = client.model.names()

    def generic(c, x, y, reduction="mean"):  # the balanced loss alone
        return torch.nn.functional.cross_entropy(c.model.head(c.model.backbone(x)) + log_prior(c.class_counts), y)

    generic_only, _ = client.gradients(generic, names, step)
    full, _ = client.gradients(fed.method.loss, names, step)
    for n in names:
        if n.startswith("model.phead."):
            assert full[n] is not None and full[n].abs().sum() > 0
        else:
            assert torch.equal(full[n], generic_only[n]), n


def test_prior_is_log_count_with_absent_classes_masked():
    prior = log_prior(torch.bincount(torch.tensor([0, 0, 0, 0, 2, 2]), minlength=4).float())
    assert torch.allclose(prior[[0, 2]], torch.tensor([1.0, 0.5]).log())
    assert prior[1] == float("-inf") and prior[3] == float("-inf")
    logits = torch.randn(3, 4, requires_grad=True)
    loss = torch.nn.functional.cross_entropy(logits + prior, torch.tensor([0, 2, 2]))
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(logits.grad).all()
    assert (logits.grad[:, [1, 3]] == 0).all()  # absent classes get no probability mass
