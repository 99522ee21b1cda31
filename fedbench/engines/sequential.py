"""engine=sequential: the clients of a round one after the other, each a cohort of one, every step
one plain forward and backward of the method's objective on that client's tensors (any method)."""
from __future__ import annotations

import numpy as np
import torch

from fedbench.evaluation import split_sums


class SequentialEngine:
    name = "sequential"

    def cohorts(self, fed, t: int, sampled: np.ndarray):
        """The round's cohorts, in the sampled order: one per client."""
        for k in sampled:
            yield fed.cohort([int(k)], t, "train")

    def gradients(self, client, objective, names: list[str], step) -> tuple[dict, torch.Tensor]:
        """Client by client: each active client's gradient w.r.t. the cohort tensors `names` (rows
        stacked; None where the objective does not use a tensor) and its loss, on its own batch."""
        x, y = client.data.x, client.data.y
        per = {n: [] for n in names}
        losses = []
        for i in range(step.active):
            idx = step.rows(i)
            leaves = {n: client.state[n][i].detach().requires_grad_() for n in names}
            loss = client.call(objective, leaves, i, x[idx], y[idx])
            for n, g in zip(names, torch.autograd.grad(loss, list(leaves.values()), allow_unused=True)):
                per[n].append(g)
            losses.append(loss.detach())
        grads = {n: None if gs[0] is None else (gs[0].unsqueeze(0) if len(gs) == 1 else torch.stack(gs))
                 for n, gs in per.items()}
        return grads, torch.stack(losses)

    def score(self, fed, t: int) -> tuple[np.ndarray, np.ndarray]:
        """(correct, summed loss) of every client's evaluated model on its val and test splits, (K, 2):
        client by client (its adapt hook and fine-tuning first), in batches of eval_batch_size."""
        K = fed.data.num_clients
        correct, loss = np.zeros((K, 2)), np.zeros((K, 2))
        for k in range(K):
            client = fed.evaluated(k, t)
            fed.step_models.set_mode(False)
            split = fed.data.clients[k]
            predict = lambda xb, c=client: c.call(None, {}, 0, xb, None)  # noqa: E731
            for j, idx in enumerate((split.val, split.test)):
                correct[k, j], loss[k, j] = split_sums(predict, fed.data.x, fed.data.y, idx, fed.run.eval_batch_size)
        return correct, loss
