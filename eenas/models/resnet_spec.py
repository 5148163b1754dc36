"""Torch-free description of ``resnet20``: He et al. (2016)'s CIFAR ResNet-20 at 32x32.

A 3x3 conv to 16 channels, three stages of three basic blocks (16, 32, 64 channels, strides
1, 2, 2), global average pooling and an FC.  Where a block changes the shape its shortcut is
a 1x1 conv + BN with the block's stride (the paper's option B), not option A's zero-padded
identity: a conv is what the accelerator runs and QAT quantizes, and it adds 2,752
parameters to 0.27M.  Blocks are numbered 1..9; exits may follow blocks 1..8.
"""

from __future__ import annotations

from dataclasses import dataclass

from eenas.models.registry import BackboneEntry, register
from eenas.models.spec import HEADS, LayerSpec, NetworkSpec, UnitSpec, conv, pool_fc, stem_unit

STEM_CHANNELS = 16
STAGES: tuple[tuple[int, int], ...] = ((16, 1), (32, 2), (64, 2))  # channels, stride of the first block
BLOCKS_PER_STAGE = 3


@dataclass(frozen=True)
class BasicBlockSpec:
    """Two 3x3 convs (+BN, ReLU after the first) and a shortcut, summed, then ReLU."""

    index: int
    in_channels: int
    out_channels: int
    stride: int
    in_size: int

    @property
    def out_size(self) -> int:
        return (self.in_size + self.stride - 1) // self.stride

    @property
    def projection(self) -> bool:
        """Whether the shortcut is a 1x1 conv (the shape changes) rather than the identity."""
        return self.stride != 1 or self.in_channels != self.out_channels

    def unit(self, source: str) -> UnitSpec:
        name, out = f"b{self.index}", self.out_channels
        first = conv(f"{name}.conv1", source, self.in_channels, out, self.in_size, 3, self.stride)
        second = conv(f"{name}.conv2", first.name, out, out, self.out_size, 3)
        layers = [first, second]
        if self.projection:
            layers.append(conv(f"{name}.shortcut", source, self.in_channels, out, self.in_size, 1, self.stride))
        shortcut = layers[-1].name if self.projection else source
        layers.append(LayerSpec(f"{name}.add", "add", (second.name, shortcut), out, out, self.out_size))
        return UnitSpec(self.index, tuple(layers), out, self.out_size)


def blocks() -> tuple[BasicBlockSpec, ...]:
    out: list[BasicBlockSpec] = []
    channels, size = STEM_CHANNELS, 32
    for c, s in STAGES:
        for i in range(BLOCKS_PER_STAGE):
            out.append(BasicBlockSpec(len(out) + 1, channels, c, s if i == 0 else 1, size))
            channels, size = c, out[-1].out_size
    return tuple(out)


def resnet20_spec(num_classes: int) -> NetworkSpec:
    """Stem (unit 0), blocks 1..9, then global average pooling and the FC."""
    units: list[UnitSpec] = [stem_unit(STEM_CHANNELS, 1)]
    for b in blocks():
        units.append(b.unit(units[-1].output))
    last = units[-1]
    classifier = pool_fc("final", last.output, last.channels, last.size, 1, "avg", num_classes)
    return NetworkSpec(tuple(units), classifier, num_classes, tuple(b.index for b in blocks()[:-1]))


register(BackboneEntry(
    "resnet20", "He et al.'s CIFAR ResNet-20, 1x1-conv shortcuts (blocks 1..9, exits after 1..8)",
    resnet20_spec, "eenas.models.resnet:resnet20_backbone", HEADS,
))
