"""Tools for methods whose local update is not plain SGD on the client's model: gradients at points
other than the model's own parameters (Per-FedAvg's adapted w~, APFL's mixture), Hessian-vector
products by finite differences (Per-FedAvg HF), a fixed number of single minibatches (pFedMe's R
iterations, Per-FedAvg's fresh D, D', D''), and a second model's initial client state.

Parameters are passed as {name: tensor} dicts and evaluated with torch.func.functional_call, so the
model object itself is never re-pointed (no `.data =` aliasing); buffers come from the model.
"""
from __future__ import annotations

import itertools
from typing import Iterator

import torch
import torch.nn.functional as F
from torch.func import functional_call

Params = dict[str, torch.Tensor]


def minibatches(client, n: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """`n` train minibatches in the order of the client's data stream; a new shuffled pass starts
    whenever one ends (a fixed number of steps, not epochs)."""
    if n <= 0 or client.n_train == 0:
        return iter(())
    return itertools.islice(client.batches(epochs=n), n)


def grad_at(model, params: Params, x: torch.Tensor, y: torch.Tensor) -> tuple[Params, torch.Tensor]:
    """(d CE / d params at `params`, the loss): the model's forward with `params` substituted."""
    params = {k: p if p.requires_grad else p.detach().requires_grad_() for k, p in params.items()}
    loss = F.cross_entropy(functional_call(model, params, (x,)), y)
    grads = torch.autograd.grad(loss, list(params.values()))
    return dict(zip(params, grads)), loss.detach()


def axpy(a: float, x: Params, y: Params) -> Params:
    """a * x + y, per tensor, detached (a new point in parameter space)."""
    return {k: (y[k] + a * x[k]).detach() for k in y}


def hvp_fd(model, params: Params, v: Params, x: torch.Tensor, y: torch.Tensor, delta: float) -> Params:
    """H(params) v by central differences of gradients on one batch:
    [grad(params + delta v) - grad(params - delta v)] / (2 delta), error O(delta^2)."""
    plus, _ = grad_at(model, axpy(delta, v, params), x, y)
    minus, _ = grad_at(model, axpy(-delta, v, params), x, y)
    return {k: (plus[k] - minus[k]) / (2 * delta) for k in plus}
