"""pFedMe (Dinh, Tran & Nguyen, "Personalized Federated Learning with Moreau Envelopes", NeurIPS 2020).

Difference from FedAvg: the local objective is the Moreau envelope F_i(w) = min_theta f_i(theta) +
lam/2 ||theta - w||^2. Per round, w_i = theta = w^t, then R times (`local_steps`, each ONE minibatch D):
    K times (`inner_steps`): theta <- theta - personal_lr * (grad f(theta; D) + lam (theta - w_i) + mu theta)
    w_i <- w_i - lr * lam * (w_i - theta)        (lr = eta: the run's lr, like every method's; the
                                                  official 0.005 with method.official=true)
theta is warm-started across the R iterations (never reset). w_i is uploaded; the server mixes
w <- (1 - beta) w + beta * mean (beta > 1 extrapolates). The mu L2 term is the official optimizer's.

Evaluated model: the client's personalized theta_i, stored per client ("theta.") as a copy after its
last local solve, as in the paper ("PM"). The official code, PFLlib and FL-bench all evaluate other
weights (w_{i,R}, the global, the init; methods_reference.md section 7); this module does not.
Unlike the official code, only the sampled clients train (it trains all N, aggregates S); clients
never sampled evaluate their initial theta. BatchNorm buffers of w_i follow theta's (w sees no data).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from fedbench.functional import minibatches
from fedbench.losses import proximal
from fedbench.personal import PersonalModel
from methods import register
from methods.fedavg import FedAvg


@register
class PFedMe(PersonalModel, FedAvg):
    name = "pfedme"
    ranges = {"lam": "[0, inf)", "personal_lr": "(0, inf)", "inner_steps": "int [1, inf)",
              "local_steps": "int [1, inf)", "beta": "(0, inf)", "mu": "[0, inf)"}  # checked before any work
    prefix = "theta."

    def local_update(self, client) -> float:
        hp, w = self.hp, client.model
        theta = client.aux_model(self.prefix)
        theta.load_state_dict(w.state_dict())  # theta <- w^t at round start
        anchor = {k: p.detach() for k, p in w.named_parameters()}  # views: follow w_i's in-place steps
        lr = client.lr  # eta: the run's lr (official_optimizer: 0.005)

        def loss(x, y):
            return F.cross_entropy(theta(x), y) + proximal(theta, anchor, hp.lam)

        losses = []
        for batch in minibatches(client, hp.local_steps):
            losses.append(client.sgd(loss, model=theta, lr=hp.personal_lr, batches=[batch] * hp.inner_steps,
                                     momentum=0.0, weight_decay=hp.mu))
            with torch.no_grad():
                for p_w, p_theta in zip(w.parameters(), theta.parameters()):
                    p_w.sub_(lr * hp.lam * (p_w - p_theta))
                for b_w, b_theta in zip(w.buffers(), theta.buffers()):
                    b_w.copy_(b_theta)
        client.save_aux(self.prefix, theta)
        return float(sum(losses) / max(len(losses), 1))

    def server_update(self, global_state, mean_upload) -> dict[str, torch.Tensor]:
        beta = float(self.hp.beta)
        return {k: torch.lerp(g, mean_upload[k], beta) if g.is_floating_point() else mean_upload[k]
                for k, g in global_state.items()}

