"""The split every model is: `head(backbone(x))`, with named parts (fedbench.models)."""
from __future__ import annotations

import torch
from torch import nn

PARTS = ("all", "none", "backbone", "head", "bn", "non_bn")  # or any top-level module name


class SplitModel(nn.Module):
    """`head(backbone(x))`; `backbone(x)` is the feature vector used for distillation."""

    def __init__(self, backbone: nn.Module, head: nn.Module):
        super().__init__()
        self.backbone = backbone
        self.head = head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x))

    @property
    def feature_dim(self) -> int:
        """The size of the feature vector the head reads (its first Linear's input)."""
        return next(m for m in self.head.modules() if isinstance(m, nn.Linear)).in_features

    @property
    def num_classes(self) -> int:
        """The number of logits (the head's last Linear's output)."""
        return [m for m in self.head.modules() if isinstance(m, nn.Linear)][-1].out_features

    def has_batchnorm(self) -> bool:
        return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in self.modules())

    def parameters_of(self, part: str) -> list[nn.Parameter]:
        """The trainable parameters of `part` (buffers excluded)."""
        keys = set(self.keys(part))
        return [p for name, p in self.named_parameters() if name in keys]

    def keys(self, part) -> list[str]:
        """State-dict keys (parameters and buffers) of `part`, in state-dict order. A part is "all",
        "none", "bn", "non_bn", the name of a top-level module ("backbone", "head", or one a method
        adds), or a list of parts (their union)."""
        names = list(self.state_dict().keys())
        if not isinstance(part, str):
            chosen = {k for p in part for k in self.keys(p)}
            return [k for k in names if k in chosen]
        if part == "all":
            return names
        if part == "none":
            return []
        if part in ("bn", "non_bn"):
            bn = {f"{mod_name}.{t}" for mod_name, m in self.named_modules()
                  if isinstance(m, nn.modules.batchnorm._BatchNorm)
                  for t, _ in list(m.named_parameters(recurse=False)) + list(m.named_buffers(recurse=False))}
            return [k for k in names if (k in bn) == (part == "bn")]
        if part in dict(self.named_children()):
            return [k for k in names if k.startswith(part + ".")]
        raise ValueError(f"unknown model part {part!r}; choose one of {PARTS} or a top-level module name")


def _split(blocks: list[nn.Module], head_layers: int) -> SplitModel:
    if not 1 <= head_layers < len(blocks):
        raise ValueError(f"model.head_layers={head_layers} must be in [1, {len(blocks) - 1}]")
    return SplitModel(nn.Sequential(*blocks[:-head_layers]), nn.Sequential(*blocks[-head_layers:]))
