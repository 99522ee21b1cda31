"""APPLE (Luo & Wu, "Adapt to Adaptation: Learning Personalization for Cross-Silo Federated Learning",
IJCAI 2022; the authors' code: ljaiverson/pFL-APPLE).

Difference from FedAvg: no global model. The server keeps every client's "core" model; a client
downloads all of them and its personalized model is sum_j p_ij theta_j over the cores, its own core
(the one it trains) included, with p_i its directed-relationship vector, learned locally. Per step:
the own core takes p_ii times the gradient (the run's optimizer), p_i takes plain gradient steps of
size p_lr with the exact gradient <grad, theta_j>, on CE + coef(r) ||p_i - p0||^2, where p0 = n_j /
sum n (FedAvg's weights, also p_i's start) and coef(r) = mu (1e-3)^(r / L) for r < L = floor(L_frac
R), then 0 (the official "exponential" schedule). Cores are replaced on the server only after the
round: every client of a round sees the previous round's. It uploads its own core (p_i stays); its
evaluated model is sum_j p_ij theta_j with its own core as trained and the others as downloaded.
PFLlib differs (methods_reference notes it): p frozen and the proximal term off at its defaults, the
core replaced by the personalized model, a step of N lr, a mean of per-tensor means for p's gradient,
cores changing during the round. Not vectorizable: the personalized model is built per client from
its own N cores inside the objective (torch.func.functional_call on the model).
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch.func import functional_call

from fedbench.toolkit.flat import flat_init, keep_latest, shapes, unflatten
from methods import register
from methods.fedavg import FedAvg


@register
class Apple(FedAvg):
    name = "apple"
    paper = "https://arxiv.org/abs/2110.08394"
    shared = "none"
    personal = "all"
    uploads = ("all",)
    consensus = {"apple_p0": "apple_self"}   # p0 = n_j / sum n, every client's, from its one-hot self
    vectorizable = False
    why_not_vectorizable = "the personalized model is built per client from its N cores (functional_call)"
    ranges = {"p_lr": "[0, inf)", "mu": "[0, inf)", "L_frac": "[0, 1]"}
    per_minibatch = "one step of the own core (times p_ii) and of p_i, on the model sum_j p_ij theta_j"
    newcomer = "welcome"  # p over the participants' cores learned, the cores frozen (welcome)
    welcomes = "learns p over the participants' cores, the cores frozen"

    def extend_model(self, model) -> None:
        self.params = shapes(model)

    def client_state(self, model, num_clients: int) -> dict[str, torch.Tensor]:
        zeros = torch.zeros(num_clients, device=next(model.parameters()).device)
        return {"apple_p": zeros, "apple_self": zeros.clone(), "apple_p0": zeros.clone(),
                "apple_started": torch.zeros((), device=zeros.device)}

    def server_state(self, model, num_clients: int) -> dict[str, torch.Tensor]:
        return {"apple_cores": flat_init(model).unsqueeze(0).repeat(num_clients, 1)}

    def start(self, cohort) -> None:
        n = cohort.state["apple_self"].shape[1]
        cohort.state["apple_self"].copy_(torch.eye(n, device=cohort.state["apple_self"].device)[cohort.ids])

    def download(self, server, ids, phase: str) -> dict[str, torch.Tensor]:
        """Every client's core, to each client that trains or is evaluated."""
        return {"apple_cores": server.state["apple_cores"].unsqueeze(0).expand(len(ids), -1, -1).clone()}

    def coef(self, r: int, rounds: int) -> float:
        horizon = int(np.floor(float(self.hp.L_frac) * rounds))
        return float(self.hp.mu) * 1e-3 ** (r / horizon) if r < horizon else 0.0

    def personalized(self, client, own: dict, p: torch.Tensor) -> dict[str, torch.Tensor]:
        """sum_j p_j theta_j, the client's own core (trainable) in place of its downloaded copy."""
        cores = unflatten(client.state["apple_cores"], self.params)          # {key: (N, ...)}
        me = int(client.state["apple_self"].argmax())
        return {k: torch.tensordot(p, cores[k], dims=1) + p[me] * (own[k] - cores[k][me]) for k, _ in self.params}

    def current_p(self, client) -> torch.Tensor:
        return torch.where(client.state["apple_started"] > 0, client.state["apple_p"], client.state["apple_p0"])

    def loss(self, client, x, y, reduction: str = "mean") -> torch.Tensor:
        p = client.state["apple_p"]
        theta = self.personalized(client, dict(client.model.named_parameters()), p)
        ce = F.cross_entropy(functional_call(client.model, theta, (x,)), y, reduction=reduction)
        return ce + self._coef * ((p - client.state["apple_p0"]) ** 2).sum()

    def local_update(self, cohort) -> np.ndarray:
        started = cohort.state["apple_started"]
        p = cohort.state["apple_p"]
        p.copy_(torch.where(started.view(-1, 1) > 0, p, cohort.state["apple_p0"]))
        started.fill_(1.0)
        self._coef = self.coef(cohort.round, cohort.training.rounds)
        return cohort.sgd(self.loss, state_steps={"apple_p": (float(self.hp.p_lr), -np.inf, np.inf)})

    def welcome(self, cohort, server) -> None:
        """A newcomer has no core of its own: it downloads the participants' cores and learns its
        directed weights p (from p0 = n_j / sum n, the participants' consensus) on its train split for
        unseen_epochs, every core frozen, the proximal coefficient of the final round. Its model holds
        core 0 as "its own", so the own-core term p_0 (own - theta_0) is zero."""
        cores = server.state["apple_cores"]
        cohort.state["apple_cores"] = cores.unsqueeze(0).expand(cohort.size, -1, -1).clone()
        with torch.no_grad():
            for k, v in unflatten(cores[:1].expand(cohort.size, -1), self.params).items():
                cohort.state["model." + k].copy_(v)
            cohort.state["apple_self"].zero_()
            cohort.state["apple_p"].copy_(cohort.state["apple_p0"])
            cohort.state["apple_started"].fill_(1.0)
        self._coef = self.coef(cohort.round, cohort.training.rounds)
        cohort.sgd(self.loss, train="none", state_steps={"apple_p": (float(self.hp.p_lr), -np.inf, np.inf)})

    def aggregate(self, server, uploads) -> None:
        """The uploaded cores replace the stored ones, after the round."""
        keep_latest(server, "apple_cores", uploads, self.params)

    def predict(self, client, x) -> torch.Tensor:
        theta = self.personalized(client, dict(client.model.named_parameters()), self.current_p(client))
        return functional_call(client.model, theta, (x,))
