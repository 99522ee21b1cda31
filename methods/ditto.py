"""Ditto (Li, Hu, Beirami & Smith, "Ditto: Fair and Robust Federated Learning Through
Personalization", ICML 2021).

Difference from FedAvg: each client also keeps a personal model v_k (client state "v."), trained on
    CE(v_k(x), y) + lam/2 ||v_k - w^t||^2,
anchored at the frozen round-start global w^t, and v_k is what gets evaluated. The global model is
trained and aggregated exactly as in FedAvg; v never touches it.
Schedule: by default (`personal_epochs: null`) v takes one step on every minibatch the global step
uses, which is the official interleaved loop (litian96/ditto trainers_MTL/ditto.py): since the personal
step depends only on v, the batch and w^t, running it after the global steps is the same computation.
An integer instead trains v for that many fresh epochs after the global ones (FL-bench's pers_epoch).
Both models use the run's lr (official: one lr). Never-sampled clients keep their initial v.
"""
from __future__ import annotations

import torch.nn.functional as F

from fedbench.losses import proximal
from fedbench.personal import PersonalModel
from methods import register
from methods.fedavg import FedAvg


@register
class Ditto(PersonalModel, FedAvg):
    name = "ditto"
    ranges = {"lam": "[0, inf)", "personal_epochs": "int [0, inf) or null"}  # checked before any work

    def local_update(self, client) -> float:
        batches = list(client.batches(client.hp.local_epochs))
        loss = client.sgd(lambda x, y: self.loss(client, x, y), batches=batches)  # FedAvg's step
        v, anchor = client.aux_model(self.prefix), client.global_model().state_dict()
        epochs = self.hp.personal_epochs
        client.sgd(lambda x, y: F.cross_entropy(v(x), y) + proximal(v, anchor, self.hp.lam), model=v,
                   batches=batches if epochs is None else None, epochs=epochs)
        client.save_aux(self.prefix, v)
        return loss

