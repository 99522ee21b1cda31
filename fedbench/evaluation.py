"""Evaluation: per-client accuracy and the summary statistics of the protocol (README §Evaluation).

Per evaluation round, over ALL clients: unweighted mean, test-sample-weighted mean, std, and the
bottom decile (mean accuracy of the worst 10% of clients, at least one client).
Headline numbers: final = mean of the last k evaluations; best = test accuracy at the evaluation
round with the highest mean validation accuracy (never the max over test rounds).
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F


@torch.inference_mode()
def split_sums(predict, x: torch.Tensor, y: torch.Tensor, idx: torch.Tensor, batch_size: int) -> tuple[float, float]:
    """(correct predictions, summed cross-entropy) of `predict` (inputs -> logits, its modules in
    eval mode) on samples `idx`, in batches of `batch_size`; (0, 0) for an empty split."""
    correct = torch.zeros((), device=x.device)
    loss = torch.zeros((), device=x.device, dtype=torch.float64)
    for start in range(0, len(idx), batch_size):
        b = idx[start:start + batch_size]
        logits = predict(x[b])
        correct += (logits.argmax(1) == y[b]).sum()
        loss += F.cross_entropy(logits, y[b], reduction="sum").double()
    return float(correct), float(loss)


def evaluate_assembled(correct: np.ndarray, loss: np.ndarray, counts: np.ndarray) -> dict[str, np.ndarray]:
    """Per-client val/test accuracy and test loss from (K, 2) sums of correct predictions and
    cross-entropy over (K, 2) split sizes (NaN for an empty split)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        acc = np.where(counts > 0, correct / counts, np.nan)
        mean_loss = np.where(counts > 0, loss / counts, np.nan)
    return {"val_acc": acc[:, 0], "test_acc": acc[:, 1], "test_loss": mean_loss[:, 1]}


@torch.inference_mode()
def segment_sums(model, x: torch.Tensor, y: torch.Tensor, idx: torch.Tensor, segment: torch.Tensor,
                 num_segments: int, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(correct predictions, summed cross-entropy) of `model` per segment, float64 tensors of length
    `num_segments` on x's device: sample idx[i] counts toward segment[i]. One pass in batches of up to
    `batch_size` (several clients' or splits' samples share a batch), no host sync."""
    correct = torch.zeros(num_segments, dtype=torch.float64, device=x.device)
    loss = torch.zeros(num_segments, dtype=torch.float64, device=x.device)
    was_training = model.training
    model.eval()
    for start in range(0, len(idx), batch_size):
        b, s = idx[start:start + batch_size], segment[start:start + batch_size]
        logits = model(x[b])
        correct.index_add_(0, s, (logits.argmax(1) == y[b]).to(torch.float64))
        loss.index_add_(0, s, F.cross_entropy(logits, y[b], reduction="none").to(torch.float64))
    model.train(was_training)
    return correct, loss


def bottom_decile(acc: np.ndarray) -> float:
    acc = np.sort(acc[~np.isnan(acc)])
    return float(acc[: max(1, math.ceil(0.1 * len(acc)))].mean()) if len(acc) else float("nan")


def summarize(acc: np.ndarray, weights: np.ndarray, prefix: str) -> dict[str, float]:
    """Unweighted mean, weighted mean, std and bottom decile of per-client accuracies."""
    ok = ~np.isnan(acc)
    a, w = acc[ok], weights[ok]
    if not len(a):  # no client has samples in this split (e.g. data.val_frac=0)
        return dict.fromkeys([prefix, f"{prefix}_weighted", f"{prefix}_std", f"{prefix}_bottom10"], float("nan"))
    return {prefix: float(a.mean()), f"{prefix}_weighted": float((a * w).sum() / w.sum()),
            f"{prefix}_std": float(a.std()), f"{prefix}_bottom10": bottom_decile(a)}


def headline(metrics: pd.DataFrame, k: int) -> dict[str, float]:
    """Final (mean of the last k evaluations) and best-by-validation numbers from metrics rows, with
    the validation accuracy each stands on (final_val_acc, best_val_acc: what tuning selects by)."""
    cols = ["test_acc", "test_acc_weighted", "test_acc_std", "test_acc_bottom10"]
    last = metrics.tail(k)
    out = {f"final_{c.removeprefix('test_')}": float(last[c].mean()) for c in cols}
    best = metrics.loc[metrics["val_acc"].idxmax()] if metrics["val_acc"].notna().any() else metrics.iloc[-1]
    out |= {f"best_{c.removeprefix('test_')}": float(best[c]) for c in cols}
    out["best_round"] = int(best["round"])
    out["final_val_acc"], out["best_val_acc"] = float(last["val_acc"].mean()), float(best["val_acc"])
    return out
