"""MobileNetV2 for 32x32 inputs, built from torchvision (see :mod:`eenas.models.spec`)."""

from __future__ import annotations

from collections.abc import Iterable

import torch
import torchvision
from torch import nn

from eenas.models.spec import INVERTED_RESIDUAL_SETTING, NUM_BLOCKS, STEM_STRIDE


def mobilenet_v2_cifar(
    num_classes: int, width_mult: float = 1.0, dropout: float = 0.2
) -> torchvision.models.MobileNetV2:
    """torchvision's MobileNetV2 with the stem stride set for 32x32 inputs."""
    model = torchvision.models.mobilenet_v2(
        weights=None,
        num_classes=num_classes,
        width_mult=width_mult,
        inverted_residual_setting=[list(row) for row in INVERTED_RESIDUAL_SETTING],
        dropout=dropout,
    )
    model.features[0][0].stride = (STEM_STRIDE, STEM_STRIDE)
    return model


class Backbone(nn.Module):
    """The torchvision network split where exits attach.

    ``features[0]`` is the stem and ``features[b]`` inverted-residual block *b* (1..17);
    ``final`` is the last 1x1 conv, global average pool and classifier: the last exit.
    """

    def __init__(self, num_classes: int, width_mult: float = 1.0, dropout: float = 0.2) -> None:
        super().__init__()
        tv = mobilenet_v2_cifar(num_classes, width_mult, dropout)
        self.features = tv.features[: NUM_BLOCKS + 1]
        self.final = nn.Sequential(tv.features[NUM_BLOCKS + 1], nn.AdaptiveAvgPool2d(1), nn.Flatten(1), tv.classifier)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.final(self.features(x))

    def taps(self, x: torch.Tensor, mounts: Iterable[int]) -> tuple[dict[int, torch.Tensor], torch.Tensor]:
        """Outputs of the given blocks, and the final logits, in one pass."""
        wanted, out = set(mounts), {}
        for index, layer in enumerate(self.features):
            x = layer(x)
            if index in wanted:
                out[index] = x
        return out, self.final(x)
