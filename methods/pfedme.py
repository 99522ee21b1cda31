"""pFedMe (Dinh, Tran & Nguyen, "Personalized Federated Learning with Moreau Envelopes", NeurIPS 2020).

Difference from FedAvg: the local objective is the Moreau envelope F_i(w) = min_theta f_i(theta) +
lam/2 ||theta - w||^2. Per round, w_i = theta = w^t, then for each minibatch D of the round's local
epochs (the same passes over the client's data as FedAvg's; with method.official=true, the official
schedule: R = `local_steps` minibatches, whatever the client's size):
    K times (`inner_steps`): theta <- theta - personal_lr * (grad f(theta; D) + lam (theta - w_i) + mu theta)
    w_i <- w_i - lr * lam * (w_i - theta)        (lr = eta: the run's lr, like every method's; the
                                                  official 0.005 with method.official=true)
so a round costs K x FedAvg's training samples (the K inner steps are compute on the same minibatch,
not extra passes). theta is warm-started across the minibatches (never reset). w_i is uploaded; the server mixes
w <- (1 - beta) w + beta * mean (beta > 1 extrapolates). The mu L2 term is the official optimizer's.
Evaluated model: the client's personalized theta_i, its personal model (kept per client after its last
local solve), as in the paper ("PM"). The official code, PFLlib and FL-bench all evaluate other
weights (w_{i,R}, the global, the init; methods_reference.md section 7); this module does not.
Unlike the official code, only the sampled clients train (it trains all N, aggregates S); clients
never sampled evaluate their initial theta. BatchNorm buffers of w_i follow theta's (w sees no data).
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from fedbench.toolkit.losses import proximal
from methods import register
from methods.fedavg import FedAvg


@register
class PFedMe(FedAvg):
    name = "pfedme"
    newcomer = "personal"  # theta and the local w start from the global model; pFedMe's own local update
    paper = "https://arxiv.org/abs/2006.08848"
    weighting = "samples"  # n_k-weighted mean of w_i (official serverbase; the paper writes a uniform 1/S)
    ranges = {"lam": "[0, inf)", "personal_lr": "(0, inf)", "inner_steps": "int [1, inf)",
              "local_steps": "int [1, inf)", "beta": "(0, inf)", "mu": "[0, inf)"}  # checked before any work
    personal_model = True
    evaluates = "personal_model"
    official_schedule = "R = local_steps minibatches per round (official; 20), K inner steps on each"
    per_minibatch = "K inner steps on theta, then one step of w_i toward theta"

    def local_update(self, cohort):
        hp, theta = self.hp, cohort.personal_model
        theta.assign(cohort.model)  # theta <- w^t at round start
        w, th = cohort.model.tensors(), theta.tensors()
        params = set(cohort.model.tensors(params_only=True))
        rate = cohort.lr * hp.lam  # eta * lam
        plan = cohort.minibatches(hp.local_steps) if hp.official else cohort.batches()
        totals = np.zeros(cohort.size)
        for batch in plan.split():
            G = batch.steps[0].active   # the clients with a minibatch left (the largest first)
            totals += cohort.sgd(self.theta_loss, model=theta, lr=hp.personal_lr, batches=batch.repeat(hp.inner_steps),
                                 momentum=0.0, weight_decay=hp.mu)
            with torch.no_grad():
                for k, t in w.items():
                    rows, target = t[:G], th[k][:G]
                    rows.sub_(rate * (rows - target)) if k in params else rows.copy_(target)  # buffers follow theta
        return totals / np.maximum(plan.counts, 1)

    def theta_loss(self, client, x, y, reduction: str = "mean") -> torch.Tensor:
        theta, anchor = client.personal_model, dict(client.model.named_parameters())  # w_i, frozen here
        return F.cross_entropy(theta(x), y, reduction=reduction) + proximal(theta, anchor, self.hp.lam)

    def server_update(self, global_state, mean_upload) -> dict[str, torch.Tensor]:
        beta = float(self.hp.beta)
        return {k: torch.lerp(g, mean_upload[k], beta) if g.is_floating_point() else mean_upload[k]
                for k, g in global_state.items()}
