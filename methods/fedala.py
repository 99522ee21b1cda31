"""FedALA (Zhang et al., "FedALA: Adaptive Local Aggregation for Personalized Federated Learning",
AAAI 2023; the authors' code: TsingZ0/FedALA system/utils/ALA.py, identical in PFLlib).

Difference from FedAvg: how a client takes the global model it receives. Adaptive local aggregation
(ALA) mixes it with the client's own model, element-wise, on the higher layers (the head):
    theta_head <- theta_head + (Theta_head - theta_head) * W,   W in [0, 1] per element,
and takes the global lower layers (the backbone) as they are. W is learned on the client's own data:
projected SGD, W <- clip(W - eta * dL/dW, 0, 1), dL/dW = grad_theta_head L * (Theta_head - theta_head),
one epoch over a random rand_percent% of its train samples, batch B; the first time a client runs ALA
(its start phase) until the loss settles (more than num_pre_loss epochs and the std of the last
num_pre_loss epoch losses below threshold). W starts at 1 and carries over. ALA runs on every client
after each aggregation (receive), the clients whose model still equals the global skipped (round 0);
the client trains (E epochs, as FedAvg) from the mixed model and uploads it whole (n_k-weighted mean).
Evaluated model: the client's mixed model. Deviations from the official code, for the cohort
primitives: the higher layers are the head's parameters (official layer_idx=2 counts tensors: the
head of a one-layer head); the rand_percent% subset is random (official: a contiguous window of data
shuffled once at generation) and drawn anew each epoch; an epoch's loss is its mean (official: its last
batch's); the start phase stops at max_start_epochs at the latest (official: no limit). ALA, as the
official one, mixes parameters only: a model's BatchNorm statistics stay the client's own.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch.func import functional_call

from methods import register
from methods.fedavg import FedAvg

W = "ala_w."  # client-state prefix of the ALA weights, one tensor per head parameter


@register
class FedALA(FedAvg):
    name = "fedala"
    paper = "https://arxiv.org/abs/2212.01197"
    per_minibatch = "one SGD step (after ALA's weight-learning epochs on 80% of the data)"
    ranges = {"eta": "(0, inf)", "rand_percent": "(0, 100]", "threshold": "(0, inf)", "num_pre_loss": "int [1, inf)",
              "max_start_epochs": "int [1, inf)"}  # checked before any work
    shared = "all"
    personal = "all"   # the client's own (mixed, then trained) model
    receivers = "all"  # ALA on every client when the global model is sent

    def client_state(self, model, num_clients: int) -> dict[str, torch.Tensor]:
        device = next(model.parameters()).device
        return {W + n: torch.ones_like(p) for n, p in model.head.named_parameters()} | {
            "ala_started": torch.zeros((), device=device)}

    def receive(self, cohort) -> None:
        heads = [n.removeprefix("model.") for n in cohort.model.names("head")]
        mine, glob = cohort.model.tensors(params_only=True), dict(cohort.global_model().state_dict())
        with torch.no_grad():  # parameters only, as the official ALA: buffers (BatchNorm's) stay the client's
            active = torch.stack([(mine[k] != glob[k]).reshape(len(t), -1).any(1) for k, t in mine.items()])
            active = active.any(0).cpu().numpy()
            for k, t in mine.items():
                if k not in heads:
                    t.copy_(glob[k].expand_as(t))  # the lower layers: the global ones, as received
        started = cohort.state["ala_started"].cpu().numpy() > 0
        self.learn_weights(cohort, active & started, epochs=1)
        self.start_phase(cohort, active & ~started)
        with torch.no_grad():
            rows = torch.as_tensor(active, device=cohort.state["ala_started"].device)
            for k in heads:
                t, w = mine[k], cohort.state[W + k.removeprefix("head.")]
                mixed = t + (glob[k] - t) * w
                t.copy_(torch.where(rows.view(-1, *[1] * (t.dim() - 1)), mixed, t))
            cohort.state["ala_started"].copy_(torch.where(rows, torch.ones_like(rows, dtype=torch.float32),
                                                          cohort.state["ala_started"]))

    def learn_weights(self, cohort, selected: np.ndarray, epochs: int) -> np.ndarray:
        """`epochs` epochs of projected SGD on W for the clients at rows `selected`; their mean losses."""
        if not selected.any():
            return np.zeros(0)
        sub = cohort.rows(selected)
        steps = {W + n.removeprefix("model.head."): (float(self.hp.eta), 0.0, 1.0) for n in sub.model.names("head")}
        loss = sub.sgd(self.ala_loss, train=[], state_steps=steps,
                       batches=sub.batches(epochs, fraction=self.hp.rand_percent / 100))
        cohort.update_rows(selected, sub)
        return loss

    def start_phase(self, cohort, selected: np.ndarray) -> None:
        """ALA epochs until each client's epoch loss settles (or max_start_epochs)."""
        running, history = selected.copy(), [[] for _ in range(cohort.size)]
        for _ in range(int(self.hp.max_start_epochs)):
            if not running.any():
                return
            for row, loss in zip(np.flatnonzero(running), self.learn_weights(cohort, running, epochs=1)):
                history[row].append(loss)
                last = history[row][-self.hp.num_pre_loss:]
                if len(history[row]) > self.hp.num_pre_loss and np.std(last) < self.hp.threshold:
                    running[row] = False

    def ala_loss(self, client, x, y, reduction: str = "mean") -> torch.Tensor:
        """CE of the model whose lower layers are the global ones and whose head mixes the client's
        and the global head with the weights W (W gets the gradient)."""
        glob = client.global_model()
        z = glob.backbone(x)
        mixed = {n: t + (g - t) * client.state[W + n] for (n, t), g in
                 zip(client.model.head.named_parameters(), glob.head.parameters())}
        return F.cross_entropy(functional_call(client.model.head, mixed, (z,)), y, reduction=reduction)
