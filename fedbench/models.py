"""Models: every model is a `backbone` followed by a `head`, with stable parameter names.

Methods say what is shared by naming a part ("backbone", "head", "bn", "all", "none"), never by
listing layers. The head is the last `head_layers` blocks (default 1: the final linear layer).
"""
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


def mlp(input_shape, num_classes, hidden=(128, 64), bn=False, head_layers=1, **_) -> SplitModel:
    """A ReLU MLP on flattened inputs (digits, synthetic). `bn=true` adds BatchNorm1d after each
    hidden Linear (for FedBN on flat data); without it the parameter names are unchanged."""
    dims = [int(torch.tensor(input_shape).prod())] + list(hidden)
    blocks: list[nn.Module] = [nn.Flatten()]
    blocks += [nn.Sequential(nn.Linear(a, b), *([nn.BatchNorm1d(b)] if bn else []), nn.ReLU())
               for a, b in zip(dims[:-1], dims[1:])]
    blocks.append(nn.Linear(dims[-1], num_classes))
    return _split(blocks, head_layers)


def _conv_block(c_in: int, c_out: int, kernel: int, bn: bool, padding: int = 0) -> nn.Module:
    layers = [nn.Conv2d(c_in, c_out, kernel, padding=padding)]
    if bn:
        layers.append(nn.BatchNorm2d(c_out))
    layers += [nn.ReLU(), nn.MaxPool2d(2)]
    return nn.Sequential(*layers)


def cnn(input_shape, num_classes, channels=(32, 64), hidden=(512,), bn=False, head_layers=1, **_):
    """The small CNN of FedAvg/PFLlib for CIFAR: two 5x5 conv+pool blocks, FC layers, linear head.
    `bn=true` adds BatchNorm after each conv (needed by FedBN)."""
    c, h, w = input_shape
    blocks: list[nn.Module] = []
    for c_out in channels:
        blocks.append(_conv_block(c, c_out, 5, bn))
        c, h, w = c_out, (h - 4) // 2, (w - 4) // 2
    dims = [c * h * w] + list(hidden)
    blocks.append(nn.Flatten())
    blocks += [nn.Sequential(nn.Linear(a, b), nn.ReLU()) for a, b in zip(dims[:-1], dims[1:])]
    blocks.append(nn.Linear(dims[-1], num_classes))
    return _split(blocks, head_layers)


def lenet(input_shape, num_classes, bn=False, head_layers=1, **_):
    """LeNet-5 style CNN for 28x28 FEMNIST characters: conv6-pool-conv16-pool-fc120-fc84-head."""
    c, h, w = input_shape
    blocks = [_conv_block(c, 6, 5, bn, padding=2), _conv_block(6, 16, 5, bn), nn.Flatten()]
    flat = 16 * ((h // 2 - 4) // 2) * ((w // 2 - 4) // 2)
    blocks += [nn.Sequential(nn.Linear(flat, 120), nn.ReLU()), nn.Sequential(nn.Linear(120, 84), nn.ReLU()),
               nn.Linear(84, num_classes)]
    return _split(blocks, head_layers)


class GlobalAvgPool(nn.Module):
    """Mean over H x W, kept as 1 x 1: AdaptiveAvgPool2d(1)'s value, but with a backward that has a
    deterministic CUDA implementation (AdaptiveAvgPool2d's has none), so deterministic=true works."""

    def forward(self, x):
        return x.mean(dim=(2, 3), keepdim=True)


def resnet18(input_shape, num_classes, head_layers=1, **_):
    """torchvision ResNet-18 adapted to 32x32 inputs (3x3 stem, no max-pool, global pooling as a mean);
    head = the final fc."""
    if head_layers != 1:
        raise ValueError("model.head_layers must be 1 for resnet18 (its head is the final fc)")
    from torchvision.models import resnet18 as torchvision_resnet18  # slow import, only when used

    net = torchvision_resnet18(num_classes=num_classes)
    net.conv1 = nn.Conv2d(input_shape[0], 64, 3, 1, 1, bias=False)
    net.maxpool = nn.Identity()
    net.avgpool = GlobalAvgPool()
    head, net.fc = net.fc, nn.Identity()
    return SplitModel(net, head)


MODELS = {"mlp": mlp, "cnn": cnn, "lenet": lenet, "resnet18": resnet18}


def build_model(params: dict, input_shape, num_classes: int) -> SplitModel:
    """Build the model named by `params['name']` with the remaining params as keyword arguments."""
    params = dict(params)
    name = params.pop("name")
    return MODELS[name](tuple(input_shape), num_classes, **params)
