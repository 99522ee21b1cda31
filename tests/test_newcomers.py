"""Newcomers (unseen_frac): clients held out of training, welcomed after the last round by their
method's rule (fedbench.federation.newcomers), and evaluated once."""
from __future__ import annotations

import filecmp
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import methods
from fedbench.data.holdout import subset, unseen_count, unseen_ids
from fedbench.federation.cohort import Cohort
from fedbench.federation.evaluator import Evaluator
from fedbench.federation.newcomers import newcomer_rule
from fedbench.toolkit.flat import flatten
from tests.conftest import make_federation, tiny_data
from tests.runs_helpers import run_dirs, run_inprocess

GOLDEN = Path(__file__).parent / "data" / "golden"
SHORT = ["rounds=4", "eval_every=2"]


def split_tiny(train_sizes=(10, 30, 16, 24, 12, 20), held=(1, 4)):
    """Tiny data with unequal clients; `held` become the newcomers."""
    data = tiny_data(train_sizes=list(train_sizes))
    seen = np.setdiff1d(np.arange(data.num_clients), held)
    return subset(data, seen), subset(data, np.asarray(held))


def federation(method: str, rounds=3, **kw):
    participants, newcomers = split_tiny()
    fed = make_federation(method, rounds=rounds, data=participants, newcomers=newcomers, join_ratio=0.5, **kw)
    for t in range(rounds):
        fed.train_round(t)
    return fed


@pytest.mark.parametrize("method", ["fedper", "ditto"])
def test_default_share_leaves_run_files_byte_identical(method, tmp_path):
    """unseen_frac=0 (the default): metrics.csv and clients.csv byte for byte what the code before newcomers
    wrote (tests/data/golden, written by that code, on the float path written_on.json names), in the same
    run directory (config hash unchanged)."""
    import json

    from tests.runs_helpers import summary

    run_inprocess(f"method={method}", *SHORT, f"results_dir={tmp_path}")
    (run,) = run_dirs(tmp_path)
    assert run.parent.name == {"fedper": "6e2223c9a0", "ditto": "f8df741df8"}[method]
    written_on = json.loads((GOLDEN / "written_on.json").read_text())
    here = summary(run)["machine"]
    if (here["float_path"], here["torch"]) != (written_on["float_path"], written_on["torch"]):
        pytest.skip(f"the golden files come from {written_on}; this machine's float path differs (last bits may too)")
    for name in ("metrics.csv", "clients.csv"):
        assert filecmp.cmp(run / name, GOLDEN / f"{method}_{name}", shallow=False), name


def test_held_out_clients_are_never_trained_on_and_the_same_for_every_method(tmp_path, data_root, monkeypatch):
    """A spy on the training primitive: during the rounds no sample of a held-out client is stepped on
    (and none is in the participants' evaluation); the newcomers' own steps touch only their samples.
    Their ids come from the seed alone: the same for FedPer and Local."""
    touched: list[tuple[str, set]] = []
    real = Cohort.gradients

    def spy(self, objective, names, step):
        touched.append((self.stream, set(step.idx[:step.active].flatten().tolist())))
        return real(self, objective, names, step)

    monkeypatch.setattr(Cohort, "gradients", spy)
    held = {}
    for method in ("fedper", "local"):
        touched.clear()
        run_inprocess(f"method={method}", *SHORT, f"results_dir={tmp_path / method}", "unseen_frac=0.25")
        (run,) = run_dirs(tmp_path / method)
        clients = pd.read_csv(run / "clients.csv")
        held[method] = clients.loc[clients["unseen"] == 1, "client"].tolist()
        assert len(held[method]) == unseen_count(6, 0.25) == 2 and len(clients) == 8
        assert (clients.loc[clients["unseen"] == 1, "times_sampled"] == 0).all()
        from fedbench.data.federated import load_federated
        from tests.runs_helpers import SMALL, compose_cfg
        data = load_federated(compose_cfg(*SMALL, "unseen_frac=0.25", f"method={method}"), torch.device("cpu"))
        held_samples = set(torch.cat([torch.cat([data.clients[k].train, data.clients[k].val, data.clients[k].test])
                                      for k in held[method]]).tolist())
        training = set().union(*[s for stream, s in touched if stream != "newcomer"])
        welcoming = set().union(*[s for stream, s in touched if stream == "newcomer"])
        assert training and not training & held_samples
        assert welcoming and welcoming <= held_samples
    assert held["fedper"] == held["local"] == unseen_ids(8, 2, 0).tolist()


def test_the_newcomers_welcome_changes_nothing_of_the_federation():
    """Every registered method: welcoming and evaluating the newcomers leaves the server, the global state
    and every participant's tensors exactly as they were, and gives each newcomer a finite score."""
    for name in methods.available():
        fed = federation(name, rounds=2)
        before = fed.state_dict()
        ev = fed.newcomers.evaluate(1)
        after = fed.state_dict()
        assert np.isfinite(ev["test_acc"]).all(), name
        for key in ("global_state", "store", "server"):
            for k, v in before[key].items():
                assert torch.equal(v, after[key][k]), (name, key, k)


def test_fedavg_newcomers_are_scored_with_the_global_model():
    fed = federation("fedavg")
    assert newcomer_rule(fed.method) == "evaluate"
    ev = fed.newcomers.evaluate(2)
    direct = Evaluator(fed.newcomers.data, 1024).one_model(fed.tensors.global_module)
    np.testing.assert_allclose(ev["test_acc"], direct["test_acc"])
    assert fed.newcomers.spent() == {"unseen_samples": 0, "unseen_flops": 0}


def welcomed(fed, ids=(0, 1)):
    return fed.newcomers.welcomed(np.asarray(ids), fed.training.rounds - 1, False)


def test_fedper_newcomers_train_their_own_head_on_the_received_backbone():
    """finetune: the head moves away from its initial value (a newcomer never evaluates a random head), the
    backbone is the global one exactly; unseen_epochs epochs of the newcomers' train splits are counted."""
    fed = federation("fedper")
    fed.newcomers.setup = None
    fed.newcomers.evaluate(2)  # builds the setup
    c = welcomed(fed)
    init = fed.newcomers.tensors.load(np.array([0, 1]), np.zeros(2, bool), "eval")
    for k, v in c.model.tensors().items():
        if k.startswith("backbone."):
            assert torch.equal(v, fed.tensors.global_state[k].expand_as(v)), k
        elif k.startswith("head."):
            assert not torch.equal(v, init["model." + k]), k
    n_train = fed.newcomers.data.sizes[:, 0].sum()
    assert fed.newcomers.spent()["unseen_samples"] == 2 * fed.newcomers.epochs * n_train  # evaluate + welcomed


def test_ditto_newcomers_start_their_personal_model_from_the_global_one(monkeypatch):
    fed = federation("ditto")
    seen = {}

    def spy(cohort):
        seen.update({k: v.clone() for k, v in cohort.personal_model.tensors().items()})

    monkeypatch.setattr(fed.method, "local_update", spy)
    fed.newcomers.evaluate(2)
    for k, v in fed.tensors.global_state.items():
        assert torch.equal(seen[k], v.expand_as(seen[k])), k


def test_local_newcomers_train_from_the_initial_model_as_long_as_a_participant(monkeypatch):
    fed = federation("local", rounds=4)
    init = fed.newcomers.tensors.load(np.array([0]), np.zeros(1, bool), "eval")
    seen = {}

    def spy(cohort):
        seen.update({k: v[:1].clone() for k, v in cohort.model.tensors().items()})

    monkeypatch.setattr(fed.method, "local_update", spy)
    fed.newcomers.evaluate(3)
    for k, v in seen.items():
        assert torch.equal(v, init["model." + k]), k
    assert fed.newcomers.training_epochs() == round(fed.times_sampled.mean()) == 2


def test_pfedhn_newcomers_learn_a_new_embedding_with_the_hypernetwork_frozen():
    fed = federation("pfedhn")
    hn = {k: v.clone() for k, v in fed.server.state.items()}
    fed.newcomers.evaluate(2)
    c = welcomed(fed)
    start = hn["hn.embeddings.weight"].mean(0)
    assert not torch.allclose(c.state["hn_v"], start.expand_as(c.state["hn_v"]))
    theta = fed.method.hn.to(start.device)
    with torch.no_grad():
        from torch.func import functional_call
        frozen = {k.removeprefix("hn."): v for k, v in hn.items() if k.startswith("hn.")}
        expected = functional_call(theta, frozen, (), {"embedding": c.state["hn_v"]})
    got = flatten(c.model.tensors(params_only=True), fed.method.params)
    torch.testing.assert_close(got, expected)
    assert all(torch.equal(v, fed.server.state[k]) for k, v in hn.items())


def test_apple_newcomers_learn_their_weights_over_the_frozen_cores():
    fed = federation("apple")
    fed.newcomers.evaluate(2)
    c = welcomed(fed)
    p0 = fed.tensors.store.tensors["apple_p0"][0]
    assert not torch.allclose(c.state["apple_p"], p0.expand_as(c.state["apple_p"]))
    assert torch.equal(c.state["apple_cores"][0], fed.server.state["apple_cores"])


def test_report_shows_newcomers_only_where_runs_have_them(tmp_path):
    from fedbench.report import build_report

    for seed in (0, 1):
        for method in ("fedavg", "local"):
            run_inprocess(f"method={method}", *SHORT, f"results_dir={tmp_path}", "unseen_frac=0.25", f"seed={seed}")
    build_report(tmp_path, echo=lambda line: None)
    cells = pd.read_csv(tmp_path / "tables" / "newcomers.csv")
    runs = pd.read_csv(tmp_path / "summary.csv")
    for method, group in runs.groupby("method"):
        row = cells[cells["variant"] == method].iloc[0]
        assert row["unseen_acc_mean"] == pytest.approx(group["unseen_acc"].mean(), rel=1e-5)
        assert row["participation_gap_mean"] == pytest.approx((group["seen_acc"] - group["unseen_acc"]).mean(), rel=1e-5)
    assert list((tmp_path / "plots").glob("newcomers_*.png"))
    other = tmp_path / "none"
    run_inprocess("method=fedavg", *SHORT, f"results_dir={other}")
    build_report(other, echo=lambda line: None)
    assert not (other / "tables" / "newcomers.md").exists()


@pytest.mark.parametrize("name", methods.available())
def test_every_method_declares_a_known_rule_and_a_hook_where_it_says_welcome(name):
    from fedbench.federation.newcomers import RULES

    cls = methods.get(name)
    assert newcomer_rule(cls) in RULES
    assert (newcomer_rule(cls) == "welcome") == ("welcome" in cls.hooks) and (cls.welcomes != "") == ("welcome" in cls.hooks)
