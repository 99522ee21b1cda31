"""A ReLU MLP on flattened inputs (digits, synthetic)."""
from __future__ import annotations

import torch
from torch import nn

from fedbench.models import register
from fedbench.models.split import _split


@register("mlp", {"hidden": "list of int [1, inf)", "bn": "bool", "head_layers": "int [1, inf)"}, (8,))
def mlp(input_shape, num_classes, hidden=(128, 64), bn=False, head_layers=1, **_) -> SplitModel:
    """A ReLU MLP on flattened inputs (digits, synthetic). `bn=true` adds BatchNorm1d after each
    hidden Linear (for FedBN on flat data); without it the parameter names are unchanged."""
    dims = [int(torch.tensor(input_shape).prod())] + list(hidden)
    blocks: list[nn.Module] = [nn.Flatten()]
    blocks += [nn.Sequential(nn.Linear(a, b), *([nn.BatchNorm1d(b)] if bn else []), nn.ReLU())
               for a, b in zip(dims[:-1], dims[1:])]
    blocks.append(nn.Linear(dims[-1], num_classes))
    return _split(blocks, head_layers)
