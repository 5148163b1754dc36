"""General ZigZag cores and Stream accelerator files: the case study's systems, a hand-derived
Eyeriss-like layer, the 2.x form, and one-line errors naming the field."""

from __future__ import annotations

import itertools
import shutil
import sys
from importlib import resources
from pathlib import Path

import pytest
import yaml

from eenas.arch import Arch, ExitConfig
from eenas.errors import EenasError
from eenas.hardware import ConvLayer, cost_arch, layer_cost, load_accelerator
from eenas.hardware.accelerator import CASE_STUDY_PRESETS
from eenas.hardware.core import as_core
from eenas.hardware.layer_cost import spatial_mapping

SHARED = Path(__file__).parents[1] / ".." / "shared" / "reference" / "stream-casestudy-hardware"
PRESETS = resources.files("eenas.hardware").joinpath("presets")
SMALL = Arch("cifar10", exits=(ExitConfig(3, "pool_fc", 0.9),))


def _copy_presets(tmp_path: Path) -> Path:
    """The shipped Stream files in a folder of their own, to edit."""
    (tmp_path / "cores").mkdir(parents=True)
    for name in CASE_STUDY_PRESETS:
        (tmp_path / f"{name}.yaml").write_text(PRESETS.joinpath(f"{name}.yaml").read_text())
    for core in PRESETS.joinpath("cores").iterdir():
        (tmp_path / "cores" / core.name).write_text(core.read_text())
    return tmp_path


@pytest.mark.skipif(not SHARED.is_dir(), reason="the shared reference folder is absent")
@pytest.mark.parametrize("name", CASE_STUDY_PRESETS)
def test_case_study_file_costs_as_its_preset(name):
    """Each sys_*.yaml of the shared folder loads and costs a small arch, identically to the shipped preset."""
    from_file = load_accelerator(str(SHARED / f"{name}.yaml"))
    preset = load_accelerator(name)
    assert len(from_file.cores) == 4 and from_file.designs == preset.designs
    assert [c.mesh_position for c in from_file.cores] == [(0, 0), (1, 0), (0, 1), (1, 1)]
    ours = cost_arch(SMALL, from_file, allocation="greedy")
    assert ours == cost_arch(SMALL, preset, allocation="greedy")
    assert ours.static_energy_pj > 0 and ours.static_latency_cycles > 0


def test_cores_are_keyed_by_position_and_styles_are_what_the_files_say():
    acc = load_accelerator("sys_EEMY")
    assert [c.name for c in acc.cores] == ["edge_tpu_like0", "edge_tpu_like1", "meta_like2", "eyeriss_like3"]
    edge, meta, eyeriss = (as_core(acc.cores[i].design) for i in (0, 2, 3))
    assert (edge.sizes, meta.sizes, eyeriss.sizes) == ((8, 8, 4, 4), (32, 2, 4, 4), (35, 30))
    assert [lv.name for lv in meta.chains["W"]] == ["rf_1B", "sram_64KB", "sram_1MB_W"]  # split W / A banks
    assert [lv.name for lv in meta.chains["I"]] == ["sram_32KB", "sram_1MB_A"]
    assert all(lv.served == () for lv in eyeriss.levels[:3])  # register files private to each PE
    # The pooling core is sizes [3, 3, 8] with dataflows FX, FY, K; the simd file is also named "pooling".
    assert acc.pooling_core.units == (3, 3, 8) and acc.simd_core.lanes == 64
    assert acc.dram.read_energy_pj == 1000  # the off-chip core's DRAM, not the cores' own 700 pJ one


def test_zigzag_edge_tpu_core_reproduces_the_worked_example():
    """The ZigZag file's Edge-TPU-like core (32-bit registers holding one word, generated mapping
    K, C, OX, OY) costs the reference's worked example exactly as eenas's own preset."""
    layer = ConvLayer(32, 16, 32, 32)
    acc = load_accelerator("sys_EEEE")
    assert spatial_mapping(layer, as_core(acc.cores[0].design)) == ("K", "C", "OX", "OY")
    ours, preset = layer_cost(layer, acc), layer_cost(layer, load_accelerator("edge_tpu_quad"))
    assert (ours.latency_cycles, ours.energy_pj) == (preset.latency_cycles, preset.energy_pj) == (514, 169_986.56)


def test_one_layer_on_one_eyeriss_like_core_by_hand():
    """Pointwise 32 -> 16 on 4x4, w8a8, on-chip, on the Eyeriss-like core (35 x 30).

    Mapping (fewest cycles, then least energy x latency): D1 = C (32 of 35), D2 = K (16 of 30),
    so T = 4 x 4 pixels = 16 cycles, 8,192 MACs, utilisation 8,192 / (16 x 1,050).  No
    reduction loop: temporal order OX, OY (the only group, so no other order to search).
    512 PEs busy, each with private registers.
    mac: 8,192 x 0.04 = 327.68.
    W: rf (64 words) keeps its weight over both pixel loops (irrelevant to W, innermost), so
       each PE reads it once (ZigZag's access_same_data_considered_as_no_access): 512 writes
       + 512 reads, 8 bit, 0.0672 pJ = 68.8128; SRAM sends 512 weights = 4,096 bit once:
       4,096/64 x 64/512 = 8 accesses x 37.56 = 300.48.  Biases: 16 pixel tiles x 16
       channels x 64 bit = 2 accesses x 37.56 each = 1,201.92.
    I: rf holds OX x OY = 16 words (fits 64): 512 instances x 16 words written + 8,192 reads
       = 16,384 x 0.0672 = 1,101.0048; sram_main sends 16 x 32 inputs = 4,096 bit once:
       2 accesses x 388.85 = 777.7.
    O: rf (128 bit, several 24-bit accesses: filled with 128 / 8 = 16 final outputs, as
       ZigZag, since no reduction loop is left above it) holds OX x OY: 8,192 accumulations
       x 2 x 0.1008 = 1,651.5072, then one drain of 16 x 8 = 128 bit (6 accesses) per PE:
       512 x 6 x 0.1008 = 309.6576; sram_16KB_O written 16 channels x 16 outputs x 8 bit =
       2,048 bit (4 accesses of 512) x 36.78 = 147.12 and read once (4 accesses) x 16.19 =
       64.76; sram_main written 2,048 bit (1 access) x 353.57.
    Everything above, less the biases, is what zigzag-dse 3.9.1 computes (5,102.29 pJ).
    Latency (ZigZag's loading): levels filled once before computing: the weight rf from the
    SRAM, max(8 bit / 8, 4,096 bit / 512) = 8 cycles; the input rf, max(16 x 8 bit / 8 per
    PE, 4,096 bit / 2,048) = 16; loading = the slower operand, 16.  T = 16, no stall.
    Draining: rf -> sram_16KB_O max(128 bit / 24, 2,048 / 512) = 6, then sram_16KB_O ->
    sram_main drains once, hidden but for the last tile (128 bit): 1.  16 + 16 + 7 = 39
    cycles (ZigZag: 36, it keeps half the pixels in sram_16KB_O).
    """
    acc = load_accelerator("sys_YYYY")
    layer = ConvLayer(32, 16, 4, 4)
    assert spatial_mapping(layer, as_core(acc.cores[0].design)) == ("C", "K")
    c = layer_cost(layer, acc, core=0)
    expected = {"mac": 327.68, "W.rf_64B_W": 68.8128, "W.sram_128KB_W": 300.48, "B.sram_128KB_W": 1_201.92,
                "I.rf_64B_A": 1_101.0048, "I.sram_main": 777.7, "O.rf_16B": 1_961.1648, "O.sram_16KB_O": 211.88,
                "O.sram_main": 353.57}
    for term, pj in expected.items():
        assert c.breakdown[term] == pytest.approx(pj, rel=1e-12), term
    assert c.energy_pj == pytest.approx(6_304.2124, rel=1e-12)
    assert (c.temporal_cycles, c.onload_cycles, c.offload_cycles, c.latency_cycles) == (16, 16, 7, 39)
    assert c.utilization == pytest.approx(8_192 / (16 * 1_050))


@pytest.mark.parametrize("core", [0, 2, 3])  # E, M, Y in sys_EEMY
def test_fewer_bits_never_cost_more_on_every_style(core):
    acc = load_accelerator("sys_EEMY")
    layers = [ConvLayer(32, 16, 32, 32), ConvLayer(96, 96, 16, 16, 3, 2, 96), ConvLayer(3, 32, 32, 32, 3),
              ConvLayer(320, 1280, 2, 2), ConvLayer(1280, 10, 1, 1)]
    for layer, dram in itertools.product(layers, (False, True)):
        costs = [layer_cost(layer, acc, core, b, b, dram) for b in (2, 4, 8)]
        for fewer, more in itertools.pairwise(costs):
            assert fewer.energy_pj <= more.energy_pj and fewer.latency_cycles <= more.latency_cycles, (layer, dram)


def test_stream_2x_form_costs_as_the_1x_form(tmp_path):
    """cores by id, offchip_core_id and core_connectivity links of a 2 x 2 mesh: the same system."""
    folder = _copy_presets(tmp_path)
    cores = {0: "cores/edge_tpu_like.yaml", 1: "cores/meta_like.yaml", 2: "cores/eyeriss_like.yaml",
             3: "cores/eyeriss_like.yaml", 4: "cores/pooling_fig8.yaml", 5: "cores/simd_fig8.yaml",
             6: "cores/offchip_fig8.yaml"}
    links = [{"type": "link", "cores": pair, "bandwidth": 32} for pair in ([0, 1], [0, 2], [1, 3], [2, 3])]
    links += [{"type": "link", "cores": [i, 4], "bandwidth": 32} for i in range(4)]
    links += [{"type": "bus", "cores": [0, 1, 2, 3, 6], "bandwidth": 64}]
    data = {"name": "emyy", "cores": cores, "offchip_core_id": 6, "unit_energy_cost": 0, "core_connectivity": links}
    (folder / "v2.yaml").write_text(yaml.safe_dump(data))
    (folder / "v1.yaml").write_text((folder / "sys_EEMY.yaml").read_text().replace(
        "edge_tpu_like.yaml\n  - cores/meta_like.yaml", "meta_like.yaml\n  - cores/eyeriss_like.yaml"))
    v1, v2 = load_accelerator(str(folder / "v1.yaml")), load_accelerator(str(folder / "v2.yaml"))
    assert [c.name for c in v2.cores] == ["edge_tpu_like0", "meta_like1", "eyeriss_like2", "eyeriss_like3"]
    assert v2.designs == v1.designs and v2.mesh_links == v1.mesh_links
    assert cost_arch(SMALL, v2, allocation="greedy") == cost_arch(SMALL, v1, allocation="greedy")


def _edit(tmp_path: Path, file: str, edit) -> str:
    folder = _copy_presets(tmp_path)
    path = folder / file
    data = yaml.safe_load(path.read_text())
    edit(data)
    path.write_text(yaml.safe_dump(data))
    return str(folder / "sys_EEMY.yaml")


@pytest.mark.parametrize(("file", "edit", "message"), [
    ("cores/meta_like.yaml", lambda d: d["memories"]["rf_1B"].update(colour="blue"),
     "cores[2] (cores/meta_like.yaml).memories.rf_1B: unknown field 'colour'"),
    ("sys_EEMY.yaml", lambda d: d["cores"].__setitem__(3, "cores/missing.yaml"),
     "cores[3]: core file 'cores/missing.yaml' not found"),
    ("cores/edge_tpu_like.yaml", lambda d: d.update(dataflows={"D1": ["K, 64"]}),
     "dataflows.D1: unrolls K 64 wide on a dimension of 8"),
    ("cores/edge_tpu_like.yaml", lambda d: d.update(dataflows={"D1": ["K, 8"], "D2": ["K, 8"]}),
     "dataflows: a loop is unrolled on two dimensions"),
    ("cores/eyeriss_like.yaml", lambda d: d["memories"]["sram_main"].update(served_dimensions=["D3"]),
     "memories.sram_main.served_dimensions: expected a list of D1, D2"),
    ("cores/meta_like.yaml", lambda d: d["memories"]["sram_1MB_A"].update(latency=2),
     "sram_1MB_A.latency: only single-cycle accesses (1) are modelled"),
    ("sys_EEMY.yaml", lambda d: d["graph"].update(type="bus"), "graph.type: 'bus' is not modelled"),
    ("sys_EEMY.yaml", lambda d: d["graph"].update(nb_cols=3), "graph.nb_rows: a 2 x 3 mesh holds 6 compute cores"),
    ("sys_EEMY.yaml", lambda d: d.update(weights="resident"), "unknown field 'weights'"),
    ("cores/pooling_fig8.yaml", lambda d: d.pop("dataflows"), "a pooling core unrolls FY, FX and a channel loop"),
])
def test_what_cannot_be_modelled_is_a_one_line_error(tmp_path, file, edit, message):
    path = _edit(tmp_path, file, edit)
    with pytest.raises(EenasError) as err:
        load_accelerator(path)
    assert message in str(err.value) and "\n" not in str(err.value)
    assert str(err.value).startswith(path)


def test_cli_takes_a_stream_file_and_reports_its_errors(tmp_path, monkeypatch, capsys):
    from click.testing import CliRunner

    from eenas.arch import save_arch
    from eenas.cli import cli, main

    monkeypatch.setattr("eenas.io.DEFAULT_CACHE_DIR", tmp_path / "cache")
    folder = _copy_presets(tmp_path / "hw")
    save_arch(SMALL, tmp_path / "arch.json")
    ok = CliRunner().invoke(cli, ["cost", "--arch", str(tmp_path / "arch.json"), "--hardware",
                                  str(folder / "sys_MMYY.yaml"), "--allocation", "greedy", "--format", "csv"])
    assert ok.exit_code == 0 and "static_et" in ok.output
    shutil.rmtree(folder / "cores")
    monkeypatch.setattr(sys, "argv", ["eenas", "cost", "--arch", str(tmp_path / "arch.json"), "--hardware",
                                      str(folder / "sys_MMYY.yaml")])
    with pytest.raises(SystemExit) as exit_:
        main()
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and err.count("\n") == 1
    assert err.startswith("eenas: error: ") and "cores[0]: core file 'cores/meta_like.yaml' not found" in err
