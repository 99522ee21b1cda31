"""FedProx (Li et al., "Federated Optimization in Heterogeneous Networks", MLSys 2020).

Difference from FedAvg: the local objective adds the proximal term (mu/2)·||w - w^t||², where w^t is
the global model the client received at the start of the round (fixed for the whole round; the term
covers parameters only, never BatchNorm buffers). Its gradient mu·(w - w^t) pulls local training back
toward w^t. mu = 0 is FedAvg.
"""
from __future__ import annotations

import torch

from fedbench.toolkit.losses import proximal
from methods import register
from methods.fedavg import FedAvg


@register
class FedProx(FedAvg):
    name = "fedprox"
    newcomer = "evaluate"  # the global model
    paper = "https://arxiv.org/abs/1812.06127"
    weighting = "samples"  # official flearn/trainers/fedbase.py aggregate(): n_k-weighted mean
    ranges = {"mu": "[0, inf)"}  # checked by fedbench.config before any work

    def loss(self, client, x, y, reduction: str = "mean") -> torch.Tensor:
        anchor = dict(client.global_model().named_parameters())  # w^t, frozen
        return super().loss(client, x, y, reduction) + proximal(client.model, anchor, self.hp.mu)
