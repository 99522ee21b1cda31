"""pFedHN: the server's hypernetwork step is the official one (with one client, one inner SGD step and
no momentum, weight decay or clipping, phi moves by hn_lr x inner lr x the gradient of the client's
loss through h, by autograd); only the trained client's embedding moves; a zero update leaves phi as
it is; every client is evaluated on its generated model, and no model tensor is stored on a client."""
import numpy as np
import torch
import torch.nn.functional as F
from torch.func import functional_call

from fedbench.federation.server import Uploads
from fedbench.toolkit.flat import unflatten
from tests.conftest import make_federation, tiny_data

HP = {"official": True, "inner_steps": 1, "lr": 0.3, "momentum": 0.0, "weight_decay": 0.0, "hn_lr": 0.2,
      "hn_momentum": 0.0, "hn_wd": 0.0, "clip": 1e9, "hidden": 8, "n_hidden": 1}


def federation():
    # 4 clients, one a round (join_ratio 1/4): the official one-client step
    return make_federation("pfedhn", rounds=2, join_ratio=0.25, data=tiny_data(), hp_overrides=HP)


def test_one_inner_step_gives_the_gradient_through_the_hypernetwork():
    fed = federation()
    (i,) = fed.schedule[0]
    phi = {k.removeprefix("hn."): v.clone().requires_grad_() for k, v in fed.server.state.items() if k.startswith("hn.")}
    (step,) = list(fed.cohort([i], 0, "train").minibatches(1))
    idx = step.rows(0)
    theta = unflatten(functional_call(fed.method.hn, phi, (torch.tensor([int(i)]),)), fed.method.params)
    loss = F.cross_entropy(functional_call(fed.model, {k: v[0] for k, v in theta.items()}, (fed.data.x[idx],)),
                           fed.data.y[idx])
    grads = dict(zip(phi, torch.autograd.grad(loss, list(phi.values()), allow_unused=True)))
    fed.train_round(0)
    for k, p in phi.items():
        g = grads[k] if grads[k] is not None else torch.zeros_like(p)
        assert torch.allclose(fed.server.state[f"hn.{k}"], p.detach() - 0.2 * 0.3 * g, atol=1e-6), k
    moved = (fed.server.state["hn.embeddings.weight"] != phi["embeddings.weight"]).any(1)
    assert moved.tolist() == [k == i for k in range(4)]             # only v_i


def test_a_zero_update_leaves_the_hypernetwork_and_evaluation_uses_the_generated_models():
    fed = federation()
    before = {k: v.clone() for k, v in fed.server.state.items()}
    size = fed.tensors.store.tensors["hn_delta"].shape[1]
    fed.method.aggregate(fed.server, Uploads(np.array([1]), np.array([1.0]), {"hn_delta": torch.zeros(1, size)}))
    assert all(torch.equal(fed.server.state[k], v) for k, v in before.items())
    assert set(fed.tensors.store.tensors) == {"hn_delta"}         # no model tensor lives on a client
    cohort = fed.evaluated(2, 0)
    generated = fed.method.download(fed.server, [2], "eval")
    assert all(torch.equal(cohort.state[k], v) for k, v in generated.items())
    assert not fed.same_eval_model()


def test_a_hypernetwork_too_large_is_refused_with_one_line():
    import pytest

    from fedbench.errors import ConfigError

    with pytest.raises(ConfigError, match="hypernetwork's output heads would hold"):
        make_federation("pfedhn", rounds=1, data=tiny_data(), model={"name": "mlp", "hidden": [4096, 4096]})
