"""A compute core as ZigZag describes it: an operational array of any number of dimensions and
memory levels per operand, each serving some of the array's dimensions.

eenas's own core format (``mac_array``, ``weight_rf``, ``output_rf``, ``weight_sram``,
``act_sram``; :class:`~eenas.hardware.accelerator.CoreDesign`) is one instance of it
(:func:`as_core`), and so is every ZigZag core file a Stream accelerator names
(:mod:`eenas.hardware.stream_format`).  The cost of a layer on a :class:`Core` is
:func:`eenas.hardware.layer_cost.conv_cost`; docs/hardware.md derives it.

Operands are ZigZag's layer operands: ``W`` weights (ZigZag's memory operand I2), ``I``
inputs (I1) and ``O`` outputs.  A level's ``served`` dimensions are those it broadcasts
over, as ZigZag's ``served_dimensions``: one instance per point of the others.
"""

from __future__ import annotations

import functools
import itertools
import math
from dataclasses import dataclass

from eenas.hardware.accelerator import CoreDesign, MacArray, Memory, PackingArray, _hash_once
from eenas.hardware.layers import ConvLayer

OPERANDS = ("W", "I", "O")
LOOPS = ("K", "C", "OX", "OY", "FX", "FY", "G")  # ZigZag's loop names; G: groups
RELEVANT = {
    "W": frozenset(("K", "C", "FX", "FY", "G")),
    "I": frozenset(("C", "OX", "OY", "FX", "FY", "G")),
    "O": frozenset(("K", "OX", "OY", "G")),
}
# Layer types a spatial mapping may be given for; "default" covers the others.
LAYER_TYPES = ("conv", "pointwise", "depthwise", "fc", "default")
GENERATED_CANDIDATES = 3  # mappings of fewest temporal cycles costed when the file fixes none (as ZigZag's generator)

Mapping = tuple[str | None, ...]  # the loop each array dimension unrolls (None: idle)


def layer_type(layer: ConvLayer) -> str:
    """The mapping key of a layer: any grouped convolution counts as depthwise (its groups can be unrolled)."""
    if layer.groups > 1:
        return "depthwise"
    if layer.kernel == 1:
        return "fc" if layer.height == layer.width == 1 else "pointwise"
    return "conv"


def loop_sizes(layer: ConvLayer) -> dict[str, int]:
    return {
        "K": layer.out_channels // layer.groups, "C": layer.in_channels // layer.groups,
        "OX": layer.out_width, "OY": layer.out_height, "FX": layer.kernel, "FY": layer.kernel, "G": layer.groups,
    }


@dataclass(frozen=True)
class Level:
    """One memory level: the operands it holds and the array dimensions it serves.

    A level that does not serve every dimension sits inside the array (a register file, one
    instance per point of the dimensions it does not serve): it holds whole words at its
    access granularity, and its ports are assumed never to stall.
    """

    name: str
    memory: Memory
    operands: tuple[str, ...]
    served: tuple[int, ...]
    in_array: bool
    shared_port: bool = False  # reads and writes share one port (a ZigZag rw_port)

    __hash__ = _hash_once

    def words(self, bits: int) -> int:
        """Operand words of ``bits`` one instance holds (at least one: a register always holds its word).

        A register holding one access (``size <= min_bw_bits``: eenas's own registers, the
        Edge-TPU-like 32-bit ones) holds one word at any precision; a register file of several
        accesses is filled with ``size // bits`` words, as ZigZag's loop allocation does.
        """
        size = self.memory.size_bits or 0
        one_access = self.in_array and size // self.memory.min_bw_bits <= 1
        return max(1, size // (max(bits, self.memory.min_bw_bits) if one_access else bits))


@dataclass(frozen=True)
class Core(PackingArray):
    """A compute core: array dimensions, MAC energy, on-chip levels (bottom-up), spatial mappings.

    ``mappings`` maps a layer type (:data:`LAYER_TYPES`) to the loops each dimension may
    unroll: one loop per dimension fixes the mapping (ZigZag's ``spatial_mapping``), several
    are a hint (``spatial_mapping_hint``) among which the best is chosen; a layer type with no
    entry and no ``default`` is mapped over every loop.
    """

    name: str
    sizes: tuple[int, ...]
    energy_per_mac_pj: float
    psum_bits: int
    native_bits: int
    packs_low_precision: bool
    levels: tuple[Level, ...]
    mappings: tuple[tuple[str, tuple[tuple[str, ...], ...]], ...] = ()
    # ZigZag's temporal mapping (a core read from a ZigZag file): the loop order is searched,
    # loops split at a level's capacity, the innermost level's unchanged words are read once and
    # a level filled once is loaded before computing.  eenas's own format keeps its fixed order.
    searches_order: bool = False

    __hash__ = _hash_once

    @functools.cached_property
    def chains(self) -> dict[str, tuple[Level, ...]]:
        """Each operand's levels, innermost first."""
        return {op: tuple(lv for lv in self.levels if op in lv.operands) for op in OPERANDS}

    @property
    def weight_sram(self) -> Memory:
        """Where a layer's parameters live on chip: the top level holding weights."""
        return self.chains["W"][-1].memory

    @property
    def act_sram(self) -> Memory:
        """Where activations live on chip: the top level holding inputs (and outputs)."""
        return self.chains["I"][-1].memory

    def candidates(self, layer: ConvLayer) -> tuple[Mapping, ...]:
        """The spatial mappings to cost for ``layer``: the fixed one, or the few of fewest cycles."""
        table = dict(self.mappings)
        hint = table.get(layer_type(layer), table.get("default"))
        if hint is not None and all(len(loops) == 1 for loops in hint):
            return (tuple(loops[0] for loops in hint),)
        return _generated(layer, self, hint or tuple(LOOPS for _ in self.sizes))

    def fed(self, layer: ConvLayer, unroll: dict[int, tuple[str, int]]) -> bool:
        """Whether every register level can deliver, each cycle, the distinct words the unrolling asks of it.

        ``unroll`` maps a dimension to its loop and factor.  A level inside the array serves its
        dimensions from one port: loops relevant to its operand unrolled there need that many
        words per cycle (an input window ``(OX - 1) * stride + FX`` when both are there).
        ZigZag limits such an unrolling to the port's bandwidth; the generator drops it.
        """
        for level in self.levels:
            if not level.in_array or not level.served:
                continue
            for op in level.operands:
                on = {x: n for d, (x, n) in unroll.items() if d in level.served and x in RELEVANT[op]}
                words = math.prod(on.values())
                for out, kernel in (("OX", "FX"), ("OY", "FY")):
                    if op == "I" and out in on and kernel in on:
                        words = words // (on[out] * on[kernel]) * ((on[out] - 1) * layer.stride + on[kernel])
                bits = max(self.psum_bits, self.native_bits) if op == "O" else self.native_bits
                if words * bits > level.memory.read_bw_bits:
                    return False
        return True


@functools.lru_cache(maxsize=1 << 12)
def _generated(layer: ConvLayer, core: Core, hint: tuple[tuple[str, ...], ...]) -> tuple[Mapping, ...]:
    """Every assignment of distinct hinted loops (of size > 1) to dimensions that the registers can feed
    (:meth:`Core.fed`), the fewest-cycle ones first."""
    loops = loop_sizes(layer)
    options = [tuple(x for x in dim if loops[x] > 1) + (None,) for dim in hint]
    ranked = []
    for combo in itertools.product(*options):
        used = [x for x in combo if x is not None]
        if len(used) != len(set(used)):
            continue
        unroll = {d: (x, min(size, loops[x])) for d, (x, size) in enumerate(zip(combo, core.sizes)) if x is not None}
        if not core.fed(layer, unroll):
            continue
        cycles = math.prod(-(-n // next((f for y, f in unroll.values() if y == x), 1)) for x, n in loops.items())
        ranked.append((cycles, combo))
    ranked.sort(key=lambda item: item[0])  # stable: ties keep the hint's order
    return tuple(combo for _, combo in ranked[:GENERATED_CANDIDATES])


def _register(name: str, bits: int, read_pj: float, write_pj: float, operand: str, served: tuple[int, ...]) -> Level:
    return Level(name, Memory(bits, bits, bits, bits, read_pj, write_pj), (operand,), served, True)


@functools.lru_cache(maxsize=256)
def as_core(design: CoreDesign | MacArray | Core) -> Core:
    """The general description of a core; eenas's own format is a 4-D array (K, C, OX, OY).

    Its one-word registers (a weight register per (D1, D2) point, an accumulator per (D1, D3, D4)
    point), weight SRAM and activation SRAM become levels, and its unrolling the fixed mapping
    (groups on D1 for grouped convolutions with ``depthwise_groups_on_d1``).  A bare
    ``MacArray`` gives the array and its mapping without memories (enough for tiling).
    """
    if isinstance(design, Core):
        return design
    array = design if isinstance(design, MacArray) else design.mac_array
    mappings: list[tuple[str, tuple[tuple[str, ...], ...]]] = [("default", (("K",), ("C",), ("OX",), ("OY",)))]
    if array.depthwise_groups_on_d1:
        mappings.append(("depthwise", (("G",), ("C",), ("OX",), ("OY",))))
    levels: tuple[Level, ...] = ()
    if isinstance(design, CoreDesign):
        w_rf, o_rf, every = design.weight_rf, design.output_rf, (0, 1, 2, 3)
        levels = (
            _register("rf", w_rf.bits, w_rf.read_energy_pj, w_rf.write_energy_pj, "W", (2, 3)),
            _register("rf", o_rf.bits, o_rf.read_energy_pj, o_rf.write_energy_pj, "O", (1,)),
            Level("sram", design.weight_sram, ("W",), every, False),
            Level("sram", design.act_sram, ("I", "O"), every, False),
        )
    return Core("mac_array", array.sizes, array.energy_per_mac_pj, array.psum_bits, array.native_bits,
                array.packs_low_precision, levels, tuple(mappings))
