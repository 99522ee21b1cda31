"""FedFomo (Zhang et al., "Personalized Federated Learning with First Order Model Optimization", ICLR
2021; the authors' code: NVlabs/FedFomo).

Difference from FedAvg: no global model. The server keeps every client's latest model and an affinity
matrix P. A client about to train downloads the `num_models` other clients' models it has the highest
affinity to, and weighs them with its own latest model by the first-order improvement each gives on its
validation data over its reference model theta_ref (the model it started its previous training from):
w_j = (L_val(theta_ref) - L_val(theta_j)) / ||theta_j - theta_ref||_1 (the official L1 distance).
Negative weights are dropped; the client's model becomes sum_j w_j theta_j / sum_j w_j, or theta_ref
when no weight is positive (the official fallback), becomes its new theta_ref, and trains E epochs from
there. It uploads the trained model and its weights; the server adds w_j / |sum_k w_k| to P[i, j]
(official). Evaluated model: the client's own model after its last training.
Deviations from the official code: candidates are the top-`num_models` by affinity (ties to the lower
id), without its epsilon-greedy exploration or its cluster and global averages (PFLlib's choice too);
the validation data is the client's validation split (every method's; the official code carves 20% out
of the train split, so training here uses the same data as every other method). The validation losses
go through the harness's gradient primitive, so their compute is counted as training passes.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from fedbench.seeding import numpy_rng
from fedbench.toolkit.flat import flat_init, keep_latest, shapes, unflatten
from methods import register
from methods.fedavg import FedAvg


@register
class FedFomo(FedAvg):
    name = "fedfomo"
    paper = "https://arxiv.org/abs/2012.08565"
    shared = "none"
    personal = "all"
    uploads = ("all", "fomo_w", "fomo_ids")
    ranges = {"num_models": "int [1, inf)"}
    per_minibatch = "one SGD step (after weighing the downloaded models on its validation split)"
    newcomer = "welcome"  # its weighting of participants' models against its initial model (welcome)
    welcomes = "weighs num_models random participants' models against its initial model"

    def extend_model(self, model) -> None:
        self.params = shapes(model)

    def client_state(self, model, num_clients: int) -> dict[str, torch.Tensor]:
        m = int(self.hp.num_models) + 1
        init = flat_init(model)
        return {"fomo_ref": init, "fomo_w": torch.zeros(m, device=init.device),
                "fomo_ids": torch.zeros(m, device=init.device)}

    def server_state(self, model, num_clients: int) -> dict[str, torch.Tensor]:
        init = flat_init(model)
        return {"fomo_models": init.unsqueeze(0).repeat(num_clients, 1),
                "fomo_seen": torch.zeros(num_clients, device=init.device),
                "fomo_P": torch.zeros(num_clients, num_clients, device=init.device)}

    def download(self, server, ids, phase: str) -> dict[str, torch.Tensor]:
        """For each client that trains: the models of the others it has the highest affinity to."""
        if phase != "train":
            return {}
        seen, affinity = server.state["fomo_seen"] > 0, server.state["fomo_P"]
        return self.offer(server, [[j for j in torch.argsort(-affinity[i], stable=True).tolist() if seen[j] and j != i]
                                   for i in ids])

    def offer(self, server, others: list[list[int]]) -> dict[str, torch.Tensor]:
        """Each client's first num_models models of `others` (ids of the stored models), padded as not valid."""
        models, m = server.state["fomo_models"], int(self.hp.num_models)
        picked = torch.zeros(len(others), m, dtype=torch.long)
        valid = torch.zeros(len(others), m)
        for row, ids in enumerate(others):
            picked[row, :len(ids[:m])] = torch.as_tensor(ids[:m], dtype=torch.long)
            valid[row, :len(ids[:m])] = 1.0
        return {"fomo_models": models[picked], "fomo_valid": valid.to(models.dtype), "fomo_from": picked.to(models.dtype)}

    def welcome(self, cohort, server) -> None:
        """A newcomer has no affinities: it is offered num_models participants' models drawn at random
        (its own "newcomer" stream; the official exploration draws at random too) and weighs them
        against its initial model, its reference, on its validation split: its model is the result."""
        seen = (server.state["fomo_seen"] > 0).nonzero().flatten().numpy()
        cohort.state.update(self.offer(server, [numpy_rng(cohort.training.seed, "newcomer", int(k)).permutation(seen).tolist()
                                                for k in cohort.ids]))
        self.weigh(cohort)

    def val_loss(self, client, x, y, reduction: str = "mean") -> torch.Tensor:
        return F.cross_entropy(client.model(x), y, reduction=reduction)

    def local_update(self, cohort) -> np.ndarray:
        self.weigh(cohort)
        return super().local_update(cohort)

    @torch.no_grad()
    def weigh(self, cohort) -> None:
        """The first-order weighting of the client's own model and the downloaded ones (module docstring)."""
        model = cohort.model.tensors(params_only=True)
        own = torch.cat([t.reshape(t.shape[0], -1) for t in model.values()], dim=1)
        candidates = torch.cat([own.unsqueeze(1), cohort.state["fomo_models"]], dim=1)        # (m, M+1, P)
        valid = torch.cat([torch.ones_like(cohort.state["fomo_valid"][:, :1]), cohort.state["fomo_valid"]], dim=1)
        ref = cohort.state["fomo_ref"]
        steps = list(cohort.batches(1, split="val", batch_size=1 << 30))   # the whole validation split
        active = steps[0].active if steps else 0   # clients without validation data keep their model
        base = torch.zeros(len(own), device=own.device)
        losses = torch.zeros(candidates.shape[:2], device=own.device)
        if active:
            with torch.enable_grad():
                base[:active] = cohort.grad(self.val_loss, unflatten(ref[:active], self.params), steps[0])[1]
                for j in range(candidates.shape[1]):
                    at = unflatten(candidates[:active, j], self.params)
                    losses[:active, j] = cohort.grad(self.val_loss, at, steps[0])[1]
        valid = valid * (torch.arange(len(own), device=own.device) < active).to(valid.dtype).unsqueeze(1)
        distance = (candidates - ref.unsqueeze(1)).abs().sum(2) + 1e-5
        raw = (base.unsqueeze(1) - losses) / distance * valid
        w = raw.clamp(min=0)
        total = w.sum(1, keepdim=True)
        fallback = torch.where(valid[:, :1] > 0, ref, own)   # no validation data: its own model
        mixed = torch.where(total > 0, (w.unsqueeze(2) * candidates).sum(1) / total.clamp(min=1e-12), fallback)
        for key, value in unflatten(mixed, self.params).items():
            model[key].copy_(value)
        ref.copy_(mixed)
        cohort.state["fomo_w"].copy_(raw / raw.sum(1, keepdim=True).abs().clamp(min=1e-12))
        ids = torch.as_tensor(cohort.ids, dtype=candidates.dtype, device=candidates.device).view(-1, 1)
        cohort.state["fomo_ids"].copy_(torch.cat([ids, cohort.state["fomo_from"]], dim=1))

    def aggregate(self, server, uploads) -> None:
        """Keep each uploading client's latest model; add its normalized weights to its affinity row."""
        if not len(uploads.ids):
            return
        keep_latest(server, "fomo_models", uploads, self.params)
        server.state["fomo_seen"][torch.as_tensor(uploads.ids)] = 1.0
        affinity = server.state["fomo_P"].clone()
        for row, i in enumerate(uploads.ids):
            for j, w in zip(uploads.tensors["fomo_ids"][row].long().tolist(), uploads.tensors["fomo_w"][row].tolist()):
                if j != i:
                    affinity[i, j] += w
        server.state["fomo_P"] = affinity
