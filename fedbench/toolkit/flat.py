"""Models as flat vectors, for methods whose server keeps or combines whole models (one row per client):
the parameters of a model, or of a stack of clients' models, in named_parameters order, and back."""
from __future__ import annotations

import torch


def shapes(model) -> list[tuple[str, torch.Size]]:
    """(key, shape) of a model's parameters, in order: what flat vectors are made of."""
    return [(k, p.shape) for k, p in model.named_parameters()]


def flat_init(model) -> torch.Tensor:
    """The model's parameters as one vector (P,)."""
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()])


def flatten(tensors: dict[str, torch.Tensor], layout: list) -> torch.Tensor:
    """{key: (rows, *shape)} -> (rows, P), in `layout`'s order."""
    return torch.cat([tensors[k].reshape(tensors[k].shape[0], -1) for k, _ in layout], dim=1)


def unflatten(flat: torch.Tensor, layout: list) -> dict[str, torch.Tensor]:
    """(rows, P) -> {key: (rows, *shape)}."""
    out, at = {}, 0
    for key, shape in layout:
        size = int(torch.Size(shape).numel())
        out[key] = flat[:, at:at + size].reshape(flat.shape[0], *shape)
        at += size
    return out


def keep_latest(server, name: str, uploads, layout: list) -> None:
    """server.state[name] (clients, P): each uploading client's row replaced by its uploaded model."""
    if not len(uploads.ids):
        return
    rows = torch.as_tensor(uploads.ids, device=server.state[name].device)
    server.state[name] = server.state[name].index_copy(0, rows, flatten(uploads.tensors, layout).to(server.state[name].dtype))
