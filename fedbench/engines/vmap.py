"""engine=vmap: a round's sampled clients as ONE cohort whose every step is one vectorized call.

The method's own code runs unchanged (fedbench.federation.cohort): each step of `cohort.sgd` or
`cohort.grad` evaluates the method's objective once, vmapped over the clients still training (a prefix
of the cohort: clients are ordered by decreasing train size, hence decreasing step count), with each
client's tensors substituted, then one plain backward of the clients' summed losses (each client's
tensors get exactly its own gradient; ~30% cheaper than vmap(grad) on a CPU). A batch shorter than its
step's longest is padded and weighted (fedbench.federation.batches), so each client sees exactly the
batches and SGD arithmetic of engine=sequential: results agree up to floating-point summation order
(tested for every vectorizable method). Groups smaller than `min_group` step client by client; many
clients are split into calls of at most `max_call_samples` samples (bounded activation memory). A
sampled client without training data is its own cohort.

Evaluation goes chunk by chunk of clients of similar evaluation size: each chunk's adapt hook and
fine-tuning as vectorized steps, then one vmapped forward of the clients' evaluated models over their
val and test samples (padded to the chunk's longest, at most eval_batch_size samples per forward).
"""
from __future__ import annotations

import numpy as np
import torch

from fedbench.engines.sequential import SequentialEngine, split_carry


class VmapEngine(SequentialEngine):
    name = "vmap"
    # Groups smaller than this step client by client: a vmapped step of a few MLP clients costs ~4-5 plain
    # steps on a CPU (default run, min_group 4/5/6/8: 37.6/29.7/31.4/34.9 ms per FedAvg round, sequential
    # 45.0; FedBSD 39.6/38.3/38.2/42.2 vs 67.0).
    min_group = 5
    # Samples (clients x padded batch) per vmapped call: many clients per round are stepped in several
    # calls, so activation memory stays that of one batch of this size (a GPU's, for large models).
    max_call_samples = 4096

    def groups(self, sampled: np.ndarray, n_train: np.ndarray):
        """The clients without training data one by one (they take no step), then all the others as
        one cohort ordered by decreasing train size."""
        n = n_train[sampled]
        for k in sampled[n == 0]:
            yield np.array([int(k)]), False
        rows = sampled[n > 0][np.argsort(-n[n > 0], kind="stable")]
        if len(rows):
            yield rows, True

    def gradients(self, cohort, objective, names: list[str], step) -> tuple[dict, torch.Tensor, dict]:
        G = step.active
        if not cohort.vmapped or G < self.min_group:
            return super().gradients(cohort, objective, names, step)
        x, y = cohort.data.x, cohort.data.y
        size = max(1, self.max_call_samples // step.idx.shape[1])
        parts, losses, carried = [], [], []
        for a in range(0, G, size):
            c = slice(a, min(G, a + size))
            leaves = {n: cohort.state[n][c].detach().requires_grad_() for n in names}
            w = None if step.w is None else step.w[c]
            loss, carry = split_carry(cohort.call(objective, leaves, c, x[step.idx[c]], y[step.idx[c]], w))
            parts.append(torch.autograd.grad(loss.sum(), list(leaves.values()), allow_unused=True))
            losses.append(loss.detach())
            carried.append(carry)
        grads = {n: None if parts[0][j] is None else (parts[0][j] if len(parts) == 1 else
                                                      torch.cat([p[j] for p in parts]))
                 for j, n in enumerate(names)}
        carry = {k: torch.cat([c[k].detach() for c in carried]) for k in carried[0]}
        return grads, torch.cat(losses), carry

    def eval_chunks(self, sizes: np.ndarray, n_train: np.ndarray, budget: int):
        """Clients in order of evaluation size, in chunks whose padded samples fit `budget` (at least
        one client per chunk), each ordered by decreasing train size (for adapting)."""
        order = np.argsort(sizes, kind="stable")
        k = 0
        while k < len(order):
            end = k + 1
            while end < len(order) and int(sizes[order[end]]) * (end + 1 - k) <= budget:
                end += 1
            chunk = order[k:end]
            yield chunk[np.argsort(-n_train[chunk], kind="stable")], True
            k = end

    def predict(self, cohort, x: torch.Tensor, budget: int) -> torch.Tensor:
        """Logits (m, L, classes) of the cohort's clients on inputs (m, L, ...): one vmapped call."""
        if not cohort.vmapped:
            return super().predict(cohort, x, budget)
        return cohort.call(None, {}, slice(0, cohort.size), x, None)
