"""The temporal-mapping rules of cores read from ZigZag files (``Core.searches_order``), one tiny
hand-derived case each (docs/hardware.md, "Against ZigZag itself").

Every core here is read by eenas's ZigZag core-file reader from a few lines of YAML: a 1-D array
of one MAC (``D1`` unrolls ``K, 1``, so every loop is temporal and every register level,
``served_dimensions: []``, has one instance), 8-bit operands, 16-bit partial sums, MAC 1 pJ.
Most access energies are 0 so that only the term a rule changes is left.  Notation:
``mem(size, bw, r_pJ, w_pJ)``; an access moves ``bw`` bits (a level with a granularity of 64 bits
pays ``ceil(bits / 64) * 64 / bw`` accesses); ``T`` = temporal cycles.  A register of one access
(``size <= bw``) holds one word at any precision; a level's room is its words at 8 bits (16 bits
for outputs while a reduction loop is left above them).

Each test fails with its rule removed (each was checked by disabling the rule in layer_cost.py or core.py).
"""

from __future__ import annotations

import dataclasses
import importlib

from eenas.hardware import ConvLayer, load_accelerator
from eenas.hardware.core import Level, as_core
from eenas.hardware.stream_format import _CoreFile

lc = importlib.import_module("eenas.hardware.layer_cost")  # the package re-exports a function of this name

K1 = ("K",)  # the one mapping of the 1-MAC array


def mem(size: int, bw: int, r_pj: float, w_pj: float, operands: list[str], served: list[str],
        granularity: int | None = None, w_bw: int | None = None) -> dict:
    """A memory of a ZigZag core file (old port form); ``served: []`` puts it in the array."""
    data = {"size": size, "r_bw": bw, "w_bw": w_bw or bw, "r_cost": r_pj, "w_cost": w_pj, "area": 0,
            "r_port": 1, "w_port": 1, "rw_port": 0, "latency": 1, "operands": operands,
            "ports": [{"fh": "w_port_1", "tl": "r_port_1"} for _ in operands], "served_dimensions": served}
    if granularity:
        data["min_r_granularity"] = data["min_w_granularity"] = granularity
    return data


def core(**memories: dict):
    """A one-MAC core from a ZigZag core file, memories innermost first."""
    data = {"name": "tiny", "memories": memories, "dataflows": {"D1": ["K, 1"]},
            "operational_array": {"input_precision": [8, 8], "multiplier_energy": 1, "multiplier_area": 1,
                                  "dimensions": ["D1"], "sizes": [1]}}
    return _CoreFile(data, "tiny.yaml").compute()


def rf(operand: str, size: int = 8, bw: int = 8, r_pj: float = 0, w_pj: float = 0, **kw) -> dict:
    return mem(size, bw, r_pj, w_pj, [operand], [], **kw)


def sram(operands: list[str], bw: int = 8, r_pj: float = 0, w_pj: float = 0, **kw) -> dict:
    return mem(1 << 20, bw, r_pj, w_pj, operands, ["D1"], **kw)


def cost(layer: ConvLayer, c, groups: tuple[str, ...] | None = None):
    """The layer at w8a8 on chip with the temporal order ``groups`` (None: the default order)."""
    return lc._conv_cost(layer, c, K1, 8, 8, 8, None, None, groups)


def terms(result) -> dict[str, float]:
    return {k: v for k, v in result.breakdown.items() if v}


FC = ConvLayer(2, 2, 1, 1)  # C = 2, K = 2, no pixel loop: groups R (C) and K, T = 4
ROW = ConvLayer(1, 1, 1, 4)  # one channel, OX = 4: the pixel group alone, T = 4


def _order_core(input_read_pj: float):
    """W and I: one-word registers; O: 32-bit register of 16-bit accesses (2 partial sums); the
    inputs and outputs share an SRAM (8-bit accesses, reads ``input_read_pj``, writes 1 pJ)."""
    return core(rf_w=rf("I2"), rf_i=rf("I1"), rf_o=rf("O", size=32, bw=16), sram_w=sram(["I2"]),
                sram=sram(["I1", "O"], r_pj=input_read_pj, w_pj=1))


def test_rule1_order_search_picks_the_order_of_least_edp():
    """FC 2 -> 2: two busy groups, so two orders: (C, K) innermost first, the default, and (K, C).

    Both: T = 4, mac 4 x 1 pJ = 4; W (C and K both relevant) refilled every cycle from sram_w
    (0 pJ); O's register holds 32 / 16 = 2 partial sums, so K (2) stays there in both orders (C
    is free reuse) and the 2 outputs drain once: 2 x 8 bit = 2 accesses x 1 pJ = 2.
    Default (C, K): the 1-word input register holds no loop (C needs 2 words), 4 refills of one
    input: I.sram 4 x 10 pJ = 40; 46 pJ.
    (K, C): K, irrelevant to inputs, is innermost, so each input stays for 2 cycles: 2 refills,
    I.sram 20; 26 pJ.
    Latency, both: loading max(rf write 8/8, sram read 8/8) = 1, T 4, no stall (busiest port:
    sram_w, 4 reads in 4 cycles), draining max(rf_o read 16/16 = 1, sram write 16/8 = 2) = 2: 7.
    EDP 26 x 7 < 46 x 7: (K, C) wins, and conv_cost reports its 26 pJ.
    """
    c = _order_core(input_read_pj=10)
    assert c.searches_order
    assert lc._group_orders(FC, c, K1, 1) == (None, ("K", "R"))
    default, swapped = cost(FC, c), cost(FC, c, ("K", "R"))
    assert terms(default) == {"mac": 4, "I.sram": 40, "O.sram": 2} and default.latency_cycles == 7
    assert terms(swapped) == {"mac": 4, "I.sram": 20, "O.sram": 2} and swapped.latency_cycles == 7
    assert lc.temporal_mapping(FC, c) == (K1, ("K", "R"))
    assert lc.tiling(FC, c, K1, 1, ("K", "R")).order == (("K", 2), ("C", 2))
    assert lc.conv_cost(FC, c, 8, 8, 8, None).energy_pj == 26


def test_rule1_ties_keep_the_default_order():
    """The same core with free SRAM reads: both orders cost mac 4 + O.sram 2 = 6 pJ and 7 cycles,
    so the default order (None) is kept."""
    c = _order_core(input_read_pj=0)
    assert cost(FC, c).energy_pj == cost(FC, c, ("K", "R")).energy_pj == 6
    assert lc.temporal_mapping(FC, c) == (K1, None)


def test_rule1_eenas_own_format_never_searches_orders():
    """A core of eenas's own format (the Edge-TPU-like preset) costs one order: the default.  The
    same core flagged as read from a ZigZag file would cost all 3! = 6 orders of a 3x3 convolution."""
    own = as_core(load_accelerator("edge_tpu_quad").cores[0].design)
    layer = ConvLayer(16, 32, 8, 8, 3)
    mapping = lc.spatial_mapping(layer, own)
    assert not own.searches_order
    assert lc._group_orders(layer, own, mapping, 1) == (None,)
    assert lc.temporal_mapping(layer, own) == (mapping, None)
    assert len(lc._group_orders(layer, dataclasses.replace(own, searches_order=True), mapping, 1)) == 6


def test_rule2_a_loop_that_does_not_fit_leaves_its_largest_fitting_factor():
    """1 channel, OX = 6 (T = 6).  Inputs: buf_i, a 32-bit buffer serving the array (not a
    register: it holds 32 / 8 = 4 words), then an SRAM of 64-bit accesses, granularity 64, 10 pJ a
    read.  OX = 6 needs 6 words > 4; its largest factor that fits is 3 (5 and 4 do not divide 6),
    so buf_i holds OX 3 and OX 2 stays above: 2 refills of 3 x 8 = 24 bits.
    I.sram: 2 refills x ceil(24 / 64) = 1 access x 10 pJ = 20 (without the split: buf_i holds
    nothing, 6 refills of one word, each a full access: 60).  I.buf_i writes: 2 x 24 / 8 = 6
    accesses x 1 pJ = 6.  Loading: max(buf_i write 24/8 = 3, sram read 24/64 = 1) = 3.
    """
    c = core(rf_w=rf("I2"), buf_i=mem(32, 8, 0, 1, ["I1"], ["D1"]), rf_o=rf("O", size=16, bw=16),
             sram_w=sram(["I2"]), sram=sram(["I1", "O"], bw=64, r_pj=10, granularity=64))
    layer = ConvLayer(1, 1, 1, 6)
    t = lc.tiling(layer, c, K1, 1)
    (held,) = lc._allocate(t, c.chains["I"], "I", 8, 1, layer, split=True)
    assert (dict(held.extents), held.refills) == ({"OX": 3}, 2)
    result = lc.conv_cost(layer, c, 8, 8, 8, None)
    assert terms(result) == {"mac": 6, "I.buf_i": 6, "I.sram": 20}
    assert result.onload_cycles == 3


def test_rule3_partial_sums_that_leave_before_the_reduction_ends_go_up_and_come_back():
    """FC 2 -> 2 in the order (K, C) on a core whose output register holds one 16-bit partial sum
    (16 bits, one access) and whose shared SRAM has 8-bit accesses at 1 pJ.  K (2) does not fit the
    register, so it holds nothing and C is above it: 4 refills, 2 of them (C's second iteration)
    bringing a partial sum back.  O.sram: 4 writes of 16 bits (2 accesses) = 8, plus 2 reads of 16
    bits = 4: 12 pJ (were the partial sums final outputs: 4 writes of 8 bits = 4).  In the default
    order (C, K) the reduction ends in the register: 2 writes of 8-bit outputs = 2 pJ, which is
    what the search keeps.
    """
    c = core(rf_w=rf("I2"), rf_i=rf("I1"), rf_o=rf("O", size=16, bw=16), sram_w=sram(["I2"]),
             sram=sram(["I1", "O"], r_pj=1, w_pj=1))
    t = lc.tiling(FC, c, K1, 1, ("K", "R"))
    (held,) = lc._allocate(t, c.chains["O"], "O", 16, 1, FC, split=True, final_bits=8)
    assert (dict(held.extents), held.refills, held.reduction_above) == ({}, 4, 2)
    assert cost(FC, c, ("K", "R")).breakdown["O.sram"] == 12
    assert cost(FC, c).breakdown["O.sram"] == 2
    assert lc.temporal_mapping(FC, c) == (K1, None)


def test_rule4_the_innermost_level_reads_an_unchanged_word_once():
    """1 channel, OX = 4 (T = 4): the one weight stays in its register over OX, which is irrelevant
    to it, so the register is written once and read once: W.rf_w 1 + 1 = 2 pJ at 1 pJ an access
    (read every cycle: 1 + 4 = 5).  The input register gets a new input every cycle (OX is
    relevant to inputs): 4 writes + 4 reads = 8 pJ.
    """
    c = core(rf_w=rf("I2", r_pj=1, w_pj=1), rf_i=rf("I1", r_pj=1, w_pj=1), rf_o=rf("O", size=16, bw=16),
             sram_w=sram(["I2"]), sram=sram(["I1", "O"]))
    t = lc.tiling(ROW, c, K1, 1)
    assert (lc._stationary(t, "W"), lc._stationary(t, "I")) == (4, 1)
    assert terms(lc.conv_cost(ROW, c, 8, 8, 8, None)) == {"mac": 4, "W.rf_w": 2, "I.rf_i": 8}


def test_rule5_temporal_pixel_and_kernel_loops_hold_an_overlapping_window():
    """Input words of temporal OX and FX extents, stride 1, on an 8 x 8 input, kernel 3:
    OX 2 with FX 3: (2 - 1) + 3 = 4 (not 2 x 3 = 6); OX 8 with FX 3: (8 - 1) + 3 = 10, capped at the
    8 input columns (10 without the layer to cap it); both axes at 8: 8 x 8 = 64, not 100.

    End to end: 1 channel, 1 x 4 input, kernel 3 (OY = 1, FY = FX = 3, OX = 4; T = 36), default
    order FY, FX, OX (kept by the search: the other one drains partial sums to the SRAM).  Inputs:
    buf_i, a 128-bit buffer (16 words), then the SRAM, 8-bit reads at 1 pJ.  FY, FX: 3 x 3 = 9
    words; with OX 4: window min(4 x 3, 3 + 3) = 6, capped at the 4 columns, x FY 3 = 12 <= 16, so
    buf_i holds them all and is filled once: I.sram 12 reads = 12 pJ.  Without the window: 36
    words do not fit, nor does OX 2 (18), so OX stays above: 4 refills of 9 = 36 pJ (uncapped:
    18 words, OX 2 fits as (2 - 1) + 3 = 4 x 3 = 12: 2 refills of 12 = 24 pJ).
    """
    layer = ConvLayer(1, 1, 8, 8, 3)
    c = core(rf_w=rf("I2", size=72), buf_i=mem(128, 8, 0, 0, ["I1"], ["D1"]), rf_o=rf("O", size=16, bw=16),
             sram_w=sram(["I2"]), sram=sram(["I1", "O"], r_pj=1))
    t = lc.tiling(layer, c, K1, 1)
    assert lc._unique(t, "I", (), 1, layer, {"OX": 2, "FX": 3}) == (4, 4)
    assert lc._unique(t, "I", (), 1, layer, {"OX": 8, "FX": 3}) == (8, 8)
    assert lc._unique(t, "I", (), 1, None, {"OX": 8, "FX": 3}) == (10, 10)
    assert lc._unique(t, "I", (), 1, layer, {"OX": 8, "FX": 3, "OY": 8, "FY": 3}) == (64, 64)

    row = ConvLayer(1, 1, 1, 4, 3)
    assert lc.temporal_mapping(row, c) == (K1, None)
    t = lc.tiling(row, c, K1, 1)
    assert t.order == (("FY", 3), ("FX", 3), ("OX", 4))
    (held,) = lc._allocate(t, c.chains["I"], "I", 8, 1, row, split=True)
    assert (dict(held.extents), held.refills) == ({"FY": 3, "FX": 3, "OX": 4}, 1)
    assert terms(lc.conv_cost(row, c, 8, 8, 8, None)) == {"mac": 36, "I.sram": 12}


def test_rule6_register_files_of_several_accesses_hold_size_over_bits_words():
    """A 32-bit output register of 16-bit accesses holds 32 / 8 = 4 outputs or 32 / 16 = 2 partial
    sums (not 32 / 16 = 2 at 8 bits); a 32-bit register of one 32-bit access holds one word; a level
    serving the whole array holds size / bits.

    End to end: 1 channel, OX = 4 (T = 4), no reduction, so the register takes final outputs:
    it holds OX 4 and drains once, 32 bits into an SRAM of 64-bit accesses (granularity 64, 1 pJ
    a write): O.sram 1 access = 1 pJ (with 2 words: OX 2, 2 drains of 16 bits, 2 accesses = 2 pJ).
    Draining: max(rf_o read 32/16 = 2, sram write 32/64 = 1) = 2.
    """
    c = core(rf_w=rf("I2", size=32, bw=32), rf_i=rf("I1"), rf_o=rf("O", size=32, bw=16), sram_w=sram(["I2"]),
             sram=sram(["I1", "O"], bw=64, w_pj=1, granularity=64))
    levels = {lv.name: lv for lv in c.levels}
    assert (levels["rf_o"].words(8), levels["rf_o"].words(16)) == (4, 2)
    assert levels["rf_w"].words(8) == 1
    assert levels["sram"].words(8) == (1 << 20) // 8
    t = lc.tiling(ROW, c, K1, 1)
    (held,) = lc._allocate(t, c.chains["O"], "O", 16, 1, ROW, split=True, final_bits=8)
    assert (dict(held.extents), held.refills) == ({"OX": 4}, 1)
    result = lc.conv_cost(ROW, c, 8, 8, 8, None)
    assert terms(result) == {"mac": 4, "O.sram": 1}
    assert result.offload_cycles == 2


def test_rule7_each_link_costs_the_slower_of_its_write_and_read():
    """1 channel, OX = 4 (T = 4), every access energy 0.
    Loading W: the weight register writes 4 bits a cycle, sram_w reads 8: max(8/4, 8/8) = 2 (the
    SRAM's read alone: 1).  Loading I: the 1-word register, refilled every cycle: max(8/8, 8/8) =
    1.  Loading = the slower operand, 2.  Draining O: the 32-bit register of 16-bit accesses holds
    the 4 outputs (rule 6) and drains once: max(rf_o read 32/16 = 2, sram write 32/64 = 1) = 2
    (the SRAM's write alone: 1).  No stall: 8 cycles.
    """
    c = core(rf_w=rf("I2", w_bw=4), rf_i=rf("I1"), rf_o=rf("O", size=32, bw=16), sram_w=sram(["I2"]),
             sram=sram(["I1", "O"], w_bw=64))
    result = lc.conv_cost(ROW, c, 8, 8, 8, None)
    assert (result.onload_cycles, result.temporal_cycles, result.stall_cycles, result.offload_cycles) == (2, 4, 0, 2)
    assert result.latency_cycles == 8


def test_rule7_a_level_filled_or_drained_once_is_hidden_but_for_its_first_or_last_tile():
    """1 channel, OX = 4 (T = 4), every access energy 0, 8-bit ports.  Inputs: a 1-word register,
    buf_i (64 bits serving the array: 8 words), the SRAM; outputs likewise through buf_o.
    The registers hold no loop (OX needs 4 words): 4 refills; buf_i and buf_o hold OX 4 and are
    filled (drained) once.
    Loading I: register <- buf_i max(8/8, 8/8) = 1, then buf_i <- SRAM once, hidden under
    computing but for the register's first tile: max(8/8, 8/8) = 1; 2 (the whole 32 bits:
    max(32/8, 32/8) = 4, 5 in all).  Loading W: 1.  Loading = 2.
    Draining O likewise: register -> buf_o 1, buf_o -> SRAM drained once, the last tile: 1; 2
    (unhidden: 5).  Ports: each 8-bit port moves at most 4 words in the 4 cycles: no stall.
    4 + 2 + 2 = 8 cycles.
    """
    c = core(rf_w=rf("I2"), rf_i=rf("I1"), buf_i=mem(64, 8, 0, 0, ["I1"], ["D1"]), rf_o=rf("O", size=16, bw=16),
             buf_o=mem(64, 8, 0, 0, ["O"], ["D1"]), sram_w=sram(["I2"]), sram=sram(["I1", "O"]))
    t = lc.tiling(ROW, c, K1, 1)
    for op in ("I", "O"):
        held = lc._allocate(t, c.chains[op], op, 16 if op == "O" else 8, 1, ROW, split=True,
                            final_bits=8 if op == "O" else 0)
        assert [(dict(h.extents), h.refills) for h in held] == [({}, 4), ({"OX": 4}, 1)], op
    result = lc.conv_cost(ROW, c, 8, 8, 8, None)
    assert (result.onload_cycles, result.stall_cycles, result.offload_cycles, result.latency_cycles) == (2, 0, 2, 8)


def test_the_zigzag_reader_flags_its_cores_and_a_register_level_is_in_the_array():
    c = core(rf_w=rf("I2"), rf_i=rf("I1"), rf_o=rf("O", size=16, bw=16), sram_w=sram(["I2"]), sram=sram(["I1", "O"]))
    assert c.searches_order
    assert [lv.in_array for lv in c.levels] == [True, True, True, False, False]
    assert isinstance(c.levels[0], Level)
