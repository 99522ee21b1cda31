"""Parameter-space arithmetic for methods whose local update takes gradients at points other than the
client's own parameters (Per-FedAvg's adapted w~, its Hessian-vector products): points are
{name: tensor} dicts with the cohort's client dimension, gradients come from `cohort.grad`."""
from __future__ import annotations

import torch

Params = dict[str, torch.Tensor]


def axpy(a: float, x: Params, y: Params) -> Params:
    """a * x + y, per tensor, detached (a new point in parameter space)."""
    return {k: (y[k] + a * x[k]).detach() for k in y}


def hvp_fd(cohort, objective, params: Params, v: Params, step, delta: float) -> Params:
    """H(params) v of each client by central differences of gradients on one step's batches:
    [grad(params + delta v) - grad(params - delta v)] / (2 delta), error O(delta^2)."""
    plus, _ = cohort.grad(objective, axpy(delta, v, params), step)
    minus, _ = cohort.grad(objective, axpy(-delta, v, params), step)
    return {k: (plus[k] - minus[k]) / (2 * delta) for k in plus}
