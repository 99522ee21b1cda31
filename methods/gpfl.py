"""GPFL (Zhang et al., "GPFL: Simultaneously Learning Global and Personalized Feature Information for
Personalized Federated Learning", ICCV 2023; the authors' code: TsingZ0/GPFL, the same in PFLlib's
clientgpfl.py/servergpfl.py).

Difference from FedAvg: after the backbone phi, a Conditional Valve (CoV, module `cov`) makes two
versions of each feature vector, FiLM-modulated by a per-client condition c:
CoV(z, c) = ReLU(z * (1 + gamma(c)) + beta(c)), gamma, beta = LN(ReLU(Linear(c))). The personalized
one, CoV(z, p_k), feeds the client's own head h (kept, never uploaded); the global one, CoV(z, g), is
trained against Global Category Embeddings (GCE, module `gce`: one vector per class) with a cosine
softmax and pulled towards the round's frozen global embedding of its label:
    L = CE(h(CoV(z, p_k)), y) + CE(cos(CoV(z, g), E), y) + lam * ||CoV(z, g) - E_frozen[y]||_F
      + mu/2 (||E||^2 + ||CoV||^2)          (the official optimizers' weight decay mu on GCE and CoV)
with the norm over the whole batch, unsquared, as the official code. The conditions are rebuilt
whenever the global GCE arrives, from the client's own GCE before it is replaced (receive):
g = the mean of its class embeddings, p_k = their mean weighted by the client's train label frequencies;
both are 0 until then. The backbone, GCE and CoV are uploaded (n_k-weighted means) and sent to every
client. Evaluated model: h(CoV(phi(x), p_k)). Defaults are the authors' run script's for the CNN
(lam 0.01, mu 0.1), not PFLlib's CLI (lam 1, mu 0). Deviation: a client that has never trained rebuilds
its conditions from the current global GCE (official: from the one it last received).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from methods import register
from methods.fedavg import FedAvg


class ConditionalValve(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.gamma = nn.Sequential(nn.Linear(dim, dim), nn.ReLU(), nn.LayerNorm(dim))
        self.beta = nn.Sequential(nn.Linear(dim, dim), nn.ReLU(), nn.LayerNorm(dim))

    def forward(self, z: torch.Tensor, condition: torch.Tensor) -> torch.Tensor:
        return F.relu(z * (1 + self.gamma(condition)) + self.beta(condition))


@register
class GPFL(FedAvg):
    name = "gpfl"
    paper = "https://arxiv.org/abs/2308.10279"
    ranges = {"lam": "[0, inf)", "mu": "[0, inf)"}  # checked before any work
    shared = ("backbone", "gce", "cov")
    personal = ("head", "gce")  # the head; and the client's own GCE, whose embeddings build its conditions
    trains = ("backbone", "head", "gce", "cov")
    receivers = "all"           # every client gets the global GCE (and rebuilds its conditions from its own)

    def extend_model(self, model) -> None:
        if not hasattr(model, "gce"):
            model.gce = nn.Embedding(model.num_classes, model.feature_dim)
            model.cov = ConditionalValve(model.feature_dim)

    def client_state(self, model, num_clients: int) -> dict[str, torch.Tensor]:
        zeros = torch.zeros(model.feature_dim, device=next(model.parameters()).device)
        return {"gpfl_g": zeros, "gpfl_p": zeros.clone()}

    @torch.no_grad()
    def receive(self, cohort) -> None:
        own = cohort.model.tensors()
        embeddings = own["gce.weight"]                                          # (m, C, D)
        prior = cohort.state["class_counts"] / cohort.state["class_counts"].sum(1, keepdim=True).clamp_min(1)
        cohort.state["gpfl_g"].copy_(embeddings.mean(1))
        cohort.state["gpfl_p"].copy_(torch.einsum("mc,mcd->md", prior, embeddings))
        embeddings.copy_(cohort.global_model().gce.weight.expand_as(embeddings))

    def loss(self, client, x, y, reduction: str = "mean") -> torch.Tensor:
        model, frozen = client.model, client.global_model().gce.weight.detach()   # E_frozen: the round's global GCE
        z = model.backbone(x)
        personal = model.head(model.cov(z, client.state["gpfl_p"]))
        generic = model.cov(z, client.state["gpfl_g"])
        cosine = F.linear(F.normalize(generic), F.normalize(model.gce.weight))
        gap = client.batch_sum(((generic - frozen[y]) ** 2).sum(1)).sqrt()     # ||F_G - E[y]||_F over the batch
        decay = sum(p.pow(2).sum() for m in (model.gce, model.cov) for p in m.parameters())
        per_client = self.hp.lam * gap + 0.5 * self.hp.mu * decay
        return (F.cross_entropy(personal, y, reduction=reduction) + F.cross_entropy(cosine, y, reduction=reduction)
                + per_client)

    def predict(self, client, x) -> torch.Tensor:
        model = client.model
        return model.head(model.cov(model.backbone(x), client.state["gpfl_p"]))
