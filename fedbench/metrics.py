"""The protocol's numbers (README §Evaluation) from per-client accuracies (fedbench.federation's
Evaluator scores the models).

Per evaluation round, over ALL clients: unweighted mean, test-sample-weighted mean, std, and the
bottom decile (mean accuracy of the worst 10% of clients, at least one client).
Headline numbers: final = mean of the last k evaluations; best = test accuracy at the evaluation
round with the highest mean validation accuracy (never the max over test rounds). Compute: the
COMPUTE_FIELDS counted by fedbench.federation.compute.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd


# The compute every run counts apart (fedbench.federation.compute), in summary.json and summary.csv;
# compute_flops = training (train_flops + train_forward_flops) plus ONE personalization (the last
# evaluation's, personalize_once_flops), so it does not depend on eval_every; personalize_train_* is the
# personalization of every evaluation together.
COMPUTE_FIELDS = ("train_samples", "train_flops", "train_forward_samples", "train_forward_flops",
                  "personalize_train_samples", "personalize_train_flops", "personalize_once_samples",
                  "personalize_once_flops")


# The newcomers' numbers (unseen_frac > 0; fedbench.federation.newcomers), in summary.json and summary.csv.
UNSEEN_FIELDS = ("unseen_clients", "unseen_acc", "unseen_acc_weighted", "unseen_acc_bottom10", "unseen_val_acc",
                 "seen_acc", "participation_gap", "unseen_samples", "unseen_flops")


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


def metrics_row(t: int, ev: dict, loss: float, sizes: np.ndarray, bytes_up: int, bytes_down: int) -> dict:
    """One metrics.csv row: round t's evaluation `ev` summarized (weights: the clients' test and val
    sizes, `sizes` (K, 3) train/val/test), the mean local loss and the bytes so far."""
    row = {"round": t}
    row |= summarize(ev["test_acc"], sizes[:, 2].astype(float), "test_acc")
    row |= summarize(ev["val_acc"], np.maximum(sizes[:, 1].astype(float), 1e-12), "val_acc")
    row |= {"test_loss": float(np.nanmean(ev["test_loss"])), "train_loss": loss,
            "bytes_up": bytes_up, "bytes_down": bytes_down}
    return row


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


def newcomer_summary(seen_acc: float, ev: dict, sizes: np.ndarray) -> dict[str, float]:
    """The newcomers' numbers (fedbench.federation.newcomers; contract names): unseen_acc (their mean
    test accuracy, welcomed after the last round), its weighted mean and bottom decile, seen_acc (the
    participants' mean test accuracy at the last evaluation: the same models' round) and
    participation_gap = seen_acc - unseen_acc."""
    out = summarize(ev["test_acc"], sizes[:, 2].astype(float), "unseen_acc")
    out.pop("unseen_acc_std")
    out["unseen_val_acc"] = summarize(ev["val_acc"], np.maximum(sizes[:, 1].astype(float), 1e-12), "v")["v"]
    return out | {"seen_acc": float(seen_acc), "participation_gap": float(seen_acc) - out["unseen_acc"]}
