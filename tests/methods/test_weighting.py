"""Server weighting of every method with a shared part, on clients with UNEQUAL train sizes (with equal
sizes an n_k-weighted and a plain mean coincide, so a flipped weighting could not show).

The expected weighting of each method is written here (the paper's / official code's choice, as in
the README's Methods table), not read from its class: each test builds the method from its own
config WITHOUT overriding `weighting`, so flipping the class's declaration fails a test; the config
key method.weighting overrides it for a run. The aggregated global state is
compared with the mean of the recorded uploads computed by hand (tests.methods.spies.mean_upload)."""
import pytest
import torch


from tests.conftest import make_federation, method_hp, tiny_data
from tests.methods.spies import mean_upload, record_uploads

EXPECTED = {  # method: (weighting, why)
    "fedavg": ("samples", "McMahan et al. 2017"),
    "fedavg_ft": ("samples", "training is FedAvg"),
    "fedprox": ("samples", "official fedbase.py aggregate()"),
    "fedper": ("samples", "FedAvg on the base layers (PFLlib)"),
    "fedrep": ("uniform", "official main_fedrep.py, lens all 1 on CIFAR"),
    "lgfedavg": ("uniform", "official main_lg.py"),
    "fedbabu": ("uniform", "official main_fed.py divides by m"),
    "pfedme": ("samples", "official serverbase"),
    "perfedavg": ("uniform", "the paper"),
    "ditto": ("samples", "official: sampling ~ n_k"),
    "apfl": ("uniform", "paper and FedTorch"),
    "fedrod": ("samples", "PFLlib, FL-bench"),
    "fedala": ("samples", "official: FedAvg's n_k-weighted mean"),
    "fedcp": ("samples", "official servercp.py: n_k / sum n over the uploaders"),
    "gpfl": ("samples", "official servergpfl.py: n_k-weighted"),
    "feddbe": ("samples", "official serverdbe.py: FedAvg's n_k-weighted mean"),
    "fedbn": ("uniform", "official communication(), 1/K"),
    "fedbsd": ("uniform", "README"),
}
TRAIN_SIZES = (4, 22, 9, 40)  # four clients, all sampled: the weights n_k / sum n_k are 0.05 ... 0.53
MLP_BN = {"name": "mlp", "hidden": [16, 8], "bn": True}
# Hyperparameters that matter to the run, set explicitly (method defaults may change); never weighting.
# Optimizer keys null = the run's lr / momentum (lr 0.1, momentum 0 from make_federation).
HP = {
    "fedrep": {"head_epochs": 1, "body_epochs": 1, "lr": None, "momentum": None, "weight_decay": None},
    "fedbabu": {"lr": None, "momentum": None},
    "pfedme": {"lam": 15.0, "personal_lr": 0.05, "lr": None, "inner_steps": 2, "local_steps": 3, "beta": 2.0,
               "mu": 0.001},  # beta 2: the server moves w <- w + 2 (mean - w)
    "perfedavg": {"variant": "fo", "alpha": 0.01, "beta": None, "local_steps": 3},
    "fedprox": {"mu": 0.1},
    "ditto": {"lam": 1.0, "personal_epochs": None},
    "apfl": {"alpha": 0.5, "adaptive_alpha": True, "alpha_lr": None},
    "fedbsd": {"lam": 1.0},
}


def federation(method, **kw):
    data = tiny_data(train_sizes=TRAIN_SIZES)
    model = MLP_BN if method == "fedbn" else None
    return make_federation(method, rounds=10, data=data, model=model, hp_overrides=HP.get(method), **kw)


@pytest.mark.parametrize("method", sorted(EXPECTED))
def test_global_state_is_the_default_weighted_mean_of_the_uploads(method):
    weighting = EXPECTED[method][0]
    other = "uniform" if weighting == "samples" else "samples"
    fed = federation(method)
    uploads = record_uploads(fed)
    fed.train_round(0)
    old = {k: v.clone() for k, v in fed.global_state.items()}
    uploads.clear()
    fed.train_round(1)  # round 1: the uploads differ from the old global, which pfedme's beta mixes in
    assert sorted(k for k, _ in uploads) == [0, 1, 2, 3] and set(uploads[0][1]) == set(fed.global_state)
    beta = float(fed.method.hp.beta) if method == "pfedme" else 1.0  # w <- (1 - beta) w + beta mean

    def expected(mean):
        return {k: old[k].double() + beta * (mean[k] - old[k].double()) for k in old}

    want, wrong = expected(mean_upload(uploads, fed.data, weighting)), expected(mean_upload(uploads, fed.data, other))
    floats = [k for k in old if old[k].is_floating_point()]
    for k in floats:
        got = fed.global_state[k].double()
        assert torch.allclose(got, want[k], rtol=1e-5, atol=1e-6), (method, k)
    # the test can tell the two weightings apart: the other one is far off
    gap = max((fed.global_state[k].double() - wrong[k]).abs().max().item() for k in floats)
    assert gap > 1e-3, (method, gap)


@pytest.mark.parametrize("method", sorted(EXPECTED))
def test_default_weighting_is_the_documented_one(method):
    assert method_hp(method).weighting is None  # declared once, on the class
    assert make_federation(method, model=MLP_BN if method == "fedbn" else None).method.weighting == EXPECTED[method][0]


@pytest.mark.parametrize("method", ["fedavg", "fedrep"])
def test_the_config_key_overrides_the_class(method):
    other = "uniform" if EXPECTED[method][0] == "samples" else "samples"
    assert make_federation(method, hp_overrides={"weighting": other}).method.weighting == other


def test_a_run_builds_its_method_the_same_way_the_override_included():
    """The run path (fedbench.run.build_method, what `python -m fedbench` uses) applies the config's
    weighting and gives the method its read-only hyperparameters, not the config node."""
    from fedbench.config.method_parts import Hyperparameters
    from fedbench.models import build_model
    from fedbench.run import build_method
    from tests.runs_helpers import compose_cfg

    cfg = compose_cfg("method=fedbsd", "method.weighting=samples")
    method = build_method(cfg, build_model({"name": "mlp", "hidden": [16]}, (8,), 4))
    assert method.weighting == "samples" and type(method).weighting == "uniform"
    assert isinstance(method.hp, Hyperparameters) and method.hp.lam == cfg.method.lam
