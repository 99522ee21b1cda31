"""Ditto (Li, Hu, Beirami & Smith, "Ditto: Fair and Robust Federated Learning Through
Personalization", ICML 2021).

Difference from FedAvg: each client also keeps a personal model v_k (its personal model), trained on
    CE(v_k(x), y) + lam/2 ||v_k - w^t||^2,
anchored at the frozen round-start global w^t, and v_k is what gets evaluated. The global model is
trained and aggregated exactly as in FedAvg; v never touches it.
Schedule: by default (`personal_epochs: null`) v takes one step on every minibatch the global step
uses, which is the official interleaved loop (litian96/ditto trainers_MTL/ditto.py): since the personal
step depends only on v, the batch and w^t, running it after the global steps is the same computation.
An integer instead trains v for that many fresh epochs after the global ones (FL-bench's pers_epoch).
Both models use the run's optimizer (official: one lr). Never-sampled clients keep their initial v.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from fedbench.toolkit.losses import proximal
from methods import register
from methods.fedavg import FedAvg


@register
class Ditto(FedAvg):
    name = "ditto"
    newcomer = "personal"  # the personal model v starts as the global w and trains with Ditto's proximal objective
    paper = "https://arxiv.org/abs/2012.04221"
    weighting = "samples"  # n_k-weighted mean (official: clients sampled with prob. ~ n_k, then a plain mean)
    ranges = {"lam": "[0, inf)", "personal_epochs": "int [0, inf) or null"}  # checked before any work
    personal_model = True
    evaluates = "personal_model"
    per_minibatch = "one step of the global model; then, on the same minibatches, one of the personal model"

    def local_update(self, cohort):
        batches = cohort.batches()
        loss = cohort.sgd(self.loss, batches=batches)  # FedAvg's steps
        epochs = self.hp.personal_epochs
        cohort.sgd(self.personal_loss, model=cohort.personal_model, batches=batches if epochs is None else None,
                   epochs=epochs)
        return loss

    def personal_loss(self, client, x, y, reduction: str = "mean") -> torch.Tensor:
        v, anchor = client.personal_model, dict(client.global_model().named_parameters())  # w^t, frozen
        return F.cross_entropy(v(x), y, reduction=reduction) + proximal(v, anchor, self.hp.lam)
