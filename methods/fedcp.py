"""FedCP (Zhang et al., "FedCP: Separating Feature Information for Personalized Federated Learning via
Conditional Policy", KDD 2023; the authors' code: TsingZ0/FedCP, the same in PFLlib's clientcp.py and
servercp.py).

Difference from FedAvg: a Conditional Policy Network (CPN, module `cpn`: Linear(D, 2D), LayerNorm, ReLU,
then a Gumbel softmax, tau 1, over each feature's pair) splits every feature vector z = phi(x) into a
personalized part z*r, fed to the client's own head h_p (kept, never uploaded), and a global part z*s
(r + s = 1), fed to a frozen copy of the global head h_g (module `ghead`); the CPN reads z times the
client's context c (the class sums of h_p's weight, L2-normalized):
    L = CE(h_p(z*r) + h_g(z*s), y) + lam * MMD^2(phi(x), phi_g(x))
with phi_g the round's frozen global backbone and the official MMD (RBF kernels, bandwidths 10, 15, 20,
50, every pair of the batch). The backbone, the CPN and h_p train; h_g does not (the gradient passes
through it). After training the client mixes h_g <- (h_p + h_g) / 2, and uploads the backbone, the
mixed h_g and the CPN (n_k-weighted means). The backbone goes to every client; the global h_g and CPN
only to the clients that trained this round, which then recompute c from h_p (receive); the others keep
theirs. c starts as the same uniform random vector on every client. Evaluated model: h_p(z*r) + h_g(z*s)
with the client's own h_p, h_g, CPN and c, Gumbel noise included (as the official code). Defaults: the
authors' run script (lam 5), not PFLlib's CLI (lam 1). Deviation: a client's first local update starts
from the current global h_g and CPN (official: from the initial ones it was built with), which only
differs under partial participation.
Not vectorizable: the Gumbel softmax draws fresh noise in every forward pass, which a vmapped call
cannot draw per client as the sequential engine does (engine=sequential).
"""
from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from methods import register
from methods.fedavg import FedAvg

BANDWIDTHS = (10.0, 15.0, 20.0, 50.0)


class ConditionalPolicy(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.fc = nn.Sequential(nn.Linear(dim, 2 * dim), nn.LayerNorm(2 * dim), nn.ReLU())

    def forward(self, gate_in: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(r, s): per feature, a soft split of 1 (Gumbel softmax over the pair)."""
        pair = F.gumbel_softmax(self.fc(gate_in).view(len(gate_in), 2, -1), tau=1.0, hard=False, dim=1)
        return pair[:, 0], pair[:, 1]


def mmd2(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """The biased squared MMD between two batches of rows with the sum of RBF kernels (every pair, i = j
    included), as the official code."""
    def kernel(u, v):
        d = torch.cdist(u, v).pow(2)
        return sum(torch.exp(-0.5 * d / bw) for bw in BANDWIDTHS)

    return (kernel(a, a) + kernel(b, b) - 2 * kernel(a, b)).mean()


@register
class FedCP(FedAvg):
    name = "fedcp"
    paper = "https://arxiv.org/abs/2307.01217"
    per_minibatch = "one SGD step (a forward of the global backbone for the MMD)"
    ranges = {"lam": "[0, inf)"}  # checked before any work
    shared = ("backbone", "ghead", "cpn")
    personal = ("head", "ghead", "cpn")  # h_p; and the h_g and CPN last received, refreshed only when sampled
    trains = ("backbone", "head", "cpn")
    receivers = "sampled"
    vectorizable = False
    why_not_vectorizable = ("its Gumbel softmax draws fresh noise in every forward pass, which a vmapped call "
                            "cannot draw per client as the sequential engine does")

    def extend_model(self, model) -> None:
        if not hasattr(model, "cpn"):
            model.ghead = copy.deepcopy(model.head).requires_grad_(False)
            model.cpn = ConditionalPolicy(model.feature_dim)

    def client_state(self, model, num_clients: int) -> dict[str, torch.Tensor]:
        """c: one uniform random vector for every client at the start (drawn with the model's init)."""
        return {"cp_context": torch.rand(model.feature_dim).to(next(model.parameters()).device)}

    def forward(self, client, z: torch.Tensor) -> torch.Tensor:
        model = client.model
        r, s = model.cpn(z * F.normalize(client.state["cp_context"], dim=0))
        return model.head(z * r) + model.ghead(z * s)

    def loss(self, client, x, y, reduction: str = "mean") -> torch.Tensor:
        z = client.model.backbone(x)
        ce = F.cross_entropy(self.forward(client, z), y, reduction=reduction)
        if self.hp.lam == 0:
            return ce
        with torch.no_grad():
            z_global = client.global_model().backbone(x)
        return ce + self.hp.lam * mmd2(z, z_global)

    def local_update(self, cohort):
        loss = cohort.sgd(self.loss, train=self.trains)
        with torch.no_grad():  # the uploaded global head: half the client's head, half the one it had
            own = cohort.model.tensors()
            for k, t in own.items():
                if k.startswith("ghead."):
                    t.copy_(0.5 * own["head." + k.removeprefix("ghead.")] + 0.5 * t)
        return loss

    @torch.no_grad()
    def receive(self, cohort) -> None:
        """The aggregated h_g and CPN replace the client's; its context is rebuilt from its head."""
        own, glob = cohort.model.tensors(), dict(cohort.global_model().state_dict())
        for k, t in own.items():
            if k.startswith(("ghead.", "cpn.")):
                t.copy_(glob[k].expand_as(t))
        weights = [own[f"head.{n}"] for n, p in cohort.model.module.head.named_parameters() if n.endswith("weight")]
        product = weights[-1]
        for w in weights[-2::-1]:
            product = product @ w  # deeper heads: the product of their weight matrices (C x D)
        cohort.state["cp_context"].copy_(product.sum(1))

    def predict(self, client, x) -> torch.Tensor:
        return self.forward(client, client.model.backbone(x))
