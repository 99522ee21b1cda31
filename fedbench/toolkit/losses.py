"""Loss terms shared by methods (distillation, proximal)."""
from __future__ import annotations

import torch
import torch.nn.functional as F

DISTILL_LOSSES = ("kl", "mse", "cosine")


def distillation(student: torch.Tensor, teacher: torch.Tensor, kind: str = "kl", tau: float = 1.0,
                 reduction: str = "mean") -> torch.Tensor:
    """Distance from student features/logits to the (detached) teacher's, zero when they are equal.

    kl:     tau^2 * KL(softmax(teacher/tau) || softmax(student/tau)), batch mean (Hinton et al.).
    mse:    mean squared error.
    cosine: mean of 1 - cos(student, teacher).
    Each is a mean over the batch of a per-sample term; reduction="none" returns those terms (shape
    [batch]), whose mean is the "mean" value (the vmap engine weights them to batch clients).
    """
    teacher = teacher.detach()
    if kind == "kl":  # written out (F.kl_div with log_target has no vmap batching rule): exp(t) (t - s)
        s, t = F.log_softmax(student / tau, dim=1), F.log_softmax(teacher / tau, dim=1)
        terms = t.exp() * (t - s)
        if reduction == "none":
            return terms.flatten(1).sum(1) * tau * tau
        return terms.sum() / len(terms) * tau * tau
    if kind == "mse":
        if reduction == "none":
            return F.mse_loss(student, teacher, reduction="none").flatten(1).mean(1)
        return F.mse_loss(student, teacher)
    if kind == "cosine":
        per = 1 - F.cosine_similarity(student.flatten(1), teacher.flatten(1), dim=1)
        return per if reduction == "none" else per.mean()
    raise ValueError(f"unknown distillation loss {kind!r}; choose one of {DISTILL_LOSSES}")


def proximal(model, anchor: dict[str, torch.Tensor], mu: float) -> torch.Tensor:
    """(mu / 2) * ||w - anchor||^2 over the model's parameters that the anchor holds (buffers such as
    BatchNorm statistics are never pulled)."""
    terms = [(p - anchor[name].detach()).pow(2).sum() for name, p in model.named_parameters() if name in anchor]
    return 0.5 * mu * torch.stack(terms).sum() if terms else torch.zeros((), device=next(model.parameters()).device)
