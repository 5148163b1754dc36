"""``eenas cost``: output formats and one-line errors with exit code 2."""

from __future__ import annotations

import json
import sys

import pytest
from click.testing import CliRunner

from eenas.arch import Arch, ExitConfig, save_arch
from eenas.cli import cli, main


@pytest.fixture()
def arch_file(tmp_path):
    path = tmp_path / "arch.json"
    exits = (ExitConfig(3, "pool_fc", 0.9), ExitConfig(8, "conv_pool_fc", 0.8, core=0, overlap=True))
    save_arch(Arch("cifar10", exits=exits), path)
    return str(path)


def invoke(*args: str):
    return CliRunner().invoke(cli, ["cost", *args], catch_exceptions=False)


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


def test_csv(arch_file):
    out = invoke("--arch", arch_file, "--format", "csv").output
    assert out.startswith("layer,stage,kind,core,macs,utilization,cycles")
    assert "\nexit,after_block,head,overlap," in out and "\nmetric,value\n" in out


@pytest.mark.parametrize("args, message", [
    (["--exit-ratios", "0.5,0.5"], "expected 3 values"),
    (["--exit-ratios", "0.5,0.6,0.1"], "sum to 1.2"),
    (["--exit-ratios", "0.5,x,0.5"], "not a comma-separated list"),
    (["--hardware", "edge_tpu_hexa"], "unknown hardware 'edge_tpu_hexa'"),
    (["--frequency-mhz", "0"], "not a positive number"),
])
def test_user_errors_exit_with_code_2(arch_file, monkeypatch, capsys, args, message):
    monkeypatch.setattr(sys, "argv", ["eenas", "cost", "--arch", arch_file, *args])
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_bad_hardware_file_names_the_field(arch_file, tmp_path, monkeypatch, capsys):
    (tmp_path / "hw.yaml").write_text("name: x\ncores: []\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["eenas", "cost", "--arch", arch_file, "--hardware", "hw.yaml"])
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == "eenas: error: hw.yaml: cores: expected a non-empty list\n"
