"""``eenas enos sweep``: the iso-energy table, envelopes and bisection on hand-made sweeps, and the CLI end to end."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from eenas.enos.search import RunResult
from eenas.enos.sweep import Run, SweepResult, bisect_energy_weight, difference_interval, pareto_front
from eenas.errors import EenasError
from tests.conftest import tiny_sweep_args


def _result(label: str, accuracy: float, energy: float) -> RunResult:
    return RunResult(label, accuracy, energy, (), 0.0, val_accuracy=accuracy)


def test_difference_interval_adds_seed_spread_and_test_sampling():
    a, b = np.array([0.80, 0.82, 0.84]), np.array([0.79, 0.80, 0.81])
    # Paired differences 0.01, 0.02, 0.03: mean 0.02, variance 1e-4, over 3 seeds 3.333e-5; binomial
    # (0.82 * 0.18 + 0.80 * 0.20) / 10,000 = 3.076e-5; t(0.975, 2) = 4.3027; half width 4.3027 * 8.006e-3.
    low, high = difference_interval(a, b, 10_000)
    assert (low, high) == pytest.approx((0.02 - 0.034447, 0.02 + 0.034447), abs=1e-5)
    # One seed: the binomial term alone, with the normal quantile 1.96.
    low, high = difference_interval(np.array([0.5]), np.array([0.4]), 100)
    assert high - 0.1 == pytest.approx(1.959964 * math.sqrt((0.25 + 0.24) / 100), rel=1e-5)


def test_pareto_front_keeps_points_nobody_beats_in_energy_and_accuracy():
    points = pd.DataFrame({"energy_pj": [10, 20, 30, 15, 40], "test_accuracy": [0.5, 0.7, 0.6, 0.4, 0.9]})
    assert pareto_front(points)["energy_pj"].tolist() == [10, 20, 40]


def test_bisection_finds_the_dearest_search_within_the_target():
    calls = []

    def energy_at(w: float) -> float:
        calls.append(w)
        return 100 / (1 + w)

    # Bracket (1, 10); sqrt(10) = 3.162 -> 24.0 (fits, too far below 30); 10^0.25 = 1.778 -> 36.0 (too dear);
    # 10^0.375 = 2.371 -> 29.66 (within 5% below 30).
    assert bisect_energy_weight(energy_at, 30.0, (0.0, 1.0, 10.0), steps=3) == pytest.approx(10**0.375)
    assert calls[3:] == pytest.approx([10**0.5, 10**0.25, 10**0.375])
    assert bisect_energy_weight(energy_at, 200.0, (0.0, 1.0), steps=3) == 0.0  # λ = 0 already fits
    assert bisect_energy_weight(energy_at, 5.0, (0.0, 10.0), steps=1) == 40.0  # widened 4x: 100/41 fits
    with pytest.raises(EenasError, match="reaches 5 pJ"):
        bisect_energy_weight(energy_at, 5.0, (0.0, 10.0), steps=0)


def _sweep() -> SweepResult:
    runs = []
    for seed, (mac, binary, enos_hi, enos_lo) in enumerate([(0.80, 0.50, 0.81, 0.60), (0.82, 0.52, 0.83, 0.64)]):
        runs += [Run("single", seed, _result("mac8/digital", mac, 100.0)),
                 Run("single", seed, _result("binary/cim", binary, 10.0)),
                 Run("enos", seed, _result("enos λ=0", enos_hi, 90.0), energy_weight=0.0),
                 Run("matched", seed, _result("enos λ=0", enos_hi, 90.0), energy_weight=0.0, target="mac8/digital"),
                 Run("matched", seed, _result("enos λ=3", enos_lo, 9.0), energy_weight=3.0, target="binary/cim")]
    return SweepResult(tuple(runs), test_images=10_000)


def test_iso_energy_table_pairs_each_single_operator_network_with_its_matched_search():
    iso = _sweep().iso_energy().set_index("single")
    assert iso.loc["binary/cim", "enos_energy_weights"] == "3 3"
    assert iso.loc["binary/cim", "difference_points"] == pytest.approx(11.0)  # (0.60 + 0.64 - 0.50 - 0.52) / 2
    assert iso.loc["mac8/digital", "difference_points"] == pytest.approx(1.0)
    # Differences 0.01 and 0.01: no seed spread, so only the binomial term remains (t with 1 degree of freedom).
    half = 12.7062 * math.sqrt((0.82 * 0.18 + 0.81 * 0.19) / 10_000)
    assert iso.loc["mac8/digital", "ci_high_points"] == pytest.approx(100 * (0.01 + half), rel=1e-4)


def test_summary_and_envelope_average_over_seeds():
    sweep = _sweep()
    summary = sweep.summary().set_index("network")
    assert summary.loc["mac8/digital", "test_accuracy_mean"] == pytest.approx(0.81)
    assert summary.loc["mac8/digital", "test_accuracy_std"] == pytest.approx(math.sqrt(2e-4))
    assert summary.loc["enos λ=0", "seeds"] == 2 and "enos λ=3" not in summary.index  # matched runs stay apart
    envelope = sweep.envelope()
    singles = envelope[envelope["family"] == "single"]
    assert singles["network"].tolist() == ["binary/cim", "mac8/digital"]
    enos = envelope[envelope["family"] == "enos"]
    assert enos["energy_pj"].tolist() == [9.0, 90.0] and enos["test_accuracy"].tolist() == pytest.approx([0.62, 0.82])
    assert enos["network"].iloc[0] == "ENOS matched to binary/cim"  # at 90: the λ=0 grid point or its match, tied


def test_a_diverged_training_is_left_out_of_the_means_and_counted_under_its_network():
    diverged = RunResult("mf/cim", math.nan, math.nan, (), 0.0, {"diverged": "loss is nan"})
    sweep = SweepResult((*_sweep().runs, Run("single", 0, _result("mf/cim", 0.3, 50.0)), Run("single", 1, diverged)),
                        test_images=10_000)
    summary = sweep.summary().set_index("network")
    assert summary.loc["mf/cim", "seeds"] == 1 and summary.loc["mf/cim", "diverged"] == 1
    assert summary.loc["mf/cim", "test_accuracy_mean"] == pytest.approx(0.3)
    assert summary.loc["mac8/digital", "diverged"] == 0
    assert sorted(sweep.iso_energy()["single"]) == ["binary/cim", "mac8/digital", "mf/cim"]  # one row per network


def test_a_match_with_a_different_energy_weight_per_seed_is_one_envelope_point_over_both_seeds():
    """Seed 0 matches with λ=0, seed 1 with λ=1: the envelope point averages both, not one seed per λ."""
    runs = []
    for seed, (weight, accuracy, energy) in enumerate([(0.0, 0.70, 50.0), (1.0, 0.60, 30.0)]):
        runs += [Run("single", seed, _result("shift/digital", 0.5, 60.0)),
                 Run("matched", seed, _result(f"enos λ={weight:g}", accuracy, energy), energy_weight=weight,
                     target="shift/digital")]
    enos = SweepResult(tuple(runs), test_images=10_000).envelope().query("family == 'enos'")
    assert enos["energy_pj"].tolist() == [40.0] and enos["test_accuracy"].tolist() == pytest.approx([0.65])


def test_sweep_cli_writes_tables_figure_and_reuses_its_cache(tmp_path: Path, monkeypatch, capsys):
    from eenas.cli import main

    out = tmp_path / "sweep"
    args = ["eenas", "enos", "sweep", *tiny_sweep_args(tmp_path, "0,1"), "--cache-dir", str(tmp_path / "cache")]
    monkeypatch.setattr(sys, "argv", [*args, "--out", str(out)])
    main()
    points = pd.read_csv(out / "sweep.csv")
    per_seed = points[points["seed"] == 0]
    assert list(per_seed["kind"]) == ["enos", "enos", "single", "matched", "single", "matched"]
    # λ = 100 put every layer on binary/cim, so it is the baseline's assignment: trained once, the same accuracy.
    same = per_seed.set_index("network").loc[["enos λ=100", "binary/cim"], "test_accuracy"]
    assert same.iloc[0] == same.iloc[1]
    assert set(points["seed"]) == {0, 1}
    assert points["test_accuracy"].between(0, 1).all() and points["val_accuracy"].between(0, 1).all()
    # λ = 100 drives every layer to the cheaper candidate's network energy or below λ = 0's.
    assert per_seed["energy_pj"].iloc[1] <= per_seed["energy_pj"].iloc[0]
    matched = points[points["kind"] == "matched"]
    single_energy = points[points["kind"] == "single"].set_index(["network", "seed"])["energy_pj"]
    for _, row in matched.iterrows():  # never more energy than the network it is matched to
        assert row["energy_pj"] <= single_energy[(row["target"], row["seed"])] + 1e-9
    summary = pd.read_csv(out / "summary.csv")
    assert (summary["seeds"] == 2).all()
    diagnostics = pd.read_csv(out / "search_diagnostics.csv")
    assert list(diagnostics["energy_weight"]) == [0, 100] and (diagnostics["seeds"] == 2).all()
    assert diagnostics["operator_quality"].between(0, 1).all()
    for name in ("summary.md", "iso_energy.csv", "iso_energy.md", "envelope.csv", "sweep.png", "candidate_shares.csv",
                 "search_diagnostics.md",
                 "seed_0/lambda_0/assignment.json", "seed_1/lambda_100/layers.md",
                 "seed_1/single/binary_cim/assignment.json"):
        assert (out / name).stat().st_size > 0, name
    assert (out / "sweep.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    first = capsys.readouterr().out

    monkeypatch.setattr(sys, "argv", [*args, "--out", str(tmp_path / "again")])
    main()
    assert pd.read_csv(tmp_path / "again" / "sweep.csv").equals(points)
    assert capsys.readouterr().out.split("results in")[0] == first.split("results in")[0]
