"""The prepared device check runs on the CPU too, so it cannot rot between sessions that have a GPU."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.py"

ROUNDING = 0.05 + 1e-9  # the report rounds minutes to 0.1: half a step, and the float error at a tie


@pytest.fixture(scope="module")
def gpu_check():
    with pytest.MonkeyPatch.context() as mp:
        mp.syspath_prepend(str(SCRIPT.parent))  # as when run as a script: it imports bench_training
        spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    return module


def test_cpu_dry_run_writes_paths_speed_and_projection(gpu_check, tmp_path, cache_dir):
    # The session's cache holds what the tiny pipeline trained for other tests: only missing parts train here.
    out = tmp_path / "out"
    assert gpu_check.main(["--device", "cpu", "--steps", "1", "--width", "0.25", "--batch", "2", "--out", str(out),
                           "--cache-dir", str(cache_dir)]) == 0
    report = json.loads((out / "gpu_check.json").read_text())
    assert report["paths"]["device"] == "cpu" and report["paths"]["static_w8a8_test_accuracy"] > 0.5
    assert {(r["dtype"], r["training"]) for r in report["speed"]} == {
        ("fp32", "float"), ("fp32", "QAT W8A8"), ("bf16", "float"), ("bf16", "QAT W8A8")}
    assert all(r["images_per_s"] > 0 for r in report["speed"])
    proj = report["standard_projection"]
    rate = {(r["dtype"], r["training"]): r["images_per_s"] for r in report["speed"]}
    assert proj["dtype"] == ("fp32" if gpu_check.resolve_amp("auto", torch.device("cpu")) is None else "bf16")
    assert proj["pretrain_min"] == pytest.approx(150 * 45_000 / rate[proj["dtype"], "float"] / 60, abs=ROUNDING)
    assert (out / "gpu_check.md").read_text().startswith("# gpu-check")
    (paper,) = [r for r in report["paper_mbv2_speed"] if r["dtype"] == proj["dtype"]]
    assert report["paper_mbv2_projection"]["pretrain_min"] == pytest.approx(
        gpu_check.WEIGHTS_EPOCHS * 45_000 / paper["images_per_s"] / 60, abs=ROUNDING)


def test_cuda_requested_without_cuda_is_one_line_and_exit_2(gpu_check, capsys, monkeypatch):
    monkeypatch.setattr(gpu_check.torch.cuda, "is_available", lambda: False)
    assert gpu_check.main(["--device", "cuda"]) == 2
    assert capsys.readouterr().err.count("\n") == 1
