"""APFL (Deng, Kamani & Mahdavi, "Adaptive Personalized Federated Learning", arXiv 2003.13461, 2020).

Difference from FedAvg: each client also keeps a personal model v (client state "v.") and a mixing
weight alpha ("alpha"); its personalized model mixes the two IN PARAMETER SPACE (the paper's
v_bar = alpha v + (1 - alpha) w). Per local step, on the same minibatch:
    w <- w - lr grad f(w)                                (FedAvg's step: w is what is uploaded)
    v <- v - lr alpha grad f(v_bar)                      (= lr * d f(v_bar) / d v)
    alpha <- clip(alpha - alpha_lr <v - w, grad f(v_bar)>, 0, 1)   (`adaptive_alpha`)
all from the pre-step values. The official FedTorch code instead mixes OUTPUTS (alpha v(x) +
(1 - alpha) w(x)) and updates alpha once per round: a different model; this module follows the paper.
The reported train loss is CE(w) + CE(v_bar).
Evaluated model: alpha v + (1 - alpha) w with w the current global (the paper's w_i right after
synchronization; FedTorch mixes the client's pre-aggregation w_i). Server: uniform mean (paper, code).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.func import functional_call

from fedbench.personal import PersonalModel
from methods import register
from methods.fedavg import FedAvg


@register
class APFL(PersonalModel, FedAvg):
    name = "apfl"
    weighting = "uniform"
    ranges = {"alpha": "[0, 1]", "adaptive_alpha": "bool", "alpha_lr": "(0, inf) or null"}  # checked before any work

    def client_state(self, model) -> dict[str, torch.Tensor]:
        alpha = torch.tensor(float(self.hp.alpha), device=next(model.parameters()).device)
        return super().client_state(model) | {"alpha": alpha}

    def local_update(self, client) -> float:
        w, v = client.model, client.aux_model(self.prefix).train()
        alpha = client.state["alpha"].clone().requires_grad_(bool(self.hp.adaptive_alpha))
        alpha_lr = client.lr if self.hp.alpha_lr is None else float(self.hp.alpha_lr)
        w_params, v_params = dict(w.named_parameters()), dict(v.named_parameters())

        def loss(x, y):  # one backward: w's gradient from its own loss, v's (and alpha's) from the mixture
            mixed = {k: torch.lerp(w_params[k].detach(), p, alpha) for k, p in v_params.items()}
            return self.loss(client, x, y) + F.cross_entropy(functional_call(v, mixed, (x,)), y)

        def batches():  # the alpha step runs after each optimizer step, before the next batch
            for batch in client.batches(client.hp.local_epochs):
                yield batch
                if alpha.grad is not None:
                    with torch.no_grad():
                        alpha.sub_(alpha_lr * alpha.grad).clamp_(0.0, 1.0)
                    alpha.grad = None

        out = client.sgd(loss, params=list(w_params.values()) + list(v_params.values()), batches=batches())
        client.save_aux(self.prefix, v)
        client.state["alpha"].copy_(alpha.detach())
        return out

    @torch.no_grad()
    def eval_model(self, client):
        """The live model (the global w, reloaded before every use) overwritten with the mixture."""
        v, alpha = client.aux_model(self.prefix).state_dict(), float(client.state["alpha"])
        for k, w in client.model.state_dict().items():
            if w.is_floating_point():
                w.copy_(torch.lerp(w, v[k], alpha))
        return client.model
