"""Spies shared by the method tests: what each client uploads, and the server's mean of it computed
by hand (independently of fedbench.federation's aggregation)."""
from __future__ import annotations

import torch


def record_uploads(fed) -> list[tuple[int, dict[str, torch.Tensor]]]:
    """Wrap `fed.upload`; the returned list fills with (client id, a copy of its upload), in upload
    order (a cohort's clients in its row order). Clear it between rounds to keep one round."""
    uploads, real = [], fed.upload

    def spy(client):
        out = real(client)
        for row, k in enumerate(client.ids):
            uploads.append((int(k), {n: v[row].detach().clone() for n, v in out.items()}))
        return out

    fed.upload = spy
    return uploads


def record_trained(fed, snapshot) -> dict[int, object]:
    """Wrap the method's local update: {client id: snapshot(cohort)} right after each client's local
    training, before aggregation (filled as rounds run; the federation's engine must make cohorts of one)."""
    trained, real = {}, fed.method.local_update

    def record(cohort):
        loss = real(cohort)
        (k,) = cohort.ids
        trained[int(k)] = snapshot(cohort)
        return loss

    fed.method.local_update = record
    return trained


def mean_upload(uploads, data, weighting: str) -> dict[str, torch.Tensor]:
    """The mean of the recorded uploads: weights n_k (the client's train size, read from `data`) for
    "samples", 1 for "uniform"; in float64."""
    weights = [float(len(data.clients[k].train)) if weighting == "samples" else 1.0 for k, _ in uploads]
    total = sum(weights)
    names = uploads[0][1]
    return {n: sum(w * up[n].double() for w, (_, up) in zip(weights, uploads)) / total for n in names}


def record_evaluated(fed) -> list[dict[str, torch.Tensor]]:
    """Wrap `fed.evaluated`; the returned list fills with a copy of every evaluated model's tensors
    (the `evaluates` model, after adapt and fine-tuning), once per client, in evaluation order."""
    seen, real = [], fed.evaluated

    def spy(ids, t, vmapped=False):
        cohort = real(ids, t, vmapped)
        model = getattr(cohort, fed.method.evaluates)
        for row in range(cohort.size):
            seen.append({k: v.clone() for k, v in model.state_dict(row).items()})
        return cohort

    fed.evaluated = spy
    return seen


def grad_at(model, params: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
    """d CE / d params of `model` with `params` substituted (a hand computation, for the tests)."""
    import torch.nn.functional as F
    from torch.func import functional_call

    leaves = {k: p.detach().requires_grad_() for k, p in params.items()}
    loss = F.cross_entropy(functional_call(model, leaves, (x,)), y)
    return dict(zip(leaves, torch.autograd.grad(loss, list(leaves.values()))))
