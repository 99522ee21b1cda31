"""FedAS (Yang, Huang & Ye, "FedAS: Bridging Inconsistency in Personalized Federated Learning", CVPR
2024; the authors' code: xiyuanyang45/FedAS, a fork of PFLlib).

Difference from FedAvg, two parts (partial personalization: each client keeps its own model and
evaluates it; its head is never replaced):
  parameter alignment  a sampled client first takes its class prototypes with its OLD backbone (class
                       means of features over one pass of its train split), then takes over the global
                       backbone after one epoch of aligning it to them (SGD on the backbone only,
                       align_lr, batches of align_batch: per batch, the sum over its classes c of
                       MSE(backbone(x_c), p_c)); then the usual local training of the whole model.
  client sync          it uploads its model with the trace of its Fisher information F (the sum over
                       its train batches of the squared norm of the batch-mean gradient of the loss),
                       and the server averages the uploads with weights F_k / sum F (no sample counts).
Deviations: as PFLlib, each client aligns its own copy of the global backbone (the official server
aligns its one global object in place, client after client, so results depend on client order); the
Fisher trace is taken for the clients that trained (PFLlib also takes it for the others, whose uploads
are never aggregated); the modules stay in train mode for it (identical without BatchNorm or dropout).
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from methods import register
from methods.fedavg import FedAvg
from methods.fedproto import num_classes


@register
class FedAS(FedAvg):
    name = "fedas"
    paper = "https://openaccess.thecvf.com/content/CVPR2024/html/Yang_FedAS_Bridging_Inconsistency_in_Personalized_Federated_Learning_CVPR_2024_paper.html"
    shared = "all"
    personal = "all"
    uploads = ("fas_fim",)
    ranges = {"align_lr": "[0, inf)", "align_batch": "int [1, inf)"}
    per_minibatch = "one SGD step (after one epoch aligning the received backbone to its prototypes)"

    def client_state(self, model, num_clients: int) -> dict[str, torch.Tensor]:
        device = next(model.parameters()).device
        return {"fas_fim": torch.zeros((), device=device),
                "fas_proto": torch.zeros(num_classes(model), model.feature_dim, device=device)}

    def class_sums(self, client, x, y, reduction: str = "mean") -> torch.Tensor:
        """(C, D + 1): per class, the sum of the backbone's features and the count."""
        z = client.model.backbone(x)
        onehot = (y.view(-1, 1) == torch.arange(client.state["fas_proto"].shape[0], device=y.device)).to(z.dtype)
        return torch.cat([onehot.t() @ z, onehot.sum(0).unsqueeze(1)], dim=1)

    def align_loss(self, client, x, y, reduction: str = "mean") -> torch.Tensor:
        """Per batch: the sum over its classes c of MSE(backbone(x_c), p_c); per sample, its share."""
        z = client.model.backbone(x)
        protos = client.state["fas_proto"]
        onehot = (y.view(-1, 1) == torch.arange(protos.shape[0], device=y.device)).to(z.dtype)
        per_class = client.batch_sum(onehot)                       # samples of each class in the batch
        share = client.batch_sum(torch.ones_like(y, dtype=z.dtype)) / per_class[y]
        terms = share * ((z - protos[y]) ** 2).mean(1)
        return terms if reduction == "none" else terms.mean()

    def local_update(self, cohort) -> np.ndarray:
        self.align(cohort)
        loss = super().local_update(cohort)
        cohort.state["fas_fim"].copy_(self.fisher_trace(cohort))
        return loss

    def align(self, cohort) -> None:
        """Parameter alignment (module docstring): prototypes of the old backbone, then the received
        backbone, aligned to them for one epoch, becomes the client's."""
        size = int(self.hp.align_batch)
        protos = cohort.state["fas_proto"]
        sums = torch.zeros(*protos.shape[:2], protos.shape[2] + 1, device=protos.device, dtype=protos.dtype)
        for step in cohort.batches(1, batch_size=size):            # prototypes of the OLD backbone
            sums[:step.active] += torch.stack(cohort.forward(self.class_sums, step))
        protos.copy_(sums[:, :, :-1] / sums[:, :, -1:].clamp(min=1))
        with torch.no_grad():                                      # take over the global backbone ...
            mine, received = cohort.model.tensors(), dict(cohort.global_model().state_dict())
            for k in cohort.model.names("backbone"):
                key = k.removeprefix("model.")
                mine[key].copy_(received[key].expand_as(mine[key]))
        cohort.sgd(self.align_loss, train="backbone", epochs=1, batch_size=size, lr=float(self.hp.align_lr),
                   momentum=0.0, weight_decay=0.0)               # ... after aligning it to the prototypes

    def fisher_trace(self, cohort) -> torch.Tensor:
        params = cohort.model.tensors(params_only=True)
        total = torch.zeros(cohort.size, device=next(iter(params.values())).device)
        for step in cohort.batches(1):
            grads, _ = cohort.grad(self.loss, params, step)
            total[:step.active] += sum((g.reshape(step.active, -1) ** 2).sum(1) for g in grads.values() if g is not None)
        return total

    def aggregate(self, server, uploads) -> None:
        if not len(uploads.ids) or not server.global_state:
            return
        fim = uploads.tensors["fas_fim"].double()
        w = fim / fim.sum() if fim.sum() > 0 else torch.full_like(fim, 1.0 / len(fim))
        new = {}
        for k, g in server.global_state.items():
            mean = torch.tensordot(w.to(uploads.tensors[k].device), uploads.tensors[k].double(), dims=1)
            new[k] = mean.to(g.dtype) if g.is_floating_point() else mean.round().to(g.dtype)
        server.global_state = new
