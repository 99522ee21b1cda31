"""FedRep (Collins et al., "Exploiting Shared Representations for Personalized Federated Learning",
ICML 2021).

Difference from FedAvg: the body is shared and the head stays on the client (as in FedPer), and local
training alternates instead of updating both jointly: first `head_epochs` epochs of the head alone
(body frozen), then `body_epochs` epochs of the body alone (head frozen). Freezing is requires_grad
(client.sgd), so momentum and weight decay cannot move the frozen part. As in the official
models/Update.py, weight decay covers weights but not biases; it is written as the L2 term
(wd/2)·||W||² of the trained weights, whose gradient wd·W is exactly what SGD's weight_decay adds.
"""
from __future__ import annotations

import torch

from methods import register
from methods.fedavg import FedAvg


@register
class FedRep(FedAvg):
    name = "fedrep"
    ranges = {"head_epochs": "int [0, inf)", "body_epochs": "int [0, inf) or null", "lr": "(0, inf) or null",
              "momentum": "[0, 1) or null", "weight_decay": "[0, inf) or null"}  # checked before any work
    shared = "backbone"
    personal = "head"

    def local_update(self, client) -> float:
        """Head phase, then body phase; returns the last phase's mean loss."""
        loss = float("nan")
        for part, epochs in (("head", self.hp.head_epochs), ("backbone", self.hp.body_epochs)):
            if epochs != 0:  # 0 skips the phase (None = the run's local_epochs)
                loss = client.sgd(lambda x, y: self.loss(client, x, y), client.model.parameters_of(part),
                                  epochs, lr=self.hp.lr, momentum=self.hp.momentum, weight_decay=0.0)
        return loss

    def loss(self, client, x, y) -> torch.Tensor:
        ce = super().loss(client, x, y)
        if not self.hp.weight_decay:
            return ce
        weights = [p.pow(2).sum() for n, p in client.model.named_parameters()
                   if p.requires_grad and not n.endswith("bias")]
        return ce + 0.5 * self.hp.weight_decay * torch.stack(weights).sum()
