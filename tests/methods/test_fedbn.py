"""FedBN: every BatchNorm parameter and buffer stays on its client; everything else is averaged."""
import pytest
import torch
from omegaconf import OmegaConf

from fedbench.data.types import FederatedData
from fedbench.errors import ConfigError
from fedbench.run import build_method
from tests.conftest import load_live, make_federation, tiny_data
from tests.methods.spies import record_trained

CNN_BN = {"name": "cnn", "bn": True, "channels": [4, 8], "hidden": [16]}
MLP_BN = {"name": "mlp", "hidden": [16, 8], "bn": True}


def tiny_images(num_clients=4) -> FederatedData:
    """tiny_data's clients and labels on 1x16x16 images, each client with its own feature shift
    (FedBN's setting: non-IID features)."""
    flat = tiny_data(num_clients=num_clients)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(len(flat.y), 1, 16, 16, generator=g)
    for k, c in enumerate(flat.clients):
        idx = torch.cat([c.train, c.val, c.test])
        x[idx] = x[idx] * (1 + k) + k
    return FederatedData("tiny_images", x, flat.y, flat.num_classes, flat.clients)


@pytest.mark.parametrize("model,data", [(CNN_BN, tiny_images), (MLP_BN, tiny_data)])
def test_bn_tensors_stay_local_and_the_rest_is_shared(model, data):
    fed = make_federation("fedbn", rounds=2, data=data(), model=model)
    bn = fed.model.keys("bn")
    assert bn and set(fed.tensors.personal) == set(bn) and not set(bn) & set(fed.tensors.shared)
    assert any(k.endswith("running_mean") for k in bn) and any(k.endswith("num_batches_tracked") for k in bn)
    # each client's own BN values right after its local training
    trained = record_trained(fed, lambda client: {k: client.model.state_dict()[k].clone() for k in bn})
    for t in range(2):
        fed.train_round(t)
        for k in range(fed.data.num_clients):
            load_live(fed, k)
            live = fed.model.state_dict()
            assert all(torch.equal(live[n], trained[k][n]) for n in bn)  # its own, not averaged
            assert all(torch.equal(live[n], fed.global_state[n]) for n in fed.tensors.shared)
    for name in bn:
        if not name.endswith("num_batches_tracked"):
            values = fed.tensors.store.tensors[name]
            assert all(not torch.equal(values[0], values[k]) for k in range(1, fed.data.num_clients)), name


def test_uploads_hold_no_bn_tensor():
    fed = make_federation("fedbn", rounds=1, data=tiny_images(), model=CNN_BN)
    client = fed.cohort([0], 0, "train")
    fed.method.local_update(client)
    assert set(fed.upload(client)) == set(fed.model.keys("non_bn"))


def test_without_batchnorm_it_is_fedavg_with_a_plain_mean():
    a = make_federation("fedbn", rounds=3, join_ratio=0.5, batch_size=4)
    b = make_federation("fedavg", rounds=3, join_ratio=0.5, batch_size=4, hp_overrides={"weighting": "uniform"})
    for t in range(3):
        assert a.train_round(t) == b.train_round(t)
    assert all(torch.equal(a.global_state[k], b.global_state[k]) for k in b.global_state)


def test_the_harness_rejects_a_model_without_batchnorm():
    fed = make_federation("fedavg")
    cfg = OmegaConf.create({"method": {"name": "fedbn"}, "model": {"name": "mlp"}})
    with pytest.raises(ConfigError, match="BatchNorm"):
        build_method(cfg, fed.model)
