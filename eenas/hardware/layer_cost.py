"""Latency (cycles) and energy (pJ) of one layer on one core, with ZigZag's semantics.

A closed-form version of what ZigZag computes for one spatial unrolling and the temporal
loop order it finds best on an Edge-TPU-like core (docs/hardware.md derives each term):

* Spatial unrolling (D1, D2, D3, D4) = (K, C, OX, OY), clipped to the layer; temporal
  cycles are the product of ``ceil(dim / unroll)``.  Depthwise layers unroll their groups
  on D1 (``mac_array.depthwise_groups_on_d1``).  Packing low-precision operands widens D2.
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

from eenas.arch import BITWIDTHS
from eenas.errors import EenasError
from eenas.hardware.accelerator import (
    Accelerator,
    CoreDesign,
    Memory,
    PoolingCore,
    SimdCore,
)
from eenas.hardware.layers import AddLayer, ConvLayer, Layer, PoolLayer

# Breakdown keys of a convolution: operand (W weights, I inputs, O outputs) and memory level.
CONV_TERMS = ("mac", "W.rf", "W.sram", "W.dram", "I.sram", "I.dram", "O.rf", "O.sram", "O.dram")


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
def conv_cost(layer: ConvLayer, core: CoreDesign, weight_bits: int, act_bits: int, dram: Memory | None) -> LayerCost:
    """A convolution or FC layer on a core of this design; with ``dram``, what does not fit streams from it."""
    wb, ab, arr = weight_bits, act_bits, core.mac_array
    d1, d2, d3, d4 = arr.sizes
    pack = arr.pack_factor(wb, ab)
    groups = layer.groups
    k_group, c_group, k = layer.out_channels // groups, layer.in_channels // groups, layer.kernel
    groups_on_d1 = groups > 1 and arr.depthwise_groups_on_d1
    d1_dim, d1_rest = (groups, k_group) if groups_on_d1 else (k_group, groups)
    u1, u2 = min(d1, d1_dim), min(d2 * pack, c_group)
    u3, u4 = min(d3, layer.out_width), min(d4, layer.out_height)

    out_ch_tiles = math.ceil(d1_dim / u1) * d1_rest
    reduction = math.ceil(c_group / u2) * k * k
    pixel_tiles = math.ceil(layer.out_width / u3) * math.ceil(layer.out_height / u4)
    temporal = reduction * out_ch_tiles * pixel_tiles
    out_tiles = out_ch_tiles * pixel_tiles

    w_tile, o_tile = u1 * u2, u1 * u3 * u4  # words per cycle
    i_tile = (u1 if groups_on_d1 else 1) * u2 * u3 * u4  # inputs broadcast over K, not over groups
    w_loads = temporal if reduction > 1 else out_ch_tiles  # weight-register refills
    psum = max(arr.psum_bits, wb, ab)
    wrf, orf, wsram, act = core.weight_rf, core.output_rf, core.weight_sram, core.act_sram

    terms = dict.fromkeys(CONV_TERMS, 0.0)
    terms["mac"] = layer.macs * arr.energy_per_mac_pj
    terms["W.rf"] = wrf.write_energy(wb, w_loads * w_tile) + wrf.read_energy(wb, temporal * w_tile)
    terms["W.sram"] = wsram.read_energy(w_tile * wb, w_loads)
    terms["I.sram"] = act.read_energy(i_tile * ab, temporal)
    accumulations = temporal * o_tile  # each one reads and writes the partial sum
    terms["O.rf"] = (
        orf.write_energy(psum, accumulations) + orf.read_energy(psum, accumulations)
        + orf.read_energy(ab, out_tiles * o_tile)
    )
    terms["O.sram"] = act.write_energy(o_tile * ab, out_tiles)
    ports = {
        "weight_sram.read": wsram.read_cycles(w_tile * wb, w_loads),
        "act_sram.read": act.read_cycles(i_tile * ab, temporal),
        "act_sram.write": act.write_cycles(o_tile * ab, out_tiles),
    }
    onload, offload = wsram.read_cycles(w_tile * wb), act.write_cycles(o_tile * ab)
    dram_onload = dram_offload = 0

    dram_bits = 0
    if dram is not None:
        weight_total = layer.weight_count * wb
        if weight_total > wsram.size_bits:
            # Output-channel tiles outermost: one tile's weights are reused over every pixel
            # tile if they fit, else the whole kernel streams again for each pixel tile.
            refetch = 1 if math.ceil(weight_total / out_ch_tiles) <= wsram.size_bits else pixel_tiles
            streamed = weight_total * refetch
            terms["W.dram"] = dram.read_energy(streamed)
            terms["W.sram"] += wsram.write_energy(streamed)
            ports["weight_sram.write"] = wsram.write_cycles(streamed)
            dram_onload += dram.read_cycles(w_tile * wb)
            dram_bits += streamed
        in_bits, out_bits = layer.input_count * ab, layer.output_count * ab
        if in_bits + out_bits > act.size_bits:
            terms["I.dram"] = dram.read_energy(in_bits)
            terms["I.sram"] += act.write_energy(in_bits)
            terms["O.dram"] = dram.write_energy(out_bits)
            terms["O.sram"] += act.read_energy(out_bits)
            ports["act_sram.write"] += act.write_cycles(in_bits)
            ports["act_sram.read"] += act.read_cycles(out_bits)
            dram_onload += dram.read_cycles(i_tile * ab)
            dram_offload += dram.write_cycles(o_tile * ab)
            dram_bits += in_bits + out_bits
        ports["dram"] = dram.read_cycles(dram_bits)
    units = arr.macs_per_cycle * pack
    return _finish(terms, ports, temporal, onload + dram_onload, offload + dram_offload, layer.macs, layer.macs, units,
                   dram_bits, dram_onload + dram_offload)


@functools.lru_cache(maxsize=1 << 12)
def pool_cost(layer: PoolLayer, pool: PoolingCore, act_bits: int) -> LayerCost:
    """Pooling on the pooling core: one ``units[0] x units[1]`` window over ``units[2]`` channels per cycle."""
    uy, ux, uc = pool.units
    cu, ky, kx = min(uc, layer.channels), min(uy, layer.kernel), min(ux, layer.kernel)
    out_tiles = math.ceil(layer.channels / cu) * layer.out_height * layer.out_width
    temporal = out_tiles * math.ceil(layer.kernel / ky) * math.ceil(layer.kernel / kx)
    in_tile, out_tile = ky * kx * cu * act_bits, cu * act_bits
    terms = {
        "ops": layer.ops * pool.energy_per_op_pj,
        "I.sram": pool.sram.read_energy(in_tile, temporal),
        "O.sram": pool.sram.write_energy(out_tile, out_tiles),
    }
    ports = {
        "sram.read": pool.sram.read_cycles(in_tile, temporal),
        "sram.write": pool.sram.write_cycles(out_tile, out_tiles),
    }
    onload, offload = pool.sram.read_cycles(in_tile), pool.sram.write_cycles(out_tile)
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
) -> LayerCost:
    """Cost of ``layer`` on compute core ``core`` of ``acc`` (the stable seam; cached by shape).

    Pooling runs on the pooling core and additions on the SIMD core, whatever ``core`` says.
    ``dram=False``: all operands are on chip (a core's own view).  ``dram=True``: operands
    that do not fit the core's memories stream from off-chip DRAM.
    """
    check_bits("weight_bits", weight_bits)
    check_bits("act_bits", act_bits)
    if isinstance(layer, ConvLayer):
        if not isinstance(core, int) or not 0 <= core < len(acc.cores):
            raise EenasError(f"core: {core!r} is not a compute core of {acc.name} (0..{len(acc.cores) - 1})")
        return conv_cost(layer, acc.cores[core].design, weight_bits, act_bits, acc.dram if dram else None)
    if isinstance(layer, PoolLayer):
        return pool_cost(layer, acc.pooling_core, act_bits)
    if isinstance(layer, AddLayer):
        return add_cost(layer, acc.simd_core)
    raise EenasError(f"unknown layer type '{type(layer).__name__}' (expected ConvLayer, PoolLayer or AddLayer)")
