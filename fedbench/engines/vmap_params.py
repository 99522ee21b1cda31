"""The stacked per-client tensors the vmap engine trains and evaluates: what `Federation.load` puts
in the live model for one client, for many clients at once."""
from __future__ import annotations

import torch


def stacked_params(fed, phase: str, rows: torch.Tensor, live: dict) -> dict[str, torch.Tensor]:
    """The tensors of clients `rows` (one row each, in a new first dimension), as `Federation.load`
    gives them for `phase`: the client's own copy of each personal tensor the phase takes from it
    (of a shared one only once the client has trained), else the global (or fixed, or live) value.
    For training they are fresh tensors (stepped in place); for evaluation shared ones may be views."""
    base = fed.fixed | fed.global_state
    own = set(fed.own[phase])
    trained = torch.as_tensor(fed.times_sampled > 0, device=rows.device)[rows]
    out = {}
    for n, t in live.items():
        shared = base.get(n, t.detach()).unsqueeze(0).expand(len(rows), *t.shape)
        if n not in own:
            out[n] = shared if phase == "eval" else shared.clone()  # training steps it in place
            continue
        mine = fed.store.tensors[n].index_select(0, rows)
        if n in fed.global_state:  # a copy of a shared tensor: the global one until the client trains
            mine = torch.where(trained.view(-1, *([1] * t.dim())), mine, shared)
        out[n] = mine
    return out
