"""Torch-free description of the early-exit MobileNetV2 for 32x32 inputs.

Both the PyTorch builder (:mod:`eenas.models.backbone`, :mod:`eenas.models.heads`) and the
hardware cost model (:mod:`eenas.hardware.workload`) read the network from here, so the
network that is trained and the network that is costed cannot drift apart.

CIFAR adaptation (documented in the README): torchvision's ImageNet MobileNetV2 downsamples
32x, which would leave a 1x1 feature map for 32x32 inputs.  We change one thing: the stem
convolution uses stride 1 instead of 2.  The feature maps are then 32x32 (stem, block 1),
16x16 (blocks 2-3), 8x8 (4-6), 4x4 (7-13) and 2x2 (14-17).  We measured the common
alternative that also removes the second stage's stride (32x32 up to block 6): it trains
5x slower on CPU (177 vs 915 images/s at width 0.5 on 2 cores) for a few points of
accuracy, which would put the CPU budgets out of reach.  Everything else, including the
channel rounding of the width multiplier, is torchvision's.
"""

from __future__ import annotations

from dataclasses import dataclass

INPUT_SIZE = 32
INPUT_CHANNELS = 3

# torchvision's inverted-residual setting (t: expansion, c: channels, n: repeats, s: stride).
INVERTED_RESIDUAL_SETTING: tuple[tuple[int, int, int, int], ...] = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)
STEM_CHANNELS = 32
STEM_STRIDE = 1
LAST_CHANNELS = 1280
NUM_BLOCKS = sum(n for _, _, n, _ in INVERTED_RESIDUAL_SETTING)  # 17


def make_divisible(value: float, divisor: int = 8) -> int:
    """Round channels to a multiple of ``divisor`` exactly as torchvision does."""
    new_value = max(divisor, int(value + divisor / 2) // divisor * divisor)
    if new_value < 0.9 * value:
        new_value += divisor
    return new_value


@dataclass(frozen=True)
class BlockSpec:
    """One inverted-residual block (torchvision ``features[index]``, index 1..17)."""

    index: int
    in_channels: int
    out_channels: int
    expand_ratio: int
    stride: int
    in_size: int  # input height == width

    @property
    def hidden_channels(self) -> int:
        return int(round(self.in_channels * self.expand_ratio))

    @property
    def out_size(self) -> int:
        return (self.in_size + self.stride - 1) // self.stride

    @property
    def residual(self) -> bool:
        return self.stride == 1 and self.in_channels == self.out_channels


@dataclass(frozen=True)
class BackboneSpec:
    """Shapes of the whole CIFAR MobileNetV2 at one width multiplier."""

    width_mult: float
    stem_channels: int
    blocks: tuple[BlockSpec, ...]
    last_channels: int

    def block(self, index: int) -> BlockSpec:
        return self.blocks[index - 1]


def mobilenet_v2_spec(width_mult: float = 1.0) -> BackboneSpec:
    """Shapes of every block, derived with torchvision's channel rounding."""
    stem = make_divisible(STEM_CHANNELS * width_mult)
    blocks: list[BlockSpec] = []
    channels, size = stem, INPUT_SIZE // STEM_STRIDE
    for t, c, n, s in INVERTED_RESIDUAL_SETTING:
        out = make_divisible(c * width_mult)
        for i in range(n):
            stride = s if i == 0 else 1
            block = BlockSpec(len(blocks) + 1, channels, out, t, stride, size)
            blocks.append(block)
            channels, size = out, block.out_size
    last = make_divisible(LAST_CHANNELS * max(1.0, width_mult))
    return BackboneSpec(width_mult, stem, tuple(blocks), last)


@dataclass(frozen=True)
class HeadSpec:
    """An exit-head type: optional convs, a pooling to ``pool_to`` x ``pool_to``, one FC.

    ``conv_channels`` is the width of a pointwise conv (+BN+ReLU6) before pooling and
    ``depthwise`` adds a 3x3 depthwise conv (+BN+ReLU6) before that pointwise conv.
    """

    name: str
    pool: str  # "max" or "avg"
    pool_to: int
    conv_channels: int | None = None
    depthwise: bool = False
    summary: str = ""

    def pooled_size(self, size: int) -> int:
        return min(self.pool_to, size)

    def fc_in_features(self, channels: int, size: int) -> int:
        width = self.conv_channels or channels
        return width * self.pooled_size(size) ** 2


# The exit-head library, cheapest first.  ``pool_fc`` is the paper's head.
HEADS: dict[str, HeadSpec] = {
    spec.name: spec
    for spec in (
        HeadSpec("gap_fc", "avg", 1, summary="global average pool, FC (cheapest)"),
        HeadSpec("pool_fc", "max", 4, summary="max-pool to 4x4, flatten, FC (the paper's head)"),
        HeadSpec("conv_pool_fc", "max", 4, conv_channels=128,
                 summary="pointwise conv to 128 + BN + ReLU6, max-pool to 4x4, FC"),
        HeadSpec("dsconv_pool_fc", "max", 4, conv_channels=128, depthwise=True,
                 summary="depthwise 3x3 + pointwise conv to 128, max-pool to 4x4, FC (richest)"),
    )
}
