import numpy as np
import pytest
import torch

from eenas.arch import Arch, BackboneConfig, ExitConfig
from eenas.hardware import cost_arch
from eenas.scoring import ExitStats, route, score, top1


def _logits(conf_pred):
    """Two-class logits whose softmax max equals ``conf`` for the predicted class."""
    rows = []
    for conf, pred in conf_pred:
        z = np.log(conf / (1 - conf))
        rows.append([z, 0.0] if pred == 0 else [0.0, z])
    return torch.tensor(rows)


def test_route_matches_hand_computation():
    labels = torch.tensor([0, 1, 0, 1])
    exit1 = _logits([(0.95, 0), (0.60, 0), (0.92, 1), (0.70, 1)])  # confident on samples 0 and 2
    exit2 = _logits([(0.99, 0), (0.85, 1), (0.99, 0), (0.55, 0)])  # confident on 0, 1, 2
    final = _logits([(0.90, 0), (0.90, 1), (0.90, 0), (0.90, 1)])  # always right
    stats = ExitStats.from_logits([exit1, exit2, final], labels)
    out = route(stats, [0.9, 0.8])
    # Sample 0 and 2 leave at exit 1 (0 right, 2 wrong); sample 1 at exit 2 (right); sample 3 at the final (right).
    np.testing.assert_allclose(out.exit_ratios, [0.5, 0.25, 0.25])
    np.testing.assert_allclose(out.exit_accuracy, [0.5, 1.0, 1.0])
    np.testing.assert_allclose(out.standalone_accuracy, [0.5, 0.75, 1.0])  # exit 2 misses only sample 3
    assert out.accuracy == pytest.approx(0.75)


def test_thresholds_of_one_send_everything_to_the_final_exit():
    labels = torch.tensor([0, 1, 1])
    logits = [torch.randn(3, 2), torch.randn(3, 2)]
    out = route(ExitStats.from_logits(logits, labels), [1.0])
    np.testing.assert_allclose(out.exit_ratios, [0, 1])
    assert np.isnan(out.exit_accuracy[0])
    assert out.accuracy == pytest.approx(top1(logits[1], labels))


def test_select_keeps_the_final_exit_and_checks_counts():
    stats = ExitStats(np.random.rand(4, 5), np.zeros((4, 5), dtype=bool))
    sub = stats.select([2])
    np.testing.assert_array_equal(sub.confidence, stats.confidence[[2, 3]])
    with pytest.raises(ValueError):
        route(sub, [0.5, 0.6])


def test_score_prices_a_routed_network_with_the_cost_s_aggregates():
    labels = torch.tensor([0, 1, 0, 1])
    exits = [_logits([(0.95, 0), (0.60, 0), (0.92, 1), (0.70, 1)]),
             _logits([(0.99, 0), (0.85, 1), (0.99, 0), (0.55, 0)]),
             _logits([(0.90, 0), (0.90, 1), (0.90, 1), (0.90, 1)])]  # the final misses sample 2
    outcome = route(ExitStats.from_logits(exits, labels), [0.9, 0.8])
    cost = cost_arch(Arch("synthetic", BackboneConfig(width_mult=0.25),
                          (ExitConfig(3, "pool_fc", 0.9), ExitConfig(7, "gap_fc", 0.8))))
    s = score(outcome, cost)
    assert s.exit_ratios == (0.5, 0.25, 0.25) and s.accuracy == 0.75
    assert s.static_accuracy == 0.75 and s.accuracy_drop == 0.0  # the final classifier alone, every sample
    cycles, energy = [e.cum_latency_cycles for e in cost.exits], [e.cum_energy_pj for e in cost.exits]
    assert s.average_latency == pytest.approx(0.5 * cycles[0] + 0.25 * cycles[1] + 0.25 * cycles[2])
    assert s.average_energy == pytest.approx(0.5 * energy[0] + 0.25 * energy[1] + 0.25 * energy[2])
    assert s.average_et == pytest.approx(sum(r * c * e for r, c, e in zip(s.exit_ratios, cycles, energy)))
    assert s.et_ratio == pytest.approx(s.average_et / cost.static_et) and s.et_ratio < 1
