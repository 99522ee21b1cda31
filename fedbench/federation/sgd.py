"""The SGD arithmetic every local update uses: torch.optim.SGD's (dampening 0, no Nesterov), on the
first G rows (the clients still training) of cohort tensors, without the Optimizer object's per-step
bookkeeping, which costs more than the update itself on small models."""
from __future__ import annotations

import torch


@torch.no_grad()
def sgd_update(params: dict[str, torch.Tensor], grads: dict[str, torch.Tensor | None], bufs: dict, G: int,
               lr: float, momentum: float, weight_decay: float) -> None:
    """One step on `params` ({name: the active rows, updated in place}) with `grads` (same shapes;
    None: the tensor does not take part in this step, as torch.optim.SGD skips a parameter without a
    gradient). `bufs` holds the momentum buffers of the whole cohort, made from the first gradient."""
    for n, p in params.items():
        g = grads.get(n)
        if g is None:
            continue
        if weight_decay != 0:
            g = g.add(p, alpha=weight_decay)
        if momentum != 0:
            if bufs.get(n) is None:
                bufs[n] = g.detach().clone()
            else:
                bufs[n][:G].mul_(momentum).add_(g)
            g = bufs[n][:G]
        p.add_(g, alpha=-lr)
