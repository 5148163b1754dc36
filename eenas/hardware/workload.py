"""The early-exit MobileNetV2 as a graph of costable layers, read from :mod:`eenas.models.spec`.

Mirrors the torch network layer for layer (BN and ReLU6 are folded into the convolutions,
as on an Edge TPU): stem 3x3 conv; per inverted-residual block an optional 1x1 expansion,
a 3x3 depthwise conv, a 1x1 projection and a residual addition; then the last 1x1 conv,
global average pooling and the classifier.  Exit heads follow their :class:`HeadSpec`.
Adaptive pooling that keeps the map's size is the identity and is left out.  Every layer
reads its input at the precision it was written: the image at 8 bits (float networks: 32),
as QAT quantizes it, a head's first layer at the backbone's precision, and max pooling keeps
its input's precision.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from eenas.arch import Precision
from eenas.hardware.layer_cost import FLOAT_BITS, param_bits
from eenas.hardware.layers import AddLayer, ConvLayer, Layer, PoolLayer
from eenas.models.spec import (
    HEADS,
    INPUT_CHANNELS,
    INPUT_SIZE,
    NUM_BLOCKS,
    STEM_STRIDE,
    mobilenet_v2_spec,
)

INPUT = "image"  # the tensor the stem reads; it starts in DRAM
TAIL = NUM_BLOCKS + 1  # index of the final stage's own layers (last conv, pool, classifier)
IMAGE_BITS = 8  # the image is 8-bit; QAT quantizes the network input at 8 bits (eenas.quant.convert)


def image_bits(precision: Precision) -> int:
    """Bits per input pixel: 8, or 32 when the backbone's activations are float."""
    return FLOAT_BITS if precision.activations >= FLOAT_BITS else IMAGE_BITS


@dataclass(frozen=True, eq=False)
class Node:
    """One layer of the graph: its shape, the tensors it reads and its precisions.

    ``act_bits`` is the precision of its output, ``input_bits`` that of its (first) input.

    Compared and hashed by identity: nodes are built once per plan or head and are keys of
    the per-node cost cache, which then needs no hashing of shapes.
    """

    name: str
    layer: Layer
    inputs: tuple[str, ...]
    weight_bits: int
    act_bits: int
    input_bits: int

    @functools.cached_property
    def output_bits(self) -> int:
        return self.layer.output_count * self.act_bits

    @functools.cached_property
    def param_bits(self) -> int:
        """Weights, biases and scales it fetches (0 for pooling and additions)."""
        return param_bits(self.layer, self.weight_bits) if isinstance(self.layer, ConvLayer) else 0


@dataclass(frozen=True)
class Block:
    """A unit between mount points: 0 is the stem, 1..17 the blocks, 18 the final layers."""

    index: int
    nodes: tuple[Node, ...]
    channels: int  # of the output
    size: int  # output height == width

    @property
    def output(self) -> str:
        return self.nodes[-1].name

    @property
    def output_act_bits(self) -> int:
        return self.nodes[-1].act_bits


def _pool_then_fc(
    prefix: str, source: str, bits: int, channels: int, size: int, pooled: int, mode: str, num_classes: int,
    p: Precision,
) -> tuple[Node, ...]:
    """Adaptive pooling of ``source`` (``bits`` wide) from ``size`` to ``pooled`` (skipped if equal), flatten, FC."""
    nodes: list[Node] = []
    if pooled < size:
        kernel = size // pooled
        out_bits = bits if mode == "max" else p.activations  # max pooling keeps its input's values
        nodes.append(Node(f"{prefix}.pool", PoolLayer(channels, size, size, kernel, kernel, mode), (source,),
                          p.weights, out_bits, bits))
        source, bits = nodes[-1].name, out_bits
    fc = ConvLayer(channels * pooled * pooled, num_classes, 1, 1)
    nodes.append(Node(f"{prefix}.fc", fc, (source,), p.weights, p.activations, bits))
    return tuple(nodes)


def backbone(width_mult: float, precision: Precision, num_classes: int) -> tuple[Block, ...]:
    """Blocks 0 (stem) .. 18 (last conv, global average pool, classifier) of the backbone."""
    spec = mobilenet_v2_spec(width_mult)
    wb, ab = precision.weights, precision.activations
    stem = ConvLayer(INPUT_CHANNELS, spec.stem_channels, INPUT_SIZE, INPUT_SIZE, 3, STEM_STRIDE)
    blocks = [Block(0, (Node("stem", stem, (INPUT,), wb, ab, image_bits(precision)),), spec.stem_channels,
                    stem.out_height)]
    for b in spec.blocks:
        source, nodes, size = blocks[-1].output, [], b.in_size
        if b.expand_ratio != 1:
            expand = ConvLayer(b.in_channels, b.hidden_channels, size, size)
            nodes.append(Node(f"b{b.index}.expand", expand, (source,), wb, ab, ab))
        dw = ConvLayer(b.hidden_channels, b.hidden_channels, size, size, 3, b.stride, b.hidden_channels)
        nodes.append(Node(f"b{b.index}.dw", dw, (nodes[-1].name if nodes else source,), wb, ab, ab))
        project = ConvLayer(b.hidden_channels, b.out_channels, b.out_size, b.out_size)
        nodes.append(Node(f"b{b.index}.project", project, (nodes[-1].name,), wb, ab, ab))
        if b.residual:
            add = AddLayer(b.out_channels, b.out_size, b.out_size)
            nodes.append(Node(f"b{b.index}.add", add, (nodes[-1].name, source), wb, ab, ab))
        blocks.append(Block(b.index, tuple(nodes), b.out_channels, b.out_size))
    last, size = blocks[-1], blocks[-1].size
    conv = Node("final.conv", ConvLayer(last.channels, spec.last_channels, size, size), (last.output,), wb, ab, ab)
    tail = _pool_then_fc("final", conv.name, ab, spec.last_channels, size, 1, "avg", num_classes, precision)
    blocks.append(Block(TAIL, (conv, *tail), num_classes, 1))
    return tuple(blocks)


def exit_head(block: Block, head: str, precision: Precision, num_classes: int) -> tuple[Node, ...]:
    """The layers of exit head ``head`` mounted on ``block``'s output (see HeadSpec)."""
    spec = HEADS[head]
    wb, ab = precision.weights, precision.activations
    prefix, source, bits = f"b{block.index}.exit", block.output, block.output_act_bits
    channels, size, nodes = block.channels, block.size, []
    if spec.depthwise:
        dw = ConvLayer(channels, channels, size, size, 3, 1, channels)
        nodes.append(Node(f"{prefix}.dw", dw, (source,), wb, ab, bits))
        source, bits = nodes[-1].name, ab
    if spec.conv_channels:
        pw = ConvLayer(channels, spec.conv_channels, size, size)
        nodes.append(Node(f"{prefix}.pw", pw, (source,), wb, ab, bits))
        source, bits, channels = nodes[-1].name, ab, spec.conv_channels
    pooled = spec.pooled_size(size)
    return (*nodes, *_pool_then_fc(prefix, source, bits, channels, size, pooled, spec.pool, num_classes, precision))


@dataclass(frozen=True)
class GraphWorkload:
    """A network read from a file (``eenas cost --onnx``), cut the way an arch's schedule is.

    ``blocks[i]`` is the trunk run between exit i-1's decision and exit i's (the last block ends
    with the final exit's layers); ``heads[i]`` are the layers only early exit i needs, reading
    ``blocks[i].output``.  ``exit_names`` name the exits, the final one last.
    """

    image: str  # the input tensor; it starts in DRAM
    image_bits: int  # of the whole input tensor
    blocks: tuple[Block, ...]
    heads: tuple[tuple[Node, ...], ...]
    exit_names: tuple[str, ...]
    digest: str  # identifies the workload in the allocation cache
    cores: tuple[int | None, ...] = ()  # per early exit: the core its head runs on (None or absent: the earliest free)
    overlaps: tuple[bool, ...] = ()  # per early exit: whether the next stage starts speculatively
