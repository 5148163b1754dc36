"""Build exit heads from the registry in :mod:`eenas.models.spec`."""

from __future__ import annotations

from torch import nn
from torchvision.ops.misc import Conv2dNormActivation

from eenas.models.spec import HEADS


def build_head(name: str, in_channels: int, in_size: int, num_classes: int) -> nn.Sequential:
    """An exit head for a ``in_channels x in_size x in_size`` feature map."""
    spec = HEADS[name]
    layers: list[nn.Module] = []
    channels = in_channels
    if spec.depthwise:
        layers.append(Conv2dNormActivation(channels, channels, 3, groups=channels, activation_layer=nn.ReLU6))
    if spec.conv_channels:
        layers.append(Conv2dNormActivation(channels, spec.conv_channels, 1, activation_layer=nn.ReLU6))
    pooled = spec.pooled_size(in_size)
    layers.append(nn.AdaptiveMaxPool2d(pooled) if spec.pool == "max" else nn.AdaptiveAvgPool2d(pooled))
    layers += [nn.Flatten(1), nn.Linear(spec.fc_in_features(in_channels, in_size), num_classes)]
    return nn.Sequential(*layers)
