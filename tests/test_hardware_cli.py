"""``eenas cost``: output formats and one-line errors with exit code 2."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from eenas.arch import Arch, ExitConfig, load_arch, save_arch
from eenas.cli import cli, main

ROOT = Path(__file__).parents[1]


@pytest.fixture(autouse=True)
def _cache_dir(tmp_path, monkeypatch):
    """The default --cache-dir is a temporary folder: searched allocations never go to ~/.cache/eenas."""
    monkeypatch.setattr("eenas.io.DEFAULT_CACHE_DIR", tmp_path / "cache")


@pytest.fixture()
def arch_file(tmp_path):
    path = tmp_path / "arch.json"
    exits = (ExitConfig(3, "pool_fc", 0.9), ExitConfig(8, "conv_pool_fc", 0.8, core=0, overlap=True))
    save_arch(Arch("cifar10", exits=exits), path)
    return str(path)


def invoke(*args: str):
    return CliRunner().invoke(cli, ["cost", *args], catch_exceptions=False)


def run_main(monkeypatch, *args: str) -> None:
    monkeypatch.setattr(sys, "argv", ["eenas", "cost", *args])
    main()


def test_table(arch_file):
    result = invoke("--arch", arch_file, "--exit-ratios", "0.5,0.2,0.3")
    assert result.exit_code == 0
    out = result.output
    for text in ("| layer", "b3.exit.fc", "| exit", "conv_pool_fc", "average_et_pj_cycles", "static_et_pj_cycles",
                 "et_ratio", "product_of_averages_et_pj_cycles", "0.5,0.2,0.3"):
        assert text in out


def test_json_has_every_table(arch_file):
    result = invoke("--arch", arch_file, "--format", "json", "--frequency-mhz", "500", "--hardware", "edge_tpu_single")
    data = json.loads(result.output)
    assert data["summary"]["hardware"] == "edge_tpu_single"
    assert {r["core"] for r in data["layers"]} <= {"tpu0", "pool", "simd"}
    exits = data["exits"]
    assert [e["after_block"] for e in exits] == [3, 8, "final"]
    assert exits[-1]["time_us"] == pytest.approx(exits[-1]["cycles"] / 500)
    assert "exit_ratio" not in exits[0] and "not given" in data["summary"]["exit_ratios"]
    # Without exit ratios no average is printed: an assumed routing would look like a result.
    assert not {"et_ratio", "average_et_pj_cycles", "product_of_averages_et_pj_cycles"} & set(data["summary"])


def test_csv(arch_file):
    out = invoke("--arch", arch_file, "--format", "csv").output
    assert out.startswith("layer,stage,kind,core,params,macs,utilization,cycles")
    assert "\nexit,after_block,head,overlap," in out and "\nmetric,value\n" in out


@pytest.mark.parametrize("args, message", [
    (["--exit-ratios", "0.5,0.5"], "expected 3 values"),
    (["--exit-ratios", "0.5,0.6,0.1"], "sum to 1.2"),
    (["--exit-ratios", "0.5,x,0.5"], "not a comma-separated list"),
    (["--hardware", "edge_tpu_hexa"], "unknown hardware 'edge_tpu_hexa'"),
    (["--frequency-mhz", "0"], "not a positive number"),
])
def test_user_errors_exit_with_code_2(arch_file, monkeypatch, capsys, args, message):
    with pytest.raises(SystemExit) as exit_info:
        run_main(monkeypatch, "--arch", arch_file, *args)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_bad_hardware_file_names_the_field(arch_file, tmp_path, monkeypatch, capsys):
    (tmp_path / "hw.yaml").write_text("name: x\ncores: []\n")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        run_main(monkeypatch, "--arch", arch_file, "--hardware", "hw.yaml")
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == "eenas: error: hw.yaml: cores: expected a non-empty list\n"


@pytest.mark.parametrize("edit, message", [
    (lambda t: t.encode("utf-16"), "hw.yaml: not a text file (byte 0 is not UTF-8)"),
    (lambda t: b"\x00\x01" + t.encode(), "hw.yaml: not valid YAML"),
    (lambda t: t.replace("name: tpu1", "name: tpu0").encode(), "hw.yaml: cores[1].name: 'tpu0' is taken by cores[0]"),
    (lambda t: t.replace("[1, 1]", "[0, 1]").encode(), "hw.yaml: cores[3].mesh_position: [0, 1] is taken by cores[2]"),
    (lambda t: t.replace("psum_bits: 16", "psum_bits: 2").encode(), "hw.yaml: cores[0].mac_array.psum_bits: 2"),
    (lambda t: t.replace("weights: streamed", "weights: yes").encode(), "hw.yaml: weights: True is not one of"),
])
def test_malformed_accelerator_files_are_one_line(arch_file, tmp_path, monkeypatch, capsys, edit, message):
    text = (ROOT / "eenas/hardware/presets/edge_tpu_quad.yaml").read_text()
    (tmp_path / "hw.yaml").write_bytes(edit(text))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        run_main(monkeypatch, "--arch", arch_file, "--hardware", "hw.yaml")
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.startswith(f"eenas: error: {message}") and err.count("\n") == 1


def test_a_hardware_file_in_an_arch_file_is_relative_to_the_arch_file(tmp_path, monkeypatch):
    folder = tmp_path / "design"
    folder.mkdir()
    text = (ROOT / "eenas/hardware/presets/edge_tpu_single.yaml").read_text()
    (folder / "mine.yaml").write_text(text.replace("name: edge_tpu_single", "name: mine"))
    data = Arch("cifar10", exits=(ExitConfig(2, "gap_fc", 0.9),)).to_dict() | {"hardware": "mine.yaml"}
    (folder / "arch.json").write_text(json.dumps(data))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    result = invoke("--arch", str(folder / "arch.json"), "--format", "json")
    assert json.loads(result.output)["summary"]["hardware"] == "mine"
    # Loaded, the path is usable from the working folder; saved elsewhere, it is relative to the new file.
    monkeypatch.chdir(tmp_path)
    arch = load_arch("design/arch.json")
    assert arch.hardware == "design/mine.yaml"
    save_arch(arch, "elsewhere/sub/copy.json")
    assert json.loads((elsewhere / "sub" / "copy.json").read_text())["hardware"] == "../../design/mine.yaml"
    assert load_arch("elsewhere/sub/copy.json") == arch
    assert load_arch(folder / "arch.json").hardware == str(folder / "mine.yaml")  # absolute stays absolute
    save_arch(Arch("cifar10"), tmp_path / "preset.json")  # presets are names, not paths
    assert json.loads((tmp_path / "preset.json").read_text())["hardware"] == "edge_tpu_quad"


def test_the_published_arch_costs_on_every_preset():
    """Regression: this arch (published at 569486e) crashed the single-core preset (an exit head pooling first,
    then a residual)."""
    arch = str(ROOT / "tests/data/arch_pool_head_before_residual.json")
    for hardware in ("edge_tpu_single", "edge_tpu_quad"):
        data = json.loads(invoke("--arch", arch, "--hardware", hardware, "--format", "json").output)
        assert data["summary"]["hardware"] == hardware and data["exits"][-1]["et_pj_cycles"] > 0


def test_weight_mode_and_allocation_options(arch_file):
    def summary(*args):
        return json.loads(invoke("--arch", arch_file, "--format", "json", *args).output)["summary"]

    streamed = summary("--allocation", "greedy")
    resident = summary("--allocation", "greedy", "--weights", "resident")
    assert (streamed["weights"], resident["weights"], streamed["allocation"]) == ("streamed", "resident", "greedy")
    assert resident["static_energy_pj"] < streamed["static_energy_pj"]
    assert summary("--hardware", "edge_tpu_single")["allocation"] == "greedy"  # one core: nothing to search
    result = CliRunner().invoke(cli, ["cost", "--arch", arch_file, "--weights", "pinned"])
    assert result.exit_code == 2 and "'pinned' is not one of 'streamed', 'resident'" in result.output
