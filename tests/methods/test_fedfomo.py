"""FedFomo: a downloaded model equal to theta_ref weighs exactly 0; among {theta_ref, a better model, a
worse one} the client takes the better one and its affinity to it grows while the worse one's falls;
when nothing improves on theta_ref the client reverts to it (the official fallback); in round 0 nothing
is received and clients train from the initial model; the server keeps each client's latest model."""
import numpy as np
import torch
import torch.nn.functional as F

from fedbench.federation.server import Uploads
from fedbench.toolkit.flat import unflatten
from tests.conftest import make_federation, tiny_data


def setup():
    fed = make_federation("fedfomo", rounds=2, join_ratio=1.0, data=tiny_data(per_client=40),
                          hp_overrides={"num_models": 3})
    cohort = fed.cohort([0], 1, "train")
    ref = cohort.state["fomo_ref"][0].clone()
    params = unflatten(ref.view(1, -1).requires_grad_(), fed.method.params)
    val = fed.data.clients[0].val
    model = fed.model
    loss = F.cross_entropy(torch.func.functional_call(model, {k: v[0] for k, v in params.items()}, fed.data.x[val]),
                           fed.data.y[val])
    g = torch.autograd.grad(loss, list(params.values()))
    grad = torch.cat([t.reshape(-1) for t in g])
    return fed, cohort, ref, ref - 0.01 * grad, ref + 0.01 * grad   # better, worse


def load(fed, cohort, own, received, ids):
    """The client's own model and its downloads (padded to num_models, the padding not valid)."""
    for key, value in unflatten(own.view(1, -1), fed.method.params).items():
        cohort.model.tensors(params_only=True)[key].copy_(value)
    pad = fed.method.hp.num_models - len(received)
    cohort.state["fomo_models"] = torch.stack(received + [torch.zeros_like(own)] * pad).unsqueeze(0)
    cohort.state["fomo_valid"] = torch.tensor([[1.0] * len(received) + [0.0] * pad])
    cohort.state["fomo_from"] = torch.tensor([ids + [0] * pad], dtype=torch.float32)


def own_model(cohort):
    return torch.cat([t[0].reshape(-1) for t in cohort.model.tensors(params_only=True).values()])


def test_the_better_model_is_taken_and_the_affinities_follow_the_weights():
    fed, cohort, ref, better, worse = setup()
    load(fed, cohort, ref, [ref.clone(), better, worse], [1, 2, 3])
    fed.method.weigh(cohort)
    w = cohort.state["fomo_w"][0]
    assert w[0] == 0 and w[1] == 0 and w[2] > 0 > w[3]          # own and the copy of theta_ref: exactly 0
    assert torch.allclose(own_model(cohort), better, atol=1e-6)
    assert torch.allclose(cohort.state["fomo_ref"][0], better)
    uploads = Uploads(np.array([0]), np.array([1.0]), {k: v.clone() for k, v in cohort.model.tensors(params_only=True).items()}
                      | {"fomo_w": cohort.state["fomo_w"].clone(), "fomo_ids": cohort.state["fomo_ids"].clone()})
    fed.method.aggregate(fed.server, uploads)
    affinity = fed.server.state["fomo_P"][0]
    assert affinity[2] > 0 > affinity[3] and affinity[1] == 0
    assert torch.allclose(fed.server.state["fomo_models"][0], better, atol=1e-6)


def test_nothing_better_reverts_to_the_reference_model():
    fed, cohort, ref, better, worse = setup()
    load(fed, cohort, worse, [worse.clone(), worse * 1.01], [1, 2])
    fed.method.weigh(cohort)
    assert torch.equal(own_model(cohort), ref)


def test_round_zero_receives_nothing_and_trains_from_the_initial_model():
    fed = make_federation("fedfomo", rounds=1, join_ratio=1.0, data=tiny_data())
    init = fed.server.state["fomo_models"][0].clone()
    cohort = fed.cohort([0, 1], 0, "train")
    assert cohort.state["fomo_valid"].sum() == 0
    fed.method.weigh(cohort)
    assert torch.equal(own_model(cohort), init)
    fed.train_round(0)
    assert (fed.server.state["fomo_seen"] == 1).all() and not torch.equal(fed.server.state["fomo_models"][0], init)
