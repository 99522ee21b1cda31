"""The method interface: what a method declares and the hooks it may override, with their defaults
(FedAvg's behaviour: methods/fedavg.py registers it as a method, and every other method is written as
its difference from it).

A method DECLARES what it is (class attributes, read by the harness and the engines) and overrides
only the hooks it changes (`hooks`, derived from what the class overrides):
  shared / personal   model parts uploaded and averaged / kept per client ("all", "none", "backbone",
                      "head", "bn", "non_bn", a module the method adds, or a tuple of these). A client
                      trains from and evaluates its own copy of each personal part; a part both shared
                      and personal is the client's copy (the global one until it first trains).
  train_global /      personal parts that training / evaluation take from the global state instead
  eval_global         of the client's copy (FedBSD: the student starts from the global backbone).
  weighting           the server's weights: "samples" (n_k) or "uniform" (the paper's); the config key
                      method.weighting overrides it for a run.
  trains              the part FedAvg's local update (E epochs of SGD on `loss`) trains.
  personal_model      True: each client also keeps a second, personal model (client.personal_model;
                      Ditto's v, pFedMe's theta, APFL's v), starting as a copy of the initial model.
  evaluates           which model predicts: "model" or "personal_model" (method.predict).
  vectorizable        its local update uses only the cohort primitives below, so engine=vmap can step
                      all sampled clients at once (else `why_not_vectorizable` says why).
  needs_batchnorm     the method is meaningless without BatchNorm layers (FedBN).
  newcomer            how a client that never trained (unseen_frac) gets its model
                      (fedbench.federation.newcomers): "evaluate" (as a participant is evaluated),
                      "finetune" (its personal part trained for unseen_epochs: the harness default),
                      "personal" (its personal model from the global, then its local update), "scratch"
                      (its local update from the initial model, a participant's mean epochs) or "welcome"
                      (its welcome hook); None: finetune where something is personal, else evaluate.
  ranges              its own hyperparameters and their specs (checked before any work); their defaults
                      are in conf/method/<name>.yaml, their values in `self.hp` (read-only attributes).
  hooks               the hooks below the method overrides (derived, never listed by hand).
The hooks, and what each may read and write:
  extend_model(model)   add modules before the federation reads the model's parts (FedRoD's personal
                        head); called once, before anything else.
  client_state(model, num_clients)  {name: tensor}: extra per-client tensors (APFL's alpha), held in the store.
  start(cohort)         once, before the first round, on every client (cohorts, their tensors kept):
                        e.g. FedDBE's initialization pass; then each `consensus` state is set, on
                        every client, to the weighted mean over all clients of its source state.
  local_update(cohort)  the local training of a cohort of clients; reads and writes the cohort's
                        tensors only through its primitives (cohort.sgd, cohort.grad, cohort.batches,
                        cohort.minibatches, cohort.model/.personal_model .tensors()), returns each
                        client's mean loss. Default: E epochs of SGD on `loss`.
  loss(client, x, y, reduction="mean")
                        the local objective on a batch of ONE client (a ClientView: client.model,
                        client.personal_model, client.state, client.class_counts,
                        client.global_model()); reduction="none" gives per-sample terms whose mean is
                        the objective (a per-client term such as a proximal term is added to every
                        sample's). Pure: it must not change any tensor.
  server_update(global, mean)  the new global state from the old one and the weighted mean upload.
  server_state(model, num_clients)  {name: tensor}: the method's own server state (SCAFFOLD's c, FedFomo's stored
                        models), kept in every checkpoint; the server step reads and writes server.state.
  aggregate(server, uploads)  the server step (fedbench.federation.server): sees every sampled client's
                        upload with its id and weight (uploads.ids, .weights, .tensors stacked in id
                        order) and may set server.global_state, change server.state and server.send(ids,
                        tensors) each client its own download. Default: the global state becomes
                        server_update(global, the weighted mean).
  download(server, ids, phase)  {name: (len(ids), ...) tensor}: what the server hands clients `ids`
                        when they load for training (counted as downloaded), evaluation, or as newcomers
                        (phase "newcomer": ids are then the newcomers' rows, not participants'):
                        state tensors, or "model.<key>" to give them their own model (pFedHN).
  receive(cohort)       after the server update, on the clients `receivers` names (cohorts, their
                        tensors kept): what a client does with the new global state it receives
                        (FedALA's adaptive local aggregation, GPFL's conditional inputs).
  adapt(cohort)         prepares the evaluated model of an evaluation cohort (a throwaway copy; e.g.
                        Per-FedAvg's one step); the fine-tuning add-on (ft_* keys) runs after it.
  welcome(cohort, server)  the newcomer rule "welcome": makes the models of a cohort of newcomers
                        (loaded as participants that never trained; nothing they do is uploaded) from
                        the final server state, through the cohort's primitives (counted apart).
  predict(client, x)    the logits of ONE client's evaluated model (a ClientView). Default: its `evaluates`.
The defaults: the whole model is shared, averaged with weights n_k (train samples), and the global
model is what every client evaluates.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


HOOKS = ("extend_model", "client_state", "start", "local_update", "loss", "server_update", "server_state",
         "aggregate", "download", "receive", "adapt", "welcome", "predict")


class Method:
    name = ""
    paper = ""   # the paper's address (README's method table); every method declares its own
    shared = "all"
    personal = "none"
    train_global = "none"
    eval_global = "none"
    weighting = "samples"  # samples: n_k-weighted mean (the paper); uniform: plain mean
    personal_model = False
    evaluates = "model"
    per_minibatch = "one SGD step"  # what a local step does (README method table; fedbench.report.methods_table)
    trains = "all"  # the part E epochs of SGD on `loss` train (FedAvg's local update)
    vectorizable = True
    why_not_vectorizable = ""
    needs_batchnorm = False
    receivers = "none"   # which clients run `receive` after the server update: none | sampled | all
    uploads: tuple = ()  # what a sampled client sends beyond its shared tensors: client states or model parts
    consensus: dict = {}  # {state: source state}: after `start`, every client's state = the weighted mean of source
    newcomer: str | None = None  # how a newcomer gets its model (fedbench.federation.newcomers.RULES)
    welcomes = ""  # what its welcome hook does, in a few words (the method table)
    ranges: dict = {}
    hooks: tuple[str, ...] = ()

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        cls.hooks = tuple(h for h in HOOKS if getattr(cls, h) is not getattr(Method, h))

    def __init__(self, hp, model):
        self.hp = hp  # the method's own hyperparameters (read-only; fedbench.config.method_parts)

    def extend_model(self, model) -> None:
        pass

    def client_state(self, model, num_clients: int) -> dict[str, torch.Tensor]:
        return {}

    def start(self, cohort) -> None:
        pass

    def local_update(self, cohort) -> np.ndarray:
        return cohort.sgd(self.loss, train=self.trains)

    def loss(self, client, x, y, reduction: str = "mean") -> torch.Tensor:
        return F.cross_entropy(client.model(x), y, reduction=reduction)

    def server_update(self, global_state, mean_upload) -> dict[str, torch.Tensor]:
        return mean_upload

    def server_state(self, model, num_clients: int) -> dict[str, torch.Tensor]:
        return {}

    def aggregate(self, server, uploads) -> None:
        if server.global_state:
            server.global_state = self.server_update(server.global_state, uploads.mean(server.global_state))

    def download(self, server, ids, phase: str) -> dict[str, torch.Tensor]:
        return {}

    def receive(self, cohort) -> None:
        pass

    def adapt(self, cohort) -> None:
        pass

    def welcome(self, cohort, server) -> None:
        raise NotImplementedError(f"{self.name}: newcomer = 'welcome' needs a welcome(cohort, server) hook")

    def predict(self, client, x) -> torch.Tensor:
        return getattr(client, self.evaluates)(x)
