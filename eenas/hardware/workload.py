"""A registered backbone as a graph of costable layers, read from its :class:`~eenas.models.spec.NetworkSpec`.

Mirrors the torch network layer for layer (BN and activations are folded into the
convolutions, as on an Edge TPU): the spec's units, then the final exit's layers; exit heads
follow their :class:`~eenas.models.spec.HeadSpec`.  Adaptive pooling that keeps the map's
size is the identity and is left out.  Every layer reads its input at the precision it was
written: the image at 8 bits (float networks: 32), as QAT quantizes it, a head's first layer
at the backbone's precision, and max pooling keeps its input's precision.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from eenas.hardware.layer_cost import FLOAT_BITS, param_bits
from eenas.hardware.layers import AddLayer, ConvLayer, Layer, PoolLayer
from eenas.models.registry import head_spec
from eenas.models.spec import IMAGE, NUM_BLOCKS, LayerSpec, NetworkSpec, mobilenet_v2_spec
from eenas.precision import Precision

INPUT = IMAGE  # the tensor the stem reads; it starts in DRAM
TAIL = NUM_BLOCKS + 1  # MobileNetV2's index of the final stage's own layers (last conv, pool, classifier)
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
    """A unit between mount points (0 is the stem), or the final exit's layers (the last)."""

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


def _layer(spec: LayerSpec) -> Layer:
    if spec.op == "conv":
        return ConvLayer(spec.in_channels, spec.out_channels, spec.size, spec.size, spec.kernel, spec.stride,
                         spec.groups)
    if spec.op == "add":
        return AddLayer(spec.out_channels, spec.size, spec.size)
    return PoolLayer(spec.in_channels, spec.size, spec.size, spec.kernel, spec.stride, spec.op)


def _nodes(layers: tuple[LayerSpec, ...], precision: Precision, bits: dict[str, int]) -> tuple[Node, ...]:
    """Nodes at ``precision``; ``bits`` holds the width of every tensor written so far and is updated."""
    nodes = []
    for spec in layers:
        in_bits = bits[spec.inputs[0]]
        out_bits = in_bits if spec.op == "max" else precision.activations  # max pooling keeps its input's values
        nodes.append(Node(spec.name, _layer(spec), spec.inputs, precision.weights, out_bits, in_bits))
        bits[spec.name] = out_bits
    return tuple(nodes)


def network_blocks(network: NetworkSpec, precision: Precision) -> tuple[Block, ...]:
    """One block per unit of ``network`` (0: the stem), then one with the final exit's layers."""
    bits = {INPUT: image_bits(precision)}
    blocks = [Block(u.index, _nodes(u.layers, precision, bits), u.channels, u.size) for u in network.units]
    blocks.append(Block(len(blocks), _nodes(network.classifier, precision, bits), network.num_classes, 1))
    return tuple(blocks)


def backbone(width_mult: float, precision: Precision, num_classes: int) -> tuple[Block, ...]:
    """MobileNetV2's blocks 0 (stem) .. 18 (last conv, global average pool, classifier)."""
    return network_blocks(mobilenet_v2_spec(width_mult).network(num_classes), precision)


def exit_head(block: Block, head: str, precision: Precision, num_classes: int) -> tuple[Node, ...]:
    """The layers of exit head ``head`` mounted on ``block``'s output (named after its last layer's block)."""
    prefix = f"{block.output.split('.')[0]}.exit"
    layers = head_spec(head).layers(prefix, block.output, block.channels, block.size, num_classes)
    return _nodes(layers, precision, {block.output: block.output_act_bits})


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
