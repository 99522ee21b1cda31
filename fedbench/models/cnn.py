"""The small convolutional networks: the FedAvg/PFLlib CNN and LeNet-5 (FEMNIST)."""
from __future__ import annotations

import torch
from torch import nn

from fedbench.models import register
from fedbench.models.split import _split


def _conv_block(c_in: int, c_out: int, kernel: int, bn: bool, padding: int = 0) -> nn.Module:
    layers = [nn.Conv2d(c_in, c_out, kernel, padding=padding)]
    if bn:
        layers.append(nn.BatchNorm2d(c_out))
    layers += [nn.ReLU(), nn.MaxPool2d(2)]
    return nn.Sequential(*layers)


@register("cnn", {"hidden": "list of int [1, inf)", "channels": "list of int [1, inf)", "bn": "bool",
                  "head_layers": "int [1, inf)"}, (1, 28, 28))
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


@register("lenet", {"bn": "bool", "head_layers": "int [1, inf)"}, (1, 28, 28))
def lenet(input_shape, num_classes, bn=False, head_layers=1, **_):
    """LeNet-5 style CNN for 28x28 FEMNIST characters: conv6-pool-conv16-pool-fc120-fc84-head."""
    c, h, w = input_shape
    blocks = [_conv_block(c, 6, 5, bn, padding=2), _conv_block(6, 16, 5, bn), nn.Flatten()]
    flat = 16 * ((h // 2 - 4) // 2) * ((w // 2 - 4) // 2)
    blocks += [nn.Sequential(nn.Linear(flat, 120), nn.ReLU()), nn.Sequential(nn.Linear(120, 84), nn.ReLU()),
               nn.Linear(84, num_classes)]
    return _split(blocks, head_layers)
