import numpy as np
import pytest
import torch

from eenas.arch import Arch, BackboneConfig, ExitConfig
from eenas.hardware import cost_arch
from eenas.scoring import ExitStats, live_arch, route, score, top1


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


def test_live_arch_drops_the_exits_no_sample_leaves_at_and_ends_where_the_last_takes_the_rest():
    """Hand-built routing: exit 5 takes no sample, exit 7 takes every sample left, so exit 9 and the classifier
    are dead weight; the live network keeps exits 3 and 7 and ends at 7, with the same routing on this split."""
    labels = torch.tensor([0, 1, 0, 1])
    logits = [_logits([(0.95, 0), (0.60, 0), (0.70, 1), (0.55, 1)]),  # @3, 0.9: sample 0 leaves (right)
              _logits([(0.80, 0), (0.85, 1), (0.70, 0), (0.60, 0)]),  # @5, 0.9: none
              _logits([(0.90, 0), (0.70, 1), (0.65, 1), (0.80, 1)]),  # @7, 0.6: 1 (right), 2 (wrong), 3 (right)
              _logits([(0.99, 0), (0.99, 1), (0.99, 0), (0.99, 1)]),  # @9, 0.5: nobody reaches it
              _logits([(0.90, 0), (0.90, 1), (0.90, 0), (0.90, 1)])]  # classifier: always right
    exits = (ExitConfig(3, "pool_fc", 0.9), ExitConfig(5, "gap_fc", 0.9), ExitConfig(7, "gap_fc", 0.6, overlap=True),
             ExitConfig(9, "gap_fc", 0.5))
    arch = Arch("synthetic", BackboneConfig(width_mult=0.25), exits)
    stats = ExitStats.from_logits(logits, labels)
    outcome = route(stats, [e.threshold for e in exits])
    np.testing.assert_allclose(outcome.exit_ratios, [0.25, 0.0, 0.75, 0.0, 0.0])

    live, ratios = live_arch(arch, outcome.exit_ratios)
    assert live.exits == (ExitConfig(3, "pool_fc", 0.9), ExitConfig(7, "gap_fc", 0.0, final=True))
    assert ratios == (0.25, 0.75) and live.ends_at_exit and live.n_outputs == 2
    assert not live.exits[-1].overlap  # nothing runs after a final exit
    again = route(stats.select([0, 2]), [e.threshold for e in live.exits])  # the classifier row stays last
    np.testing.assert_allclose(again.exit_ratios, [0.25, 0.75, 0.0])
    s = score(again, cost_arch(live))
    assert s.exit_ratios == (0.25, 0.75) and s.accuracy == outcome.accuracy == 0.75 and s.static_accuracy == 1.0
    assert s.ratios_as(arch) == (0.25, 0.0, 0.75, 0.0, 0.0)
    assert live_arch(live, again.exit_ratios) == (live, ratios)  # a live network is its own
    # Elsewhere (e.g. on test) a sample exit 7 is unsure of leaves there too: the network ends at exit 7.
    unsure = ExitStats(np.array([[0.6], [0.55], [0.9]]), np.ones((3, 1), dtype=bool))
    np.testing.assert_allclose(route(unsure, [0.9, 0.6]).exit_ratios, [0.0, 0.0, 1.0])
    np.testing.assert_allclose(route(unsure, [e.threshold for e in live.exits]).exit_ratios, [0.0, 1.0, 0.0])


def test_live_arch_keeps_the_classifier_when_samples_reach_it_and_drops_exits_nobody_leaves_at():
    exits = (ExitConfig(3, "pool_fc", 0.9), ExitConfig(7, "gap_fc", 0.8))
    arch = Arch("synthetic", BackboneConfig(width_mult=0.25), exits)
    assert live_arch(arch, [0.0, 0.5, 0.5]) == (Arch("synthetic", arch.backbone, exits[1:]), (0.5, 0.5))
    assert live_arch(arch, [0.0, 0.0, 1.0]) == (arch.static(), (1.0,))
    ended = live_arch(arch, [0.5, 0.5, 0.0])[0]
    assert ended.exits == (exits[0], ExitConfig(7, "gap_fc", 0.0, final=True))
    unrouted = route(ExitStats(np.zeros((3, 2)), np.ones((3, 2), dtype=bool)), [0.9, 0.8])  # all reach the classifier
    with pytest.raises(ValueError, match="samples leave at 3 exits, but the cost prices 2"):
        score(unrouted, cost_arch(ended))
