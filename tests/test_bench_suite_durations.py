"""The suite benchmark reads pytest's --durations lines into per-test and per-file seconds."""

from __future__ import annotations

import importlib.util
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_suite.py"


def test_durations_are_read_per_phase_and_summed_per_file():
    spec = importlib.util.spec_from_file_location("bench_suite", SCRIPT)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    output = ("============ slowest durations ============\n"
              "12.50s call     tests/test_a.py::test_x[8-4]\n"
              "3.00s setup    tests/test_a.py::test_y\n"
              "1.25s teardown tests/test_b.py::test_z\n"
              "(3 durations < 0.5s hidden.)\n")
    timed = bench.durations(output)
    assert list(timed["phase"]) == ["call", "setup", "teardown"]
    assert list(timed["test"]) == ["tests/test_a.py::test_x[8-4]", "tests/test_a.py::test_y", "tests/test_b.py::test_z"]
    assert timed.groupby("file")["seconds"].sum().to_dict() == {"tests/test_a.py": 15.5, "tests/test_b.py": 1.25}
