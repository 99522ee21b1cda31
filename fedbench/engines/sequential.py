"""engine=sequential: the clients of a round one after the other, each a cohort of one, every step
one plain forward and backward of the method's objective on that client's tensors (any method)."""
from __future__ import annotations

import numpy as np
import torch


def split_carry(out) -> tuple[torch.Tensor, dict]:
    """(loss, carried values) of an objective call: StepModules.run returns (value, carry) when the
    objective carries state to the next step, else the value."""
    return out if isinstance(out, tuple) else (out, {})


class SequentialEngine:
    """How cohorts are formed and stepped, client by client. An engine sees cohorts (stacked tensors
    and a way to call the objective on their rows), never the federation."""

    name = "sequential"

    def groups(self, sampled: np.ndarray, n_train: np.ndarray):
        """The round's cohorts as (client ids, vmapped), in the sampled order: one per client."""
        for k in sampled:
            yield np.array([int(k)]), False

    def gradients(self, cohort, objective, names: list[str], step) -> tuple[dict, torch.Tensor, dict]:
        """Client by client: each active client's gradient w.r.t. the cohort tensors `names` (rows
        stacked; None where the objective does not use a tensor), its loss on its own batch, and what
        its objective carries to the next step (rows stacked; {} when nothing)."""
        x, y = cohort.data.x, cohort.data.y
        per = {n: [] for n in names}
        losses, carried = [], []
        for i in range(step.active):
            idx = step.rows(i)
            leaves = {n: cohort.state[n][i].detach().requires_grad_() for n in names}
            loss, carry = split_carry(cohort.call(objective, leaves, i, x[idx], y[idx]))
            for n, g in zip(names, torch.autograd.grad(loss, list(leaves.values()), allow_unused=True)):
                per[n].append(g)
            losses.append(loss.detach())
            carried.append(carry)
        grads = {n: None if gs[0] is None else (gs[0].unsqueeze(0) if len(gs) == 1 else torch.stack(gs))
                 for n, gs in per.items()}
        carry = {k: torch.stack([c[k].detach() for c in carried]) for k in carried[0]} if carried else {}
        return grads, torch.stack(losses), carry

    def eval_chunks(self, sizes: np.ndarray, n_train: np.ndarray, budget: int):
        """The clients to evaluate, as cohorts (ids, vmapped): one per client, in client order."""
        for k in range(len(sizes)):
            yield np.array([k]), False

    def predict(self, cohort, x: torch.Tensor, budget: int) -> torch.Tensor:
        """Logits (1, L, classes) of a cohort of one on inputs (1, L, ...), in batches of `budget`."""
        parts = [cohort.call(None, {}, 0, x[0, a:a + budget], None) for a in range(0, x.shape[1], budget)]
        return torch.cat(parts).unsqueeze(0)
