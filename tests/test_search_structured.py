"""The structured predictor: exact where every head is known, stand-ins corrected by matched head pairs
otherwise, and no training (hand-made per-sample stats on a tiny synthetic space, no pipeline)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from eenas.arch import ExitConfig, Precision
from eenas.errors import EenasError
from eenas.scoring import ExitStats, route
from eenas.search import SearchConfig, SearchSpace, ThresholdGrid
from eenas.search.structured import StructuredPredictor, corrected_correctness, new_predictor
from tests.conftest import run_eenas, search_config_from_command_line, small_search_config, start_search

P8, P4 = Precision(8, 8), Precision(4, 4)
N = 400  # samples
SPACE = SearchSpace("synthetic", 0.25, heads=("gap_fc", "pool_fc"), mounts=(2, 4, 6), bits=(8, 4), max_exits=3,
                    thresholds=ThresholdGrid(0.5, 0.9, 0.1).values)


def _stats(seed: int, accuracy: float) -> ExitStats:
    """One exit's row: confidences spread over (0.1, 1), exactly ``accuracy * N`` samples right."""
    rng = np.random.default_rng(seed)
    correct = np.zeros(N, dtype=bool)
    correct[rng.choice(N, int(round(accuracy * N)), replace=False)] = True
    return ExitStats(rng.uniform(0.1, 1.0, (1, N)), correct[None])


class FakeEvaluator:
    """The evaluator's read side over fixed stats; asking for a head it does not know is a test failure."""

    def __init__(self, stats: dict, known: set) -> None:
        self.all, self.known = stats, set(known)
        self.finals = {P8: _stats(100, 0.9), P4: _stats(101, 0.85)}

    def head_stats(self, head, split="val"):
        assert head in self.known, f"the predictor read an unknown head {head}"
        return self.all[head]

    def final_stats(self, p, split="val"):
        return self.finals[p]

    def exact(self, arch) -> tuple[float, np.ndarray]:
        heads = [(arch.quant.backbone, e.after_block, e.head, arch.quant.exits) for e in arch.exits]
        rows = [self.all[h] for h in heads] + [self.finals[arch.quant.backbone]]
        out = route(ExitStats(np.concatenate([r.confidence for r in rows]), np.concatenate([r.correct for r in rows])),
                    [e.threshold for e in arch.exits])
        return out.accuracy, out.exit_ratios


def _bank(depends_on_precision: bool) -> dict:
    """Every head of SPACE; without ``depends_on_precision`` a head's outputs depend on its mount and type only."""
    bank = {}
    for pb, mount, kind, pe in SPACE.head_bank():
        seed = 10 * mount + SPACE.heads.index(kind)
        if depends_on_precision:
            seed += 1000 * (pb == P4) + 2000 * (pe == P4)
        bank[(pb, mount, kind, pe)] = _stats(seed, 0.5 + 0.05 * mount)
    return bank


def _genome(exits, pb=P8, pe=P4) -> np.ndarray:
    return SPACE.encode(SPACE.arch(tuple(ExitConfig(m, k, t) for m, k, t in exits), pb.weights, pe.weights))


def test_a_candidate_of_known_heads_is_scored_exactly():
    bank = _bank(depends_on_precision=True)
    evaluator = FakeEvaluator(bank, set(list(bank)[::2]))
    predictor = StructuredPredictor(SPACE, evaluator).fit()
    known = sorted(evaluator.known, key=str)
    X = np.array([SPACE.encode(SPACE.arch((ExitConfig(h[1], h[2], t),), h[0].weights, h[3].weights))
                  for h, t in zip(known, [0.5, 0.7, 0.9] * 10)])
    prediction = predictor.predict(X)
    for x, acc, ratios, spread in zip(X, prediction.accuracy, prediction.exit_ratios, prediction.accuracy_std):
        exact_acc, exact_ratios = evaluator.exact(SPACE.decode(x))
        assert acc == exact_acc and np.array_equal(ratios, exact_ratios) and spread == 0


def test_a_missing_head_whose_twin_is_trained_is_predicted_exactly():
    """Outputs do not depend on precision here, so a head at another precision is an exact twin: the learned
    distance picks it, the matched pairs say precision changes nothing, and the prediction is the exact score."""
    bank = _bank(depends_on_precision=False)
    missing = {(P4, 6, "gap_fc", P4), (P4, 4, "pool_fc", P4)}
    evaluator = FakeEvaluator(bank, set(bank) - missing)
    predictor = StructuredPredictor(SPACE, evaluator).fit()
    x = _genome([(2, "pool_fc", 0.6), (4, "pool_fc", 0.8), (6, "gap_fc", 0.7)], pb=P4, pe=P4)
    prediction = predictor.predict(x)
    exact_acc, exact_ratios = evaluator.exact(SPACE.decode(x))
    assert prediction.accuracy[0] == pytest.approx(exact_acc, abs=1e-12)
    assert np.allclose(prediction.exit_ratios[0], exact_ratios, atol=1e-12)
    assert prediction.accuracy_std[0] > 0  # two stand-ins: uncertain, unlike an exact candidate


def test_the_correction_follows_matched_pairs_golden_numbers():
    """At mount 2, 4 exit bits cost 10 points (0.70 against 0.80); mount 4 at 8 exit bits has 0.90, so a
    stand-in for mount 4 at 4 bits has 0.80 standalone accuracy, whichever donor is nearer (mount 4 at 8 bits
    moved by the 4-bit pair's -0.10, or mount 2 at 4 bits moved by the mount pair's +0.10)."""
    bank = {(P8, 2, "gap_fc", P8): _stats(1, 0.80), (P8, 2, "gap_fc", P4): _stats(2, 0.70),
            (P8, 4, "gap_fc", P8): _stats(3, 0.90)}
    evaluator = FakeEvaluator(bank, set(bank))
    predictor = StructuredPredictor(SPACE, evaluator).fit()
    standin, spread = predictor.standin((P8, 4, "gap_fc", P4))
    assert standin.correct.mean() == pytest.approx(0.80, abs=1e-12)
    assert spread > 0 and standin.confidence.shape == (1, N)
    assert ((standin.correct >= 0) & (standin.correct <= 1)).all()


def test_the_corrected_correctness_follows_confidence_golden_numbers():
    """Four samples, confidences 0.9, 0.6 (wrong) and 0.8, 0.2 (right).  To 0.75 accuracy one wrong sample's worth
    is moved in proportion to confidence: 0.9/1.5 and 0.6/1.5.  To 0.25, one right sample's worth in proportion to
    doubt: 0.2/1.0 and 0.8/1.0.  Shares over 1 are capped and the rest goes to the others."""
    correct, confidence = np.array([0, 0, 1, 1]), np.array([0.9, 0.6, 0.8, 0.2])
    assert np.allclose(corrected_correctness(correct, confidence, 0.75), [0.6, 0.4, 1, 1])
    assert np.allclose(corrected_correctness(correct, confidence, 0.25), [0, 0, 0.8, 0.2])
    assert np.allclose(corrected_correctness(correct, confidence, 0.5), correct)
    capped = corrected_correctness(np.array([0, 0, 0, 1]), np.array([0.9, 0.05, 0.05, 0.5]), 0.75)
    assert np.allclose(capped, [1, 0.5, 0.5, 1])  # 2 samples' worth: the sure one saturates at 1


def test_the_stand_in_routes_like_the_head_it_stands_in_for():
    """Heads whose confidence and correctness both follow one latent difficulty per sample (a better head is right
    mostly where it is sure): a stand-in built from a worse or a better donor, with the true head's accuracy and
    log-odds shift, routes within 2 points of the true head at every threshold; moving correctness evenly over the
    samples (the old correction) was biased low by up to 5 points on the same data."""
    rng = np.random.default_rng(0)
    n = 5000
    difficulty = rng.normal(size=n)

    def head(quality: float) -> ExitStats:
        right = rng.random(n) < 1 / (1 + np.exp(-(quality - difficulty + rng.normal(scale=0.7, size=n))))
        sure = 1 / (1 + np.exp(-(1.2 * (quality - difficulty) + rng.normal(scale=0.7, size=n) - 0.5)))
        return ExitStats((0.1 + 0.9 * sure)[None], right[None])

    def logit(p: np.ndarray) -> np.ndarray:
        return np.log(p / (1 - p))

    final = head(3.0)

    def routed(exit_stats: ExitStats, threshold: float) -> float:
        both = ExitStats(np.vstack([exit_stats.confidence, final.confidence]),
                         np.vstack([exit_stats.correct, final.correct]).astype(float))
        return route(both, [threshold]).accuracy

    for donor_quality, true_quality in ((0.0, 1.5), (1.5, 0.0), (0.5, 1.0)):
        donor, true = head(donor_quality), head(true_quality)
        shift = logit(true.confidence).mean() - logit(donor.confidence).mean()
        confidence = 1 / (1 + np.exp(-(logit(donor.confidence) + shift)))
        standin = ExitStats(confidence, corrected_correctness(donor.correct, confidence, true.correct.mean()))
        for threshold in (0.5, 0.7, 0.9):
            assert routed(standin, threshold) == pytest.approx(routed(true, threshold), abs=0.02), \
                (donor_quality, true_quality, threshold)


def test_new_predictor_names_and_unknown_name():
    evaluator = FakeEvaluator(_bank(False), set())
    assert new_predictor("structured", SPACE, evaluator, 0).name == "structured"
    assert type(new_predictor("trees", SPACE, evaluator, 0)).__name__ == "Predictor"
    with pytest.raises(EenasError, match="--predictor: unknown predictor 'forest'"):
        new_predictor("forest", SPACE, evaluator, 0)


@pytest.mark.parametrize(("args", "message"), [
    (["--mounts", "2,99"], "--mounts: 99 is not a mount point of mobilenet_v2"),
    (["--mounts", "4,2"], "--mounts: 4,2 must be increasing"),
    (["--mounts", "2,x"], "--mounts: '2,x' is not a comma-separated list of integers"),
    (["--predictor", "forest"], "--predictor: unknown predictor 'forest' (known: structured, trees)"),
])
def test_bad_mounts_and_predictor_are_one_line_errors(tmp_path, monkeypatch, capsys, args, message):
    out = run_eenas(monkeypatch, capsys, "search", "--dataset", "synthetic", "--budget", "tiny", "--out",
                    tmp_path / "run", *args)
    assert out.code == 2
    lines = out.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"eenas: error: {message}")
    assert not (tmp_path / "run").exists()


def test_mounts_reach_the_space_and_bound_the_default_max_exits(monkeypatch, tmp_path):
    cfg = search_config_from_command_line(monkeypatch, "--mounts", "1,3,5", "--predictor", "structured", "--out",
                                          str(tmp_path / "run"))
    assert cfg.mounts == (1, 3, 5) and cfg.max_exits == 3 and cfg.predictor == "structured"
    assert cfg.to_dict()["mounts"] == [1, 3, 5] and cfg.to_dict()["predictor"] == "structured"
    default = SearchConfig.create("synthetic", "tiny")
    assert default.predictor == "trees" and "predictor" not in default.to_dict()  # runs saved before --predictor
    structured = SearchConfig.create("synthetic", "tiny", predictor="structured")
    assert structured.to_dict()["predictor"] == "structured"


@pytest.mark.parametrize("kind", ["structured", "trees"])
def test_the_search_loop_runs_with_either_predictor(kind, tmp_path, cache_dir):
    """The loop does not care which predictor it has: each fits and picks candidates; predictor.csv names it."""
    result = start_search(small_search_config(predictor=kind), tmp_path / "run", cache_dir).run()
    names = set(pd.read_csv(result.out / "predictor.csv")["predictor"].dropna())
    assert names == ({"structured"} if kind == "structured" else {"random_forest", "extra_trees"} & names)
    assert names
    assert len(result.front) and result.holdout is not None and len(result.holdout.points)


def test_archs_differing_only_in_thresholds_share_one_exact_cost():
    """The evaluator's cost cache ignores thresholds, which the cost model never reads."""
    from eenas.hardware import cost_arch
    from eenas.search.evaluator import Evaluator

    evaluator = Evaluator(None, "edge_tpu_quad")
    a, b, c = (SPACE.decode(_genome([(2, "gap_fc", t), (6, "pool_fc", 0.9)])) for t in (0.5, 0.7, 0.5))
    assert evaluator.cost(a) is evaluator.cost(b) is evaluator.cost(c) and a != b
    assert evaluator.cost(a) == cost_arch(a, "edge_tpu_quad", None) == cost_arch(b, "edge_tpu_quad", None)
    other = SPACE.decode(_genome([(2, "gap_fc", 0.5)]))
    assert evaluator.cost(other) is not evaluator.cost(a)


def test_a_population_of_trained_candidates_still_yields_untrained_ones(tmp_path, cache_dir):
    """Once NSGA-II's population holds only candidates already evaluated, the selection adds random candidates
    with an untrained head instead of returning nothing (the loop used to stop learning there)."""
    run = start_search(small_search_config(), tmp_path / "run", cache_dir)
    run.step()  # the initial sample
    problem = run.problem(run.fit_predictor(0))
    population = np.array([r.genome for r in run.archive])
    chosen, predicted, free = run.strategy.select(problem, population, 2, seed=1)
    assert len(chosen) == 2 and not len(free)
    assert all(run.evaluator.missing(run.space.decode(x)) for x in chosen)
    assert set(predicted) == {run.space.genome(x) for x in chosen}
    again, _, _ = run.strategy.select(problem, population, 2, seed=1)
    assert np.array_equal(chosen, again)  # seeded: the same run picks the same


def test_exploration_plants_the_heads_no_candidate_has_trained_yet(tmp_path, cache_dir):
    """Late in a search nearly every head is known and random genomes hold only those: exploration then plants
    the remaining heads (at their mount and precisions) into random genomes, so it never runs dry."""
    from eenas.search.evaluator import HeadId

    run = start_search(small_search_config(), tmp_path / "run", cache_dir)
    space, evaluator = run.space, run.evaluator
    bank = [HeadId._make(h) for h in space.head_bank()]
    last, failing = bank[len(bank) // 2], bank[0]
    evaluator.known.update(h for h in bank if h not in (last, failing))
    evaluator.failed[failing] = "diverged"
    planted = run.strategy.planted(8, seed=3)
    assert len(planted) == 1  # the one head neither trained nor failed, once
    (x,) = planted
    arch = space.decode(x)
    assert evaluator.missing(arch) == [last] and space.genome(x) == tuple(x)
    assert 1 <= len(arch.exits) <= space.max_exits
    assert [p.tolist() for p in run.strategy.planted(8, seed=3)] == [x.tolist()]  # seeded
    evaluator.known.add(last)
    assert run.strategy.planted(8, seed=3) == []
