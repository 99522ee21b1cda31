"""APFL (Deng, Kamani & Mahdavi, "Adaptive Personalized Federated Learning", arXiv 2003.13461, 2020).

Difference from FedAvg: each client also keeps a personal model v and a mixing weight alpha (client
state "alpha"); its personalized model mixes the two IN PARAMETER SPACE (the paper's
v_bar = alpha v + (1 - alpha) w). Per local step, on the same minibatch:
    w <- w - lr grad f(w)                                (FedAvg's step: w is what is uploaded)
    v <- v - lr alpha grad f(v_bar)                      (= lr * d f(v_bar) / d v)
    alpha <- clip(alpha - alpha_lr <v - w, grad f(v_bar)>, 0, 1)   (`adaptive_alpha`)
all from the pre-step values: one objective, CE(w) + CE(v_bar), whose gradient gives all three (alpha
as a projected gradient step on its per-client state). The official FedTorch code instead mixes
OUTPUTS (alpha v(x) + (1 - alpha) w(x)) and updates alpha once per round: a different model; this
module follows the paper.
Evaluated model: alpha v + (1 - alpha) w with w the current global (the paper's w_i right after
synchronization; FedTorch mixes the client's pre-aggregation w_i). Server: uniform mean (paper, code).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.func import functional_call

from methods import register
from methods.fedavg import FedAvg


@register
class APFL(FedAvg):
    name = "apfl"
    newcomer = "personal"  # v starts as the global model; APFL's update of w, v and alpha
    paper = "https://arxiv.org/abs/2003.13461"
    weighting = "uniform"  # plain mean of the sampled clients' w (paper; FedTorch)
    per_minibatch = "one joint step of w, v and alpha"
    ranges = {"alpha": "[0, 1]", "adaptive_alpha": "bool", "alpha_lr": "(0, inf) or null"}  # checked before any work
    personal_model = True

    def client_state(self, model, num_clients: int) -> dict[str, torch.Tensor]:
        return {"alpha": torch.tensor(float(self.hp.alpha), device=next(model.parameters()).device)}

    def local_update(self, cohort):
        alpha_lr = cohort.lr if self.hp.alpha_lr is None else float(self.hp.alpha_lr)
        steps = {"alpha": (alpha_lr, 0.0, 1.0)} if self.hp.adaptive_alpha else None
        return cohort.sgd(self.objective, train=cohort.model.names() + cohort.personal_model.names(),
                          state_steps=steps)

    def objective(self, client, x, y, reduction: str = "mean") -> torch.Tensor:
        """w's own loss plus the mixture's (v and alpha get their gradients from the mixture only)."""
        w, v, alpha = client.model, client.personal_model, client.state["alpha"]
        mixed = {k: torch.lerp(wk.detach(), vk, alpha) for (k, wk), vk in zip(w.named_parameters(), v.parameters())}
        return self.loss(client, x, y, reduction) + F.cross_entropy(functional_call(v, mixed, (x,)), y,
                                                                    reduction=reduction)

    @torch.no_grad()
    def adapt(self, cohort) -> None:
        """The evaluated model: the (global) model overwritten with the parameter-space mixture."""
        v, alpha = cohort.personal_model.tensors(), cohort.state["alpha"]
        for k, w in cohort.model.tensors().items():
            if w.is_floating_point():
                w.copy_(torch.lerp(w, v[k], alpha.view(-1, *([1] * (w.dim() - 1)))))
