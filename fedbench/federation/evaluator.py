"""Scoring every client's evaluated model on its val and test splits: the evaluation layout (each
client's val then test samples), the per-client counts, and the one reduction (argmax, cross-entropy,
masking, sums per client and split). Engines supply only "the logits of this cohort on these inputs".
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from fedbench.data.types import FederatedData


def accumulate(correct: torch.Tensor, loss: torch.Tensor, logits: torch.Tensor, y: torch.Tensor,
               segment: torch.Tensor, mask: torch.Tensor | None = None) -> None:
    """The one reduction: add each sample's hit (argmax == y) and cross-entropy, in float64, to its
    segment's sums (segment 2k: client k's val split, 2k + 1: its test split); `mask` drops padding."""
    hit = logits.argmax(-1) == y
    ce = F.cross_entropy(logits.flatten(0, -2), y.flatten(), reduction="none").view(y.shape)
    if mask is not None:
        segment, hit, ce = segment[mask], hit[mask], ce[mask]
    correct.index_add_(0, segment.flatten(), hit.flatten().to(torch.float64))
    loss.index_add_(0, segment.flatten(), ce.flatten().to(torch.float64))


class Evaluator:
    """Owns the evaluation index of a federation's data: `counts` (K, 2) val and test sizes, `index`
    (the samples, client by client, val then test) and `segment` (each sample's client and split)."""

    def __init__(self, data: FederatedData, batch_size: int):
        self.data, self.batch_size = data, batch_size
        self.counts = data.sizes[:, 1:].copy()                       # (K, 2): val, test
        dev = data.x.device
        parts = [part for c in data.clients for part in (c.val, c.test)]
        self.index = torch.cat(parts).to(dev) if parts else torch.zeros(0, dtype=torch.int64, device=dev)
        self.segment = torch.repeat_interleave(torch.arange(self.counts.size, device=dev),
                                               torch.as_tensor(self.counts.reshape(-1), device=dev))
        self.starts = np.concatenate([[0], np.cumsum(self.counts.sum(1))])

    def _sums(self) -> tuple[torch.Tensor, torch.Tensor]:
        n = self.counts.size
        dev = self.data.x.device
        return (torch.zeros(n, dtype=torch.float64, device=dev), torch.zeros(n, dtype=torch.float64, device=dev))

    @torch.inference_mode()
    def one_model(self, model: torch.nn.Module) -> dict[str, np.ndarray]:
        """Every client evaluated with the same `model` (in eval mode): all samples through it in
        batches of batch_size (several clients' samples share a batch)."""
        correct, loss = self._sums()
        x, y = self.data.x, self.data.y
        was_training = model.training
        model.eval()
        for a in range(0, len(self.index), self.batch_size):
            b, s = self.index[a:a + self.batch_size], self.segment[a:a + self.batch_size]
            accumulate(correct, loss, model(x[b]), y[b], s)
        model.train(was_training)
        return self.assemble(correct, loss)

    def cohorts(self, engine, evaluated: Callable, n_train: np.ndarray) -> dict[str, np.ndarray]:
        """Every client's own evaluated model: the engine's evaluation cohorts, each prepared by
        `evaluated(ids, vmapped)` (adapt hook, fine-tuning), then its logits on its clients' val and
        test samples, padded to the cohort's longest."""
        correct, loss = self._sums()
        dev = self.data.x.device
        sizes = self.counts.sum(1)
        for ids, vmapped in engine.eval_chunks(sizes, n_train, self.batch_size):
            if int(sizes[ids].max()) == 0:  # nothing to score: no adapting or fine-tuning either
                continue
            cohort = evaluated(ids, vmapped)
            pos = torch.arange(int(sizes[ids].max()), device=dev).unsqueeze(0)
            mask = pos < torch.as_tensor(sizes[ids], device=dev).unsqueeze(1)
            flat = torch.as_tensor(self.starts[ids], device=dev).unsqueeze(1) + pos
            flat = torch.where(mask, flat, torch.zeros_like(flat))  # padding reads sample 0, masked out
            sample = self.index[flat]
            logits = cohort.predictions(self.data.x[sample])
            accumulate(correct, loss, logits, self.data.y[sample], self.segment[flat], mask)
        return self.assemble(correct, loss)

    def assemble(self, correct: torch.Tensor, loss: torch.Tensor) -> dict[str, np.ndarray]:
        """Per-client val/test accuracy and test loss from the sums (NaN for an empty split)."""
        correct = correct.view(-1, 2).cpu().numpy()
        loss = loss.view(-1, 2).cpu().numpy()
        with np.errstate(invalid="ignore", divide="ignore"):
            acc = np.where(self.counts > 0, correct / self.counts, np.nan)
            mean_loss = np.where(self.counts > 0, loss / self.counts, np.nan)
        return {"val_acc": acc[:, 0], "test_acc": acc[:, 1], "test_loss": mean_loss[:, 1]}
