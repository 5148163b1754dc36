"""Torch-free description of the networks, and of the early-exit MobileNetV2 for 32x32 inputs.

Every backbone of the registry (:mod:`eenas.models.registry`) describes itself as a
:class:`NetworkSpec`: units between mount points, each a list of :class:`LayerSpec`.  Both
the PyTorch builders and the hardware cost model (:mod:`eenas.hardware.workload`) read the
network from here, so the network that is trained and the network that is costed cannot
drift apart.

CIFAR adaptation (documented in docs/training.md): torchvision's ImageNet MobileNetV2 downsamples
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
from typing import Any

from eenas.models.registry import BackboneEntry, Option, register

INPUT_SIZE = 32
INPUT_CHANNELS = 3
IMAGE = "image"  # the name of the network input in LayerSpec.inputs

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


@dataclass(frozen=True)
class LayerSpec:
    """One layer as the accelerator runs it: BN and activation are folded into convolutions.

    ``op`` is ``conv`` (a fully connected layer is a 1x1 conv on a 1x1 input), ``add`` (a
    residual sum, any activation after it folded in), or ``max``/``avg`` pooling with
    ``kernel == stride``.  ``inputs`` name earlier layers (or :data:`IMAGE`); ``size`` is the
    input's height == width.  ``norm``: a conv followed by BN (two parameters per channel),
    else one bias per channel.
    """

    name: str
    op: str
    inputs: tuple[str, ...]
    in_channels: int
    out_channels: int
    size: int
    kernel: int = 1
    stride: int = 1
    groups: int = 1
    norm: bool = True

    @property
    def out_size(self) -> int:
        if self.op in ("max", "avg"):
            return self.size // self.kernel
        return (self.size + 2 * (self.kernel // 2) - self.kernel) // self.stride + 1

    @property
    def weights(self) -> int:
        """Conv weights (0 for adds and pooling)."""
        return self.out_channels * self.in_channels // self.groups * self.kernel**2 if self.op == "conv" else 0

    @property
    def params(self) -> int:
        """Conv weights plus two per BN channel, or one bias per output without BN; 0 for adds and pooling."""
        return self.weights + self.out_channels * (2 if self.norm else 1) if self.op == "conv" else 0

    @property
    def macs(self) -> int:
        return self.weights * self.out_size**2


def conv(name: str, source: str, in_channels: int, out_channels: int, size: int, kernel: int = 1, stride: int = 1,
         groups: int = 1) -> LayerSpec:
    """A conv + BN (+ activation) reading ``source``."""
    return LayerSpec(name, "conv", (source,), in_channels, out_channels, size, kernel, stride, groups)


def fc(name: str, source: str, in_features: int, out_features: int) -> LayerSpec:
    """A fully connected layer (with bias) on a flattened ``source``."""
    return LayerSpec(name, "conv", (source,), in_features, out_features, 1, norm=False)


def pool_fc(prefix: str, source: str, channels: int, size: int, pooled: int, mode: str, num_classes: int,
            hidden: bool = False) -> tuple[LayerSpec, ...]:
    """Adaptive pooling from ``size`` to ``pooled`` (left out when equal: the identity), flatten, FC.

    ``hidden`` puts an FC to half the flattened width, with ReLU6, before the classifier FC.
    """
    layers: list[LayerSpec] = []
    if pooled < size:
        kernel = size // pooled
        layers.append(LayerSpec(f"{prefix}.pool", mode, (source,), channels, channels, size, kernel, kernel))
        source = layers[-1].name
    features = channels * pooled * pooled
    if hidden:
        layers.append(fc(f"{prefix}.hidden", source, features, features // 2))
        source, features = layers[-1].name, features // 2
    layers.append(fc(f"{prefix}.fc", source, features, num_classes))
    return tuple(layers)


@dataclass(frozen=True)
class UnitSpec:
    """The layers between two mount points; ``channels`` x ``size`` x ``size`` is its output."""

    index: int  # position in the network: 0 is the stem
    layers: tuple[LayerSpec, ...]
    channels: int
    size: int

    @property
    def output(self) -> str:
        return self.layers[-1].name


@dataclass(frozen=True)
class NetworkSpec:
    """A whole backbone: units (stem first), the final exit's layers, and where early exits may go.

    An early exit at mount point ``m`` (the arch file's ``after_block``) reads unit
    ``m + mount_offset``'s output; the final exit (``classifier``) reads the last unit's.
    """

    units: tuple[UnitSpec, ...]
    classifier: tuple[LayerSpec, ...]
    num_classes: int
    mounts: tuple[int, ...]
    mount_offset: int = 0

    def unit(self, mount: int) -> UnitSpec:
        return self.units[mount + self.mount_offset]

    @property
    def final_block(self) -> int:
        """The mount-point number the final classifier would have (past the last unit)."""
        return len(self.units) - self.mount_offset

    def layers(self) -> tuple[LayerSpec, ...]:
        return (*(layer for u in self.units for layer in u.layers), *self.classifier)

    def trunk_params(self) -> int:
        """Parameters of the units (without the final exit)."""
        return sum(layer.params for u in self.units for layer in u.layers)

    def trunk_macs(self) -> int:
        return sum(layer.macs for u in self.units for layer in u.layers)


def make_divisible(value: float, divisor: int = 8) -> int:
    """Round channels to a multiple of ``divisor`` exactly as torchvision does."""
    new_value = max(divisor, int(value + divisor / 2) // divisor * divisor)
    if new_value < 0.9 * value:
        new_value += divisor
    return new_value


@dataclass(frozen=True)
class BlockSpec:
    """One inverted-residual block (MobileNetV2: torchvision ``features[index]``, index 1..17)."""

    index: int
    in_channels: int
    out_channels: int
    expand_ratio: int
    stride: int
    in_size: int  # input height == width
    kernel: int = 3  # of the depthwise conv

    @property
    def hidden_channels(self) -> int:
        return int(round(self.in_channels * self.expand_ratio))

    @property
    def out_size(self) -> int:
        return (self.in_size + self.stride - 1) // self.stride

    @property
    def residual(self) -> bool:
        return self.stride == 1 and self.in_channels == self.out_channels

    def unit(self, position: int, source: str) -> UnitSpec:
        """Its layers: 1x1 expansion (unless ``expand_ratio`` is 1), depthwise, 1x1 projection, residual sum."""
        name, size, hidden, layers = f"b{self.index}", self.in_size, self.hidden_channels, []
        if self.expand_ratio != 1:
            layers.append(conv(f"{name}.expand", source, self.in_channels, hidden, size))
        dw_input = layers[-1].name if layers else source
        layers.append(conv(f"{name}.dw", dw_input, hidden, hidden, size, self.kernel, self.stride, hidden))
        layers.append(conv(f"{name}.project", layers[-1].name, hidden, self.out_channels, self.out_size))
        if self.residual:
            layers.append(LayerSpec(f"{name}.add", "add", (layers[-1].name, source), self.out_channels,
                                    self.out_channels, self.out_size))
        return UnitSpec(position, tuple(layers), self.out_channels, self.out_size)


def stem_unit(channels: int, stride: int) -> UnitSpec:
    """A 3x3 conv on the image (unit 0 of every network)."""
    layer = conv("stem", IMAGE, INPUT_CHANNELS, channels, INPUT_SIZE, 3, stride)
    return UnitSpec(0, (layer,), channels, layer.out_size)


@dataclass(frozen=True)
class BackboneSpec:
    """Shapes of the whole CIFAR MobileNetV2 at one width multiplier."""

    width_mult: float
    stem_channels: int
    blocks: tuple[BlockSpec, ...]
    last_channels: int

    def block(self, index: int) -> BlockSpec:
        return self.blocks[index - 1]

    def network(self, num_classes: int) -> NetworkSpec:
        """Stem, blocks 1..17 (the mount points), then the last 1x1 conv, global average pool and classifier."""
        units = [stem_unit(self.stem_channels, STEM_STRIDE)]
        for b in self.blocks:
            units.append(b.unit(b.index, units[-1].output))
        last = units[-1]
        head = conv("final.conv", last.output, last.channels, self.last_channels, last.size)
        classifier = (head, *pool_fc("final", head.name, self.last_channels, last.size, 1, "avg", num_classes))
        return NetworkSpec(tuple(units), classifier, num_classes, tuple(b.index for b in self.blocks))


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

    ``conv_channels`` is the width of a pointwise conv (+BN+ReLU6) before pooling,
    ``depthwise`` adds a 3x3 depthwise conv (+BN+ReLU6) before that pointwise conv and
    ``hidden`` an FC to half the flattened width (+ReLU6) before the classifier FC.
    """

    name: str
    pool: str  # "max" or "avg"
    pool_to: int
    conv_channels: int | None = None
    depthwise: bool = False
    hidden: bool = False
    summary: str = ""

    def pooled_size(self, size: int) -> int:
        return min(self.pool_to, size)

    def fc_in_features(self, channels: int, size: int) -> int:
        width = self.conv_channels or channels
        return width * self.pooled_size(size) ** 2

    def layers(self, prefix: str, source: str, channels: int, size: int, num_classes: int) -> tuple[LayerSpec, ...]:
        """The head's layers on a ``channels x size x size`` tensor named ``source``."""
        layers: list[LayerSpec] = []
        if self.depthwise:
            layers.append(conv(f"{prefix}.dw", source, channels, channels, size, 3, 1, channels))
            source = layers[-1].name
        if self.conv_channels:
            layers.append(conv(f"{prefix}.pw", source, channels, self.conv_channels, size))
            source, channels = layers[-1].name, self.conv_channels
        tail = pool_fc(prefix, source, channels, size, self.pooled_size(size), self.pool, num_classes, self.hidden)
        return (*layers, *tail)


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


def _width(value: Any) -> str | None:
    return None if 0.1 <= value <= 2.0 else f"{value} is outside 0.1..2.0"


register(BackboneEntry(
    "mobilenet_v2", "torchvision's MobileNetV2, stem stride 1 for 32x32 (blocks 1..17)",
    lambda num_classes, width_mult: mobilenet_v2_spec(width_mult).network(num_classes),
    "eenas.models.backbone:mobilenet_v2_backbone", HEADS,
    {"width_mult": Option(1.0, _width, "channel multiplier, rounded as torchvision does")},
))
