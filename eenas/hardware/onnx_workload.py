"""Read a network's workload from an ONNX file for the cost model (``eenas cost --onnx``; needs ``eenas[onnx]``).

Shapes come from ONNX shape inference.  Conv (dense, grouped, depthwise; padding explicit or
``auto_pad``, as long as the output is that of 'same' padding), Gemm and MatMul with a constant
weight, MaxPool, AveragePool, GlobalAveragePool and the Add of two activations become the cost
model's layers, named by their ONNX nodes; BatchNormalization, activations, Flatten, Reshape, Q/DQ
and the Add of a constant (a bias: MatMul + Add is how many exporters write a linear layer) cost
nothing (an accelerator folds them into the producing layer, as the cost model does for eenas's
own networks).  Bit-widths come from QuantizeLinear, refined by an integer Clip right after it
(the 4- and 2-bit ranges ``eenas export`` writes): a weight's from the Q/DQ around it, an
activation's from the first Q on its way out; without them ``weight_bits`` and ``act_bits``.
Every one must be a supported width (:func:`eenas.precision.check_bits`).  A pooling layer
without a Q after it keeps its input's bits, like max pooling.

A graph may carry no weights, as the reference work's workload files (read by KU Leuven's Stream)
do: a tensor without an initializer that only feeds weight slots is a weight (:func:`_weight_only`),
and its shape is the declared one (a graph input, value_info) or, as Stream infers it, the node's
(output channels from the output's shape, input channels and ``group`` from the input,
``kernel_shape``); the cost needs shapes and bits only.

The graph's outputs are the exits, ordered by depth (how many layers each needs); a layer belongs
to the stage of the earliest exit that needs it.  Each stage's trunk (the layers later exits need
too) runs before its exit's head, and one tensor crosses from a stage to the next, as in an
arch's schedule (:mod:`eenas.hardware.network`).  Heads go to the earliest-finishing core without
overlap, unless the model's metadata ``eenas.exit_mapping`` (written by ``eenas export``) pins them.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path

from eenas.errors import EenasError
from eenas.hardware.layers import AddLayer, ConvLayer, Layer, PoolLayer
from eenas.hardware.workload import Block, GraphWorkload, Node
from eenas.precision import check_bits

EXIT_MAPPING_KEY = "eenas.exit_mapping"  # written by eenas export (eenas.export.onnx_graph)

log = logging.getLogger(__name__)

FREE_OPS = frozenset({
    "BatchNormalization", "Relu", "Clip", "LeakyRelu", "PRelu", "Sigmoid", "HardSigmoid", "HardSwish", "Tanh",
    "Flatten", "Reshape", "Squeeze", "Unsqueeze", "Identity", "Dropout", "QuantizeLinear", "DequantizeLinear",
})
COSTED_OPS = ("Conv", "Gemm", "MatMul", "MaxPool", "AveragePool", "GlobalAveragePool", "Add")
WEIGHT_SLOT_OPS = FREE_OPS | {"Conv", "Gemm", "MatMul"}  # every input after the first is a parameter
_QUANT_BITS = {"INT8": 8, "UINT8": 8, "INT4": 4, "UINT4": 4, "INT16": 16, "UINT16": 16}


def require(*modules: str) -> None:
    """One line, not a traceback, when the optional ONNX packages (``eenas[onnx]``) are missing."""
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        raise EenasError(f"{' and '.join(missing)} not installed: pip install 'eenas[onnx]'")


def _load(path: Path):
    require("onnx")
    import onnx

    if not path.is_file():
        raise EenasError(f"--onnx: {path}: no such file")
    try:
        model = onnx.load(str(path))
    except Exception as exc:  # protobuf's decode errors have no common base we can name
        raise EenasError(f"--onnx: {path}: not an ONNX model ({type(exc).__name__})") from None
    if not model.graph.node or not model.graph.output or not model.graph.input:
        raise EenasError(f"--onnx: {path}: not an ONNX model (no graph with inputs, nodes and outputs)")
    try:
        return onnx.shape_inference.infer_shapes(model, strict_mode=True)
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise EenasError(f"--onnx: {path}: shape inference failed: {first}") from None


@dataclass
class _Pending:
    """A costed node before its output precision is known."""

    name: str
    layer: Layer
    inputs: tuple[str, ...]
    weight_bits: int
    input_bits: int
    index: int
    act_bits: int | None = None  # from the first Q on its output
    ancestors: set[str] = field(default_factory=set)


class _Reader:
    """One pass over the graph in its (topological) order."""

    def __init__(self, model, path: Path, weight_bits: int, act_bits: int, skip_unknown: bool) -> None:
        from onnx import numpy_helper

        self.path, self.weight_bits, self.act_bits, self.skip_unknown = path, weight_bits, act_bits, skip_unknown
        graph = model.graph
        self.consts = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
        self.shapes: dict[str, tuple[int | None, ...]] = {}
        for info in [*graph.input, *graph.value_info, *graph.output]:
            if info.type.tensor_type.HasField("shape"):  # a tensor of unknown rank has none
                dims = info.type.tensor_type.shape.dim
                self.shapes[info.name] = tuple(d.dim_value if d.HasField("dim_value") else None for d in dims)
        weights = _weight_only(graph)
        inputs = [i.name for i in graph.input if i.name not in self.consts and i.name not in weights]
        if len(inputs) != 1:
            raise EenasError(f"--onnx: {path}: expected one input tensor, got {len(inputs)} ({', '.join(inputs)})")
        self.image = inputs[0]
        self.source = {self.image: self.image}  # activation tensor -> costed node (or the image) it carries
        self.qbits: dict[str, int] = {}  # activation tensor -> bits of its values, where Q/DQ say
        produced = {x for node in graph.node for x in node.output}
        # constant-derived tensor -> bits, where Q/DQ say (0: unknown); first the weights without a value
        self.wbits: dict[str, int] = {x: 0 for x in weights - produced if x not in self.consts}
        self.nodes: dict[str, _Pending] = {}
        self.image_bits: int | None = None
        self.skipped: list[str] = []
        self.names: set[str] = set()

    def where(self, node, index: int) -> str:
        return f"--onnx: {self.path}: node '{self._name(node, index)}' ({node.op_type})"

    @staticmethod
    def _name(node, index: int) -> str:
        return node.name or f"{node.op_type}_{index}"

    def read(self, graph) -> None:
        from onnx import numpy_helper

        for index, node in enumerate(graph.node):
            if node.op_type == "Constant":
                self.consts[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
                continue
            acts = [x for x in node.input if x and x not in self.consts and x not in self.wbits]
            if not acts:  # weight arithmetic: Q/Clip/DQ on initializers, a folded scale, ...
                self._constant(node, index)
                continue
            if node.op_type in FREE_OPS or (node.op_type == "Add" and len(acts) == 1):  # + a constant: a bias
                self._free(node, index, acts[0])
            elif node.op_type in COSTED_OPS:
                self._costed(node, index, acts)
            elif self.skip_unknown:
                self.skipped.append(f"{self._name(node, index)} ({node.op_type})")
                self._free(node, index, acts[0])
            else:
                raise EenasError(f"{self.where(node, index)}: no cost model for this operator "
                                 "(--skip-unknown costs it as zero)")

    def _q_bits(self, node, index: int) -> int:
        bits = 8
        if len(node.input) > 2 and node.input[2]:
            zero = self.consts.get(node.input[2])
            if zero is not None:
                bits = _QUANT_BITS.get(str(zero.dtype).upper(), 8)
        return check_bits(f"{self.where(node, index)}: bit-width", bits)

    def _clip_bits(self, node, index: int) -> int | None:
        """Bits of an integer Clip's range (4 for -8..7), None for a float Clip (an activation)."""
        bounds = [self.consts.get(x) for x in node.input[1:3]]
        if len(bounds) != 2 or any(b is None or b.dtype.kind not in "iu" for b in bounds):
            return None
        low, high = int(bounds[0]), int(bounds[1])
        bits = max(1, math.ceil(math.log2(max(1, high - low + 1))))
        return check_bits(f"{self.where(node, index)}: bit-width of the range {low}..{high} is", bits)

    def _constant(self, node, index: int) -> None:
        bits = None
        if node.op_type == "QuantizeLinear":
            bits = self._q_bits(node, index)
        elif node.op_type == "Clip" and node.input[0] in self.wbits:
            bits = self._clip_bits(node, index) or self.wbits[node.input[0]]
        elif node.op_type == "DequantizeLinear":
            bits = self.wbits.get(node.input[0])
        for out in node.output:
            self.wbits[out] = bits if bits is not None else 0  # 0: constant, precision unknown

    def _free(self, node, index: int, act: str) -> None:
        out = node.output[0]
        self.source[out] = self.source[act]
        bits = self.qbits.get(act)
        if node.op_type == "QuantizeLinear":
            bits = self._q_bits(node, index)
        elif node.op_type == "Clip" and act in self.qbits:
            bits = self._clip_bits(node, index) or bits
        if bits is not None:
            self.qbits[out] = bits
            if node.op_type in ("QuantizeLinear", "Clip"):
                producer = self.source[act]
                if producer == self.image:
                    self.image_bits = bits
                elif node.op_type == "Clip" or self.nodes[producer].act_bits is None:
                    self.nodes[producer].act_bits = bits

    def _bits_of(self, tensor: str) -> int:
        if tensor in self.qbits:
            return self.qbits[tensor]
        producer = self.source[tensor]
        if producer == self.image:
            return self.image_bits or self.act_bits
        return self._act_bits(self.nodes[producer])

    def _act_bits(self, pending: _Pending) -> int:
        if pending.act_bits is not None:
            return pending.act_bits
        return pending.input_bits if isinstance(pending.layer, PoolLayer) else self.act_bits

    def _shape(self, tensor: str, node, index: int) -> tuple[int, ...]:
        shape = self.shapes.get(tensor)
        if shape is None or any(d is None for d in shape[1:]):
            raise EenasError(f"{self.where(node, index)}: shape inference left the shape of '{tensor}' unknown")
        return tuple(d or 1 for d in shape)

    def _costed(self, node, index: int, acts: list[str]) -> None:
        layer = self._layer(node, index, acts)
        out = node.output[0]
        if layer is None:  # a 1x1 pooling: the identity
            self._free(node, index, acts[0])
            return
        name = self._name(node, index)
        while name in self.names:
            name += "'"
        self.names.add(name)
        used = acts[:1]
        if isinstance(layer, AddLayer):  # the later operand first: the sum is written beside it (the residual branch's)
            used = sorted(acts, key=lambda x: -self.nodes[self.source[x]].index if self.source[x] in self.nodes else 1)
        weight = next((x for x in node.input[1:] if x in self.wbits), None)
        wbits = self.wbits.get(weight) if weight is not None else None
        pending = _Pending(name, layer, tuple(self.source[x] for x in used), wbits or self.weight_bits,
                           self._bits_of(acts[0]), index)
        for x in used:
            source = self.source[x]
            if source != self.image:
                pending.ancestors |= self.nodes[source].ancestors | {source}
        self.nodes[name] = pending
        self.source[out] = name

    def _layer(self, node, index: int, acts: list[str]) -> Layer | None:
        from onnx import helper

        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        x = self._shape(acts[0], node, index)
        where = self.where(node, index)
        op = node.op_type
        if op == "Add":
            if len(acts) != 2 or self._shape(acts[1], node, index) != x:
                raise EenasError(f"{where}: only the addition of two activations of one shape is modelled")
            return AddLayer(*(list(x[1:]) + [1, 1])[:3])
        if op in ("Conv", "Gemm", "MatMul"):
            if len(acts) != 1 or (node.input[1] not in self.consts and node.input[1] not in self.wbits):
                raise EenasError(f"{where}: only a constant weight is modelled")
            if op == "Conv":
                return self._conv(x, self._weight_shape(node, index, x, attrs), attrs, where)
            w_shape = self._weight_shape(node, index, x, attrs) if len(x) == 2 else ()
            if len(x) != 2 or len(w_shape) != 2 or attrs.get("transA", 0):
                raise EenasError(f"{where}: only a [batch, features] input and a 2-D weight are modelled")
            out = w_shape[0] if attrs.get("transB", 0) else w_shape[1]
            return ConvLayer(x[1], out, 1, 1)
        if len(x) != 4:
            raise EenasError(f"{where}: only 2-D pooling of a [batch, channels, height, width] input is modelled")
        if op == "GlobalAveragePool":
            if x[2] != x[3]:
                raise EenasError(f"{where}: only square inputs are modelled, got {x[2]}x{x[3]}")
            return None if x[2] == 1 else PoolLayer(x[1], x[2], x[3], x[2], x[2], "avg")
        kernel, strides = attrs.get("kernel_shape", []), attrs.get("strides", [1, 1])
        if (len(set(kernel)) != 1 or len(set(strides)) != 1 or attrs.get("ceil_mode")
                or any(_pads(x[2:], kernel, strides, attrs, where))):
            raise EenasError(f"{where}: only square kernels with equal strides and no padding are modelled")
        if kernel[0] == strides[0] == 1:
            return None
        return PoolLayer(x[1], x[2], x[3], kernel[0], strides[0], "max" if op == "MaxPool" else "avg")

    def _weight_shape(self, node, index: int, x: tuple[int, ...], attrs: dict) -> tuple[int, ...]:
        """The weight's shape: its value's, else its declared or inferred one, else the one the node implies.

        The last is how Stream reads weight-less files: [out, in / group, *kernel_shape] for a Conv, [in, out]
        ([out, in] with transB) for a Gemm or MatMul, the output channels from the output's shape.
        """
        weight = node.input[1]
        if weight in self.consts:
            return tuple(self.consts[weight].shape)
        shape = self.shapes.get(weight)
        if shape is not None and None not in shape:
            return shape
        where = f"{self.where(node, index)}: the weight '{weight}' has no shape and"
        out = self.shapes.get(node.output[0], ())
        if len(out) < 2 or out[1] is None:
            raise EenasError(f"{where} shape inference left the output's channels unknown")
        if node.op_type != "Conv":
            return (out[1], x[1]) if attrs.get("transB", 0) else (x[1], out[1])
        kernel, group = attrs.get("kernel_shape"), attrs.get("group", 1)
        if not kernel:
            raise EenasError(f"{where} the node has no kernel_shape")
        if x[1] % group:
            raise EenasError(f"{where} the input's {x[1]} channels do not split into {group} groups")
        return (out[1], x[1] // group, *kernel)

    @staticmethod
    def _conv(x: tuple[int, ...], w: tuple[int, ...], attrs: dict, where: str) -> ConvLayer:
        kernel, strides, group = w[2:], attrs.get("strides", [1, 1]), attrs.get("group", 1)
        if len(x) != 4 or len(w) != 4 or len(set(kernel)) != 1 or len(set(strides)) != 1:
            raise EenasError(f"{where}: only 2-D convolutions with square kernels and equal strides are modelled")
        if w[1] * group != x[1]:
            raise EenasError(f"{where}: the weight {list(w)} with group {group} takes {w[1] * group} input channels, "
                             f"the input has {x[1]}")
        if w[0] % group:
            raise EenasError(f"{where}: the weight's {w[0]} output channels do not split into {group} groups")
        if any(d != 1 for d in attrs.get("dilations", [1, 1])):
            raise EenasError(f"{where}: only convolutions without dilation are modelled")
        layer = ConvLayer(x[1], w[0], x[2], x[3], kernel[0], strides[0], group)
        pads = _pads(x[2:], kernel, strides, attrs, where)
        out = [(size + pads[i] + pads[i + 2] - kernel[0]) // strides[0] + 1 for i, size in enumerate(x[2:])]
        if out != [layer.out_height, layer.out_width]:
            raise EenasError(f"{where}: only 'same' padding is modelled (kernel // 2 on each side: a "
                             f"{layer.out_height}x{layer.out_width} output here), got pads {pads} "
                             f"(a {out[0]}x{out[1]} output)")
        return layer


def _pads(sizes: tuple[int, ...], kernel: list[int], strides: list[int], attrs: dict, where: str) -> list[int]:
    """A node's pads [top, left, bottom, right]: its ``pads``, or those its ``auto_pad`` stands for.

    As ONNX defines SAME_UPPER and SAME_LOWER: an output of ceil(input / stride), the padding split evenly,
    its odd pixel at the end (UPPER) or at the beginning (LOWER).
    """
    auto = attrs.get("auto_pad", b"NOTSET")
    auto = auto.decode() if isinstance(auto, bytes) else auto
    if auto == "NOTSET":
        pads = list(attrs.get("pads", [0] * 2 * len(sizes)))
        if len(pads) != 2 * len(sizes):
            raise EenasError(f"{where}: pads {pads}: expected {2 * len(sizes)} values")
        return pads
    if auto == "VALID":
        return [0] * 2 * len(sizes)
    if auto not in ("SAME_UPPER", "SAME_LOWER"):
        raise EenasError(f"{where}: auto_pad '{auto}' is not one of NOTSET, SAME_UPPER, SAME_LOWER, VALID")
    total = [max(0, (-(-n // s) - 1) * s + k - n) for n, k, s in zip(sizes, kernel, strides)]
    half, rest = [t // 2 for t in total], [t - t // 2 for t in total]
    return half + rest if auto == "SAME_UPPER" else rest + half


def _weight_only(graph) -> set[str]:
    """The tensors used only to make weights: in a slot after the first of a Conv, Gemm, MatMul or free operator
    (weight, bias, scale, zero point, Clip bound, BN statistic, shape), or only by nodes whose outputs all are.

    Without initializers, this is what tells a weight (a graph input or a value_info) from the image.
    """
    only: dict[str, bool] = {o.name: False for o in graph.output}
    for node in reversed(graph.node):  # consumers before producers
        uses = [only[o] for o in node.output if o in only]
        feeds_weights = bool(uses) and all(uses)
        for slot, x in enumerate(node.input):
            if x:
                only[x] = only.get(x, True) and (feeds_weights or (slot > 0 and node.op_type in WEIGHT_SLOT_OPS))
    return {x for x, weight in only.items() if weight}


def _block(index: int, nodes: tuple[Node, ...]) -> Block:
    layer = nodes[-1].layer
    channels = layer.out_channels if isinstance(layer, ConvLayer) else layer.channels
    size = layer.out_height if isinstance(layer, (ConvLayer, PoolLayer)) else layer.height
    return Block(index, nodes, channels, size)


def read_onnx(path: str | Path, weight_bits: int = 8, act_bits: int = 8, skip_unknown: bool = False) -> GraphWorkload:
    """The workload of the ONNX network in ``path`` (see the module docstring)."""
    check_bits("--weight-bits", weight_bits)
    check_bits("--act-bits", act_bits)
    path = Path(path)
    model = _load(path)
    reader = _Reader(model, path, weight_bits, act_bits, skip_unknown)
    reader.read(model.graph)
    if reader.skipped:
        log.warning("%s: costed as zero: %s", path, ", ".join(reader.skipped))
    pending = reader.nodes
    needs = []  # per output: the costed nodes it needs
    for out in model.graph.output:
        source = reader.source.get(out.name, reader.image)
        needs.append((out.name, set() if source == reader.image else pending[source].ancestors | {source}))
    needs.sort(key=lambda item: len(item[1]))  # by depth; a stable sort keeps the graph's order among equals
    if not needs[-1][1]:
        raise EenasError(f"--onnx: {path}: no output depends on a layer the cost model knows")
    stage = {}
    for i, (_, needed) in enumerate(needs):
        for name in needed:
            stage.setdefault(name, i)
    later = [set().union(*(n for _, n in needs[i + 1:])) for i in range(len(needs))]
    nodes = {name: Node(name, p.layer, p.inputs, p.weight_bits, reader._act_bits(p), p.input_bits)
             for name, p in pending.items() if name in stage}
    order = sorted(nodes, key=lambda n: pending[n].index)
    last = len(needs) - 1
    trunks = [tuple(nodes[n] for n in order if stage[n] == i and (i == last or n in later[i])) for i in range(last + 1)]
    heads = [tuple(nodes[n] for n in order if stage[n] == i and n not in later[i]) for i in range(last)]
    for i, (name, _) in enumerate(needs):
        if not trunks[i] or (i < last and not heads[i]):
            raise EenasError(f"--onnx: {path}: output '{name}' has no layers of its own before the next exit "
                             "(exits must read different tensors and have a head)")
    blocks = tuple(_block(i, t) for i, t in enumerate(trunks))
    _check_one_crossing(path, blocks, heads, reader.image)
    n_input = math.prod(reader._shape(reader.image, model.graph.node[0], 0)[1:])
    names = tuple(n for n, _ in needs)
    mapping = _exit_mapping(path, model, names[:-1])
    return GraphWorkload(reader.image, n_input * (reader.image_bits or act_bits), blocks, tuple(heads), names,
                         hashlib.sha256(path.read_bytes()).hexdigest()[:16],
                         tuple(m.get("core") for m in mapping), tuple(bool(m.get("overlap")) for m in mapping))


def _exit_mapping(path: Path, model, exits: tuple[str, ...]) -> list[dict]:
    """Each early exit's core and overlap from the metadata ``eenas export`` writes (none: the defaults)."""
    props = {p.key: p.value for p in model.metadata_props}
    if EXIT_MAPPING_KEY not in props:
        return [{} for _ in exits]
    try:
        data = json.loads(props[EXIT_MAPPING_KEY])
        mapping = [data.get(name) or {} for name in exits]
        valid = all(isinstance(m.get("core"), (int, type(None))) and isinstance(m.get("overlap", False), bool)
                    for m in mapping)
    except (ValueError, AttributeError, RecursionError):  # RecursionError: nested too deeply
        valid = False
    if not valid:
        raise EenasError(f"--onnx: {path}: metadata {EXIT_MAPPING_KEY}: expected {{output: {{core, overlap}}}}")
    return mapping


def _check_one_crossing(path: Path, blocks: tuple[Block, ...], heads: list[tuple[Node, ...]], image: str) -> None:
    """Each part reads only its own layers' outputs and the one tensor it starts from, as the schedule carries."""
    parts = [(block.nodes, blocks[i - 1].output if i else image) for i, block in enumerate(blocks)]
    parts += [(head, blocks[i].output) for i, head in enumerate(heads)]
    for nodes, entry in parts:
        known = {entry}
        for node in nodes:
            for x in node.inputs:
                if x not in known:
                    raise EenasError(f"--onnx: {path}: node '{node.name}' reads '{x}' across an exit: the cost model "
                                     "hands one tensor from a stage to the next")
            known.add(node.name)
