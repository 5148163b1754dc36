"""Why a search chose what it chose: how sure it was, what it picked, and what its picks are worth alone.

Read from a sweep's runs (nothing is trained): per energy weight, over layers and seeds,

* ``search_diagnostics``: the mean top probability and the entropy of the layers' candidate
  distributions (normalised: 1 is uniform), whether the seeds agree on each layer, the gap
  between the discretised supernet and the retrained network on validation, and the
  *operator quality* of the choice: the MAC-weighted mean test accuracy of the single-operator
  networks of the chosen candidates.  A search that learns accuracy picks, at λ = 0,
  candidates whose own networks are the accurate ones.
* ``candidate_shares``: the share of the network's MACs that each candidate gets.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from eenas.enos.search import LayerChoice, RunResult

if TYPE_CHECKING:  # the sweep imports this module
    from eenas.enos.sweep import Run


def _label(choice: LayerChoice) -> str:
    return f"{choice.operator}/{choice.mode}"


def _grid_runs(runs: Sequence[Run]) -> dict[float, list[Run]]:
    by_weight: dict[float, list[Run]] = defaultdict(list)
    for run in runs:
        if run.kind == "enos" and run.result.layers:  # a diverged search or training has no layers
            by_weight[run.energy_weight].append(run)
    return dict(sorted(by_weight.items()))


def _single_accuracy(runs: Sequence[Run]) -> dict[str, float]:
    """Test accuracy of each single-operator network, the mean over seeds."""
    accuracies: dict[str, list[float]] = defaultdict(list)
    for run in runs:
        if run.kind == "single" and not math.isnan(run.result.test_accuracy):
            accuracies[run.result.label].append(run.result.test_accuracy)
    return {label: float(np.mean(v)) for label, v in accuracies.items()}


def _operator_quality(result: RunResult, single: dict[str, float]) -> float:
    macs = np.array([c.macs for c in result.layers], dtype=float)
    accuracy = np.array([single.get(_label(c), math.nan) for c in result.layers])
    return float((macs * accuracy).sum() / macs.sum())


def search_diagnostics(runs: Sequence[Run]) -> pd.DataFrame:
    """One row per energy weight of the grid (``runs``: a sweep's :class:`~eenas.enos.sweep.Run` records)."""
    single = _single_accuracy(runs)
    best = max(single.values(), default=math.nan)
    rows = []
    for weight, group in _grid_runs(runs).items():
        results = [r.result for r in group]
        candidates = len(results[0].layers[0].probabilities)
        top = [max(c.probabilities.values()) for r in results for c in r.layers]
        entropy = [c.entropy / math.log(candidates) for r in results for c in r.layers]
        picks = np.array([[_label(c) for c in r.layers] for r in results])
        agree = float((picks == picks[0]).all(axis=0).mean()) if len(results) > 1 else math.nan
        gap = [r.val_accuracy - r.details["supernet_val_accuracy"] for r in results]
        rows.append({
            "energy_weight": weight, "seeds": len(results),
            "mean_top_probability": float(np.mean(top)), "uniform_top_probability": 1.0 / candidates,
            "normalised_entropy": float(np.mean(entropy)),
            "layers_all_seeds_agree": agree,
            "supernet_val_accuracy": float(np.mean([r.details["supernet_val_accuracy"] for r in results])),
            "retrained_val_accuracy": float(np.mean([r.val_accuracy for r in results])),
            "retraining_gain_points": 100 * float(np.mean(gap)),
            "operator_quality": float(np.mean([_operator_quality(r, single) for r in results])),
            "best_single_test_accuracy": best,
            "retrained_test_accuracy": float(np.mean([r.test_accuracy for r in results])),
        })
    return pd.DataFrame(rows)


def candidate_shares(runs: Sequence[Run]) -> pd.DataFrame:
    """Per energy weight, the share of the network's MACs on each candidate (over seeds), in table order."""
    rows = []
    for weight, group in _grid_runs(runs).items():
        labels = list(group[0].result.layers[0].probabilities)
        macs = dict.fromkeys(labels, 0.0)
        for run in group:
            for c in run.result.layers:
                macs[_label(c)] += c.macs
        total = sum(macs.values())
        rows.append({"energy_weight": weight, **{label: m / total for label, m in macs.items()}})
    return pd.DataFrame(rows)
