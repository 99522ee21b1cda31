"""Config presets compose as documented: experiment presets win over defaults, the command line wins
over presets, and each dataset gets its default model."""
import pytest
from hydra import compose, initialize_config_dir

from fedbench.cli import CONF_DIR, normalize_argv


def _compose(*overrides):
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        return compose("config", overrides=list(overrides), return_hydra_config=True)


@pytest.mark.parametrize("dataset,model", [("digits", "mlp"), ("synthetic", "mlp"), ("cifar10", "cnn"),
                                           ("cifar100", "cnn"), ("femnist", "lenet"), ("fmnist", "cnn"),
                                           ("mnist", "cnn")])
def test_dataset_default_model(dataset, model):
    assert _compose(f"dataset={dataset}").model.name == model
    assert _compose(f"dataset={dataset}", "model=resnet18").model.name == "resnet18"


def test_experiment_preset_and_command_line_precedence():
    cfg = _compose("experiment=fedrep_cifar100")
    assert (cfg.dataset.name, cfg.partition.classes_per_client, cfg.num_clients, cfg.join_ratio) == \
        ("cifar100", 20, 100, 0.1)
    assert _compose("experiment=fedrep_cifar100", "num_clients=7").num_clients == 7


def test_fedbsd_ablation_sweeps_the_reconstructed_switches():
    params = _compose("experiment=fedbsd_ablation").hydra.sweeper.params
    assert set(params) == {"method.lam", "method.loss", "method.student_init"}
    assert "0.0" in params["method.lam"].split(",")


def test_multirun_flag_is_moved_to_the_front():
    assert normalize_argv(["method=fedbsd", "dataset=cifar100", "-m", "seed=0,1,2"]) == \
        ["-m", "method=fedbsd", "dataset=cifar100", "seed=0,1,2"]
    assert normalize_argv(["a=1"]) == ["a=1"]


@pytest.mark.parametrize("preset,expect", [
    ("digits_pathological2", {"partition.name": "pathological", "num_clients": 20, "join_ratio": 1.0,
                              "data.rotations": 1, "lr": 0.01}),
    ("digits_skew", {"partition.name": "dirichlet", "partition.alpha": 0.3, "num_clients": 50, "join_ratio": 0.2}),
    ("digits_rotated", {"partition.alpha": 0.5, "num_clients": 50, "data.rotations": 4}),
])
def test_comparison_settings_compose_and_validate(preset, expect):
    from omegaconf import OmegaConf, open_dict

    from fedbench.config import prepare

    cfg = _compose(f"experiment={preset}", "lr=0.3")
    assert cfg.dataset.name == "digits" and cfg.model.hidden == [100]
    assert {k: OmegaConf.select(cfg, k) for k in expect} == {**expect, **({"lr": 0.3} if "lr" in expect else {})}
    with open_dict(cfg):
        del cfg["hydra"]
    prepare(cfg, machine=False)


@pytest.mark.parametrize("preset,expect", [
    ("pfllib_cifar100", {"dataset.name": "cifar100", "partition.alpha": 0.1, "num_clients": 20, "join_ratio": 1.0,
                         "model.name": "cnn"}),
    ("fedrep_cifar10", {"dataset.name": "cifar10", "partition.classes_per_client": 2, "num_clients": 100,
                        "join_ratio": 0.1}),
    ("fedrep_cifar10_5", {"dataset.name": "cifar10", "partition.classes_per_client": 5, "num_clients": 100,
                          "join_ratio": 0.1}),
    ("fmnist_pfllib", {"dataset.name": "fmnist", "dataset.samples": None, "partition.alpha": 0.1, "num_clients": 20,
                       "join_ratio": 1.0, "batch_size": 10, "lr": 0.005, "model.name": "cnn", "model.channels": [32, 64],
                       "model.hidden": [512]}),
])
def test_gpu_protocol_proxies_compose_and_validate(preset, expect):
    from omegaconf import OmegaConf, open_dict

    from fedbench.config import prepare

    cfg = _compose(f"experiment={preset}")
    assert {k: OmegaConf.select(cfg, k) for k in expect} == expect
    with open_dict(cfg):
        del cfg["hydra"]
    prepare(cfg, machine=False)


@pytest.mark.parametrize("preset,expect", [
    ("fmnist_skew", {"partition.alpha": 0.3, "data.rotations": 1}),
    ("fmnist_rotated", {"partition.alpha": 1.0, "data.rotations": 4}),
])
def test_cpu_fmnist_settings_give_every_client_20_steps_and_20_validation_images(preset, expect):
    """The CPU Fashion-MNIST presets keep the properties they were chosen for, on the real partition:
    one local epoch is >= 20 SGD steps at batch 10 for every client, every client has >= 20
    validation images (measured: >= 22 steps, >= 31 images). Needs the Fashion-MNIST files."""
    import numpy as np
    import torch
    from omegaconf import OmegaConf, open_dict

    from fedbench.config import prepare
    from fedbench.data.federated import load_federated
    from tests.test_mnist_family import require_real_fmnist

    require_real_fmnist()
    cfg = _compose(f"experiment={preset}")
    assert {k: OmegaConf.select(cfg, k) for k in expect} == expect
    with open_dict(cfg):
        del cfg["hydra"]
    data = load_federated(prepare(cfg), torch.device("cpu"))
    steps = np.ceil(data.sizes[:, 0] / cfg.batch_size)
    assert steps.min() >= 20 and data.sizes[:, 1].min() >= 20, (steps.min(), data.sizes[:, 1].min())
