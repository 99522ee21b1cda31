"""ResNet-18 for 32x32 images (CIFAR)."""
from __future__ import annotations

from torch import nn

from fedbench.models import register
from fedbench.models.split import SplitModel


class GlobalAvgPool(nn.Module):
    """Mean over H x W, kept as 1 x 1: AdaptiveAvgPool2d(1)'s value, but with a backward that has a
    deterministic CUDA implementation (AdaptiveAvgPool2d's has none), so deterministic=true works."""

    def forward(self, x):
        return x.mean(dim=(2, 3), keepdim=True)


@register("resnet18", {"head_layers": "int [1, inf)"}, (3, 32, 32))
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
