"""FedRep (Collins et al., "Exploiting Shared Representations for Personalized Federated Learning",
ICML 2021).

Difference from FedAvg: the body is shared and the head stays on the client (as in FedPer), and local
training alternates instead of updating both jointly: first `head_epochs` epochs of the head alone
(body frozen), then `body_epochs` epochs of the body alone (head frozen). Freezing is requires_grad
(client.sgd), so momentum and weight decay cannot move the frozen part.
Optimizer: the run's, like every method (weight decay as SGD applies it, to every trained tensor).
`method.official=true` trains with the official models/Update.py optimizer instead (lr 0.01, momentum
0.5, weight decay 1e-4 on weights but not biases; the latter written as the L2 term (wd/2)·||W||² of
the trained weights, whose gradient wd·W is exactly what SGD's weight_decay adds).
"""
from __future__ import annotations

import numpy as np
import torch

from methods import register
from methods.fedavg import FedAvg


@register
class FedRep(FedAvg):
    name = "fedrep"
    paper = "https://arxiv.org/abs/2102.07078"
    per_minibatch = "head_epochs passes of head steps first, then one backbone step per minibatch"
    weighting = "uniform"  # official main_fedrep.py weights uploads by `lens`, all 1 on CIFAR (n_k on FEMNIST/Sent140)
    ranges = {"head_epochs": "int [0, inf)", "body_epochs": "int [0, inf) or null"}  # checked before any work
    shared = "backbone"
    personal = "head"

    def __init__(self, hp, model):
        super().__init__(hp, model)
        self.weights_only_decay = hp.official  # official Update.py: no decay on biases

    def local_update(self, cohort):
        """Head phase, then body phase; returns the last phase's mean loss."""
        loss = np.full(cohort.size, np.nan)
        decay = 0.0 if self.weights_only_decay else None  # None: the run's weight decay, in SGD
        for part, epochs in (("head", self.hp.head_epochs), ("backbone", self.hp.body_epochs)):
            if epochs != 0:  # 0 skips the phase (None = the run's local_epochs)
                loss = cohort.sgd(self.loss, train=part, epochs=epochs, weight_decay=decay)
        return loss

    def loss(self, client, x, y, reduction: str = "mean") -> torch.Tensor:
        ce = super().loss(client, x, y, reduction)
        wd = client.training.weight_decay
        if not (self.weights_only_decay and wd):
            return ce
        weights = [p.pow(2).sum() for n, p in client.model.named_parameters()
                   if n in client.trained and not n.endswith("bias")]
        return ce + 0.5 * wd * torch.stack(weights).sum()
