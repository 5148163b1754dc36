"""``eenas study hardware``: archs x accelerators, ranked by the geometric-mean average ET (pure cost modelling)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest
import yaml

from eenas.errors import EenasError
from eenas.hardware import cost_arch
from eenas.study.hardware import load_study_archs, run_hardware_study, write_hardware_study
from tests.conftest import arch_dict, run_eenas

PRESET = Path(__file__).resolve().parents[1] / "eenas" / "hardware" / "presets" / "edge_tpu_quad.yaml"
W4 = {"weights": 4, "activations": 4}


def quad_variant(folder: Path, name: str, weight_sram_factor: int) -> str:
    """edge_tpu_quad renamed, with every core's weight SRAM ``weight_sram_factor`` times larger."""
    data = {k: v for k, v in yaml.safe_load(PRESET.read_text()).items() if not k.startswith("x-")}
    data["name"] = name
    data["cores"] = [{**c, "weight_sram": {**c["weight_sram"], "size_bits": c["weight_sram"]["size_bits"]
                                           * weight_sram_factor}} for c in data["cores"]]
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return str(path)


@pytest.fixture
def archs(tmp_path) -> Path:
    """Two archs in a run-like folder: arch_0 with validation exit ratios, arch_1 without a stats file."""
    folder = tmp_path / "pareto"
    folder.mkdir()
    (folder / "arch_0.json").write_text(json.dumps(arch_dict(dataset="cifar10")))
    (folder / "stats_0.json").write_text(json.dumps({"val_exit_ratios": [0.5, 0.25, 0.25],
                                                     "exits": [{"exit_ratio": 1.0}, {"exit_ratio": 0.0},
                                                               {"exit_ratio": 0.0}]}))
    (folder / "arch_1.json").write_text(json.dumps(arch_dict(dataset="cifar10", quant={"backbone": W4, "exits": W4})))
    return folder


def test_ranking_by_hand(archs, tmp_path):
    hardware = ["edge_tpu_quad", quad_variant(tmp_path, "quad_copy", 1), quad_variant(tmp_path, "quad_big", 4)]
    loaded = load_study_archs([archs])
    assert [(a.label, a.source, a.ratios) for a in loaded] == [
        ("arch_0", "validation", (0.5, 0.25, 0.25)), ("arch_1", "static", (0.0, 0.0, 1.0))]
    # Resident weights: a 4x larger weight SRAM keeps more parameters on chip.
    study = run_hardware_study(loaded, hardware, weights="resident", allocation="greedy")
    pairs, ranking = study.pairs(), study.ranking().set_index("hardware")

    for a in loaded:
        mine = pairs[pairs["arch"] == a.label].set_index("hardware")
        expected = [cost_arch(a.arch, h, "resident", "greedy").average_et(a.ratios) for h in hardware]
        assert list(mine["average_et"]) == pytest.approx(expected, rel=1e-12)
        assert mine.loc["edge_tpu_quad", "average_et"] == mine.loc["quad_copy", "average_et"]
        assert mine.loc["quad_big", "average_et"] <= mine.loc["edge_tpu_quad", "average_et"]
        assert mine["relative_et"].min() == 1.0
    # Identical accelerators rank equal and win the same archs; the larger SRAM ranks first and wins both.
    assert ranking.loc["edge_tpu_quad", "rank"] == ranking.loc["quad_copy", "rank"] == 2
    assert ranking.loc["quad_big", "rank"] == 1 and ranking.loc["quad_big", "wins"] == 2
    assert ranking.loc["edge_tpu_quad", "wins"] == ranking.loc["quad_copy", "wins"]
    ets = pairs[pairs["hardware"] == "quad_big"]["average_et"]
    assert ranking.loc["quad_big", "geomean_average_et"] == pytest.approx(math.sqrt(ets.iloc[0] * ets.iloc[1]))
    assert ranking.loc["quad_big", "cores"] == "tpu x4"

    exits = study.exits()
    assert len(exits) == 2 * 3 * 3 and set(exits["after_block"]) == {3, 7, "final"}
    paths = write_hardware_study(study, tmp_path / "out")
    assert {p.name for p in paths} == {"hardware.csv", "hardware_exits.csv", "hardware_ranking.csv", "hardware.md",
                                       "hardware.png"}
    assert pd.read_csv(tmp_path / "out" / "hardware_ranking.csv")["rank"].tolist() == [1, 2, 2]
    assert (tmp_path / "out" / "hardware.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_test_split_ratios_when_the_stats_file_has_no_validation_ones(archs):
    stats = archs / "stats_0.json"
    stats.write_text(json.dumps({"exits": [{"exit_ratio": 0.2}, {"exit_ratio": 0.3}, {"exit_ratio": 0.5}]}))
    first = load_study_archs([archs / "arch_0.json"])[0]
    assert (first.source, first.ratios) == ("test", (0.2, 0.3, 0.5))
    stats.write_text(json.dumps({"val_exit_ratios": [0.5, 0.5]}))
    with pytest.raises(EenasError, match=r"stats_0.json: val_exit_ratios: exit ratios: expected 3 values"):
        load_study_archs([archs])


def test_bad_inputs_are_one_line_errors(archs, tmp_path):
    with pytest.raises(EenasError, match="two accelerators are named 'edge_tpu_quad'"):
        run_hardware_study(load_study_archs([archs]), ["edge_tpu_quad", "edge_tpu_quad"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(EenasError, match="empty: no arch_"):
        load_study_archs([tmp_path / "empty"])


def test_cli(archs, tmp_path, monkeypatch, capsys):
    out = tmp_path / "study"
    args = ["study", "hardware", archs, "--hardware", f"edge_tpu_quad,{quad_variant(tmp_path, 'quad_big', 4)}",
            "--weights", "resident", "--allocation", "greedy", "--out", out, "--cache-dir", tmp_path / "cache"]
    done = run_eenas(monkeypatch, capsys, *args)
    assert done.code == 0, done.err
    assert "quad_big" in done.out and (out / "hardware.md").exists()
    bad = run_eenas(monkeypatch, capsys, *args[:3], "--hardware", "no_such_accelerator")
    assert bad.code == 2 and bad.err.count("\n") == 1
    assert "unknown hardware 'no_such_accelerator'" in bad.err
