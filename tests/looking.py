"""Looking at a cohort from a test: one client's model as a standalone module or a forward, and a
plan's batches as (inputs, labels). The round never needs these."""
from __future__ import annotations

import copy

import torch
from torch import nn
from torch.func import functional_call


def copy_of(handle, row: int = 0) -> nn.Module:
    """A standalone module holding client `row`'s tensors of a cohort's model (a ModelHandle)."""
    module = copy.deepcopy(handle.module)
    module.load_state_dict(handle.state_dict(row))
    return module


def forward(handle, x: torch.Tensor, row: int = 0) -> torch.Tensor:
    """The forward of client `row`'s model (a ModelHandle) on x."""
    return functional_call(handle.module, handle.state_dict(row), (x,))


def batches_xy(plan, data, row: int = 0):
    """Client `row`'s batches of a plan as (inputs, labels), step by step."""
    for step in plan.steps:
        if step.active > row:
            idx = step.rows(row)
            yield data.x[idx], data.y[idx]
