"""Methods that add model parts or per-client state (a policy network, a valve, class embeddings, a
bias, a personal head, aggregation weights) build them from the model's backbone and head shapes, so
each trains and evaluates on every model family: one round and an evaluation on MLP, CNN, LeNet and
ResNet-18 inputs, the parts sized by the head's input (feature_dim) and the number of classes."""
import numpy as np
import pytest
import torch

import methods
from fedbench.data.types import FederatedData
from fedbench.models import MODELS
from tests.conftest import make_federation, tiny_data

EXTENDING = [m for m in methods.available() if {"extend_model", "client_state"} & set(methods.get(m).hooks)]
FEATURE_STATE = {"fedcp": ("cp_context",), "gpfl": ("gpfl_g", "gpfl_p"), "feddbe": ("dbe_mean", "dbe_target")}
SHAPES = {name: MODELS.get(name).example for name in MODELS.names()}   # every registered model


def _images(shape) -> FederatedData:
    flat = tiny_data(num_clients=3, per_client=18)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(len(flat.x), *shape, generator=g)
    return FederatedData("tiny", x, flat.y, flat.num_classes, flat.clients)


@pytest.mark.parametrize("model", list(SHAPES))
@pytest.mark.parametrize("method", EXTENDING)
def test_extra_parts_fit_every_model(method, model):
    if method == "pfedhn" and model == "resnet18":   # a one-line ConfigError (tested in test_pfedhn)
        pytest.skip("pFedHN's hypernetwork holds 100 x ResNet-18's weights (1.1e9): refused with one line")
    fed = make_federation(method, rounds=1, model={"name": model}, data=_images(SHAPES[model]), batch_size=6,
                          hp_overrides={"max_start_epochs": 2} if method == "fedala" else None)
    d, c = fed.model.feature_dim, fed.model.num_classes
    assert c == fed.data.num_classes
    loss = fed.train_round(0)
    acc = fed.evaluate(0)
    assert np.isfinite(loss) and all(np.isfinite(np.asarray(v, dtype=float)).all() for v in acc.values())
    store = fed.tensors.store.tensors
    for name in FEATURE_STATE.get(method, ()):   # per-client state on the feature space: D wide
        assert store[name].shape == (3, d), name
    if hasattr(fed.model, "gce"):
        assert fed.model.gce.weight.shape == (c, d)
