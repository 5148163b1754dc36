"""The ENOS energy table: the preset, hand-computed layer and expected energies, validation."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
import yaml

from eenas.enos.energy import expected_energy, load_energy_table, table_from_dict
from eenas.errors import EenasError
from eenas.hardware import ConvLayer
from tests.conftest import run_eenas

# The reference's worked example: pointwise 32->16 at 32x32 on one Edge-TPU-like core.
EXAMPLE = ConvLayer(32, 16, 32, 32)


def table_dict(**operators) -> dict:
    return {"name": "t", "extends": "edge_tpu_single", "cim": {"array_rows": 64, "adc_bits": 5},
            "operators": operators or {"mac8": {"digital": {"pj_per_op": 0.5, "source": "test"},
                                                "cim": {"pj_per_op": 0.1, "source": "test"}},
                                       "binary": {"digital": {"pj_per_op": 0.2, "source": "test"}}}}


def test_preset_lists_every_pair_with_a_source():
    table = load_energy_table()
    assert table.labels == ["mac8/digital", "mac8/cim", "mac4/digital", "mac4/cim", "binary/digital",
                            "binary/cim", "mf/digital", "mf/cim", "shift/digital", "xnor/digital", "xnor/cim"]
    assert all(c.source for c in table.candidates)
    assert table.cim.array_rows == 62 and table.cim.adc_bits == 5
    # 105 TOPS/W (MF-Net) is 2 / 105 pJ per weight-input pair.
    mf_cim = next(c for c in table.candidates if c.label == "mf/cim")
    assert mf_cim.pj_per_op == pytest.approx(2 / 105)
    # XNOR: one bit-plane by one weight bit, 16x fewer evaluations than MF-Net's 16: 2 / 1680 pJ.
    xnor_cim = next(c for c in table.candidates if c.label == "xnor/cim")
    assert xnor_cim.pj_per_op == pytest.approx(2 / 1680)


def test_digital_mac8_energy_is_the_core_models_mac_weight_and_psum_terms():
    table = load_energy_table()
    mac8 = table.candidates[0]
    # MACs 20,972 + weight RF 655 + weight SRAM 11,725 + output RF 2,949 pJ (docs of the core model).
    assert table.energy(mac8, EXAMPLE) == pytest.approx(20972 + 655 + 11725 + 2949, rel=1e-3)


def test_core_scale_scales_only_the_mac_term():
    data = table_dict(mac8={"digital": {"core_scale": 0.5, "source": "half"}})
    half = table_from_dict(data, "t.yaml", None)
    full = load_energy_table()
    delta = full.energy(full.candidates[0], EXAMPLE) - half.energy(half.candidates[0], EXAMPLE)
    assert delta == pytest.approx(0.5 * EXAMPLE.macs * 0.04, rel=1e-6)


def test_cim_energy_is_charged_per_adc_conversion():
    table = table_from_dict(table_dict(), "t.yaml", None)
    cim = table.candidates[1]
    full = ConvLayer(128, 8, 4, 4)  # fan-in 128: two full columns of 64 rows
    assert table.energy(cim, full) == pytest.approx(full.macs * 0.1)
    short = ConvLayer(16, 16, 4, 4, kernel=3, groups=16)  # depthwise: fan-in 9 of 64 rows
    assert table.energy(cim, short) == pytest.approx(16 * 16 * 64 * 0.1)


def test_expected_energy_equals_the_hand_computed_sum():
    table = table_from_dict(table_dict(), "t.yaml", None)
    layers = [ConvLayer(64, 4, 2, 2), ConvLayer(4, 10, 1, 1)]  # 1,024 and 40 MACs
    matrix = table.matrix(layers)
    hand_matrix = torch.tensor([[512.0, 102.4, 204.8], [20.0, 10 * 64 * 0.1, 8.0]], dtype=torch.float64)
    assert torch.allclose(matrix, hand_matrix)
    probs = torch.tensor([[0.5, 0.25, 0.25], [0.1, 0.0, 0.9]])
    hand = 0.5 * 512 + 0.25 * 102.4 + 0.25 * 204.8 + 0.1 * 20 + 0.9 * 8
    assert expected_energy(probs, matrix).item() == pytest.approx(hand)


@pytest.mark.parametrize("change,message", [
    ({"operators": {"adder": {"digital": {"pj_per_op": 1, "source": "x"}}}}, "unknown operator 'adder'"),
    ({"operators": {"mac8": {"analog": {"pj_per_op": 1, "source": "x"}}}}, "unknown field 'analog'"),
    ({"operators": {"mac8": {"digital": {"pj_per_op": -1, "source": "x"}}}}, "positive number"),
    ({"operators": {"mac8": {"digital": {"pj_per_op": 1}}}}, "source"),
    ({"operators": {"mac8": {"cim": {"core_scale": 1, "source": "x"}}}}, "only digital"),
    ({"operators": {"mac8": {"digital": {"pj_per_op": 1, "tops_per_watt": 5, "source": "x"}}}}, "exactly one"),
    ({"extends": "no_such_accelerator"}, "unknown hardware"),
    ({"cim": {"adc_bits": 1}}, "adc_bits"),
    ({"watts": 3}, "unknown field 'watts'"),
])
def test_bad_tables_name_the_problem(change, message):
    data = {**table_dict(), **change}
    with pytest.raises(EenasError, match=message):
        table_from_dict(data, "t.yaml", None)


def test_cli_unknown_operator_in_the_energy_file_is_one_line_and_exit_2(tmp_path: Path, monkeypatch, capsys):
    path = tmp_path / "bad.yaml"
    data = table_dict(mac8={"digital": {"pj_per_op": 1, "source": "x"}},
                      ternary={"cim": {"pj_per_op": 1, "source": "x"}})
    path.write_text(yaml.safe_dump(data))
    proc = run_eenas(monkeypatch, capsys, "enos", "--dataset", "synthetic", "--budget", "tiny", "--energy-table", path,
                     "--out", tmp_path / "out", "--cache-dir", tmp_path / "cache")
    assert proc.code == 2
    assert proc.err.strip().count("\n") == 0
    assert "unknown operator 'ternary'" in proc.err


def test_cli_negative_energy_weight_is_one_line_and_exit_2(tmp_path: Path, monkeypatch, capsys):
    proc = run_eenas(monkeypatch, capsys, "enos", "--energy-weight", "-1", "--budget", "tiny", "--dataset", "synthetic",
                     "--out", tmp_path / "out")
    assert proc.code == 2
    assert proc.err.strip().count("\n") == 0
    assert "non-negative" in proc.err


@pytest.mark.parametrize("args", [("enos", "sweep", "--energy-weights", "0,-2"), ("enos", "--energy-weight", "nan"),
                                  ("enos", "sweep", "--energy-weights", "0,x"), ("enos", "--scheme", "greedy"),
                                  ("enos", "--budget", "tiny", "sweep"), ("enos", "--weights", "per-layer"),
                                  ("enos", "sweep", "--seeds", "0,0"), ("enos", "sweep", "--seeds", "1,x")])
def test_cli_bad_options_exit_2_in_process(args, tmp_path: Path, monkeypatch, capsys):
    from eenas.cli import main

    monkeypatch.setattr(sys, "argv", ["eenas", *args, "--out", str(tmp_path / "out")])
    with pytest.raises(SystemExit) as exc:
        main()
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("eenas: error:") and err.strip().count("\n") == 0
