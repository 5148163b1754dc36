"""The search diagnostics of a sweep, on hand-made runs with hand-derived numbers."""

from __future__ import annotations

import math

import pytest

from eenas.enos.diagnostics import candidate_shares, search_diagnostics
from eenas.enos.search import LayerChoice, RunResult
from eenas.enos.sweep import Run

LABELS = ("a/digital", "b/digital")


def _layer(name: str, macs: int, pick: str, p_pick: float) -> LayerChoice:
    probabilities = {label: (p_pick if label == pick else 1 - p_pick) for label in LABELS}
    entropy = -sum(p * math.log(p) for p in probabilities.values())
    operator, mode = pick.split("/")
    return LayerChoice(name, "conv", macs, operator, mode, 1.0, probabilities, entropy)


def _enos(seed: int, picks: tuple[str, str], val: float, supernet_val: float) -> Run:
    layers = (_layer("l0", 300, picks[0], 0.75), _layer("l1", 100, picks[1], 0.5))
    result = RunResult("enos λ=0", val - 0.01, 2.0, layers, 0.0, {"supernet_val_accuracy": supernet_val}, val)
    return Run("enos", seed, result, energy_weight=0.0)


def _single(seed: int, label: str, test: float) -> Run:
    return Run("single", seed, RunResult(label, test, 1.0, (), 0.0, val_accuracy=test))


def test_diagnostics_read_confidence_agreement_retraining_gain_and_operator_quality():
    runs = [_enos(0, ("a/digital", "a/digital"), 0.80, 0.70), _enos(1, ("a/digital", "b/digital"), 0.90, 0.90),
            _single(0, "a/digital", 0.9), _single(1, "a/digital", 0.8), _single(0, "b/digital", 0.5),
            _single(1, "b/digital", 0.5)]
    row = search_diagnostics(runs).iloc[0]
    assert row["seeds"] == 2 and row["uniform_top_probability"] == 0.5
    assert row["mean_top_probability"] == pytest.approx((0.75 + 0.5) / 2)
    h = -(0.75 * math.log(0.75) + 0.25 * math.log(0.25)) / math.log(2)  # layer 0; layer 1 is uniform (1.0)
    assert row["normalised_entropy"] == pytest.approx((h + 1.0) / 2)
    assert row["layers_all_seeds_agree"] == 0.5  # layer 0 agrees, layer 1 does not
    assert row["retraining_gain_points"] == pytest.approx(5.0)  # (+10 + 0) / 2
    # a/digital's networks: 0.85 on average, b/digital's 0.5; seed 0 all a (0.85), seed 1 = (300·0.85 + 100·0.5)/400
    assert row["operator_quality"] == pytest.approx((0.85 + (300 * 0.85 + 100 * 0.5) / 400) / 2)
    assert row["best_single_test_accuracy"] == pytest.approx(0.85)
    assert row["retrained_test_accuracy"] == pytest.approx(0.84)


def test_candidate_shares_are_shares_of_the_macs_over_seeds():
    runs = [_enos(0, ("a/digital", "a/digital"), 0.8, 0.7), _enos(1, ("b/digital", "a/digital"), 0.8, 0.7)]
    shares = candidate_shares(runs).iloc[0]
    assert shares["a/digital"] == pytest.approx(500 / 800) and shares["b/digital"] == pytest.approx(300 / 800)
