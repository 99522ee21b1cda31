"""FedProto (Tan et al., "FedProto: Federated Prototype Learning across Heterogeneous Clients", AAAI
2022; the authors' code: yuetan031/FedProto).

Difference from FedAvg: clients exchange class prototypes, not parameters. Each keeps its whole model;
its local objective adds lam * MSE(z, P[y]) pulling each sample's feature z = backbone(x) toward the
global prototype of its class (a class without one adds nothing). During the last local epoch it
collects its class means of z (its prototypes, as the official lib/update.py does from the last
epoch's features) and uploads them with its class counts. The server's global prototype of a class is
the unweighted mean over the clients that hold it this round (both codes; the paper writes a
count-weighted one). Prediction, as in the official evaluation: the nearest global prototype (mean
squared distance) among the client's own classes (classes without a prototype excluded); the head
trains but does not predict.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from methods import register
from methods.fedavg import FedAvg


def num_classes(model) -> int:
    return [m for m in model.head.modules() if isinstance(m, nn.Linear)][-1].out_features


def alignment(z: torch.Tensor, y: torch.Tensor, protos: torch.Tensor, has: torch.Tensor) -> torch.Tensor:
    """Per sample, the mean over features of (z - P[y])^2; 0 (and no gradient) where y has no prototype."""
    target = torch.where(has[y].view(-1, 1) > 0, protos[y], z.detach())
    return ((z - target) ** 2).mean(1)


def nearest(z: torch.Tensor, protos: torch.Tensor, usable: torch.Tensor) -> torch.Tensor:
    """Logits of the nearest-prototype rule: minus the mean squared distance to each prototype, the
    unusable ones pushed 1e4 lower (finite, so a test loss stays a number)."""
    dist = ((z.unsqueeze(1) - protos.unsqueeze(0)) ** 2).mean(2)
    return torch.where(usable.view(1, -1) > 0, -dist, -dist - 1e4)


@register
class FedProto(FedAvg):
    name = "fedproto"
    # newcomer: its model is all local: trained from the initial model with the global prototypes'
    # alignment, as long as a participant was
    newcomer = "scratch"
    paper = "https://arxiv.org/abs/2105.00243"
    shared = "none"
    personal = "all"
    uploads = ("proto", "proto_n")
    ranges = {"lam": "[0, inf)"}
    per_minibatch = "one SGD step on CE + lam x the distance of its features to their class's global prototype"

    def client_state(self, model, num_clients: int) -> dict[str, torch.Tensor]:
        c, d, device = num_classes(model), model.feature_dim, next(model.parameters()).device
        return {"proto": torch.zeros(c, d, device=device), "proto_n": torch.zeros(c, device=device)}

    def server_state(self, model, num_clients: int) -> dict[str, torch.Tensor]:
        c, d, device = num_classes(model), model.feature_dim, next(model.parameters()).device
        return {"global_proto": torch.zeros(c, d, device=device), "global_has": torch.zeros(c, device=device)}

    def download(self, server, ids, phase: str) -> dict[str, torch.Tensor]:
        """The global prototypes, to every client that trains or is evaluated."""
        return {k: server.state[k].unsqueeze(0).expand(len(ids), *server.state[k].shape).clone()
                for k in ("global_proto", "global_has")}

    def loss(self, client, x, y, reduction: str = "mean") -> torch.Tensor:
        z = client.model.backbone(x)
        ce = F.cross_entropy(client.model.head(z), y, reduction="none")
        term = ce + self.hp.lam * alignment(z, y, client.state["global_proto"], client.state["global_has"])
        return term if reduction == "none" else term.mean()

    def collecting_loss(self, client, x, y, reduction: str = "mean") -> torch.Tensor:
        """The loss, collecting this batch's per-class sums of z into the client's prototype state."""
        z = client.model.backbone(x)
        onehot = (y.view(-1, 1) == torch.arange(client.state["proto_n"].shape[0], device=y.device)).to(z.dtype)
        client.carry["proto"] = client.state["proto"] + client.batch_sum(onehot.unsqueeze(2) * z.detach().unsqueeze(1))
        client.carry["proto_n"] = client.state["proto_n"] + client.batch_sum(onehot)
        ce = F.cross_entropy(client.model.head(z), y, reduction="none")
        term = ce + self.hp.lam * alignment(z, y, client.state["global_proto"], client.state["global_has"])
        return term if reduction == "none" else term.mean()

    def local_update(self, cohort) -> np.ndarray:
        epochs = cohort.training.local_epochs
        if epochs > 1:
            cohort.sgd(self.loss, epochs=epochs - 1)
        cohort.state["proto"].zero_()
        cohort.state["proto_n"].zero_()
        loss = cohort.sgd(self.collecting_loss, epochs=1)   # the last epoch's features make the prototypes
        cohort.state["proto"].div_(cohort.state["proto_n"].clamp(min=1).unsqueeze(-1))
        return loss

    def aggregate(self, server, uploads) -> None:
        has = (uploads.tensors["proto_n"] > 0).to(uploads.tensors["proto"].dtype)        # (m, C)
        count = has.sum(0)
        server.state["global_proto"] = (has.unsqueeze(-1) * uploads.tensors["proto"]).sum(0) / \
            count.clamp(min=1).unsqueeze(-1)
        server.state["global_has"] = (count > 0).to(count.dtype)

    def predict(self, client, x) -> torch.Tensor:
        usable = client.state["global_has"] * (client.class_counts > 0).to(client.state["global_has"].dtype)
        return nearest(client.model.backbone(x), client.state["global_proto"], usable)
