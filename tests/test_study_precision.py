"""``eenas study precision``: its table agrees with ``eenas evaluate`` and ``eenas cost`` (synthetic, tiny)."""

from __future__ import annotations

import json
import sys
from dataclasses import replace

import pandas as pd
import pytest

from eenas.arch import arch_from_dict, load_arch, save_arch
from eenas.cli import main
from eenas.errors import EenasError
from eenas.evaluate import evaluate_arch
from eenas.hardware import cost_arch
from eenas.study import PRECISION_GRID, run_precision_study, write_precision_study
from eenas.study.precision import with_bits
from tests.conftest import arch_dict, run_eenas, write_arch


def test_rows_agree_with_evaluate_and_cost(tiny_pipeline, tmp_path):
    arch = arch_from_dict(arch_dict())
    study = run_precision_study(arch, tiny_pipeline)
    summary, exits = study.summary(), study.exits()
    assert [(r.backbone_bits, r.exit_bits) for r in summary.itertuples()] == list(PRECISION_GRID)
    for row in summary.itertuples():
        variant = with_bits(arch, row.backbone_bits, row.exit_bits)
        ev = evaluate_arch(variant, tiny_pipeline)
        cost = cost_arch(variant)
        ratios = [float(v) for v in row.exit_ratios.split(";")]
        assert ratios == pytest.approx(list(ev.exits["exit_ratio"]), abs=1e-6)
        assert (row.accuracy, row.static_accuracy) == (ev.accuracy, ev.static_accuracy)
        assert row.average_et == pytest.approx(cost.average_et(ev.exits["exit_ratio"]))
        assert row.et_ratio == pytest.approx(cost.et_ratio(ev.exits["exit_ratio"]))
        assert row.static_et == cost.static_et
        mine = exits[(exits["backbone_bits"] == row.backbone_bits) & (exits["exit_bits"] == row.exit_bits)]
        assert list(mine["cum_cycles"]) == [e.cum_latency_cycles for e in cost.exits]
        assert list(mine["cum_et"]) == pytest.approx([e.cum_et for e in cost.exits])
        assert row.mean_exit_block == pytest.approx(sum(r * b for r, b in zip(ratios, [3, 7, 18])))
    # Fewer bits make every stage cheaper: the static ET falls with the backbone's bit-width.
    static = summary.drop_duplicates("backbone_bits").set_index("backbone_bits")["static_et"]
    assert static[32] > static[8] > static[4]

    paths = write_precision_study(study, tmp_path)
    assert {p.name for p in paths} == {"precision.csv", "precision_exits.csv", "precision.md", "precision.png"}
    assert pd.read_csv(tmp_path / "precision.csv")["average_et"].tolist() == pytest.approx(summary["average_et"])
    assert (tmp_path / "precision.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "![precision study](precision.png)" in (tmp_path / "precision.md").read_text()


def test_cli_table_matches_eenas_cost_and_evaluate_with_a_hardware_override(tmp_path, cache_dir, tiny_pipeline,
                                                                            monkeypatch, capsys):
    arch_path = write_arch(tmp_path / "arch.json")
    common = ["--budget", "tiny", "--cache-dir", cache_dir, "--device", "cpu"]
    result = run_eenas(monkeypatch, capsys, "study", "precision", "--arch", arch_path, "--hardware", "edge_tpu_single",
                       *common)
    assert result.code == 0, result.err
    out = tmp_path / "arch_precision"  # the default: beside the arch
    for name in ("precision.csv", "precision_exits.csv", "precision.md", "precision.png"):
        assert (out / name).stat().st_size > 0
    row = pd.read_csv(out / "precision.csv").set_index("config").loc["backbone 8 / exits 4"]
    variant = tmp_path / "arch_8_4.json"
    save_arch(with_bits(arch_from_dict(arch_dict()), 8, 4), variant)
    ratios = ",".join(row["exit_ratios"].split(";"))
    cost = run_eenas(monkeypatch, capsys, "cost", "--arch", variant, "--hardware", "edge_tpu_single", "--exit-ratios",
                     ratios, "--format", "json")
    assert cost.code == 0, cost.err
    summary = json.loads(cost.out)["summary"]
    assert summary["average_et_pj_cycles"] == pytest.approx(row["average_et"], rel=1e-6)
    assert summary["et_ratio"] == pytest.approx(row["et_ratio"], rel=1e-6)
    evaluated = evaluate_arch(load_arch(variant), tiny_pipeline, hardware="edge_tpu_single")
    assert (evaluated.accuracy, evaluated.average_et) == (row["accuracy"], pytest.approx(row["average_et"]))


def test_bad_hardware_is_one_line_and_exit_code_2_before_any_training(tmp_path, monkeypatch, capsys):
    arch = arch_from_dict(arch_dict())
    with pytest.raises(EenasError, match="unknown hardware 'tpu_v9'"):
        run_precision_study(replace(arch, hardware="tpu_v9"), pipeline=None)
    args = ["study", "precision", "--arch", str(write_arch(tmp_path / "a.json")), "--hardware", "tpu_v9",
            "--budget", "tiny", "--cache-dir", str(tmp_path / "cache")]
    monkeypatch.setattr(sys, "argv", ["eenas", *args])
    with pytest.raises(SystemExit) as exited:
        main()
    assert exited.value.code == 2
    assert capsys.readouterr().err.startswith("eenas: error: unknown hardware 'tpu_v9'")
    assert not (tmp_path / "cache").exists()
