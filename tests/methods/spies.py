"""Spies shared by the method tests: what each client uploads, and the server's mean of it computed
by hand (independently of fedbench.federation's aggregation)."""
from __future__ import annotations

import torch


def record_uploads(fed) -> list[tuple[int, dict[str, torch.Tensor]]]:
    """Wrap `fed.method.upload`; the returned list fills with (client id, a copy of its upload), in
    upload order. Clear it between rounds to keep one round."""
    uploads, real = [], fed.method.upload

    def spy(client, keys):
        out = real(client, keys)
        uploads.append((client.id, {k: v.detach().clone() for k, v in out.items()}))
        return out

    fed.method.upload = spy
    return uploads


def mean_upload(uploads, data, weighting: str) -> dict[str, torch.Tensor]:
    """The mean of the recorded uploads: weights n_k (the client's train size, read from `data`) for
    "samples", 1 for "uniform"; in float64."""
    weights = [float(len(data.clients[k].train)) if weighting == "samples" else 1.0 for k, _ in uploads]
    total = sum(weights)
    names = uploads[0][1]
    return {n: sum(w * up[n].double() for w, (_, up) in zip(weights, uploads)) / total for n in names}
