"""pFedHN (Shamsian, Navon, Fetaya & Chechik, "Personalized Federated Learning using Hypernetworks",
ICML 2021; the authors' code: AvivSham/pFedHN).

Difference from FedAvg: the server holds a hypernetwork h (an embedding v_i per client, an MLP of
`n_hidden` hidden layers of `hidden` units, one linear output head per tensor of the target model) and
generates each client's whole model theta_i = h(v_i; phi); the hypernetwork never leaves the server.
A client trains the generated model (its local epochs; method.official=true: the authors' 50 inner
steps with their optimizer) and uploads delta_i = theta_i - theta~_i (start minus end); the server
takes an SGD step on phi (embeddings included) along the vector-Jacobian product
(d theta_i / d phi)^T delta_i, clipped at norm `clip`, with momentum and weight decay (official
values). The evaluated model of every client is h(v_i; phi), without fine-tuning. Embedding size:
int(1 + N/4) when embed_dim is -1 (official).
Deviation: the official code samples ONE client per step; a round here trains its sampled clients
from the same phi, and the server takes one step on the mean of their products (with one client a
round, join_ratio = 1/N, exactly the official step). One step per client within a round, each on a
product from the round-start phi, overshot here (digits, all 20 clients a round: 15% after 100
rounds, against 96% for the mean). The official inner loop draws each batch with replacement, here
the data stream's order.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from fedbench.errors import ConfigError
from fedbench.toolkit.flat import flatten, shapes, unflatten
from methods import register
from methods.fedavg import FedAvg


MAX_WEIGHTS = 200_000_000   # the output heads hold hidden x |theta| weights: 800 MB in float32


class HyperNetwork(nn.Module):
    def __init__(self, num_clients: int, embed_dim: int, hidden: int, n_hidden: int, layout: list):
        super().__init__()
        self.embeddings = nn.Embedding(num_clients, embed_dim)
        layers = [nn.Linear(embed_dim, hidden)]
        for _ in range(n_hidden):
            layers += [nn.ReLU(), nn.Linear(hidden, hidden)]
        self.mlp = nn.Sequential(*layers)
        self.heads = nn.ModuleList(nn.Linear(hidden, int(torch.Size(shape).numel())) for _, shape in layout)

    def forward(self, ids: torch.Tensor | None = None, embedding: torch.Tensor | None = None) -> torch.Tensor:
        """The generated models of clients `ids` (or of embeddings (n, embed_dim)), flat: (n, P)."""
        features = self.mlp(self.embeddings(ids) if embedding is None else embedding)
        return torch.cat([head(features) for head in self.heads], dim=1)


@register
class PFedHN(FedAvg):
    name = "pfedhn"
    paper = "https://arxiv.org/abs/2103.04628"
    shared = "none"
    personal = "none"
    uploads = ("hn_delta",)
    ranges = {"hn_lr": "(0, inf)", "hn_momentum": "[0, 1)", "hn_wd": "[0, inf)", "clip": "(0, inf)",
              "embed_dim": "int [-1, inf)", "hidden": "int [1, inf)", "n_hidden": "int [0, inf)",
              "inner_steps": "int [1, inf)"}
    official_schedule = "inner_steps (50) minibatches per client update, the authors' inner optimizer"
    per_minibatch = "one SGD step of the generated model"
    newcomer = "welcome"  # a new embedding learned with the hypernetwork frozen (the authors' novel clients)
    welcomes = "a new embedding learned, the hypernetwork frozen"

    def client_state(self, model, num_clients: int) -> dict[str, torch.Tensor]:
        return {"hn_delta": torch.zeros(sum(p.numel() for p in model.parameters()), device=next(model.parameters()).device)}

    def server_state(self, model, num_clients: int) -> dict[str, torch.Tensor]:
        """The hypernetwork's parameters (initialized from the run's init stream) and their momentum."""
        self.params = shapes(model)
        size = int(self.hp.hidden) * sum(p.numel() for p in model.parameters())
        if size > MAX_WEIGHTS:
            raise ConfigError(f"method=pfedhn: its hypernetwork's output heads would hold {size:,} weights (method.hidden "
                              f"x the model's parameters), over {MAX_WEIGHTS:,}; use a smaller model (the paper's "
                              "is a small CNN) or a smaller method.hidden")
        dim = int(self.hp.embed_dim) if int(self.hp.embed_dim) > 0 else int(1 + num_clients / 4)
        self.hn = HyperNetwork(num_clients, dim, int(self.hp.hidden), int(self.hp.n_hidden), self.params)
        self.hn.to(next(model.parameters()).device).requires_grad_(False)
        state = {f"hn.{k}": v.detach().clone() for k, v in self.hn.named_parameters()}
        return state | {f"hn_momentum.{k}": torch.zeros_like(v) for k, v in self.hn.named_parameters()}

    def generate(self, server, ids) -> torch.Tensor:
        hn = {k.removeprefix("hn."): v for k, v in server.state.items() if k.startswith("hn.")}
        index = torch.as_tensor(np.asarray(ids), device=next(iter(hn.values())).device)
        return functional_call(self.hn, hn, (index,))

    def download(self, server, ids, phase: str) -> dict[str, torch.Tensor]:
        """Each client's generated model, to train or to be evaluated."""
        with torch.no_grad():
            return {f"model.{k}": v for k, v in unflatten(self.generate(server, ids), self.params).items()}

    def local_update(self, cohort) -> np.ndarray:
        start = flatten(cohort.model.tensors(params_only=True), self.params).clone()
        batches = cohort.minibatches(int(self.hp.inner_steps)) if self.hp.official else None
        loss = cohort.sgd(self.loss, batches=batches)
        cohort.state["hn_delta"].copy_(start - flatten(cohort.model.tensors(params_only=True), self.params))
        return loss

    def welcome(self, cohort, server) -> None:
        """The authors' novel clients: a new embedding per newcomer, learned on its train split for
        unseen_epochs (plain gradient steps at the final lr) with the hypernetwork frozen; its model is
        the hypernetwork's output for it. The paper does not give the new embedding's start: here the
        participants' mean embedding (no draw)."""
        self.frozen = {k.removeprefix("hn."): v for k, v in server.state.items() if k.startswith("hn.")}
        start = self.frozen["embeddings.weight"].mean(0)
        cohort.state["hn_v"] = start.unsqueeze(0).expand(cohort.size, -1).clone()
        cohort.sgd(self.embedding_loss, train="none", state_steps={"hn_v": (cohort.lr, -np.inf, np.inf)})
        with torch.no_grad():
            theta = functional_call(self.hn, self.frozen, (), {"embedding": cohort.state["hn_v"]})
            for k, v in unflatten(theta, self.params).items():
                cohort.state["model." + k].copy_(v)

    def embedding_loss(self, client, x, y, reduction: str = "mean") -> torch.Tensor:
        """CE of the model the frozen hypernetwork generates from the client's embedding hn_v."""
        theta = functional_call(self.hn, self.frozen, (), {"embedding": client.state["hn_v"].unsqueeze(0)})
        weights = {k: v[0] for k, v in unflatten(theta, self.params).items()}
        return F.cross_entropy(functional_call(client.model, weights, (x,)), y, reduction=reduction)

    def aggregate(self, server, uploads) -> None:
        """One hypernetwork step on the mean of the uploading clients' vector-Jacobian products."""
        if not len(uploads.ids):
            return
        hn = {k: v.clone().requires_grad_() for k, v in server.state.items() if k.startswith("hn.")}
        deltas = uploads.tensors["hn_delta"]
        theta = functional_call(self.hn, {k.removeprefix("hn."): v for k, v in hn.items()},
                                (torch.as_tensor(uploads.ids, device=deltas.device),))
        grads = torch.autograd.grad(theta, list(hn.values()), grad_outputs=deltas / len(uploads.ids), allow_unused=True)
        grads = [torch.zeros_like(p) if g is None else g for p, g in zip(hn.values(), grads)]
        norm = torch.sqrt(sum((g ** 2).sum() for g in grads))
        scale = min(1.0, float(self.hp.clip) / (float(norm) + 1e-6))
        for (k, p), g in zip(hn.items(), grads):   # SGD with momentum and weight decay (torch.optim.SGD's)
            step = scale * g + float(self.hp.hn_wd) * p.detach()
            momentum = float(self.hp.hn_momentum) * server.state[f"hn_momentum.{k[3:]}"] + step
            server.state[f"hn_momentum.{k[3:]}"] = momentum
            server.state[k] = p.detach() - float(self.hp.hn_lr) * momentum
