"""SCAFFOLD (Karimireddy et al., "SCAFFOLD: Stochastic Controlled Averaging for Federated Learning",
ICML 2020).

Difference from FedAvg: control variates correct client drift. The server keeps c, each client c_i
(both zero at the start). A sampled client downloads the global model x and c and corrects every local
gradient by (c - c_i): y <- y - lr (grad f_i(y) + c - c_i), over its K = local_epochs x batches steps;
then (the paper's option II) c_i+ = c_i - c + (x - y) / (K lr), and it uploads y and
dc_i = c_i+ - c_i. The server: x <- x + server_lr * (uniform mean of y - x) and c <- c + (1/N) sum dc_i
(N: all clients). Not personalized: every client evaluates x. c, c_i and dc_i cover the parameters
(BatchNorm statistics are averaged as FedAvg's), as one flat vector each.
Deviations: the correction enters the run's optimizer (with momentum, if the run sets one: the paper
and PFLlib use plain SGD, the default here); option I (c_i+ = grad f_i(x), one extra pass) is not
implemented, as in PFLlib and FL-bench.
"""
from __future__ import annotations

import numpy as np
import torch

from methods import register
from methods.fedavg import FedAvg


def flat(tensors, rows: bool = False) -> torch.Tensor:
    """Parameters as one vector; rows=True: one vector per client (tensors with a leading client dimension)."""
    return torch.cat([t.reshape(t.shape[0], -1) if rows else t.reshape(-1) for t in tensors], dim=-1)


@register
class Scaffold(FedAvg):
    name = "scaffold"
    newcomer = "evaluate"  # the global model (the control variates only steer training)
    paper = "https://arxiv.org/abs/1910.06378"
    weighting = "uniform"   # the paper's (1/|S|) sum; PFLlib and FL-bench too
    ranges = {"server_lr": "(0, inf)"}
    uploads = ("scaffold_dc",)
    per_minibatch = "one SGD step on the gradient corrected by c - c_i"

    def client_state(self, model, num_clients: int) -> dict[str, torch.Tensor]:
        zeros = torch.zeros(sum(p.numel() for p in model.parameters()), device=next(model.parameters()).device)
        return {"scaffold_ci": zeros, "scaffold_dc": zeros.clone()}

    def server_state(self, model, num_clients: int) -> dict[str, torch.Tensor]:
        return {"c": torch.zeros(sum(p.numel() for p in model.parameters()), device=next(model.parameters()).device)}

    def download(self, server, ids, phase: str) -> dict[str, torch.Tensor]:
        """c, to every client that trains (evaluation needs none)."""
        return {"scaffold_c": server.state["c"].expand(len(ids), -1).clone()} if phase == "train" else {}

    def loss(self, client, x, y, reduction: str = "mean") -> torch.Tensor:
        """CE, plus a term of value 0 whose gradient is c - c_i: the corrected step."""
        w = flat(list(client.model.parameters()))
        correction = client.state["scaffold_c"] - client.state["scaffold_ci"]
        return super().loss(client, x, y, reduction) + (correction * (w - w.detach())).sum()

    def local_update(self, cohort) -> np.ndarray:
        plan = cohort.batches()
        loss = cohort.sgd(self.loss, batches=plan)
        x = flat([p.detach() for p in cohort.global_model().parameters()])
        y = flat(list(cohort.model.tensors(params_only=True).values()), rows=True)
        steps = torch.as_tensor(plan.counts, dtype=y.dtype, device=y.device).clamp(min=1).view(-1, 1)
        ci, c = cohort.state["scaffold_ci"], cohort.state["scaffold_c"]
        new = ci - c + (x - y) / (steps * cohort.lr)    # option II
        cohort.state["scaffold_dc"].copy_(new - ci)
        ci.copy_(new)
        return loss

    def aggregate(self, server, uploads) -> None:
        mean, x = uploads.mean(server.global_state), server.global_state
        params = set(self.param_names)
        eta = float(self.hp.server_lr)
        server.global_state = {k: x[k] + eta * (mean[k] - x[k]) if k in params else mean[k] for k in x}
        server.state["c"] = server.state["c"] + uploads.tensors["scaffold_dc"].sum(0) / server.num_clients

    def extend_model(self, model) -> None:
        self.param_names = [k for k, _ in model.named_parameters()]
