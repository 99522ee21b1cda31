"""engine=vmap's evaluation: all clients' own models as vmapped forwards over chunks of clients
(samples padded to the chunk's longest, at most eval_batch_size padded samples per forward)."""
from __future__ import annotations

import numpy as np
import torch
from torch.func import functional_call, vmap

from fedbench.engines.vmap_params import stacked_params


@torch.inference_mode()
def evaluate_vmapped(fed) -> dict[str, np.ndarray]:
    """Every client's own model (global + its personal tensors) on its val and test splits, as
    vmapped forwards over chunks of clients of similar size; `fed` is a VmapFederation."""
    K, dev = fed.data.num_clients, fed.data.x.device
    budget = fed.hp.eval_batch_size  # padded samples per vmapped forward: the sequential batch size
    idx, seg, counts = fed._eval_index()
    sizes = counts.sum(1)
    starts = np.concatenate([[0], np.cumsum(sizes)])
    live = fed.model.state_dict()
    forward = vmap(lambda p, x: functional_call(fed.model, p, (x,)))
    correct = torch.zeros(2 * K, dtype=torch.float64, device=dev)
    loss = torch.zeros(2 * K, dtype=torch.float64, device=dev)
    was_training = fed.model.training
    fed.model.eval()
    order = np.argsort(sizes, kind="stable")  # similar sizes share a chunk: little padding
    k = 0
    while k < K:  # a chunk of clients whose padded samples fit the budget (at least one client)
        end = k + 1
        while end < K and int(sizes[order[end]]) * (end + 1 - k) <= budget:
            end += 1
        chunk = order[k:end]
        longest = int(sizes[chunk[-1]])
        k = end
        if longest == 0:
            continue
        C = len(chunk)
        pos = torch.arange(longest, device=dev).unsqueeze(0)
        mask = pos < torch.as_tensor(sizes[chunk], device=dev).unsqueeze(1)
        flat = torch.as_tensor(starts[chunk], device=dev).unsqueeze(1) + pos
        flat = torch.where(mask, flat, torch.zeros_like(flat))  # padding reads sample 0, masked out
        sample, segment = idx[flat], seg[flat]
        rows = torch.as_tensor(chunk, device=dev)
        params = stacked_params(fed, "eval", rows, live)
        logits = forward(params, fed.data.x[sample])  # (C, longest, classes)
        y = fed.data.y[sample]
        hit = (logits.argmax(-1) == y) & mask
        ce = torch.nn.functional.cross_entropy(logits.flatten(0, 1), y.flatten(), reduction="none")
        correct.index_add_(0, segment[mask], hit[mask].to(torch.float64))
        loss.index_add_(0, segment[mask], ce.view(C, longest)[mask].to(torch.float64))
    fed.model.train(was_training)
    correct, loss = correct.view(K, 2).cpu().numpy(), loss.view(K, 2).cpu().numpy()
    with np.errstate(invalid="ignore", divide="ignore"):
        acc = np.where(counts > 0, correct / counts, np.nan)
        mean_loss = np.where(counts > 0, loss / counts, np.nan)
    return {"val_acc": acc[:, 0], "test_acc": acc[:, 1], "test_loss": mean_loss[:, 1]}
