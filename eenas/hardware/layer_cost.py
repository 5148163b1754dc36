"""Latency (cycles) and energy (pJ) of one layer on one core, with ZigZag's semantics.

A closed-form version of what ZigZag computes for one spatial mapping and one temporal loop
order, on any core described as ZigZag does (:class:`~eenas.hardware.core.Core`; eenas's
own Edge-TPU-like format is one instance).  docs/hardware.md derives each term:

* Spatial mapping: each array dimension unrolls one loop (K, C, OX, OY, FX, FY or G), fixed
  by the core per layer type or the best of a few generated candidates; temporal cycles are
  the product of ``ceil(loop / unroll)``.  Packing low-precision operands widens the
  dimension that unrolls C.
* Partial tiles as in ZigZag: cycles count whole tiles, but memory traffic is that of the
  data really moved (the unrolling is ``dim / ceil(dim / unroll)`` on average, ZigZag's
  fractional spatial mapping) and port time uses its integer part.
* Temporal loops, innermost first: the reduction (C, FY, FX), then output channels, then
  output pixels (pixels first without a reduction).  Each operand's levels keep the
  innermost loops whose data fits (ZigZag's loop allocation), so the lowest output level
  accumulates whole outputs and drains them once at final precision, and a level is
  refilled once per iteration of the loops above it.  The lowest level of the weights and
  inputs feeds the array every cycle.
* Energy = MACs x MAC energy + accesses x per-access energy, with ZigZag's partial-access
  rule per transfer.  Latency = loading + temporal cycles + port stalls + draining; the
  shared DRAM port bounds layers that stream operands from DRAM.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from eenas.errors import EenasError
from eenas.hardware.accelerator import Accelerator, CoreDesign, MacArray, Memory, PoolingCore, SimdCore
from eenas.hardware.core import OPERANDS, RELEVANT, Core, Level, as_core, loop_sizes
from eenas.hardware.core import Mapping as SpatialMapping
from eenas.hardware.layers import AddLayer, ConvLayer, Layer, PoolLayer
from eenas.precision import check_bits

BIAS_BITS = 32  # int32 bias per output channel, added in the accumulator
SCALE_BITS = 32  # per-channel requantization multiplier (fixed point, shift included)
FLOAT_BITS = 32


def channel_bits(weight_bits: int) -> int:
    """Parameter bits per output channel besides its weights: the bias, and the requantization
    scale that per-channel weight quantization brings (float weights need none)."""
    return BIAS_BITS + (SCALE_BITS if weight_bits < FLOAT_BITS else 0)


def param_bits(layer: ConvLayer, weight_bits: int) -> int:
    """Everything a convolution fetches besides activations: weights, biases and scales."""
    return layer.weight_count * weight_bits + layer.out_channels * channel_bits(weight_bits)


def tiles(size: int, unroll: int) -> tuple[int, float, int]:
    """ZigZag's partial tiles of a loop of ``size`` unrolled ``unroll`` wide.

    Returns the tile count ``ceil(size / unroll)`` (what cycles pay for), the real average
    unrolling ``size / count`` (what traffic pays for: ZigZag's fractional spatial mapping)
    and its integer part (ZigZag's ``spatial_mapping_int``, what port time pays for).
    """
    count = -(-size // unroll)
    real = size / count
    return count, real, int(real)


@dataclass(frozen=True)
class Tiling:
    """A layer's loops under one spatial mapping: what each array dimension unrolls, what stays temporal."""

    spatial: tuple[tuple[str, float, int] | None, ...]  # per dimension: loop, real and integer unrolling
    counts: Mapping[str, int]  # temporal iterations of each loop
    order: tuple[tuple[str, int], ...]  # temporal loops of more than one iteration, innermost first
    temporal: int


@functools.lru_cache(maxsize=1 << 14)
def tiling(layer: ConvLayer, core: Core, mapping: SpatialMapping, pack: int) -> Tiling:
    """Unroll ``mapping`` (packing widens the dimension unrolling C) and order the temporal loops.

    Innermost first: the reduction (C, FY, FX), then output channels (K, G), then output
    pixels; without a reduction loop the pixel loops go innermost.
    """
    counts = loop_sizes(layer)
    spatial: list[tuple[str, float, int] | None] = []
    for loop, size in zip(mapping, core.sizes):
        if loop is None:
            spatial.append(None)
            continue
        n, real, whole = tiles(counts[loop], min(size * (pack if loop == "C" else 1), counts[loop]))
        counts[loop] = n
        spatial.append((loop, real, whole))
    reduction = [(x, counts[x]) for x in ("C", "FY", "FX")]
    out_channels = [(x, counts[x]) for x in ("K", "G")]
    pixels = [(x, counts[x]) for x in ("OX", "OY")]
    order = reduction + out_channels + pixels if math.prod(n for _, n in reduction) > 1 else pixels + out_channels
    return Tiling(tuple(spatial), MappingProxyType(counts), tuple((x, n) for x, n in order if n > 1),
                  math.prod(counts.values()))


def _unique(t: Tiling, operand: str, dims: tuple[int, ...], stride: int) -> tuple[float, int]:
    """Distinct words of ``operand`` over array dimensions ``dims`` (real average, integer part).

    Dimensions unrolling loops irrelevant to the operand share (broadcast) its words; an
    output pixel loop unrolled beside its kernel loop reads an overlapping input window.
    """
    picked = {e[0]: e for d in dims if (e := t.spatial[d]) is not None and e[0] in RELEVANT[operand]}
    real: float = 1
    whole = 1
    for x, r, w in picked.values():
        partner = _WINDOW.get(x) if operand == "I" else None
        if partner in picked:
            if x in ("FX", "FY"):
                continue  # counted with its output loop
            _, pr, pw = picked[partner]
            r, w = min(r * pr, (r - 1) * stride + pr), min(w * pw, (w - 1) * stride + pw)
        real *= r
        whole *= w
    return real, whole


_WINDOW = {"OX": "FX", "FX": "OX", "OY": "FY", "FY": "OY"}


def _instances(t: Tiling, level: Level) -> tuple[float, int]:
    """Instances of ``level`` in use: one per point of the dimensions it does not serve."""
    real: float = 1
    whole = 1
    for d, e in enumerate(t.spatial):
        if e is not None and d not in level.served:
            real *= e[1]
            whole *= e[2]
    return real, whole


def _allocate(t: Tiling, chain: tuple[Level, ...], operand: str, bits: int, stride: int) -> list[tuple[int, int]]:
    """ZigZag's temporal loop allocation: each level below the top keeps the innermost loops whose
    data fits one instance (loops irrelevant to the operand are reuse and cost no room).

    Returns, per level below the top, its words per instance and data per spatial word
    (``f``) and how often it is refilled (the product of the loops above it).
    """
    pos, f, out = 0, 1, []
    for level in chain[:-1]:
        room = level.words(bits)
        per = _unique(t, operand, level.served, stride)[1]
        while pos < len(t.order):
            loop, n = t.order[pos]
            if loop in RELEVANT[operand]:
                if f * n * per > room:
                    break
                f *= n
            pos += 1
        out.append((f, math.prod(n for _, n in t.order[pos:])))
    return out


def channel_tile_bits(layer: ConvLayer, design: CoreDesign | MacArray | Core, weight_bits: int) -> int:
    """Weight bits of one output-channel tile: the room a kernel streamed from DRAM needs to cross the port once."""
    core = as_core(design)
    counts = tiling(layer, core, spatial_mapping(layer, core), 1).counts
    return math.ceil(layer.weight_count * weight_bits / (counts["K"] * counts["G"]))


@dataclass(frozen=True)
class LayerCost:
    """Cost of one layer; ``breakdown`` maps named terms (``"W.sram"``, ...) to pJ."""

    latency_cycles: int
    energy_pj: float
    macs: int  # multiply-accumulates (0 for pooling and additions)
    ops: int  # MACs, pooling comparisons/additions or element-wise additions
    utilization: float  # ops / (temporal cycles x units of the core)
    temporal_cycles: int
    onload_cycles: int
    offload_cycles: int
    stall_cycles: int
    dram_bits: int  # bits this layer moves over the DRAM port itself
    breakdown: Mapping[str, float]


def _finish(
    terms: dict[str, float],
    ports: Mapping[object, int],
    temporal: int,
    onload: int,
    offload: int,
    macs: int,
    ops: int,
    units: int,
    dram_bits: int = 0,
    dram_edges: int = 0,
) -> LayerCost:
    """Latency = loading + temporal cycles + stall of the busiest port + draining.

    ``dram_edges`` are the loading and draining cycles spent on the DRAM port; they are
    part of that port's busy time, so they count towards the stall only once.
    """
    stall = max(0, max(ports.values(), default=0) - temporal - dram_edges)
    return LayerCost(
        latency_cycles=onload + temporal + stall + offload,
        energy_pj=sum(terms.values()),
        macs=macs,
        ops=ops,
        utilization=ops / (temporal * units),
        temporal_cycles=temporal,
        onload_cycles=onload,
        offload_cycles=offload,
        stall_cycles=stall,
        dram_bits=dram_bits,
        breakdown=MappingProxyType(terms),
    )


@functools.lru_cache(maxsize=1 << 16)
def conv_cost(
    layer: ConvLayer, core: CoreDesign | Core, weight_bits: int, act_bits: int, input_bits: int, dram: Memory | None,
    capacity: int | None = None,
) -> LayerCost:
    """A convolution or FC layer on a core of this design; with ``dram``, what does not fit streams from it.

    ``input_bits`` is the precision its input was written at; ``capacity`` the weight-SRAM
    bits free for its parameters (default: the whole SRAM).
    """
    general = as_core(core)
    return _conv_cost(layer, general, spatial_mapping(layer, general), weight_bits, act_bits, input_bits, dram,
                      capacity)


@functools.lru_cache(maxsize=1 << 14)
def spatial_mapping(layer: ConvLayer, core: Core) -> SpatialMapping:
    """The core's fixed mapping for this layer type, or the candidate of least energy x latency on chip
    at the core's native precision (first on ties), so that one mapping serves every bit-width."""
    options = core.candidates(layer)
    if len(options) == 1:
        return options[0]
    n = core.native_bits

    def edp(mapping: SpatialMapping) -> float:
        cost = _conv_cost(layer, core, mapping, n, n, n, None, None)
        return cost.energy_pj * cost.latency_cycles

    return min(options, key=edp)


def _conv_cost(
    layer: ConvLayer, core: Core, mapping: SpatialMapping, wb: int, ab: int, ib: int, dram: Memory | None,
    capacity: int | None,
) -> LayerCost:
    """Energy per operand and level (ZigZag's data movement), latency = loading + T + stall + draining.

    Level 0 of W and I feeds the array every cycle; level 0 of O accumulates every cycle (a
    read and a write of a partial sum) and, holding the whole reduction, drains final outputs.
    Between levels, a level's refills read the words of all the instances below it that it serves.
    """
    t = tiling(layer, core, mapping, core.pack_factor(wb, ib))
    temporal, stride, every = t.temporal, layer.stride, tuple(range(len(core.sizes)))
    psum = max(core.psum_bits, wb, ib, ab)
    terms: dict[str, float] = {"mac": layer.macs * core.energy_per_mac_pj}
    ports: dict[tuple[str, tuple[str, ...], str], int] = {}
    edges = {"W": 0, "I": 0, "O": 0}  # cycles to load each operand's first tile, or drain the last output tile

    def port(level: Level, direction: str, cycles: int) -> None:
        if not level.in_array:  # register ports are assumed never to stall
            key = (level.name, level.operands, "rw" if level.shared_port else direction)
            ports[key] = ports.get(key, 0) + cycles

    for op, bits in (("W", wb), ("I", ib), ("O", ab)):
        chain, top = core.chains[op], len(core.chains[op]) - 1
        alloc = _allocate(t, chain, op, psum if op == "O" else bits, stride)
        for j, level in enumerate(chain):
            key, mem = f"{op}.{level.name}", level.memory
            inst, inst_int = _instances(t, level)
            per, per_int = _unique(t, op, level.served, stride)
            terms[key] = terms.get(key, 0.0)
            if op == "O" and j == 0:  # accumulate: read and write the partial sum every cycle
                terms[key] += mem.write_energy(per * psum, temporal * inst)
                terms[key] += mem.read_energy(per * psum, temporal * inst)
                port(level, "write", mem.write_cycles(per_int * psum, temporal * inst_int))
                port(level, "read", mem.read_cycles(per_int * psum, temporal * inst_int))
            elif op == "O" or j < top:  # filled: outputs from below, W and I from above
                f, refills = alloc[j - 1] if op == "O" else alloc[j]
                terms[key] += mem.write_energy(f * per * bits, refills * inst)
                port(level, "write", mem.write_cycles(f * per_int * bits, refills * inst_int))
                if op == "O":
                    edges[op] += mem.write_cycles(f * per_int * bits)
            if op != "O" and j == 0:  # feed the array every cycle
                terms[key] += mem.read_energy(per * bits, temporal * inst)
                port(level, "read", mem.read_cycles(per_int * bits, temporal * inst_int))
            elif op == "O" and j < top or op != "O" and j > 0:  # read: outputs drained up, W and I sent down
                f, refills = alloc[j] if op == "O" else alloc[j - 1]
                terms[key] += mem.read_energy(f * per * bits, refills * inst)
                port(level, "read", mem.read_cycles(f * per_int * bits, refills * inst_int))
                if op != "O":
                    edges[op] += mem.read_cycles(f * per_int * bits)
        terms[f"{op}.dram"] = 0.0
        if op == "W":  # each output tile's biases and scales, read once when its accumulation starts
            channels = math.prod([e[1] for e in t.spatial if e is not None and e[0] in ("K", "G")], start=1)
            out_tiles = t.counts["K"] * t.counts["G"] * t.counts["OX"] * t.counts["OY"]
            terms[f"B.{chain[-1].name}"] = chain[-1].memory.read_energy(channels * channel_bits(wb), out_tiles)
    onload, offload = max(edges["W"], edges["I"]), edges["O"]
    dram_onload = dram_offload = 0

    dram_bits = 0
    if dram is not None:
        w_top, i_top, o_top = (core.chains[op][-1] for op in OPERANDS)
        wsram, act = w_top.memory, i_top.memory
        w_tile, i_tile, o_tile = (_unique(t, op, every, stride)[1] for op in OPERANDS)
        capacity = wsram.size_bits if capacity is None else capacity
        if param_bits(layer, wb) > capacity:
            # Output-channel tiles outermost: one tile's weights are reused over every pixel
            # tile if they fit, else the whole kernel streams again for each pixel tile.
            # Biases and scales stream once.
            refetch = 1 if channel_tile_bits(layer, core, wb) <= capacity else t.counts["OX"] * t.counts["OY"]
            streamed = layer.weight_count * wb * refetch + layer.out_channels * channel_bits(wb)
            terms["W.dram"] = dram.read_energy(streamed)
            terms[f"W.{w_top.name}"] += wsram.write_energy(streamed)
            port(w_top, "write", wsram.write_cycles(streamed))
            dram_onload += dram.read_cycles(w_tile * wb)
            dram_bits += streamed
        in_bits, out_bits = layer.input_count * ib, layer.output_count * ab
        if in_bits + out_bits > act.size_bits:  # type: ignore[operator]
            terms["I.dram"] = dram.read_energy(in_bits)
            terms[f"I.{i_top.name}"] += act.write_energy(in_bits)
            terms["O.dram"] = dram.write_energy(out_bits)
            terms[f"O.{o_top.name}"] += act.read_energy(out_bits)
            port(i_top, "write", act.write_cycles(in_bits))
            port(i_top, "read", act.read_cycles(out_bits))
            dram_onload += dram.read_cycles(i_tile * ib)
            dram_offload += dram.write_cycles(o_tile * ab)
            dram_bits += in_bits + out_bits
        ports["dram", (), ""] = dram.read_cycles(dram_bits)
    units = core.macs_per_cycle * core.pack_factor(wb, ib)
    return _finish(terms, ports, temporal, onload + dram_onload, offload + dram_offload, layer.macs, layer.macs, units,
                   dram_bits, dram_onload + dram_offload)


@functools.lru_cache(maxsize=1 << 12)
def pool_cost(layer: PoolLayer, pool: PoolingCore, input_bits: int, act_bits: int) -> LayerCost:
    """Pooling on the pooling core: one ``units[0] x units[1]`` window over ``units[2]`` channels per cycle.

    It reads ``input_bits``-wide values and writes ``act_bits``-wide ones (max pooling keeps
    its input's grid, so the two are equal there).
    """
    uy, ux, uc = pool.units
    nc, *rc = tiles(layer.channels, min(uc, layer.channels))
    ny, *ry = tiles(layer.kernel, min(uy, layer.kernel))
    nx, *rx = tiles(layer.kernel, min(ux, layer.kernel))
    out_tiles = nc * layer.out_height * layer.out_width
    temporal = out_tiles * ny * nx
    in_tile = [y * x * c * input_bits for y, x, c in zip(ry, rx, rc)]  # [real, integer] as in conv_cost
    out_tile = [c * act_bits for c in rc]
    terms = {
        "ops": layer.ops * pool.energy_per_op_pj,
        "I.sram": pool.sram.read_energy(in_tile[0], temporal),
        "O.sram": pool.sram.write_energy(out_tile[0], out_tiles),
    }
    ports = {
        "sram.read": pool.sram.read_cycles(in_tile[1], temporal),
        "sram.write": pool.sram.write_cycles(out_tile[1], out_tiles),
    }
    onload, offload = pool.sram.read_cycles(in_tile[1]), pool.sram.write_cycles(out_tile[1])
    return _finish(terms, ports, temporal, onload, offload, 0, layer.ops, uy * ux * uc)


@functools.lru_cache(maxsize=1 << 12)
def add_cost(layer: AddLayer, simd: SimdCore) -> LayerCost:
    """An element-wise addition on the SIMD core (its operands' memory traffic is the network's)."""
    temporal = math.ceil(layer.ops / simd.lanes)
    return _finish({"ops": layer.ops * simd.energy_per_op_pj}, {}, temporal, 0, 0, 0, layer.ops, simd.lanes)


def layer_cost(
    layer: Layer,
    acc: Accelerator,
    core: int = 0,
    weight_bits: int = 8,
    act_bits: int = 8,
    dram: bool = False,
    input_bits: int | None = None,
) -> LayerCost:
    """Cost of ``layer`` on compute core ``core`` of ``acc`` (the stable seam; cached by shape).

    Pooling runs on the pooling core and additions on the SIMD core, whatever ``core`` says.
    ``dram=False``: all operands are on chip (a core's own view).  ``dram=True``: operands
    that do not fit the core's memories stream from off-chip DRAM.  ``input_bits`` is the
    precision the input was written at (default ``act_bits``; the network's image is 8-bit).
    """
    input_bits = act_bits if input_bits is None else input_bits
    for name, bits in (("weight_bits", weight_bits), ("act_bits", act_bits), ("input_bits", input_bits)):
        check_bits(name, bits)
    if isinstance(layer, ConvLayer):
        if not isinstance(core, int) or not 0 <= core < len(acc.cores):
            raise EenasError(f"core: {core!r} is not a compute core of {acc.name} (0..{len(acc.cores) - 1})")
        return conv_cost(layer, acc.cores[core].design, weight_bits, act_bits, input_bits, acc.dram if dram else None)
    if isinstance(layer, PoolLayer):
        return pool_cost(layer, acc.pooling_core, input_bits, act_bits)
    if isinstance(layer, AddLayer):
        return add_cost(layer, acc.simd_core)
    raise EenasError(f"unknown layer type '{type(layer).__name__}' (expected ConvLayer, PoolLayer or AddLayer)")
