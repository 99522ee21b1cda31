"""FedBSD: Personalized Federated Learning via Backbone Self-Distillation (Wang et al., ACM
Multimedia Asia 2023, arXiv 2409.15636).

Difference from FedAvg: only the backbone is uploaded and averaged (plain mean by default); the head
stays private; and the local objective adds a self-distillation term in which the received global
backbone (frozen teacher) guides the local backbone (student) on the client's own data:
    L = CE(head(backbone_k(x)), y) + lam * L_BSD(backbone_g(x), backbone_k(x)).
The client keeps the backbone it distilled: its personalized model is that local backbone plus its
own head (the abstract: distillation "to update the local backbone"); a client that has never
trained evaluates the global backbone with its head.
Only the abstract is public, so these are RECONSTRUCTED choices, each a switch in conf/method/fedbsd.yaml
(see docs/guide.md, FedBSD): loss kl|mse|cosine on backbone features (default tau^2 KL), lam, tau,
student_init global|personal (the student starts from the global backbone, or from the client's own),
eval_backbone local|global (evaluate the distilled backbone, or the global one), weighting
uniform|samples. lam=0 with eval_backbone=global is FedPer with a plain mean.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from fedbench.toolkit.losses import distillation
from methods import register
from methods.fedavg import FedAvg


@register
class FedBSD(FedAvg):
    name = "fedbsd"
    paper = "https://arxiv.org/abs/2409.15636"
    weighting = "uniform"  # uniform: plain mean of backbones (as in the summary); samples: n_k-weighted
    per_minibatch = "one SGD step, its loss with the distillation term (a forward of the global backbone)"
    ranges = {"lam": "[0, inf)", "tau": "(0, inf)", "loss": ("kl", "mse", "cosine"),
              "student_init": ("global", "personal"),
              "eval_backbone": ("local", "global")}  # checked by fedbench.config before any work
    shared = "backbone"
    personal = ("head", "backbone")  # the head, and the local backbone the client distilled

    def __init__(self, hp, model):
        super().__init__(hp, model)
        self.train_global = "backbone" if hp.student_init == "global" else "none"
        self.eval_global = "backbone" if hp.eval_backbone == "global" else "none"

    def loss(self, client, x, y, reduction: str = "mean") -> torch.Tensor:
        features = client.model.backbone(x)
        ce = F.cross_entropy(client.model.head(features), y, reduction=reduction)
        if self.hp.lam == 0:
            return ce
        with torch.no_grad():
            teacher = client.global_model().backbone(x)
        return ce + self.hp.lam * distillation(features, teacher, self.hp.loss, self.hp.tau, reduction)
