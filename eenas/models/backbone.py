"""The backbone interface the pipeline uses, and MobileNetV2 for 32x32 inputs built from torchvision.

Each registered family (:mod:`eenas.models.registry`) has its builder in a module of its own
(:mod:`eenas.models.paper_mbv2`, :mod:`eenas.models.resnet`), returning a :class:`TappedBackbone`.
"""

from __future__ import annotations

import itertools
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


class TappedBackbone(nn.Module):
    """A network split where exits attach, unit for unit as its :class:`~eenas.models.spec.NetworkSpec`.

    ``features[u]`` is unit *u* (0: the stem), ``final`` the final exit; an exit at mount
    point *m* reads ``features[m + mount_offset]``.  QAT (:mod:`eenas.quant`) wraps the stem
    in ``features[0]`` and converts every conv, linear and activation below.
    """

    features: nn.Sequential
    final: nn.Module
    mount_offset: int = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.final(self.features(x))

    def taps(self, x: torch.Tensor, mounts: Iterable[int],
             classify: bool = True) -> tuple[dict[int, torch.Tensor], torch.Tensor | None]:
        """Outputs at the given mount points, and the final logits, in one pass.

        Without ``classify`` (a network that ends at its last exit) the pass stops at the deepest mount point,
        and there are no final logits.
        """
        wanted, out = {m + self.mount_offset: m for m in mounts}, {}
        end = len(self.features) if classify else max(wanted) + 1
        for index, layer in enumerate(itertools.islice(self.features, end)):
            x = layer(x)
            if index in wanted:
                out[wanted[index]] = x
        return out, self.final(x) if classify else None


class Backbone(TappedBackbone):
    """The torchvision MobileNetV2 split where exits attach.

    ``features[0]`` is the stem and ``features[b]`` inverted-residual block *b* (1..17);
    ``final`` is the last 1x1 conv, global average pool and classifier: the last exit.
    """

    def __init__(self, num_classes: int, width_mult: float = 1.0, dropout: float = 0.2) -> None:
        super().__init__()
        tv = mobilenet_v2_cifar(num_classes, width_mult, dropout)
        self.features = tv.features[: NUM_BLOCKS + 1]
        self.final = nn.Sequential(tv.features[NUM_BLOCKS + 1], nn.AdaptiveAvgPool2d(1), nn.Flatten(1), tv.classifier)


def mobilenet_v2_backbone(num_classes: int, dropout: float, width_mult: float) -> Backbone:
    """The registry's builder of ``mobilenet_v2``."""
    return Backbone(num_classes, width_mult, dropout)
