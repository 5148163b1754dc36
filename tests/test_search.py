"""Search: genome, operators, constraints, reproducibility and kill-and-resume (synthetic, tiny)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from pymoo.core.population import Population
from pymoo.operators.crossover.ux import UX

from eenas.arch import arch_from_dict
from eenas.errors import EenasError
from eenas.search import SearchConfig, SearchRun, SearchSpace, write_results
from eenas.search.evaluator import Constraints
from eenas.search.operators import ExitRepair, ExitSampling, ResetMutation
from eenas.search.problem import SurrogateProblem

SMALL = {"initial": 4, "iterations": 2, "per_iteration": 2, "population": 8, "generations": 3}


def small_config(**kwargs) -> SearchConfig:
    return SearchConfig.create("synthetic", "tiny", overrides=SMALL, bits=(8, 4), **kwargs)


class _Stub:
    def __init__(self, space):
        self.space = space


def _random_genomes(space, n, seed=0):
    rng = np.random.default_rng(seed)
    problem = _Stub(space)
    X = ExitSampling(expected_exits=6).do(problem, n, random_state=rng).get("X")
    X = ResetMutation()._do(problem, X, random_state=rng)
    return problem, rng, X


def test_genome_round_trip():
    space = SearchSpace("synthetic", 0.25)
    problem, rng, X = _random_genomes(space, 200)
    X = ExitRepair()._do(problem, X, random_state=rng)
    for x in X:
        arch = space.decode(x)
        assert np.array_equal(space.encode(arch), x)
        assert arch_from_dict(arch.to_dict()) == arch  # a valid arch file


def test_repair_always_yields_a_valid_arch_after_crossover_and_mutation():
    space = SearchSpace("synthetic", 0.25, max_exits=3)
    problem, rng, X = _random_genomes(space, 60, seed=1)
    X[:10, : space.n_mounts] = 0  # no exit at all
    X[10:20, : space.n_mounts] = 1  # every mount point
    parents = Population.new(X=ExitRepair()._do(problem, X, random_state=rng))
    children = UX()._do(problem, np.stack([X[:30], X[30:]]), random_state=rng)
    for x in ExitRepair()._do(problem, np.vstack([*children, X]), random_state=rng):
        arch = space.decode(x)
        assert 1 <= len(arch.exits) <= 3
        assert np.array_equal(space.canonical(x), x)
    assert len(parents) == 60


def test_constraints_are_normalised_and_signed():
    c = Constraints(max_accuracy_drop=1.0, max_latency=1000, max_energy=10)
    assert c.violations(0.005, 500, 20) == pytest.approx([-0.5, -0.5, 1.0])
    assert len(Constraints().violations(0, 0, 0)) == 1


@pytest.mark.parametrize("overrides, message", [
    ({"population": 1}, "--population must be at least 2"),
    ({"generations": 0}, "--generations must be at least 1"),
])
def test_bad_sizes_are_clear_errors(overrides, message):
    with pytest.raises(EenasError, match=message):
        SearchConfig.create("synthetic", "tiny", overrides=overrides)


def test_unknown_hardware_and_budget_are_clear_errors():
    with pytest.raises(EenasError, match="hardware|accelerator"):
        SearchConfig.create("synthetic", "tiny", hardware="tpu_v9")
    with pytest.raises(EenasError, match="unknown budget"):
        SearchConfig.create("synthetic", "huge")


def test_impossible_latency_bound_is_refused(tmp_path, cache_dir):
    run = SearchRun(small_config(max_latency=10), tmp_path / "run", cache_dir=cache_dir, device="cpu")
    with pytest.raises(EenasError, match="--max-latency 10 cycles is impossible"):
        run.run()


@pytest.fixture(scope="module")
def finished(tmp_path_factory, cache_dir):
    out = tmp_path_factory.mktemp("search") / "run"
    run = SearchRun(small_config(), out, cache_dir=cache_dir, device="cpu")
    run.run()
    write_results(run)
    return run


def test_outputs_of_a_finished_run(finished):
    out = finished.out
    for name in ("config.json", "archive.csv", "pareto.csv", "pareto.png", "predictor.csv", "checkpoint.json"):
        assert (out / name).exists(), name
    archive = pd.read_csv(out / "archive.csv")
    assert len(archive) >= SMALL["initial"] and set(archive["iteration"]) >= {0, 1, 2}
    history = pd.read_csv(out / "predictor.csv")
    assert list(history["iteration"]) == [0, 1, 2]
    assert history["predictor"].iloc[1] in ("random_forest", "extra_trees")
    pareto = pd.read_csv(out / "pareto.csv")
    assert len(pareto) >= 1 and pareto["feasible"].all()
    assert (pareto["accuracy_drop"] <= 1.0 + 1e-9).all()
    assert pareto["average_et"].is_monotonic_increasing and pareto["accuracy"].is_monotonic_increasing
    ratios = pareto["exit_ratios"].str.split(";").apply(lambda v: sum(map(float, v)))
    assert np.allclose(ratios, 1.0)


def test_same_seed_same_front_even_with_a_warm_cache(finished, tmp_path, cache_dir):
    again = SearchRun(small_config(), tmp_path / "again", cache_dir=cache_dir, device="cpu")
    again.run()
    write_results(again)
    assert again.pipeline.trained == []  # everything came from the cache
    assert (tmp_path / "again" / "pareto.csv").read_text() == (finished.out / "pareto.csv").read_text()


def test_kill_and_resume_gives_the_same_front(finished, tmp_path, cache_dir):
    out = tmp_path / "killed"
    first = SearchRun(small_config(), out, cache_dir=cache_dir, device="cpu")
    first.step()  # the process dies after its first checkpoint
    resumed = SearchRun(small_config(), out, resume=True, cache_dir=cache_dir, device="cpu")
    assert resumed.state.iteration == 1
    resumed.run()
    write_results(resumed)
    assert (out / "pareto.csv").read_text() == (finished.out / "pareto.csv").read_text()


def test_non_empty_run_dir_needs_resume_or_force(finished, cache_dir):
    with pytest.raises(EenasError, match="--resume to continue it or --force"):
        SearchRun(small_config(), finished.out, cache_dir=cache_dir)
    with pytest.raises(EenasError, match="different 'seed'"):
        SearchRun(small_config(seed=5), finished.out, resume=True, cache_dir=cache_dir)


def test_a_diverging_candidate_is_recorded_as_failed(tmp_path, cache_dir, monkeypatch):
    from eenas.train.loops import TrainingDiverged
    from eenas.train.pipeline import Pipeline

    real = Pipeline.exit_logits

    def flaky(self, p_backbone, mount, head, p_exit):
        if head == "dsconv_pool_fc":
            raise TrainingDiverged("loss is nan")
        return real(self, p_backbone, mount, head, p_exit)

    monkeypatch.setattr(Pipeline, "exit_logits", flaky)
    run = SearchRun(small_config(seed=3), tmp_path / "flaky", cache_dir=cache_dir, device="cpu")
    run.run()
    archive = pd.DataFrame(run.state.archive)
    failed = archive[archive["status"] != "ok"]
    assert len(failed) and failed["exits"].str.contains("dsconv_pool_fc").all()
    assert (archive["status"] == "ok").any()


def test_surrogate_scores_exactly_what_the_run_knows(finished):
    problem = SurrogateProblem(finished.space, finished.evaluator, None, finished.constraints)
    ok = [r for r in finished.state.archive if r["status"] == "ok"][:3]
    X = np.array([[int(v) for v in r["genome"].split("-")] for r in ok])
    scores, exact = problem.scores(X)
    assert exact.all()
    assert [s.accuracy for s in scores] == pytest.approx([r["accuracy"] for r in ok])
