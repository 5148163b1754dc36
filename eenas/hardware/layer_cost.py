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
import itertools
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


# Temporal loop groups: the reduction, output channels, output pixels.
GROUPS = {"R": ("C", "FY", "FX"), "K": ("K", "G"), "P": ("OX", "OY")}


@functools.lru_cache(maxsize=1 << 14)
def tiling(layer: ConvLayer, core: Core, mapping: SpatialMapping, pack: int,
           groups: tuple[str, ...] | None = None) -> Tiling:
    """Unroll ``mapping`` (packing widens the dimension unrolling C) and order the temporal loops.

    ``groups`` orders the loop groups (:data:`GROUPS`) innermost first; by default the
    reduction (C, FY, FX), then output channels (K, G), then output pixels, and without a
    reduction loop the pixel loops innermost.
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
    if groups is None:
        reduction = math.prod(counts[x] for x in GROUPS["R"]) > 1
        groups = ("R", "K", "P") if reduction else ("P", "K")
    order = [(x, counts[x]) for g in groups for x in GROUPS[g]]
    return Tiling(tuple(spatial), MappingProxyType(counts), tuple((x, n) for x, n in order if n > 1),
                  math.prod(counts.values()))


def _group_orders(
    layer: ConvLayer, core: Core, mapping: SpatialMapping, pack: int,
) -> tuple[tuple[str, ...] | None, ...]:
    """The temporal orders to cost: the default one first, then every order of the groups that have
    temporal loops (a core from a ZigZag file only)."""
    if not core.searches_order:
        return (None,)
    counts = tiling(layer, core, mapping, pack).counts
    busy = [g for g, loops in GROUPS.items() if math.prod(counts[x] for x in loops) > 1]
    default = [g for g in (("R", "K", "P") if "R" in busy else ("P", "K")) if g in busy]
    return (None, *(p for p in itertools.permutations(busy) if list(p) != default))


def _unique(t: Tiling, operand: str, dims: tuple[int, ...], stride: int, layer: ConvLayer | None = None,
            temporal: Mapping[str, int] | None = None) -> tuple[float, int]:
    """Distinct words of ``operand`` over array dimensions ``dims`` and ``temporal`` loop extents (real
    average, integer part).

    Dimensions unrolling loops irrelevant to the operand share (broadcast) its words; an
    output pixel loop beside its kernel loop (unrolled or temporal) reads an overlapping input
    window ``(OX - 1) * stride + FX``, no wider than the input (with ``layer``).
    """
    relevant = RELEVANT[operand]
    real: dict[str, float] = {}
    whole: dict[str, int] = {}
    for d in dims:
        e = t.spatial[d]
        if e is not None and e[0] in relevant:
            real[e[0]], whole[e[0]] = e[1], e[2]
    for x, n in (temporal or {}).items():
        if x in relevant:
            real[x], whole[x] = real.get(x, 1) * n, whole.get(x, 1) * n
    if operand == "I":
        sizes = (layer.width, layer.height) if layer else (0, 0)
        for out, kernel, size in (("OX", "FX", sizes[0]), ("OY", "FY", sizes[1])):
            for ext in (real, whole):
                if out in ext and kernel in ext:
                    o, k = ext.pop(out), ext.pop(kernel)
                    window = min(o * k, (o - 1) * stride + k)
                    ext[out] = min(window, size) if size and (out in (temporal or {}) or kernel in (temporal or {})) \
                        else window
    return math.prod(real.values()), math.prod(whole.values())


def _instances(t: Tiling, level: Level) -> tuple[float, int]:
    """Instances of ``level`` in use: one per point of the dimensions it does not serve."""
    real: float = 1
    whole = 1
    for d, e in enumerate(t.spatial):
        if e is not None and d not in level.served:
            real *= e[1]
            whole *= e[2]
    return real, whole


@dataclass(frozen=True)
class _Held:
    """What one level of an operand holds: its temporal loop extents, how often it is refilled, and
    the loops irrelevant to the operand above it (partial sums that go up and come back)."""

    extents: Mapping[str, int]
    refills: int
    reduction_above: int


def _allocate(t: Tiling, chain: tuple[Level, ...], operand: str, bits: int, stride: int, layer: ConvLayer,
              split: bool, final_bits: int = 0) -> list[_Held]:
    """ZigZag's temporal loop allocation: each level below the top keeps the innermost loops whose
    data fits one instance (loops irrelevant to the operand are reuse and cost no room); with
    ``split``, a loop that does not fit whole leaves its largest fitting factor there (ZigZag
    allocates prime factors), and outputs take ``final_bits`` of room once no reduction loop is
    left above.
    """
    order = list(t.order)
    pos, extents, out = 0, {}, []
    for level in chain[:-1]:
        final = final_bits and all(x in RELEVANT[operand] for x, _ in order[pos:])
        room = level.words(final_bits if final else bits)
        while pos < len(order):
            loop, n = order[pos]
            if loop in RELEVANT[operand]:
                trial = {**extents, loop: extents.get(loop, 1) * n}
                if _unique(t, operand, level.served, stride, layer, trial)[1] > room:
                    for d in range(n - 1, 1, -1) if split else ():
                        if n % d == 0 and _unique(t, operand, level.served, stride, layer,
                                                  {**extents, loop: extents.get(loop, 1) * d})[1] <= room:
                            extents = {**extents, loop: extents.get(loop, 1) * d}
                            order[pos] = (loop, n // d)
                            break
                    break
                extents = trial
            pos += 1
        above = order[pos:]
        out.append(_Held(extents, math.prod(n for _, n in above),
                         math.prod(n for x, n in above if x not in RELEVANT[operand])))
    return out


def _stationary(t: Tiling, operand: str) -> int:
    """Iterations of the innermost temporal loops irrelevant to ``operand``: its words stay unchanged
    at the innermost level meanwhile (ZigZag's ``mac_level_data_stationary_cycle``)."""
    cycles = 1
    for x, n in t.order:
        if x in RELEVANT[operand]:
            break
        cycles *= n
    return cycles


def _link(zz: bool, near: int, far: int) -> int:
    """Cycles of a transfer between two levels: the slower port paces a ZigZag core's link (``near``: the lower
    level's, ``far``: the upper one's); eenas's own cores count the upper port."""
    return max(near, far) if zz else far


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
    mapping, groups = temporal_mapping(layer, general)
    return _conv_cost(layer, general, mapping, weight_bits, act_bits, input_bits, dram, capacity, groups)


def spatial_mapping(layer: ConvLayer, core: Core) -> SpatialMapping:
    """The core's fixed mapping for this layer type, or the candidate of least energy x latency on chip
    at the core's native precision (first on ties), so that one mapping serves every bit-width."""
    return temporal_mapping(layer, core)[0]


@functools.lru_cache(maxsize=1 << 14)
def temporal_mapping(layer: ConvLayer, core: Core) -> tuple[SpatialMapping, tuple[str, ...] | None]:
    """The spatial mapping and temporal loop order of least energy x latency on chip at the core's native
    precision (first on ties: the default order, then the candidates' order).

    A core from a ZigZag file costs every order of the loop groups (ZigZag's LOMA searches
    orders of loop factors; :data:`GROUPS`), eenas's own format its fixed order.
    """
    options = core.candidates(layer)
    n = core.native_bits
    pairs = [(m, g) for m in options for g in _group_orders(layer, core, m, 1)]
    if len(pairs) == 1:
        return pairs[0]

    def edp(pair: tuple[SpatialMapping, tuple[str, ...] | None]) -> float:
        cost = _conv_cost(layer, core, pair[0], n, n, n, None, None, pair[1])
        return cost.energy_pj * cost.latency_cycles

    return min(pairs, key=edp)


def _conv_cost(
    layer: ConvLayer, core: Core, mapping: SpatialMapping, wb: int, ab: int, ib: int, dram: Memory | None,
    capacity: int | None, groups: tuple[str, ...] | None = None,
) -> LayerCost:
    """Energy per operand and level (ZigZag's data movement), latency = loading + T + stall + draining.

    Level 0 of W and I feeds the array every cycle; level 0 of O accumulates every cycle (a
    read and a write of a partial sum) and drains what it holds: final outputs when it holds
    the whole reduction, else partial sums that come back for the rest of it.  Between levels,
    a level's refills read the words of all the instances below it that it serves.
    """
    t = tiling(layer, core, mapping, core.pack_factor(wb, ib), groups)
    temporal, stride, every = t.temporal, layer.stride, tuple(range(len(core.sizes)))
    psum = max(core.psum_bits, wb, ib, ab)
    zz = core.searches_order
    terms: dict[str, float] = {"mac": layer.macs * core.energy_per_mac_pj}
    ports: dict[tuple[str, tuple[str, ...], str], int] = {}
    edges = {"W": 0, "I": 0, "O": 0}  # cycles to load each operand's first tile, or drain the last output tile

    def port(level: Level, direction: str, cycles: int) -> None:
        if not level.in_array:  # register ports are assumed never to stall
            key = (level.name, level.operands, "rw" if level.shared_port else direction)
            ports[key] = ports.get(key, 0) + cycles

    for op, bits in (("W", wb), ("I", ib), ("O", ab)):
        chain, top = core.chains[op], len(core.chains[op]) - 1
        # a ZigZag core allocates at no fewer bits than its native ones: the loops one mapping keeps
        # at each level stay there at every bit-width (fewer bits never cost more)
        room_bits = max(bits, core.native_bits) if zz else bits
        held = _allocate(t, chain, op, psum if op == "O" else room_bits, stride, layer, zz,
                         room_bits if zz and op == "O" else 0)
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
            if op != "O" and j == 0:  # feed the array every cycle, an unchanged word once
                feeds = temporal // _stationary(t, op) if zz else temporal
                terms[key] += mem.read_energy(per * bits, feeds * inst)
                port(level, "read", mem.read_cycles(per_int * bits, feeds * inst_int))
            if j < top:  # exchanges with the level above: W and I filled, O drained (and partial sums back)
                h, upper = held[j], chain[j + 1]
                up_inst, up_inst_int = _instances(t, upper)
                words, words_int = _unique(t, op, level.served, stride, layer, h.extents)
                # what the level above sends or takes: one instance's words for each distinct instance it
                # serves (ZigZag shares no window between the instances' tiles)
                fan, fan_int = _unique(t, op, tuple(d for d in upper.served if d not in level.served), stride)
                moved, moved_int = words * fan, words_int * fan_int
                ukey = f"{op}.{upper.name}"

                # the bits one tile moves across the link, at this level's port and at the upper one's: a ZigZag
                # level moved once is hidden under computing but for its first (or last) tile
                if zz and h.refills == 1 and j > 0:
                    near_bits = far_bits = _unique(t, op, chain[0].served, stride, layer, held[0].extents)[1] * bits
                else:
                    near_bits, far_bits = words_int * bits, moved_int * bits

                if op != "O":
                    terms[key] += mem.write_energy(words * bits, h.refills * inst)
                    port(level, "write", mem.write_cycles(words_int * bits, h.refills * inst_int))
                    terms[ukey] = terms.get(ukey, 0.0) + upper.memory.read_energy(moved * bits, h.refills * up_inst)
                    port(upper, "read", upper.memory.read_cycles(moved_int * bits, h.refills * up_inst_int))
                    edges[op] += _link(zz, mem.write_cycles(near_bits), upper.memory.read_cycles(far_bits))
                else:
                    out_bits = psum if h.reduction_above > 1 else bits
                    back = h.refills - h.refills // h.reduction_above  # refills that bring a partial sum back
                    terms[key] += mem.read_energy(words * out_bits, h.refills * inst)
                    port(level, "read", mem.read_cycles(words_int * out_bits, h.refills * inst_int))
                    terms[ukey] = terms.get(ukey, 0.0) + upper.memory.write_energy(moved * out_bits,
                                                                                   h.refills * up_inst)
                    port(upper, "write", upper.memory.write_cycles(moved_int * out_bits, h.refills * up_inst_int))
                    if back:
                        terms[key] += mem.write_energy(words * psum, back * inst)
                        port(level, "write", mem.write_cycles(words_int * psum, back * inst_int))
                        terms[ukey] += upper.memory.read_energy(moved * psum, back * up_inst)
                        port(upper, "read", upper.memory.read_cycles(moved_int * psum, back * up_inst_int))
                    edges[op] += _link(zz, mem.read_cycles(near_bits), upper.memory.write_cycles(far_bits))
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
