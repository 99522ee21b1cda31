"""One of a cohort's models (its model or its personal model) as a method's local update sees it: the
cohort's stacked tensors of that model, by name and by part."""
from __future__ import annotations

import weakref

import torch
from torch import nn

_NAMES: "weakref.WeakKeyDictionary[nn.Module, dict]" = weakref.WeakKeyDictionary()  # names(), per module


class ModelHandle:
    """`tensors()` are the model's state tensors for every client of the cohort (views of the cohort
    state, a leading client dimension); `names(part)` their cohort-state names."""

    def __init__(self, state: dict[str, torch.Tensor], prefix: str, module: nn.Module):
        self.state, self.prefix, self.module = state, prefix, module  # the cohort's state (no cycle to it)

    def names(self, part="all", params_only: bool = True) -> list[str]:
        key = (self.prefix, part if isinstance(part, str) else tuple(part), params_only)
        if key not in _NAMES.setdefault(self.module, {}):  # the module's structure never changes
            keys = self.module.keys(part)
            if params_only:
                params = dict(self.module.named_parameters())
                keys = [k for k in keys if k in params]
            _NAMES[self.module][key] = [self.prefix + k for k in keys]
        return _NAMES[self.module][key]

    def tensors(self, params_only: bool = False) -> dict[str, torch.Tensor]:
        return {n.removeprefix(self.prefix): self.state[n] for n in self.names("all", params_only)}

    def state_dict(self, row: int = 0) -> dict[str, torch.Tensor]:
        """One client's tensors of this model (views), keyed as the module's state dict."""
        return {k: t[row] for k, t in self.tensors().items()}

    @torch.no_grad()
    def assign(self, other: "ModelHandle") -> None:
        """Copy `other`'s tensors (same architecture) into this model, for every client."""
        for k, t in self.tensors().items():
            t.copy_(other.tensors()[k])
