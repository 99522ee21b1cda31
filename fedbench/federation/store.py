"""Per-client state held as one stacked tensor per name: `tensors[name][k]` is client k's value.

No per-client objects and no deep copies: a client's state is a set of views into the stack, so a
method that updates its state in place writes straight into the store.
"""
from __future__ import annotations

import torch


class ClientStore:
    def __init__(self, num_clients: int, init: dict[str, torch.Tensor]):
        self.tensors = {name: t.detach().unsqueeze(0).repeat(num_clients, *([1] * t.dim())).contiguous()
                        for name, t in init.items()}

    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self.tensors.values())


def nbytes(state: dict[str, torch.Tensor]) -> int:
    return sum(t.numel() * t.element_size() for t in state.values())
