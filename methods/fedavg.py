"""FedAvg (McMahan et al., "Communication-Efficient Learning of Deep Networks from Decentralized
Data", AISTATS 2017), the base every method here is a difference from.

The harness (fedbench.federation) calls these hooks; a method overrides only what it changes:
  shared / personal   model parts uploaded and averaged / kept per client ("all", "none",
                      "backbone", "head", "bn", "non_bn"). A client trains from and evaluates its own
                      copy of each personal part; parts may overlap (a shared part that is also
                      personal: the client's own copy, which is the global one until it first trains).
  train_global /      personal parts that training / evaluation take from the global state instead
  eval_global         of the client's copy (e.g. FedBSD's student starts from the global backbone but
                      the client keeps the distilled one for its evaluated model).
  client_state(model) extra per-client tensors (e.g. a personal model), held in the client store.
  local_update(c)     the client's local training; default: E epochs of SGD on `loss`.
  loss(c, x, y)       the local objective; default: cross-entropy.
  upload(c)           what the client sends; default: the shared part of its model.
  server_update(g, m) the new global state from the old one and the mean upload; default: the mean.
  eval_model(c)       the personalized model evaluated for client c; default: its model.
Harness add-ons any method can switch on in its config: `ft_epochs` etc. (fedbench.finetune).
Client tools: c.sgd(loss, params, epochs, lr, model), c.batches(), c.global_model() (frozen
round-start global), c.aux_model(prefix)/c.save_aux (a second model kept in the client store),
c.state (the client's store tensors), c.round, c.hp (run hyperparameters).
FedAvg itself: the whole model is shared, averaged with weights n_k (train samples), and the global
model is what every client evaluates.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from methods import register


@register
class FedAvg:
    name = "fedavg"
    shared = "all"
    personal = "none"
    train_global = "none"
    eval_global = "none"
    weighting = "samples"  # the paper's server weights: samples (n_k-weighted) | uniform; method.weighting overrides
    needs_batchnorm = False

    def __init__(self, hp, model):
        self.hp = hp
        self.weighting = hp.get("weighting", type(self).weighting)

    def client_state(self, model) -> dict[str, torch.Tensor]:
        return {}

    def local_update(self, client) -> float:
        return client.sgd(lambda x, y: self.loss(client, x, y))

    def loss(self, client, x, y, reduction: str = "mean") -> torch.Tensor:
        """The local objective on a batch. reduction="none" gives its per-sample terms (their mean
        is the objective), which engine=vmap weights to batch clients of different batch sizes."""
        return F.cross_entropy(client.model(x), y, reduction=reduction)

    def upload(self, client, keys: list[str]) -> dict[str, torch.Tensor]:
        state = client.model.state_dict()
        return {k: state[k] for k in keys}

    def server_update(self, global_state, mean_upload) -> dict[str, torch.Tensor]:
        return mean_upload

    def eval_model(self, client):
        return client.model
