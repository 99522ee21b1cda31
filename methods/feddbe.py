"""FedDBE (Zhang et al., "Eliminating Domain Bias for Federated Learning in Representation Space",
NeurIPS 2023; the authors' code: TsingZ0/DBE, and PFLlib's clientdbe.py/serverdbe.py).

Difference from FedAvg: a Domain Bias Eliminator. Each client keeps a personalized representation
bias m_k (PRBM, module `prbm`: a vector the size of the head's input, never uploaded) added to the
backbone's features before the head, h(phi(x) + m_k), in training and at evaluation; and a mean
regularization (MR) pulls the running mean r of the client's features towards a consensus mean g:
    L = CE(h(phi(x) + m_k), y) + mu * mean_d 1/2 (r_d - g_d)^2,
    r <- (1 - kappa) sg(r) + kappa mean_batch phi(x)      (r restarts at 0 every round)
g is computed once, before the first round (start): every client trains E epochs from the initial
model with plain CE, without m_k, accumulating r; g = the n_k-weighted mean of the clients' r over ALL
clients (consensus); those trained weights are thrown away. The whole model (backbone and head) is
uploaded and averaged as in FedAvg; m_k is trained with the run's optimizer (official: plain SGD at
the lr). Evaluated model: the global model with the client's own m_k. Defaults are the authors' run
script's (kappa 1, mu 50 on Fashion-MNIST), not PFLlib's CLI (kappa 0.1, mu 0: MR off).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from methods import register
from methods.fedavg import FedAvg


class PRBM(nn.Module):
    """The personalized representation bias: one learnable vector added to the features."""

    def __init__(self, dim: int):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(dim))


@register
class FedDBE(FedAvg):
    name = "feddbe"
    paper = "https://arxiv.org/abs/2311.14975"
    ranges = {"kappa": "(0, 1]", "mu": "[0, inf)"}  # checked before any work
    shared = ("backbone", "head")
    personal = "prbm"
    trains = ("backbone", "head", "prbm")
    consensus = {"dbe_target": "dbe_mean"}

    def extend_model(self, model) -> None:
        if not hasattr(model, "prbm"):
            model.prbm = PRBM(model.feature_dim)

    def client_state(self, model, num_clients: int) -> dict[str, torch.Tensor]:
        zeros = torch.zeros(model.feature_dim, device=next(model.parameters()).device)
        return {"dbe_mean": zeros, "dbe_target": zeros.clone()}  # r, and the consensus mean g

    def running_mean(self, client, features: torch.Tensor) -> torch.Tensor:
        """r after this batch, carried to the next step (detached there: the MR gradient reaches the
        backbone through this batch's mean only)."""
        r = (1 - self.hp.kappa) * client.state["dbe_mean"] + self.hp.kappa * client.batch_mean(features)
        client.carry["dbe_mean"] = r.detach()
        return r

    def start(self, cohort) -> None:
        """The initialization period: E epochs of plain CE from the initial model, accumulating r."""
        cohort.state["dbe_mean"].zero_()
        cohort.sgd(self.start_loss, train=("backbone", "head"))

    def start_loss(self, client, x, y, reduction: str = "mean") -> torch.Tensor:
        features = client.model.backbone(x)
        self.running_mean(client, features)
        return F.cross_entropy(client.model.head(features), y, reduction=reduction)

    def local_update(self, cohort):
        cohort.state["dbe_mean"].zero_()  # r restarts every round
        return cohort.sgd(self.loss, train=self.trains)

    def mean_regularization(self, client, features: torch.Tensor) -> torch.Tensor:
        """mu * mean_d 1/2 (r_d - g_d)^2, with r updated by this batch's features."""
        return self.hp.mu * (0.5 * (self.running_mean(client, features) - client.state["dbe_target"]) ** 2).mean()

    def loss(self, client, x, y, reduction: str = "mean") -> torch.Tensor:
        features = client.model.backbone(x)
        ce = F.cross_entropy(client.model.head(features + client.model.prbm.bias), y, reduction=reduction)
        return ce + self.mean_regularization(client, features)

    def predict(self, client, x) -> torch.Tensor:
        return client.model.head(client.model.backbone(x) + client.model.prbm.bias)
