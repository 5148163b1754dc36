"""The predictor benchmark's summaries of finished curves, on hand-made curves with hand-derived numbers."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pandas as pd
import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_predictor.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_predictor", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def curves() -> pd.DataFrame:
    """Bank of 8 heads (a quarter: 2).  Ratios at 2 heads: trees 0.99 / 0.97, structured 0.96 / 0.98,
    random 0.90 / 0.95 on seeds 0 / 1 (random's last point at or below 2 heads)."""
    rows = []
    for strategy, seed, points in [("trees", 0, [(1, 0.9), (2, 0.99)]), ("trees", 1, [(2, 0.97), (3, 0.99)]),
                                   ("structured", 0, [(2, 0.96)]), ("structured", 1, [(2, 0.98), (4, 0.99)]),
                                   ("random", 0, [(1, 0.90), (5, 0.98)]), ("random", 1, [(2, 0.95)])]:
        rows += [{"strategy": strategy, "seed": seed, "heads": h, "hv_ratio": r} for h, r in points]
    return pd.DataFrame(rows)


def test_ratio_at_a_quarter_and_heads_to_98_percent(bench):
    reached = bench.reached_table(curves(), bank=8).set_index(["strategy", "seed"])
    assert reached.loc[("trees", 0), "hv_ratio_at_quarter"] == 0.99
    assert reached.loc[("random", 0), "hv_ratio_at_quarter"] == 0.90
    assert reached.loc[("trees", 1), "heads_to_98pct"] == 3 and reached.loc[("random", 0), "heads_to_98pct"] == 5
    assert pd.isna(reached.loc[("random", 1), "heads_to_98pct"])


def test_paired_differences_are_per_seed(bench):
    paired = bench.paired_table(bench.reached_table(curves(), bank=8)).set_index("difference")
    # trees - structured: +0.03 and -0.01; trees - random: +0.09 and +0.02; structured - random: +0.06, +0.03
    assert paired.loc["trees - structured", "mean"] == pytest.approx(0.01)
    assert paired.loc["trees - structured", "seeds_ahead"] == 1
    assert paired.loc["trees - random", "mean"] == pytest.approx(0.055)
    assert paired.loc["structured - random", "seeds_ahead"] == 2
    low, high = paired.loc["trees - random", ["ci_low", "ci_high"]]
    assert low == pytest.approx(0.02) and high == pytest.approx(0.09)  # two seeds: the extremes are resampled
