"""FedPAC (Xu, Tong & Huang, "Personalized Federated Learning with Feature Alignment and Classifier
Collaboration", ICLR 2023; the authors' code: JianXu95/FedPAC).

Difference from FedAvg (the backbone is shared, n_k-weighted; the head is the client's):
  statistics   a sampled client first passes its train split through the received backbone: its
               class means mu(c) (kept as its local prototypes), H[c] = pi(c) mu(c) and
               V = (1/n) sum_c [pi(c) E[||z||^2 | c] - pi(c)^2 ||mu(c)||^2] (pi: class frequencies)
  training     one epoch of the head alone (backbone frozen), then E epochs of the backbone alone (head
               frozen) on CE + lam * MSE(z, P[y]) toward the global prototype of the class (its local
               one where the server has none, as the official code)
  upload       its backbone, its head, its prototypes (class means of the trained backbone, one pass)
               with its class counts, and (V, H)
  server       the backbone's n_k-weighted mean; global prototypes weighted by class counts (official);
               for each uploading client i, alpha_i = argmin a'(diag V + D_i)a on the simplex with
               D_i[j, k] = sum_c <H_i[c] - H_j[c], H_i[c] - H_k[c]> (variance plus bias of the combined
               head), weights under 1e-3 dropped and the rest renormalized (official), and client i
               gets the head sum_j alpha_ij head_j of the heads just trained.
Evaluated model: the global backbone with the client's combined head. The combination is keyed by
client id, and taken from a snapshot of the trained heads (PFLlib mixes heads of other clients, in a
random order, some already replaced: methods_reference notes both bugs). The QP is solved by SLSQP
(scipy), the official code by cvxpy; a client whose QP fails keeps its own head. The head epoch uses
the run's lr (official: 0.1 for the head, the run's for the backbone; PFLlib: the run's for both).
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from methods import register
from methods.fedavg import FedAvg
from methods.fedproto import alignment, num_classes


def combination_weights(v: np.ndarray, h: np.ndarray, i: int) -> np.ndarray | None:
    """alpha_i (module docstring) for client row i of V (m,) and H (m, C, D); None if the QP fails."""
    from scipy.optimize import minimize

    diff = h[i][None] - h                                       # H_i - H_j, (m, C, D)
    q = np.diag(v) + np.einsum("jcd,kcd->jk", diff, diff)
    m = len(v)
    found = minimize(lambda a: a @ q @ a, np.full(m, 1.0 / m), jac=lambda a: 2 * q @ a, method="SLSQP",
                     bounds=[(0.0, 1.0)] * m, constraints=[{"type": "eq", "fun": lambda a: a.sum() - 1.0}],
                     options={"ftol": 1e-12, "maxiter": 500})
    if not found.success:
        return None
    alpha = np.where(found.x < 1e-3, 0.0, found.x)
    return alpha / alpha.sum() if alpha.sum() > 0 else None


@register
class FedPAC(FedAvg):
    name = "fedpac"
    paper = "https://arxiv.org/abs/2306.11867"
    shared = "backbone"
    personal = "head"
    uploads = ("head", "pac_proto", "pac_n", "pac_v", "pac_h")
    ranges = {"lam": "[0, inf)"}
    per_minibatch = "one SGD step: a head epoch, then backbone epochs on CE + lam MSE to the global prototypes"

    def client_state(self, model, num_clients: int) -> dict[str, torch.Tensor]:
        c, d, device = num_classes(model), model.feature_dim, next(model.parameters()).device
        zeros = torch.zeros(c, d, device=device)
        return {"pac_proto": zeros, "pac_n": torch.zeros(c, device=device), "pac_v": torch.zeros((), device=device),
                "pac_h": zeros.clone(), "pac_local": zeros.clone()}

    def server_state(self, model, num_clients: int) -> dict[str, torch.Tensor]:
        c, d, device = num_classes(model), model.feature_dim, next(model.parameters()).device
        return {"pac_global": torch.zeros(c, d, device=device), "pac_has": torch.zeros(c, device=device)}

    def download(self, server, ids, phase: str) -> dict[str, torch.Tensor]:
        if phase != "train":
            return {}
        return {k: server.state[k].unsqueeze(0).expand(len(ids), *server.state[k].shape).clone()
                for k in ("pac_global", "pac_has")}

    def class_moments(self, client, x, y, reduction: str = "mean") -> torch.Tensor:
        """(C, D + 2): per class, the sum of features, of their squared norms, and the count."""
        z = client.model.backbone(x)
        onehot = (y.view(-1, 1) == torch.arange(client.state["pac_n"].shape[0], device=y.device)).to(z.dtype)
        return torch.cat([onehot.t() @ z, onehot.t() @ (z ** 2).sum(1, keepdim=True), onehot.sum(0).unsqueeze(1)], 1)

    def moments(self, cohort) -> torch.Tensor:
        """(clients, C, D + 2) over each client's train split, with its backbone as it is now."""
        c, d = cohort.state["pac_h"].shape[1:]
        total = torch.zeros(cohort.size, c, d + 2, device=cohort.state["pac_h"].device)
        for step in cohort.batches(1):
            total[:step.active] += torch.stack(cohort.forward(self.class_moments, step))
        return total

    def local_update(self, cohort) -> np.ndarray:
        stats = self.moments(cohort)                                 # with the received backbone
        count = stats[:, :, -1]
        n, mu = count.sum(1).clamp(min=1), stats[:, :, :-2] / count.clamp(min=1).unsqueeze(-1)
        pi = count / n.unsqueeze(1)
        second = stats[:, :, -2] / count.clamp(min=1)                # E[||z||^2 | c]
        cohort.state["pac_local"].copy_(mu)
        cohort.state["pac_h"].copy_(pi.unsqueeze(-1) * mu)
        cohort.state["pac_v"].copy_((pi * second - pi ** 2 * (mu ** 2).sum(2)).sum(1) / n)
        cohort.sgd(self.head_loss, train="head", epochs=1)
        loss = cohort.sgd(self.loss, train="backbone")
        trained = self.moments(cohort)                               # prototypes of the trained backbone
        cohort.state["pac_n"].copy_(trained[:, :, -1])
        cohort.state["pac_proto"].copy_(trained[:, :, :-2] / trained[:, :, -1:].clamp(min=1))
        return loss

    def head_loss(self, client, x, y, reduction: str = "mean") -> torch.Tensor:
        return F.cross_entropy(client.model(x), y, reduction=reduction)

    def loss(self, client, x, y, reduction: str = "mean") -> torch.Tensor:
        z = client.model.backbone(x)
        has = client.state["pac_has"]
        target = torch.where(has.view(-1, 1) > 0, client.state["pac_global"], client.state["pac_local"])
        terms = F.cross_entropy(client.model.head(z), y, reduction="none") + \
            self.hp.lam * alignment(z, y, target, torch.ones_like(has))
        return terms if reduction == "none" else terms.mean()

    def aggregate(self, server, uploads) -> None:
        super().aggregate(server, uploads)                           # the backbone's n_k-weighted mean
        if not len(uploads.ids):
            return
        counts, protos = uploads.tensors["pac_n"], uploads.tensors["pac_proto"]
        total = counts.sum(0)
        server.state["pac_global"] = (counts.unsqueeze(-1) * protos).sum(0) / total.clamp(min=1).unsqueeze(-1)
        server.state["pac_has"] = (total > 0).to(total.dtype)
        heads = {k: v.clone() for k, v in uploads.tensors.items() if k.startswith("head.")}   # a snapshot
        v, h = uploads.tensors["pac_v"].double().cpu().numpy(), uploads.tensors["pac_h"].double().cpu().numpy()
        combined = {k: t.clone() for k, t in heads.items()}
        for row in range(len(uploads.ids)):
            alpha = combination_weights(v, h, row)
            if alpha is not None:
                w = torch.as_tensor(alpha, dtype=torch.float64)
                for k, t in heads.items():
                    combined[k][row] = torch.tensordot(w.to(t.device), t.double(), dims=1).to(t.dtype)
        server.send(uploads.ids, combined)
