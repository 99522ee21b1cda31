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

from methods import register
from methods.fedavg import FedAvg


def log_prior(counts: torch.Tensor) -> torch.Tensor:
    """log(n_c / max n) per class from class counts, -inf where n_c = 0."""
    return (counts / counts.max()).log().masked_fill(counts == 0, float("-inf"))


@register
class FedRoD(FedAvg):
    name = "fedrod"
    paper = "https://arxiv.org/abs/2107.00778"
    weighting = "samples"  # body + generic head by n_k-weighted FedAvg (PFLlib, FL-bench); both heads use the run's lr
    shared = ("backbone", "head")
    personal = "phead"

    def extend_model(self, model) -> None:
        if not hasattr(model, "phead"):
            model.phead = copy.deepcopy(model.head)  # the personal head starts as the generic one

    def loss(self, client, x, y, reduction: str = "mean") -> torch.Tensor:
        model = client.model
        z = model.backbone(x)
        generic = model.head(z)
        balanced = F.cross_entropy(generic + log_prior(client.class_counts), y, reduction=reduction)
        return balanced + F.cross_entropy(generic.detach() + model.phead(z.detach()), y, reduction=reduction)

    def predict(self, client, x) -> torch.Tensor:
        z = client.model.backbone(x)
        return client.model.head(z) + client.model.phead(z)
