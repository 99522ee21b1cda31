"""FedRoD (Chen & Chao, "On Bridging Generic and Personalized Federated Learning for Image
Classification", ICLR 2022).

Difference from FedAvg: the model gets a second, personal head p (module `phead`, a copy of the
generic head at init) that never leaves the client, and the local objective has two parts per batch:
    generic (body f + head g, shared, n-weighted FedAvg): balanced softmax
        CE(g(z) + log n_{k,c}, y),  z = f(x), n_{k,c} = class counts of the client's TRAIN split,
    personal (p only): CE(g(z).detach() + p(z.detach()), y).
The personalized prediction is g(z) + p(z) ("an adaptive module on top of the generic predictor").
The authors released no code; this is the PFLlib variant (clientrod.py): p sees a detached z and a
detached g, so the body and generic head get gradients from the balanced loss only. (FL-bench instead
trains p jointly on the undetached z and predicts with p(z) alone.) The log prior is taken relative
to the largest class (log n_c - log max n: the same loss, softmax is shift invariant) and classes the
client lacks are masked to -inf explicitly; with uniform counts the prior is exactly 0, plain CE.
"""
from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from fedbench.models import SplitModel
from methods import register
from methods.fedavg import FedAvg


class SumHeads(nn.Module):
    """g(z) + p(z): the personalized predictor on top of the generic one."""

    def __init__(self, generic: nn.Module, personal: nn.Module):
        super().__init__()
        self.generic, self.personal = generic, personal

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.generic(z) + self.personal(z)


def log_prior(y: torch.Tensor, num_classes: int) -> torch.Tensor:
    """log(n_c / max n) per class from labels `y`, -inf where n_c = 0."""
    counts = torch.bincount(y, minlength=num_classes).float()
    return (counts / counts.max()).log().masked_fill(counts == 0, float("-inf"))


@register
class FedRoD(FedAvg):
    name = "fedrod"
    shared = ("backbone", "head")
    personal = "phead"

    def __init__(self, hp, model):
        super().__init__(hp, model)
        model.phead = copy.deepcopy(model.head)  # added before the federation reads the model's keys
        self.predictor = SplitModel(model.backbone, SumHeads(model.head, model.phead))  # shares modules
        self._priors: dict[int, torch.Tensor] = {}  # per client, from its train split

    def prior(self, client) -> torch.Tensor:
        if client.id not in self._priors:
            self._priors[client.id] = log_prior(client.data.y[client.split.train], client.data.num_classes)
        return self._priors[client.id]

    def loss(self, client, x, y) -> torch.Tensor:
        model = client.model
        z = model.backbone(x)
        generic = model.head(z)
        balanced = F.cross_entropy(generic + self.prior(client), y)
        return balanced + F.cross_entropy(generic.detach() + model.phead(z.detach()), y)

    def eval_model(self, client):
        return self.predictor
