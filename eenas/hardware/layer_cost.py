"""Latency (cycles) and energy (pJ) of one layer on one core, with ZigZag's semantics.

A closed-form version of what ZigZag computes for one spatial unrolling and the temporal
loop order it finds best on an Edge-TPU-like core (docs/hardware.md derives each term):

* Spatial unrolling (D1, D2, D3, D4) = (K, C, OX, OY), clipped to the layer; temporal
  cycles are the product of ``ceil(dim / unroll)``.  Depthwise layers unroll their groups
  on D1 (``mac_array.depthwise_groups_on_d1``).  Packing low-precision operands widens D2.
* Partial tiles as in ZigZag: cycles count whole tiles, but memory traffic is that of the
  data really moved (the unrolling is ``dim / ceil(dim / unroll)`` on average, ZigZag's
  fractional spatial mapping) and port time uses its integer part.
* Temporal loops, innermost first: the reduction (C, FY, FX), then output channels, then
  output pixels.  The 1-word output register thus accumulates a whole output before it is
  drained once at final precision; the 1-word weight register is refilled every cycle
  (every output-channel tile if there is no reduction loop).  Inputs have no register, so
  the activation SRAM feeds the array every cycle: inputs are re-read once per temporal
  output-channel tile (and per kernel position).
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
from eenas.hardware.accelerator import (
    Accelerator,
    CoreDesign,
    MacArray,
    Memory,
    PoolingCore,
    SimdCore,
)
from eenas.hardware.layers import AddLayer, ConvLayer, Layer, PoolLayer
from eenas.precision import BITWIDTHS

# Breakdown keys of a convolution: operand (W weights, B biases and requantization scales,
# I inputs, O outputs) and memory level.
CONV_TERMS = ("mac", "W.rf", "W.sram", "W.dram", "B.sram", "I.sram", "I.dram", "O.rf", "O.sram", "O.dram")
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


def _d1_split(layer: ConvLayer, array: MacArray) -> tuple[int, int, bool]:
    """What D1 unrolls (output channels, or groups when depthwise groups go on D1), the loop
    left outside it, and whether groups are on D1."""
    groups_on_d1 = layer.groups > 1 and array.depthwise_groups_on_d1
    k_group = layer.out_channels // layer.groups
    return (layer.groups, k_group, True) if groups_on_d1 else (k_group, layer.groups, False)


def channel_tile_bits(layer: ConvLayer, array: MacArray, weight_bits: int) -> int:
    """Weight bits of one output-channel tile: the room a kernel streamed from DRAM needs to cross the port once."""
    d1_dim, d1_rest, _ = _d1_split(layer, array)
    out_ch_tiles = math.ceil(d1_dim / min(array.sizes[0], d1_dim)) * d1_rest
    return math.ceil(layer.weight_count * weight_bits / out_ch_tiles)


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
    ports: dict[str, int],
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
    layer: ConvLayer, core: CoreDesign, weight_bits: int, act_bits: int, input_bits: int, dram: Memory | None,
    capacity: int | None = None,
) -> LayerCost:
    """A convolution or FC layer on a core of this design; with ``dram``, what does not fit streams from it.

    ``input_bits`` is the precision its input was written at; ``capacity`` the weight-SRAM
    bits free for its parameters (default: the whole SRAM).
    """
    wb, ab, ib, arr = weight_bits, act_bits, input_bits, core.mac_array
    d1, d2, d3, d4 = arr.sizes
    pack = arr.pack_factor(wb, ib)
    c_group, k = layer.in_channels // layer.groups, layer.kernel
    d1_dim, d1_rest, groups_on_d1 = _d1_split(layer, arr)
    n1, *u1 = tiles(d1_dim, min(d1, d1_dim))
    n2, *u2 = tiles(c_group, min(d2 * pack, c_group))
    n3, *u3 = tiles(layer.out_width, min(d3, layer.out_width))
    n4, *u4 = tiles(layer.out_height, min(d4, layer.out_height))

    out_ch_tiles = n1 * d1_rest
    reduction = n2 * k * k
    pixel_tiles = n3 * n4
    temporal = reduction * out_ch_tiles * pixel_tiles
    out_tiles = out_ch_tiles * pixel_tiles

    # Words per transfer: [0] the real average (energy), [1] its integer part (port time).
    w_tile = [a * b for a, b in zip(u1, u2)]
    o_tile = [a * b * c for a, b, c in zip(u1, u3, u4)]
    i_tile = [(a if groups_on_d1 else 1) * b * c * d for a, b, c, d in zip(u1, u2, u3, u4)]  # broadcast over K
    w_loads = temporal if reduction > 1 else out_ch_tiles  # weight-register refills
    psum = max(arr.psum_bits, wb, ib, ab)
    wrf, orf, wsram, act = core.weight_rf, core.output_rf, core.weight_sram, core.act_sram

    terms = dict.fromkeys(CONV_TERMS, 0.0)
    terms["mac"] = layer.macs * arr.energy_per_mac_pj
    terms["W.rf"] = wrf.write_energy(wb, w_loads * w_tile[0]) + wrf.read_energy(wb, temporal * w_tile[0])
    terms["W.sram"] = wsram.read_energy(w_tile[0] * wb, w_loads)
    # Each output tile's biases and scales, read once when its accumulation starts.
    terms["B.sram"] = wsram.read_energy(u1[0] * channel_bits(wb), out_tiles)
    terms["I.sram"] = act.read_energy(i_tile[0] * ib, temporal)
    accumulations = temporal * o_tile[0]  # each one reads and writes the partial sum
    terms["O.rf"] = (
        orf.write_energy(psum, accumulations) + orf.read_energy(psum, accumulations)
        + orf.read_energy(ab, out_tiles * o_tile[0])
    )
    terms["O.sram"] = act.write_energy(o_tile[0] * ab, out_tiles)
    ports = {
        "weight_sram.read": wsram.read_cycles(w_tile[1] * wb, w_loads),
        "act_sram.read": act.read_cycles(i_tile[1] * ib, temporal),
        "act_sram.write": act.write_cycles(o_tile[1] * ab, out_tiles),
    }
    onload, offload = wsram.read_cycles(w_tile[1] * wb), act.write_cycles(o_tile[1] * ab)
    dram_onload = dram_offload = 0

    dram_bits = 0
    if dram is not None:
        capacity = wsram.size_bits if capacity is None else capacity
        if param_bits(layer, wb) > capacity:
            # Output-channel tiles outermost: one tile's weights are reused over every pixel
            # tile if they fit, else the whole kernel streams again for each pixel tile.
            # Biases and scales stream once.
            refetch = 1 if channel_tile_bits(layer, arr, wb) <= capacity else pixel_tiles
            streamed = layer.weight_count * wb * refetch + layer.out_channels * channel_bits(wb)
            terms["W.dram"] = dram.read_energy(streamed)
            terms["W.sram"] += wsram.write_energy(streamed)
            ports["weight_sram.write"] = wsram.write_cycles(streamed)
            dram_onload += dram.read_cycles(w_tile[1] * wb)
            dram_bits += streamed
        in_bits, out_bits = layer.input_count * ib, layer.output_count * ab
        if in_bits + out_bits > act.size_bits:
            terms["I.dram"] = dram.read_energy(in_bits)
            terms["I.sram"] += act.write_energy(in_bits)
            terms["O.dram"] = dram.write_energy(out_bits)
            terms["O.sram"] += act.read_energy(out_bits)
            ports["act_sram.write"] += act.write_cycles(in_bits)
            ports["act_sram.read"] += act.read_cycles(out_bits)
            dram_onload += dram.read_cycles(i_tile[1] * ib)
            dram_offload += dram.write_cycles(o_tile[1] * ab)
            dram_bits += in_bits + out_bits
        ports["dram"] = dram.read_cycles(dram_bits)
    units = arr.macs_per_cycle * pack
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


def check_bits(name: str, bits: int) -> None:
    if bits not in BITWIDTHS:
        raise EenasError(f"{name}: {bits!r} is not one of {list(BITWIDTHS)} (32 means float)")


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
