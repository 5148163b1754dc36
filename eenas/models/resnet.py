"""``resnet20`` in PyTorch: He et al.'s CIFAR ResNet-20 (see :mod:`eenas.models.resnet_spec`)."""

from __future__ import annotations

import torch
from torch import nn
from torchvision.ops.misc import Conv2dNormActivation

from eenas.models.backbone import TappedBackbone
from eenas.models.resnet_spec import STEM_CHANNELS, BasicBlockSpec, blocks


class BasicBlock(nn.Module):
    """``relu(conv2(conv1(x)) + shortcut(x))``; the shortcut is a 1x1 conv + BN where the shape changes.

    The convs are torchvision's ``Conv2dNormActivation`` (``conv2`` and the shortcut without
    activation) and ``relu`` a module, so QAT converts them with no code of its own.
    """

    def __init__(self, spec: BasicBlockSpec) -> None:
        super().__init__()
        out = spec.out_channels
        self.conv1 = Conv2dNormActivation(spec.in_channels, out, 3, spec.stride, activation_layer=nn.ReLU)
        self.conv2 = Conv2dNormActivation(out, out, 3, 1, activation_layer=None)
        self.shortcut = (Conv2dNormActivation(spec.in_channels, out, 1, spec.stride, activation_layer=None)
                         if spec.projection else nn.Identity())
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.conv2(self.conv1(x)) + self.shortcut(x))


class ResNet20(TappedBackbone):
    """``features[0]`` is the stem, ``features[b]`` basic block *b* (1..9); ``final`` pools and classifies."""

    def __init__(self, num_classes: int, dropout: float = 0.0) -> None:
        super().__init__()
        stem = Conv2dNormActivation(3, STEM_CHANNELS, 3, 1, activation_layer=nn.ReLU)
        self.features = nn.Sequential(stem, *(BasicBlock(b) for b in blocks()))
        channels = blocks()[-1].out_channels
        self.final = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(1), nn.Dropout(dropout),
                                   nn.Linear(channels, num_classes))


def resnet20_backbone(num_classes: int, dropout: float) -> ResNet20:
    """The registry's builder of ``resnet20``."""
    return ResNet20(num_classes, dropout)
