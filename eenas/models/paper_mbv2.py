"""``paper_mbv2`` in PyTorch: the reference work's 12-block MobileNetV2 (see :mod:`eenas.models.paper_mbv2_spec`)."""

from __future__ import annotations

from torch import nn
from torchvision.models.mobilenetv2 import InvertedResidual
from torchvision.ops.misc import Conv2dNormActivation

from eenas.models.backbone import TappedBackbone
from eenas.models.heads import build_head
from eenas.models.paper_mbv2_spec import DEFAULT_FINAL_HEAD, STEM_CHANNELS, blocks
from eenas.models.spec import BlockSpec


def inverted_residual(spec: BlockSpec) -> InvertedResidual:
    """torchvision's block with the depthwise kernel of ``spec`` (torchvision's is always 3x3).

    Keeping torchvision's class keeps QAT's conversion of it (:mod:`eenas.quant.convert`).
    """
    block = InvertedResidual(spec.in_channels, spec.out_channels, spec.stride, spec.expand_ratio)
    if spec.kernel != 3:
        dw = 0 if spec.expand_ratio == 1 else 1
        hidden = spec.hidden_channels
        block.conv[dw] = Conv2dNormActivation(hidden, hidden, spec.kernel, spec.stride, groups=hidden,
                                              activation_layer=nn.ReLU6)
    return block


class PaperMobileNetV2(TappedBackbone):
    """``features[0]`` is the stem, ``features[b + 1]`` block *b* (0..11); ``final`` the final exit's head."""

    mount_offset = 1  # exits after blocks 0..9 read features[1..10]

    def __init__(self, num_classes: int, dropout: float = 0.0, final_head: str = DEFAULT_FINAL_HEAD) -> None:
        super().__init__()
        stem = Conv2dNormActivation(3, STEM_CHANNELS, 3, 1, activation_layer=nn.ReLU6)
        self.features = nn.Sequential(stem, *(inverted_residual(b) for b in blocks()))
        last = blocks()[-1]
        self.final = build_head(final_head, last.out_channels, last.out_size, num_classes, dropout)


def paper_mbv2_backbone(num_classes: int, dropout: float, final_head: str) -> PaperMobileNetV2:
    """The registry's builder of ``paper_mbv2``."""
    return PaperMobileNetV2(num_classes, dropout, final_head)



