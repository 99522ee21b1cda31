"""FedAMP (Huang et al., "Personalized Cross-Silo Federated Learning on Non-IID Data", AAAI 2021; no
official code was found: PFLlib's serveramp.py/clientamp.py are the only public reading).

Difference from FedAvg: attentive message passing. There is no global model: each client keeps its own
w_i and uploads it; the server keeps every client's latest model and, for a client about to train,
builds its cloud model u_i = xi_ii w_i + sum_j xi_ij w_j over the other clients j it has models of,
xi_ij = alpha_k exp(-||w_i - w_j||^2 / sigma) / sigma and xi_ii = 1 - sum_j xi_ij (the paper's
attention A'(d) = exp(-d/sigma)/sigma). The client trains from its own w_i with CE +
(lam / (2 alpha_k)) ||w - u_i||^2 (the paper's squared, differentiable proximal term) and evaluates
w_i. Parameters only: BatchNorm statistics stay each client's own.
Differences from PFLlib d832e76, which trains as Local (its proximal term has no gradient: built from
p.data) and builds u_i from this round's uploads only: here the term has its gradient, and u_i is built
from the latest model of every client the server has heard from. When the off-diagonal weights sum
past 1 (the paper assumes alpha_k (N - 1) / sigma <= 1; at PFLlib's defaults on digits they summed to
15.7), they are scaled to sum to 1 and xi_ii = 0, so u_i stays a convex combination (not an
extrapolation). A client before any other model exists trains without the term.
"""
from __future__ import annotations

import torch

from fedbench.toolkit.flat import flat_init, flatten, keep_latest, shapes, unflatten
from fedbench.toolkit.losses import proximal
from methods import register
from methods.fedavg import FedAvg

CLOUD = "amp_cloud."


def attention(w: torch.Tensor, others: torch.Tensor, alpha: float, sigma: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(xi_ii, xi_ij over `others`) for a model w (P,) and other models (M, P)."""
    xi = alpha * torch.exp(-((others - w) ** 2).sum(1) / sigma) / sigma
    total = xi.sum()
    if total > 1:
        return torch.zeros((), dtype=w.dtype), xi / total
    return 1 - total, xi


@register
class FedAMP(FedAvg):
    name = "fedamp"
    paper = "https://arxiv.org/abs/2007.03797"
    shared = "none"
    personal = "all"
    uploads = ("all",)
    ranges = {"lam": "[0, inf)", "alpha_k": "(0, inf)", "sigma": "(0, inf)"}
    per_minibatch = "one SGD step on CE + (lam / 2 alpha_k) ||w - u_i||^2, u_i its cloud model"
    newcomer = "welcome"  # its cloud model from its initial one by the attention, then its local update
    welcomes = "cloud model by the attention from its initial model, then its local update"

    def extend_model(self, model) -> None:
        self.params = shapes(model)

    def client_state(self, model, num_clients: int) -> dict[str, torch.Tensor]:
        state = {CLOUD + k: p.detach().clone() for k, p in model.named_parameters()}
        return state | {"amp_has": torch.zeros((), device=next(model.parameters()).device)}

    def server_state(self, model, num_clients: int) -> dict[str, torch.Tensor]:
        """Every client's latest model (the common initial one until it uploads), and who has uploaded."""
        init = flat_init(model)
        return {"amp_models": init.unsqueeze(0).repeat(num_clients, 1),
                "amp_seen": torch.zeros(num_clients, device=init.device)}

    def download(self, server, ids, phase: str) -> dict[str, torch.Tensor]:
        """Each client that trains gets its cloud model u_i (and whether it has one)."""
        if phase != "train":
            return {}
        models, seen = server.state["amp_models"], server.state["amp_seen"] > 0
        clouds, has = [], []
        for i in ids:
            others = seen.clone()
            others[i] = False
            self_w, xi = attention(models[i], models[others], float(self.hp.alpha_k), float(self.hp.sigma))
            clouds.append(self_w * models[i] + xi @ models[others])
            has.append(float(others.any()))
        u = torch.stack(clouds)
        return {CLOUD + k: v for k, v in unflatten(u, self.params).items()} | {"amp_has": torch.tensor(has, dtype=u.dtype)}

    def welcome(self, cohort, server) -> None:
        """A newcomer's cloud model by the paper's attention between its own model (the initial one) and
        the participants' latest models; it starts from that cloud model and takes its local update
        (unseen_epochs) with the proximal pull toward it. The paper is silent on newcomers: this is its
        rule applied to a client whose model never trained."""
        models, seen = server.state["amp_models"], server.state["amp_seen"] > 0
        own = flatten(cohort.model.tensors(params_only=True), self.params)
        clouds = []
        for w in own:
            self_w, xi = attention(w, models[seen], float(self.hp.alpha_k), float(self.hp.sigma))
            clouds.append(self_w * w + xi @ models[seen])
        cloud = unflatten(torch.stack(clouds), self.params)
        with torch.no_grad():
            for k, v in cloud.items():
                cohort.state[CLOUD + k].copy_(v)
                cohort.state["model." + k].copy_(v)
            cohort.state["amp_has"].fill_(float(seen.any()))
        self.local_update(cohort)

    def loss(self, client, x, y, reduction: str = "mean") -> torch.Tensor:
        cloud = {k: client.state[CLOUD + k] for k, _ in self.params}
        coef = client.state["amp_has"] * float(self.hp.lam) / float(self.hp.alpha_k)
        return super().loss(client, x, y, reduction) + proximal(client.model, cloud, coef)

    def aggregate(self, server, uploads) -> None:
        """Keep each uploading client's latest model."""
        if not len(uploads.ids):
            return
        keep_latest(server, "amp_models", uploads, self.params)
        server.state["amp_seen"][torch.as_tensor(uploads.ids)] = 1.0
