"""engine=vmap: a round's sampled clients as ONE cohort whose every step is one vectorized call.

The method's own code runs unchanged (fedbench.client): each step of `client.sgd` or `client.grad`
evaluates the method's objective once, vmapped over the clients still training (a prefix of the
cohort: clients are ordered by decreasing train size, hence decreasing step count), with each
client's tensors substituted by torch.func.functional_call, then one plain backward of the clients'
summed losses (each client's tensors get exactly its own gradient; ~30% cheaper than vmap(grad) on a
CPU). A batch shorter than its step's longest is padded and weighted (fedbench.batches), so each
client sees exactly the batches and SGD arithmetic of engine=sequential: results agree up to
floating-point summation order (tested for every vectorizable method). Groups smaller than
`min_group` step client by client; many clients are split into calls of at most `max_call_samples`
samples (bounded activation memory). A sampled client without training data is its own cohort.

Evaluation scores chunks of clients the same way: each chunk's adapt hook and fine-tuning as
vectorized steps, then one vmapped forward of the clients' evaluated models over their val and test
samples (padded to the chunk's longest, at most eval_batch_size samples per forward).
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from fedbench.engines.sequential import SequentialEngine


class VmapEngine(SequentialEngine):
    name = "vmap"
    # Groups smaller than this step client by client: a vmapped step of a few MLP clients costs ~4-5 plain
    # steps on a CPU (default run, min_group 4/5/6/8: 37.6/29.7/31.4/34.9 ms per FedAvg round, sequential
    # 45.0; FedBSD 39.6/38.3/38.2/42.2 vs 67.0).
    min_group = 5
    # Samples (clients x padded batch) per vmapped call: many clients per round are stepped in several
    # calls, so activation memory stays that of one batch of this size (a GPU's, for large models).
    max_call_samples = 4096

    def cohorts(self, fed, t: int, sampled: np.ndarray):
        """The clients without training data one by one (they take no step), then all the others as
        one cohort ordered by decreasing train size."""
        n = fed.n_train[sampled]
        for k in sampled[n == 0]:
            yield fed.cohort([int(k)], t, "train")
        rows = sampled[n > 0][np.argsort(-n[n > 0], kind="stable")]
        if len(rows):
            yield fed.cohort(rows, t, "train", vmapped=True)

    def gradients(self, client, objective, names: list[str], step) -> tuple[dict, torch.Tensor]:
        G = step.active
        if not client.vmapped or G < self.min_group:
            return super().gradients(client, objective, names, step)
        x, y = client.data.x, client.data.y
        size = max(1, self.max_call_samples // step.idx.shape[1])
        parts, losses = [], []
        for a in range(0, G, size):
            c = slice(a, min(G, a + size))
            leaves = {n: client.state[n][c].detach().requires_grad_() for n in names}
            w = None if step.w is None else step.w[c]
            loss = client.call(objective, leaves, c, x[step.idx[c]], y[step.idx[c]], w)
            parts.append(torch.autograd.grad(loss.sum(), list(leaves.values()), allow_unused=True))
            losses.append(loss.detach())
        grads = {n: None if parts[0][j] is None else (parts[0][j] if len(parts) == 1 else
                                                      torch.cat([p[j] for p in parts]))
                 for j, n in enumerate(names)}
        return grads, torch.cat(losses)

    def score(self, fed, t: int) -> tuple[np.ndarray, np.ndarray]:
        """As SequentialEngine.score, chunk by chunk of clients of similar evaluation size."""
        K, dev = fed.data.num_clients, fed.data.x.device
        counts = fed.eval_counts()
        sizes = counts.sum(1)
        idx, seg = fed.eval_index()
        starts = np.concatenate([[0], np.cumsum(sizes)])
        correct = torch.zeros(2 * K, dtype=torch.float64, device=dev)
        loss = torch.zeros(2 * K, dtype=torch.float64, device=dev)
        for chunk in self._chunks(sizes, fed.run.eval_batch_size):
            chunk = chunk[np.argsort(-fed.n_train[chunk], kind="stable")]  # train-size order for adapting
            longest = int(sizes[chunk].max())
            if longest == 0:  # nothing to score: no adapting or fine-tuning either
                continue
            client = fed.evaluated(chunk, t, vmapped=True)
            pos = torch.arange(longest, device=dev).unsqueeze(0)
            mask = pos < torch.as_tensor(sizes[chunk], device=dev).unsqueeze(1)
            flat = torch.as_tensor(starts[chunk], device=dev).unsqueeze(1) + pos
            flat = torch.where(mask, flat, torch.zeros_like(flat))  # padding reads sample 0, masked out
            sample, segment = idx[flat], seg[flat]
            fed.step_models.set_mode(False)
            with torch.no_grad():
                logits = client.call(None, {}, slice(0, len(chunk)), fed.data.x[sample], None)
            y = fed.data.y[sample]
            hit = (logits.argmax(-1) == y) & mask
            ce = F.cross_entropy(logits.flatten(0, 1), y.flatten(), reduction="none").view(len(chunk), longest)
            correct.index_add_(0, segment[mask], hit[mask].to(torch.float64))
            loss.index_add_(0, segment[mask], ce[mask].to(torch.float64))
        return correct.view(K, 2).cpu().numpy(), loss.view(K, 2).cpu().numpy()

    @staticmethod
    def _chunks(sizes: np.ndarray, budget: int):
        """Clients in order of evaluation size, in chunks whose padded samples fit `budget` (at least
        one client per chunk)."""
        order = np.argsort(sizes, kind="stable")
        k = 0
        while k < len(order):
            end = k + 1
            while end < len(order) and int(sizes[order[end]]) * (end + 1 - k) <= budget:
                end += 1
            yield order[k:end]
            k = end
