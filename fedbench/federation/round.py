"""The round, written once; the engine it is given (fedbench.engines) only decides how a cohort of
clients is stepped (client by client, or vmapped):

    sampled  = the round's clients, drawn from the sampling stream before training
    cohorts  = each loaded: the global state, then the client's own tensors (Federation.cohort)
    train    = method.local_update(cohort)
    store    = each client's personal tensors, personal model and state written back
    upload   = each client's shared tensors and declared uploads (fedbench.federation.server.Uploads)
    server   = method.aggregate(server, uploads): by default the global state becomes
               method.server_update(global, weighted mean); a method may read each client's upload,
               keep its own server state and send clients their own downloads; bytes counted both ways
    receive  = the clients the method names (sampled, or all) take the new global state: method.receive
    evaluate = every client: method.adapt, fine-tuning add-on, method.predict on val and test (Evaluator)
After the last round, the newcomers (unseen_frac) get their models by the method's rule and are evaluated
once (fedbench.federation.newcomers).
Before the first round, method.start runs once on every client (and its consensus states are set).

Per-client tensors live in one stacked store (fedbench.federation.tensors); a cohort works on a copy of
its rows. Nothing here knows a method: what a method does is read from its declared attributes and hooks.
"""
from __future__ import annotations

import numpy as np
import torch

from fedbench.data.types import FederatedData
from fedbench.federation.aggregation import sampling_schedule
from fedbench.federation.client_view import StepModules
from fedbench.federation.cohort import Cohort, CohortSetup
from fedbench.federation.compute import Compute
from fedbench.federation.evaluator import Evaluator
from fedbench.federation.finetune import finetune
from fedbench.federation.newcomers import Newcomers
from fedbench.federation.server import Collector, Server
from fedbench.federation.store import nbytes
from fedbench.federation.tensors import FederationTensors
from fedbench.federation.training import TrainingSettings


class Federation:
    """A method's federation over `data`: its tensors (FederationTensors), the sampling schedule of `rounds`
    rounds, the cohorts' setup, the evaluator; bytes and how often each client trained."""

    def __init__(self, training: TrainingSettings, data: FederatedData, model, method, rounds: int,
                 join_ratio: float, engine, finetuning: dict | None = None, newcomers: FederatedData | None = None,
                 newcomer_epochs: int = 5):
        self.training, self.data, self.model, self.method, self.engine = training, data, model, method, engine
        method.extend_model(model)  # modules a method adds (e.g. a personal head), before the parts are read
        self.tensors = FederationTensors(model, method, data.num_clients)
        self.server = Server(self.tensors, method.server_state(model, data.num_clients), data.num_clients)
        self.compute = Compute()
        self.setup = CohortSetup(training, data, StepModules(model, self.tensors.personal_module), engine,
                                 self.tensors.global_module, method.predict, self.compute)
        self.schedule = sampling_schedule(training.seed, rounds, data.num_clients, join_ratio)
        self.n_train = data.sizes[:, 0].copy()
        self.class_counts = torch.stack([torch.bincount(data.y[c.train], minlength=data.num_classes)
                                         for c in data.clients]).float() if data.clients else None
        self.times_sampled = np.zeros(data.num_clients, dtype=np.int64)
        self.bytes_up = self.bytes_down = 0
        self.finetuning = finetuning
        self.evaluator = Evaluator(data, training.eval_batch_size)
        self.started = False  # the method's start hook has run (before the first round)
        # clients held out of training, welcomed after the last round (built now: from the initial model)
        self.newcomers = Newcomers(self, newcomers, newcomer_epochs) if newcomers is not None else None

    @property
    def global_state(self) -> dict[str, torch.Tensor]:
        return self.tensors.global_state

    # -- cohorts ------------------------------------------------------------------------------------
    def cohort(self, ids, t: int, phase: str, stream: str = "data", vmapped: bool = False) -> Cohort:
        """Clients `ids` (ordered by decreasing train size) as `phase` (train | eval) loads them in
        round t, with the class counts of their train splits."""
        ids = np.asarray(ids, dtype=np.int64)
        state = self.tensors.load(ids, self.times_sampled[ids] > 0, phase)
        if "download" in self.method.hooks:   # what the server hands these clients (a round's training: counted)
            got = self.method.download(self.server, ids, phase)
            state.update(got)
            if phase == "train" and stream == "data":
                self.bytes_down += nbytes(got)
        if self.class_counts is not None:
            state["class_counts"] = self.class_counts.index_select(
                0, torch.as_tensor(ids, device=self.class_counts.device))
        return Cohort(self.setup, ids, t, state, stream, vmapped, phase)

    def evaluated(self, ids, t: int, vmapped: bool = False) -> Cohort:
        """Clients `ids` (or one client id) as round t's evaluation tests them: their eval-phase tensors
        after the method's adapt hook and the fine-tuning add-on (a throwaway cohort)."""
        cohort = self.cohort([ids] if np.isscalar(ids) else ids, t, "eval", "finetune", vmapped=vmapped)
        self.method.adapt(cohort)
        if self.finetuning:
            finetune(cohort, self.method, **self.finetuning)
        return cohort

    def visit(self, ids: np.ndarray, t: int, stream: str, hook) -> None:
        """`hook(cohort)` on clients `ids` as the engine groups them, their tensors kept (written back)."""
        for group, vmapped in self.engine.groups(ids, self.n_train):
            cohort = self.cohort(group, t, "train", stream, vmapped)
            hook(cohort)
            self.tensors.write_back(cohort.ids, cohort.state)

    def start(self) -> None:
        """Once, before the first round: the method's start hook on every client, then each of its
        consensus states set, on every client, to the weighted mean of its source state over all."""
        self.started = True
        if "start" not in self.method.hooks:
            return
        everyone = np.arange(self.data.num_clients)
        self.visit(everyone, 0, "start", self.method.start)
        store, w = self.tensors.store.tensors, torch.as_tensor(self.weights(everyone))
        for target, source in self.method.consensus.items():
            mean = torch.tensordot(w.to(store[source]) / w.sum(), store[source], dims=1)
            store[target].copy_(mean.expand_as(store[target]))

    # -- one round -----------------------------------------------------------------------------------
    def train_round(self, t: int) -> float:
        """Local updates of the round's sampled clients, then aggregation, then what the clients that
        receive the new global state do with it. Returns the mean local loss."""
        if not self.started:
            self.start()
        sampled, method, tensors = self.schedule[t], self.method, self.tensors
        collector = Collector(tensors.global_state, stacked="aggregate" in method.hooks)
        losses = []
        for ids, vmapped in self.engine.groups(sampled, self.n_train):
            cohort = self.cohort(ids, t, "train", vmapped=vmapped)
            losses.append(np.asarray(method.local_update(cohort), dtype=np.float64).reshape(-1))
            tensors.write_back(cohort.ids, cohort.state)
            collector.add(cohort.ids, self.weights(cohort.ids), self.upload(cohort))
        self.bytes_down += nbytes(tensors.global_state) * len(sampled)
        self.bytes_up += collector.bytes
        np.add.at(self.times_sampled, sampled, 1)
        sent = self.server.bytes_sent
        method.aggregate(self.server, collector.uploads())
        self.bytes_down += self.server.bytes_sent - sent
        if method.receivers != "none":
            self.visit(sampled if method.receivers == "sampled" else np.arange(self.data.num_clients), t, "receive",
                       method.receive)
        losses = np.concatenate(losses) if losses else np.zeros(0)
        return float(np.mean(losses)) if len(losses) else float("nan")

    def upload(self, cohort: Cohort) -> dict[str, torch.Tensor]:
        """What a cohort sends: each client's shared tensors (a leading client dimension)."""
        return self.tensors.upload(cohort.state)

    def weights(self, ids: np.ndarray) -> np.ndarray:
        """Each client's aggregation weight: its train size (samples) or 1 (uniform)."""
        return self.n_train[ids].astype(np.float64) if self.method.weighting == "samples" else np.ones(len(ids))

    # -- evaluation ----------------------------------------------------------------------------------
    def evaluate(self, t: int) -> dict[str, np.ndarray]:
        """Every client's personalized model on its val and test splits: when every client evaluates
        the same model (nothing personal, no personal model, no adapt/predict hook, no fine-tuning)
        all samples go through it in one pass; otherwise cohort by cohort, as the engine groups them."""
        self.compute.begin_evaluation()
        if self.same_eval_model():
            return self.evaluator.one_model(self.tensors.global_module)
        return self.evaluator.cohorts(self.engine, lambda ids, vmapped: self.evaluated(ids, t, vmapped),
                                      self.n_train)

    def same_eval_model(self) -> bool:
        m = self.method
        return (not self.tensors.own["eval"] and m.evaluates == "model" and not self.finetuning
                and not {"adapt", "predict", "download"} & set(m.hooks))

    # -- health and checkpoints ------------------------------------------------------------------------
    def finite(self) -> bool:
        """False when any global or personal tensor holds NaN or inf (divergence). One host sync."""
        return self.tensors.finite()

    def state_dict(self) -> dict:
        """Everything a run changes (data, schedule and initial model are rebuilt from the config):
        tensors and plain values only, so it loads with torch.load(weights_only=True)."""
        return self.tensors.state_dict() | {"bytes_up": int(self.bytes_up), "bytes_down": int(self.bytes_down),
                                            "times_sampled": torch.from_numpy(self.times_sampled.copy()),
                                            "compute": self.compute.state_dict(), "server": self.server.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        """Restore `state_dict()`; ValueError when its names, shapes or dtypes differ from this run's."""
        self.tensors.load_state_dict(state)
        self.started = True  # a checkpoint comes after a round
        self.bytes_up, self.bytes_down = int(state["bytes_up"]), int(state["bytes_down"])
        self.times_sampled = state["times_sampled"].cpu().numpy().astype(np.int64).copy()
        self.compute.load_state_dict(state.get("compute", {}))
        self.server.load_state_dict(state.get("server", {}))
