"""Why each convolution runs where it does (``eenas cost --explain``): hand-derived numbers on two core styles,
the explanation against the report it explains, and the allocation search against homogeneous placements."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from eenas.arch import Arch, BackboneConfig, ExitConfig, Precision, QuantConfig, save_arch
from eenas.cli import cli
from eenas.hardware import allocation as alloc_module
from eenas.hardware import backbone_allocation, clear_caches, load_accelerator, network_cost
from eenas.hardware.allocation import homogeneous, simulate
from eenas.hardware.explain import core_styles, explain
from eenas.hardware.layers import AddLayer, ConvLayer
from eenas.hardware.network import graph_network_cost
from eenas.hardware.schedule import DRAM, Tensor, resident_reserve
from eenas.hardware.workload import Block, GraphWorkload, Node

# Two styles on a 2x1 mesh: "big" is the Edge-TPU-like core of the worked example (docs/hardware.md); "lean" has
# half its D1 (4 output channels per cycle) and an activation SRAM at half the energy per access.
DUO = """
name: duo
x-core: &core
  mac_array: {sizes: [8, 8, 4, 4], energy_per_mac_pj: 0.04, psum_bits: 16}
  weight_rf: {bits: 8, read_energy_pj: 0.01, write_energy_pj: 0.01}
  output_rf: {bits: 16, read_energy_pj: 0.02, write_energy_pj: 0.02}
  weight_sram: {size_bits: 262144, read_bw_bits: 512, write_bw_bits: 512, min_bw_bits: 64,
                read_energy_pj: 22.9, write_energy_pj: 52.01}
  act_sram: {size_bits: 16777216, read_bw_bits: 2048, write_bw_bits: 2048, min_bw_bits: 64,
             read_energy_pj: 416.16, write_energy_pj: 378.4}
cores:
  - {name: big, mesh_position: [0, 0], <<: *core}
  - name: lean
    mesh_position: [1, 0]
    <<: *core
    mac_array: {sizes: [4, 8, 4, 4], energy_per_mac_pj: 0.04, psum_bits: 16}
    act_sram: {size_bits: 16777216, read_bw_bits: 2048, write_bw_bits: 2048, min_bw_bits: 64,
               read_energy_pj: 208.08, write_energy_pj: 189.2}
mesh: {link_bw_bits: 64, link_energy_pj_per_bit: 0}
pooling_core:
  units: [3, 3, 8]
  energy_per_op_pj: 0.1
  link_bw_bits: 32
  sram: {size_bits: 1048576, read_bw_bits: 576, write_bw_bits: 512, min_bw_bits: 64,
         read_energy_pj: 60, write_energy_pj: 75}
simd_core: {lanes: 64, energy_per_op_pj: 0.1}
dram: {bw_bits: 64, read_energy_pj: 1000, write_energy_pj: 1000}
"""


@pytest.fixture()
def duo(tmp_path):
    path = tmp_path / "duo.yaml"
    path.write_text(DUO)
    return load_accelerator(path)


def tiny_network() -> tuple[tuple[Block, ...], Tensor]:
    """An 8-bit image of 32 channels at 32x32 in DRAM; c1 1x1 32->16 (the worked example), c2 1x1 16->16, c2 + c1."""
    image = Tensor("image", 32 * 32 * 32 * 8, ((DRAM, 0),))
    nodes = (
        Node("c1", ConvLayer(32, 16, 32, 32), ("image",), 8, 8, 8),
        Node("c2", ConvLayer(16, 16, 32, 32), ("c1",), 8, 8, 8),
        Node("sum", AddLayer(16, 32, 32), ("c2", "c1"), 8, 8, 8),
    )
    return (Block(0, nodes, 16, 32),), image


def test_core_styles_group_cores_by_design(duo):
    assert [(s.label, s.cores) for s in core_styles(duo)] == [("big", (0,)), ("lean", (1,))]
    eemy = core_styles(load_accelerator("sys_EEMY"))
    assert [(s.label, s.cores) for s in eemy] == [("edge_tpu_like", (0, 1)), ("meta_like", (2,)),
                                                 ("eyeriss_like", (3,))]
    assert [s.label for s in core_styles(load_accelerator("edge_tpu_quad"))] == ["tpu"]


def test_hand_derived_explanation(duo):
    blocks, image = tiny_network()
    greedy = simulate(duo, blocks, image, resident_reserve(duo, blocks[0].nodes), None)
    assert greedy.cores == (0, 0)  # both convolutions finish first on big
    ex = explain(duo, blocks, image, greedy)
    c1, c2 = ex.layers
    # The image (262,144 bits) crosses the DRAM port: 4,096 reads x 1000 pJ, then 128 act-SRAM writes (378.4 pJ on
    # big, 189.2 on lean).  c1's parameters, 4,096 weight bits + 16 x (32-bit bias + 32-bit scale) = 5,120 bits:
    # 80 DRAM reads (80,000 pJ) + 10 weight-SRAM writes x 52.01 = 80,520.1 pJ on either core.
    # c1 on big: the worked example, 514 cycles, 169,986.56 pJ.  On lean, D1 = 4: 4 output-channel tiles, so
    # T = 4 K x 4 C x 64 pixel tiles = 1,024, and 1,026 cycles with loading and draining; inputs are read
    # once per output-channel tile, twice as often, at half the energy (106,536.96 pJ, as on big), outputs written
    # at half (12,108.8); the rest as on big (mac 20,971.52, W.rf 655.36, W.sram 11,724.8, O.rf 2,949.12,
    # B.sram 2,931.2): 157,877.76 pJ.
    assert (c1.name, c1.kind, c1.style, c1.chosen.core) == ("c1", "pointwise", 0, 0)
    assert (c1.options[0].cycles, c1.options[1].cycles) == (514, 1026)
    assert c1.options[0].energy_pj == pytest.approx(169_986.56 + 4_096_000 + 48_435.2 + 80_520.1)  # 4,394,941.86
    assert c1.options[1].energy_pj == pytest.approx(157_877.76 + 4_096_000 + 24_217.6 + 80_520.1)  # 4,358,615.46
    assert c1.options[1].edp == pytest.approx(4_358_615.46 * 1026)
    assert c1.best_other == 1
    # c2, 16->16 at 32x32 (262,144 MACs), after c1 ran on big.  On big: T = 2 K x 2 C x 64 pixel tiles = 256,
    # 258 cycles; mac 10,485.76, W.rf 327.68, W.sram 256 x 22.9 = 5,862.4, I.sram 256 x 0.5 x 416.16 = 53,268.48,
    # O.rf 1,638.4, O.sram 64 x 378.4 = 24,217.6, B.sram 2,931.2: 98,731.52 pJ; its 3,072 parameter bits: 48,000 +
    # 6 x 52.01 = 48,312.06 pJ.  On lean: T = 512, 514 cycles, inputs at half the energy but twice as often, outputs
    # at half: 86,622.72 pJ; and c1's output (131,072 bits) has to come over the mesh: 64 reads x 416.16 on big +
    # 64 writes x 189.2 on lean = 38,743.04 pJ.
    assert (c2.options[0].cycles, c2.options[1].cycles) == (258, 514)
    assert c2.options[0].energy_pj == pytest.approx(98_731.52 + 48_312.06)  # 147,043.58
    assert c2.options[1].energy_pj == pytest.approx(86_622.72 + 38_743.04 + 48_312.06)  # 173,677.82
    assert c2.chosen.edp / c2.options[1].edp == pytest.approx(147_043.58 * 258 / (173_677.82 * 514))
    # The addition on the SIMD core: 16,384 x 0.1 pJ, both operands read on big (2 x 64 x 416.16) and the sum
    # written there (64 x 378.4): 79,124.48 pJ with no core to choose.
    assert ex.fixed_energy_pj == pytest.approx(79_124.48)
    assert ex.conv_energy_pj + ex.fixed_energy_pj == pytest.approx(greedy.energy_pj)
    # Placements.  Greedy on big: c1 starts after the image (4,096 cycles) and its fetch (80), ends at 4,690; c2's
    # fetch (48 cycles) ran beside it, so it ends at 4,948, and the addition (256 cycles) at 5,204.  Every conv on
    # lean: 4,176 + 1,026 = 5,202, + 514 = 5,716, + 256 = 5,972 cycles, for 4,358,615.46 + 86,622.72 + 48,312.06
    # + 1,638.4 + 2 x 64 x 208.08 + 64 x 189.2 = 4,533,931.68 pJ: less energy, more ET.
    allocation, on_big, on_lean = ex.placements
    assert [p.label for p in ex.placements] == ["allocation (greedy)", "every conv on big", "every conv on lean"]
    assert on_big.allocation == greedy == allocation.allocation
    assert (greedy.latency_cycles, greedy.energy_pj) == (5204, pytest.approx(4_621_109.92))
    assert on_lean.allocation.cores == (1, 1)
    assert (on_lean.allocation.latency_cycles, on_lean.allocation.energy_pj) == (5972, pytest.approx(4_533_931.68))
    assert ex.convs_per_style(on_lean.allocation) == (0, 2)


def test_the_allocation_is_passed_in_not_searched_again(duo):
    blocks, image = tiny_network()
    mixed = simulate(duo, blocks, image, resident_reserve(duo, blocks[0].nodes), (1, 0))
    c1, c2 = explain(duo, blocks, image, mixed).layers
    assert (c1.style, c1.chosen.core, c2.style, c2.chosen.core) == (1, 1, 0, 0)
    # c2 on big now receives c1's output from lean: 64 reads x 208.08 + 64 writes x 378.4 = 37,534.72 pJ.
    assert c2.options[0].energy_pj == pytest.approx(98_731.52 + 37_534.72 + 48_312.06)
    assert c2.options[1].energy_pj == pytest.approx(86_622.72 + 48_312.06)


def test_a_graph_read_from_a_file_is_explained_the_same_way(duo):
    """``eenas cost --onnx --explain``: the trunk's allocation explained as an arch's backbone's."""
    blocks, image = tiny_network()
    graph = GraphWorkload(image.name, image.bits, blocks, (), ("sum",), "tiny")
    nc = graph_network_cost(graph, duo, allocation="greedy", explained=True)
    assert nc.explanation == explain(duo, blocks, image, nc.allocation)
    assert nc.explanation.conv_energy_pj + nc.explanation.fixed_energy_pj == pytest.approx(nc.cost.static_energy_pj)


def static_arch(hardware: str, bits: int = 8, exits: tuple[ExitConfig, ...] = ()) -> Arch:
    return Arch("cifar10", BackboneConfig("mobilenet_v2", 0.5), exits,
                QuantConfig(Precision(bits, bits), Precision(bits, bits)), hardware)


@pytest.mark.parametrize("weights", ["streamed", "resident"])
def test_chosen_costs_are_the_reports(weights):
    """On a real network: every chosen option is what the report charged that layer, and they add up to the
    static energy; every homogeneous placement runs each convolution on a core of its style."""
    arch = static_arch("edge_tpu_quad")
    hetero = "tests/data/hw_hetero.yaml"
    nc = network_cost(arch, hetero, weights=weights, allocation="greedy", explained=True)
    ex = nc.explanation
    convs = [r for r in nc.layers if r.kind not in ("pool", "add")]
    assert [layer.name for layer in ex.layers] == [r.name for r in convs]
    for layer, record in zip(ex.layers, convs):
        assert ex.core_names[layer.chosen.core] == record.location
        assert layer.chosen.cycles == record.cycles
        assert layer.chosen.energy_pj == pytest.approx(record.energy_pj + record.transfer_pj)
    others = sum(r.energy_pj + r.transfer_pj for r in nc.layers if r.kind in ("pool", "add"))
    assert ex.fixed_energy_pj == pytest.approx(others)
    assert ex.conv_energy_pj + ex.fixed_energy_pj == pytest.approx(nc.cost.static_energy_pj)
    assert ex.placements[0].allocation == nc.allocation
    for style, placement in zip(ex.styles, ex.placements[1:]):
        assert set(placement.allocation.cores) <= set(style.cores)


def test_the_search_never_loses_to_a_homogeneous_placement(monkeypatch):
    """Its first individuals include every conv on one style: from greedy alone it stayed above the Edge-TPU-like
    cores on the case study's mixed systems (docs/hardware.md)."""
    monkeypatch.setattr(alloc_module, "POPULATION", 6)
    monkeypatch.setattr(alloc_module, "GENERATIONS", 2)
    clear_caches()
    try:
        for hardware in ("sys_EEMY", "tests/data/hw_hetero.yaml"):
            nc = network_cost(static_arch(hardware, bits=4), explained=True)
            best = min(p.allocation.et for p in nc.explanation.placements[1:])
            assert backbone_allocation(static_arch(hardware, bits=4)).et <= best * (1 + 1e-12)
    finally:
        clear_caches()


def test_homogeneous_placements_of_a_homogeneous_accelerator_are_greedy():
    acc = load_accelerator("edge_tpu_quad")
    blocks, image = tiny_network()
    reserve = resident_reserve(acc, blocks[0].nodes)
    assert homogeneous(acc, blocks, image, reserve) == (simulate(acc, blocks, image, reserve, None),)


@pytest.fixture()
def arch_file(tmp_path, monkeypatch):
    monkeypatch.setattr("eenas.io.DEFAULT_CACHE_DIR", tmp_path / "cache")
    path = tmp_path / "arch.json"
    save_arch(static_arch("tests/data/hw_hetero.yaml", exits=(ExitConfig(3, "pool_fc", 0.9),)), path)
    return str(path)


def invoke(*args: str) -> str:
    result = CliRunner().invoke(cli, ["cost", *args, "--allocation", "greedy", "--hardware",
                                      "tests/data/hw_hetero.yaml"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def test_cli_explain_in_every_format(arch_file):
    table = invoke("--arch", arch_file, "--explain")
    for text in ("Backbone convolutions on each core style", "| little_edp", "| best_other", "every conv on wide",
                 "static_conv_energy_pj", "static_pool_add_energy_pj"):
        assert text in table
    assert "Backbone convolutions" not in invoke("--arch", arch_file)
    data = json.loads(invoke("--arch", arch_file, "--explain", "--format", "json"))
    assert [p["placement"] for p in data["placements"]] == [
        "allocation (greedy)", "every conv on tpu", "every conv on little", "every conv on wide"]
    assert data["placements"][0]["vs_allocation"] == 1
    summary = data["summary"]
    assert summary["static_conv_energy_pj"] + summary["static_pool_add_energy_pj"] == pytest.approx(
        summary["static_energy_pj"])
    row = data["explanation"][0]
    assert row["layer"] == "stem" and row["tpu_edp"] == pytest.approx(row["tpu_cycles"] * row["tpu_pj"])
    csv = invoke("--arch", arch_file, "--explain", "--format", "csv")
    assert "\nlayer,kind,core,style,tpu_cycles,tpu_pj,tpu_edp,little_cycles" in csv
    assert "\nplacement,tpu_convs,little_convs,wide_convs,cycles,energy_pj,et_pj_cycles,vs_allocation\n" in csv
