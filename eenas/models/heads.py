"""Build exit heads from their :class:`~eenas.models.spec.HeadSpec` (any registered family's)."""

from __future__ import annotations

from torch import nn
from torchvision.ops.misc import Conv2dNormActivation

from eenas.models.registry import head_spec


def build_head(name: str, in_channels: int, in_size: int, num_classes: int, dropout: float = 0.0) -> nn.Sequential:
    """An exit head for a ``in_channels x in_size x in_size`` feature map (``dropout`` before its first FC)."""
    spec = head_spec(name)
    layers: list[nn.Module] = []
    channels = in_channels
    if spec.depthwise:
        layers.append(Conv2dNormActivation(channels, channels, 3, groups=channels, activation_layer=nn.ReLU6))
    if spec.conv_channels:
        layers.append(Conv2dNormActivation(channels, spec.conv_channels, 1, activation_layer=nn.ReLU6))
    pooled = spec.pooled_size(in_size)
    layers.append(nn.AdaptiveMaxPool2d(pooled) if spec.pool == "max" else nn.AdaptiveAvgPool2d(pooled))
    layers.append(nn.Flatten(1))
    if dropout:
        layers.append(nn.Dropout(dropout))
    features = spec.fc_in_features(in_channels, in_size)
    if spec.hidden:
        layers += [nn.Linear(features, features // 2), nn.ReLU6()]
        features //= 2
    layers.append(nn.Linear(features, num_classes))
    return nn.Sequential(*layers)
