"""``eenas search --config FILE``: a saved run's settings start a new run; options given on the command line win."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from eenas.search import SearchConfig, ThresholdGrid
from tests.conftest import run_eenas, search_config_from_command_line


def _saved(tmp_path, cfg: SearchConfig, wrap: bool = True):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"search": cfg.to_dict(), "eenas_version": "x"} if wrap else cfg.to_dict()))
    return path


@pytest.mark.parametrize("wrap", [True, False])
def test_a_saved_config_is_rebuilt_exactly(monkeypatch, tmp_path, wrap):
    """Every recorded setting comes back: non-default sizes, bits, mounts, thresholds, objectives, strategy."""
    saved = SearchConfig.create("synthetic", "tiny", overrides={"population": 12, "holdout": 0}, seed=3,
                                bits=(8, 4, 2), mounts=(2, 5), max_exits=2, max_accuracy_drop=0.5,
                                thresholds=ThresholdGrid(0.5, 0.9, 0.05), objectives=("accuracy", "energy"),
                                strategy="random", predictor="structured", width_mult=0.25, max_p99_latency=1e6)
    cfg = search_config_from_command_line(monkeypatch, "--config", str(_saved(tmp_path, saved, wrap)))
    assert cfg == saved


def test_options_on_the_command_line_override_the_file(monkeypatch, tmp_path):
    saved = SearchConfig.create("synthetic", "tiny", seed=3, bits=(8, 4))
    cfg = search_config_from_command_line(monkeypatch, "--config", str(_saved(tmp_path, saved)), "--seed", "5",
                                          "--bits", "4")
    assert cfg == replace(saved, seed=5, bits=(4,))


def test_a_run_recorded_without_weights_restarts_without_weights(monkeypatch, tmp_path):
    """A record leaves ``pretrained: none`` out (runs from before the registry); it must not become auto."""
    saved = SearchConfig.create("synthetic", "tiny", pretrained="none")
    assert "pretrained" not in saved.to_dict()
    seen = []
    monkeypatch.setattr("eenas.search.SearchConfig.create",
                        lambda *args, **kwargs: seen.append(kwargs["pretrained"]) or saved)
    search_config_from_command_line(monkeypatch, "--config", str(_saved(tmp_path, saved)))
    assert seen == ["none"]


def test_an_exhaustive_run_restarts_exhaustive(monkeypatch, tmp_path):
    saved = SearchConfig.create("synthetic", "tiny", strategy="exhaustive")
    assert saved.to_dict()["exhaustive"] is True
    cfg = search_config_from_command_line(monkeypatch, "--config", str(_saved(tmp_path, saved)))
    assert cfg.exhaustive


@pytest.mark.parametrize(("content", "message"), [
    ({"search": {"dataset": "synthetic", "colour": 1}}, "unknown setting 'colour'"),
    ({"search": {"dataset": "synthetic", "search": {"pop": 3}}}, "search: unknown field 'pop'"),
    ({"search": {"dataset": "synthetic", "thresholds": {"start": 0.5}}}, "thresholds: expected start, stop and step"),
    ({"search": {"dataset": "synthetic", "heads": ["gap_fc"]}}, "heads: a subset of the heads"),
    ([1, 2], "expected a JSON object of search settings"),
])
def test_a_bad_config_file_is_one_line_and_exit_2(tmp_path, monkeypatch, capsys, content, message):
    path = tmp_path / "config.json"
    path.write_text(json.dumps(content))
    out = run_eenas(monkeypatch, capsys, "search", "--config", path, "--out", tmp_path / "run")
    lines = out.err.strip().splitlines()
    assert out.code == 2 and len(lines) == 1, out.err
    assert lines[0].startswith(f"eenas: error: --config {path}: {message}")
    assert not (tmp_path / "run").exists()


def test_the_python_api_starts_from_the_shipped_weights_as_the_command_line_does(monkeypatch):
    monkeypatch.delenv("EENAS_WEIGHTS_DIR", raising=False)
    assert SearchConfig.create("cifar10", "quick").pretrained == "mobilenet_v2_w050_cifar10"
    assert SearchConfig.create("cifar10", "quick", pretrained="none").pretrained == "none"
    assert SearchConfig.create("synthetic", "tiny").pretrained == "none"  # nothing ships for it
