"""One optimizer protocol: every method trains with the run's optimizer (lr, momentum, weight decay,
lr schedule) unless its config sets its own or method.official=true selects its official one."""

import pytest
import torch

from fedbench.config import group_options
from fedbench.federation.training import TrainingSettings
from fedbench.optimizer import OPTIMIZER_KEYS, lr_at, resolve_optimizer
from tests.conftest import make_federation, set_training
from tests.runs_helpers import compose_cfg

RUN = ["lr=0.03", "momentum=0.2", "weight_decay=0.001"]


@pytest.mark.parametrize("method", group_options("method"))
def test_every_method_trains_with_the_run_optimizer_by_default(method):
    cfg = compose_cfg(f"method={method}", *RUN)
    assert resolve_optimizer(cfg) == {"lr": 0.03, "momentum": 0.2, "weight_decay": 0.001, "lr_schedule": "constant",
                                      "lr_milestones": [0.5, 0.75], "lr_gamma": 0.1}


@pytest.mark.parametrize("method,official", [
    ("fedbabu", {"lr": 0.1, "momentum": 0.9, "weight_decay": 0.0, "lr_schedule": "step"}),
    ("fedavg_ft", {"lr": 0.1, "momentum": 0.9, "weight_decay": 0.0, "lr_schedule": "step"}),  # trains like FedBABU
    ("fedrep", {"lr": 0.01, "momentum": 0.5, "weight_decay": 1e-4, "lr_schedule": "constant"}),
    ("pfedme", {"lr": 0.005, "momentum": 0.0, "weight_decay": 0.0, "lr_schedule": "constant"}),
])
def test_official_switch_selects_the_official_optimizer(method, official):
    opt = resolve_optimizer(compose_cfg(f"method={method}", "method.official=true", *RUN))
    assert {k: opt[k] for k in official} == pytest.approx(official)


def test_a_method_key_beats_official_which_beats_the_run():
    opt = resolve_optimizer(compose_cfg("method=fedbabu", "method.official=true", "method.lr=0.2", *RUN))
    assert (opt["lr"], opt["momentum"], opt["lr_schedule"]) == (0.2, 0.9, "step")
    opt = resolve_optimizer(compose_cfg("method=fedrep", "method.momentum=0.7", *RUN))
    assert (opt["lr"], opt["momentum"], opt["weight_decay"]) == (0.03, 0.7, 0.001)  # fedrep wd null = the run's


@pytest.mark.parametrize("rounds,expected", [
    (8, [1, 1, 1, 1, 0.1, 0.1, 0.01, 0.01]),
    (2, [1, 0.1]),  # R//2 == 3R//4: one decay (official `in [R//2, 3R//4]`)
    (1, [1]),
])
def test_step_schedule_decays_at_half_and_three_quarters(rounds, expected):
    got = [lr_at(0.1, "step", (0.5, 0.75), 0.1, rounds, t) for t in range(rounds)]
    assert got == pytest.approx([0.1 * f for f in expected])
    assert [lr_at(0.1, "constant", (0.5, 0.75), 0.1, rounds, t) for t in range(rounds)] == [0.1] * rounds


def test_step_schedule_of_fedbabus_official_320_rounds():
    hp = TrainingSettings(0, 0.1, 0.9, 0.0, 50, 1, 320, lr_schedule="step")
    assert {t: hp.lr_at(t) for t in (0, 159, 160, 239, 240, 319)} == pytest.approx(
        {0: 0.1, 159: 0.1, 160: 0.01, 239: 0.01, 240: 0.001, 319: 0.001})
    assert hp.final_lr == pytest.approx(0.001)


@pytest.mark.parametrize("method", ["fedavg", "fedbabu", "fedrep"])
def test_local_steps_use_the_scheduled_lr(method):
    """A round of local training at round t moves the model exactly as SGD at lr_at(t): with lr x0.1
    from round 1 on, the round-1 update is a tenth of the same update taken at lr without decay."""
    def update(schedule):
        fed = make_federation(method, rounds=2, hp_overrides={"head_epochs": 1, "body_epochs": 0} if method == "fedrep" else None,
                              lr=0.1, batch_size=100)  # one batch: one step (per phase)
        set_training(fed, lr_schedule=schedule, lr_milestones=(0.5,))
        client = fed.cohort([0], 1, "train")
        before = {k: v.clone() for k, v in client.model.state_dict().items()}
        fed.method.local_update(client)
        return {k: client.model.state_dict()[k] - before[k] for k in before}

    full, decayed = update("constant"), update("step")
    assert any(v.abs().sum() > 0 for v in full.values())
    for k in full:
        torch.testing.assert_close(decayed[k], 0.1 * full[k], atol=1e-6, rtol=1e-4)


def test_official_keys_are_only_optimizer_keys():
    from omegaconf import OmegaConf

    from fedbench.config import CONF_DIR

    for method in group_options("method"):
        node = OmegaConf.load(CONF_DIR / "method" / f"{method}.yaml")
        assert set(node.get("official_optimizer") or {}) <= set(OPTIMIZER_KEYS), method
