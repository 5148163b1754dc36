"""``eenas enos sweep`` end to end on synthetic data with a two-candidate energy table."""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from eenas.enos.search import RunResult
from eenas.enos.sweep import SweepResult


def _result(label: str, accuracy: float, energy: float) -> RunResult:
    return RunResult(label, accuracy, energy, (), 0.0)


def test_comparison_takes_the_best_single_operator_network_at_no_more_energy():
    sweep = SweepResult(
        searched=((0.0, _result("enos λ=0", 0.80, 100.0)), (10.0, _result("enos λ=10", 0.60, 40.0)),
                  (99.0, _result("enos λ=99", 0.50, 10.0))),
        singles=(_result("mac8/digital", 0.82, 150.0), _result("mac4/digital", 0.70, 90.0),
                 _result("binary/cim", 0.40, 30.0)),
    )
    table = sweep.comparison().set_index("energy_weight")
    assert table.loc[0.0, "best_single_at_or_below"] == "mac4/digital"
    assert table.loc[0.0, "accuracy_gain_points"] == pytest.approx(10.0)
    assert table.loc[10.0, "best_single_at_or_below"] == "binary/cim"
    assert table.loc[10.0, "accuracy_gain_points"] == pytest.approx(20.0)
    assert table.loc[99.0, "best_single_at_or_below"] == "none"


def test_sweep_cli_writes_tables_figure_and_reuses_its_cache(tmp_path: Path, monkeypatch, capsys):
    from eenas.cli import main

    energy = tmp_path / "two.yaml"
    energy.write_text(yaml.safe_dump({
        "extends": "edge_tpu_single",
        "cim": {"array_rows": 32, "adc_bits": 5},
        "operators": {"mac8": {"digital": {"core_scale": 1.0, "source": "core model"}},
                      "binary": {"cim": {"tops_per_watt": 210, "source": "test"}}},
    }, sort_keys=False))
    out = tmp_path / "sweep"
    args = ["eenas", "enos", "sweep", "--energy-weights", "0,100", "--dataset", "synthetic", "--budget", "tiny",
            "--relaxation", "gumbel", "--energy-table", str(energy), "--cache-dir", str(tmp_path / "cache"),
            "--device", "cpu"]
    monkeypatch.setattr(sys, "argv", [*args, "--out", str(out)])
    main()
    points = pd.read_csv(out / "sweep.csv")
    assert list(points["kind"]) == ["enos", "enos", "single", "single"]
    assert list(points["network"][2:]) == ["mac8/digital", "binary/cim"]
    assert points["test_accuracy"].between(0, 1).all()
    # λ = 100 drives every layer to the cheaper candidate's network energy or below λ = 0's.
    assert points["energy_pj"][1] <= points["energy_pj"][0]
    for name in ("sweep.md", "comparison.csv", "sweep.png", "lambda_0/assignment.json", "lambda_100/layers.md",
                 "single/binary_cim/assignment.json"):
        assert (out / name).stat().st_size > 0, name
    assert (out / "sweep.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    first = capsys.readouterr().out

    monkeypatch.setattr(sys, "argv", [*args, "--out", str(tmp_path / "again")])
    main()
    assert pd.read_csv(tmp_path / "again" / "sweep.csv").equals(points)
    assert capsys.readouterr().out.split("results in")[0] == first.split("results in")[0]
