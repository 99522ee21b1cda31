"""Newcomers: clients held out of training (unseen_frac, fedbench.data.holdout), given their model by
their method's newcomer rule after the last round and evaluated once, as participants are.

A newcomer is loaded as a participant that never trained is: the final global state, its own tensors
at their initial values (personal parts, personal model, client states; consensus states as the
participants hold them), the class counts of its train split. Then its method's rule
(Method.newcomer; the method table lists each one's):
  evaluate   nothing more: it is evaluated as a participant is (the global model; the method's own
             adapt hook and fine-tuning add-on)
  finetune   its personal part (the parts the method keeps per client; the whole personal model where
             that is what it evaluates) trained on its train split for unseen_epochs (the epochs of the
             fine-tuning baseline's), at the final lr, everything it received frozen: the harness default
  personal   its personal model starts as the global model, then the method's own local update for
             unseen_epochs, nothing uploaded
  scratch    the method's own local update from the initial model, for as many epochs as a participant
             trained on average (a model of its own data only, trained as a participant's is)
  welcome    the method's welcome(cohort, server) hook (e.g. a new client embedding, a weighting over
             the participants' models)
then the method's adapt hook and the fine-tuning add-on, and its predictions on the newcomer's val and
test splits. Nothing a newcomer does reaches the server or the participants: it works on a throwaway
cohort. Its compute is counted apart (unseen_samples, unseen_flops), its data stream is "newcomer".
"""
from __future__ import annotations

import dataclasses

import numpy as np
import torch

from fedbench.data.types import FederatedData
from fedbench.federation.cohort import Cohort, CohortSetup
from fedbench.federation.compute import Compute
from fedbench.federation.evaluator import Evaluator
from fedbench.federation.finetune import finetune
from fedbench.federation.tensors import PERSONAL, FederationTensors

RULES = ("evaluate", "finetune", "personal", "scratch", "welcome")


def newcomer_rule(method) -> str:
    """The method's rule: its declared `newcomer`, else finetune where it keeps something per client
    (a personal part or model), else evaluate."""
    if method.newcomer is not None:
        return method.newcomer
    return "finetune" if method.personal != "none" or method.personal_model else "evaluate"


def personal_part(method):
    """What the finetune rule trains: the personal model where it is what the method evaluates, else the
    method's personal parts."""
    return "all" if method.evaluates == "personal_model" else method.personal


class Newcomers:
    """The newcomers `data` of federation `fed` (built with it, from the initial model) and their rule."""

    def __init__(self, fed, data: FederatedData, epochs: int):
        self.fed, self.data, self.epochs = fed, data, int(epochs)
        self.rule = newcomer_rule(fed.method)
        with torch.random.fork_rng(devices=[]):  # their initial tensors draw nothing from the run's streams
            self.tensors = FederationTensors(fed.model, fed.method, data.num_clients, fed.data.num_clients)
        self.compute = Compute()
        self.evaluator = Evaluator(data, fed.training.eval_batch_size)
        self.n_train = data.sizes[:, 0].copy()
        self.class_counts = torch.stack([torch.bincount(data.y[c.train], minlength=data.num_classes)
                                         for c in data.clients]).float()

    def training_epochs(self) -> int:
        """The epochs of a newcomer's local update: unseen_epochs, or (scratch) a participant's mean."""
        if self.rule != "scratch":
            return self.epochs
        return max(1, int(round(float(self.fed.times_sampled.mean()) * self.fed.training.local_epochs)))

    def evaluate(self, t: int) -> dict[str, np.ndarray]:
        """Every newcomer welcomed by its rule from the server state after round t, then evaluated:
        per-newcomer val_acc, test_acc, test_loss (as Federation.evaluate)."""
        fed = self.fed
        training = dataclasses.replace(fed.training, local_epochs=self.training_epochs())
        self.setup = CohortSetup(training, self.data, fed.setup.modules, fed.engine, fed.tensors.global_module,
                                 fed.method.predict, self.compute)
        self.tensors.global_state = fed.tensors.global_state
        store, mine = fed.tensors.store.tensors, self.tensors.store.tensors
        for target in fed.method.consensus:  # the same on every participant: a newcomer holds it too
            mine[target].copy_(store[target][0].expand_as(mine[target]))
        return self.evaluator.cohorts(fed.engine, lambda ids, vmapped: self.welcomed(ids, t, vmapped), self.n_train)

    def cohort(self, ids, t: int, vmapped: bool) -> Cohort:
        """Newcomers `ids` as they join: the global state and their initial tensors, and what the method's
        download hook hands a newcomer (phase "newcomer"; ids are newcomers', not participants')."""
        ids = np.asarray(ids, dtype=np.int64)
        state = self.tensors.load(ids, np.zeros(len(ids), dtype=bool), "eval")
        method = self.fed.method
        if "download" in method.hooks and self.rule != "welcome":
            state.update(method.download(self.fed.server, ids, "newcomer"))
        state["class_counts"] = self.class_counts.index_select(0, torch.as_tensor(ids, device=self.class_counts.device))
        return Cohort(self.setup, ids, t, state, "newcomer", vmapped, "eval")

    def welcomed(self, ids, t: int, vmapped: bool) -> Cohort:
        """Newcomers `ids` with their models made by the rule, adapted as the method's evaluation does."""
        cohort, method = self.cohort(ids, t, vmapped), self.fed.method
        part = personal_part(method)
        if self.rule == "finetune" and getattr(cohort, method.evaluates).names(part):  # (a model without the part: nothing)
            finetune(cohort, method, epochs=self.epochs, part=part)
        elif self.rule in ("personal", "scratch"):
            if self.rule == "personal" and cohort.personal_model is not None:
                with torch.no_grad():
                    for name in cohort.personal_model.names(params_only=False):
                        cohort.state[name].copy_(cohort.state["model." + name.removeprefix(PERSONAL)])
            method.local_update(cohort)
        elif self.rule == "welcome":
            method.welcome(cohort, self.fed.server)
        method.adapt(cohort)
        if self.fed.finetuning:
            finetune(cohort, method, **self.fed.finetuning)
        return cohort

    def spent(self) -> dict[str, int]:
        """The newcomers' adaptation compute, all of it (samples and FLOPs of every step they took)."""
        c = self.compute.counts
        return {"unseen_samples": sum(v for k, v in c.items() if k.endswith("_samples") and "once" not in k),
                "unseen_flops": sum(v for k, v in c.items() if k.endswith("_flops") and "once" not in k)}
