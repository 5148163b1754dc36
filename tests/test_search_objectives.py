"""Objectives and strategies of the search: the registries, tail latency, and runs through each seam
(synthetic, tiny)."""

from __future__ import annotations

import sys
from typing import ClassVar

import numpy as np
import pandas as pd
import pytest
from pymoo.util.nds.non_dominated_sorting import NonDominatedSorting

from eenas.cli import main
from eenas.errors import EenasError
from eenas.hardware.network import ArchCost, ExitCost
from eenas.search.objectives import OBJECTIVES, get_objectives, hypervolume, latency_quantile, objective_matrix
from eenas.search.strategies import get_strategy, strategy_names
from eenas.search.strategies.base import REGISTRY, Proposal, Strategy
from tests.conftest import run_eenas, small_search_config, start_search


def _cost(latencies: list[int]) -> ArchCost:
    exits = tuple(ExitCost(i if i < len(latencies) - 1 else None, "h", False, t, 1.0, 1, t, float(t), 1, 0.0)
                  for i, t in enumerate(latencies))
    return ArchCost(exits, latencies[-1], float(latencies[-1]), 1)


def test_tail_latency_is_the_least_exit_latency_whose_cumulative_ratio_reaches_the_quantile():
    cost = _cost([100, 200, 400])
    assert latency_quantile(cost, [0.95, 0.04, 0.01], 0.99) == 200
    assert latency_quantile(cost, [0.95, 0.04, 0.01], 0.95) == 100
    assert latency_quantile(cost, [0.5, 0.0, 0.5], 0.99) == 400
    assert latency_quantile(cost, [0.1 + 0.2, 0.69, 0.01], 0.99) == 200  # float sums that fall just short still count


def test_objective_names_are_checked_with_one_line_errors():
    assert [o.name for o in get_objectives(("accuracy", "average_et"))] == ["accuracy", "average_et"]
    for names, message in [(("accuracy", "speed"), "unknown objective 'speed'"),
                           (("accuracy",), "at least two objectives"),
                           (("accuracy", "energy", "accuracy"), "'accuracy' is given twice")]:
        with pytest.raises(EenasError, match=message):
            get_objectives(names)


@pytest.mark.parametrize("args, message", [
    (["--objectives", "accuracy,speed"], "--objectives: unknown objective 'speed'"),
    (["--objectives", "accuracy"], "--objectives: a search needs at least two objectives"),
    (["--objectives", "energy,energy"], "--objectives: 'energy' is given twice"),
    (["--strategy", "annealing"], "--strategy: unknown strategy 'annealing' (known: exhaustive, progressive, random)"),
    (["--strategy", "random", "--exhaustive"], "--exhaustive is --strategy exhaustive"),
])
def test_bad_objectives_and_strategies_are_one_line_errors(monkeypatch, capsys, args, message):
    monkeypatch.setattr(sys, "argv", ["eenas", "search", "--dataset", "synthetic", "--budget", "tiny", *args])
    with pytest.raises(SystemExit) as exited:
        main()
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(f"eenas: error: {message}") and err.count("\n") == 1


def test_a_strategy_is_one_subclass_found_by_name():
    assert {"progressive", "exhaustive", "random"} <= set(strategy_names())

    class Nothing(Strategy):
        name: ClassVar[str] = "nothing"

        def propose(self, problem, seed):
            return Proposal(np.empty((0, 1), dtype=int), {}, np.empty((0, 1), dtype=int))

    try:
        assert get_strategy("nothing") is Nothing and "nothing" in strategy_names()
    finally:
        del REGISTRY["nothing"]


def test_the_default_hypervolume_is_the_one_of_accuracy_and_et(tmp_path, cache_dir):
    from pymoo.indicators.hv import HV

    run = start_search(small_search_config(), tmp_path / "run", cache_dir)
    run.step()
    front, reference = run.archive.pareto(), run.reference_cost()
    F = np.array([[1 - r.score.accuracy, r.score.average_et / reference.static_et] for r in front])
    assert run.archive.hypervolume(reference) == float(HV(ref_point=np.array([1.0, 1.5]))(F))
    assert (objective_matrix(run.objectives, [r.score for r in front])
            == [[-r.score.accuracy, r.score.average_et] for r in front]).all()


@pytest.fixture(scope="module")
def three(tmp_path_factory, cache_dir):
    """A finished search on accuracy, average energy and p99 latency."""
    cfg = small_search_config(objectives=("accuracy", "energy", "p99_latency"), sizes={"holdout": 3})
    return start_search(cfg, tmp_path_factory.mktemp("three") / "run", cache_dir).run()


def test_a_three_objective_search_writes_its_front_and_pairwise_figures(three):
    out = three.out
    for a, b in [("accuracy", "energy"), ("accuracy", "p99_latency"), ("energy", "p99_latency")]:
        assert (out / f"pareto_{a}_{b}.png").stat().st_size > 0
    assert not (out / "pareto.png").exists()
    front = pd.read_csv(out / "pareto.csv")
    assert len(front) == len(three.front) >= 1 and front["feasible"].all()
    assert '"objectives": [\n      "accuracy",\n      "energy",\n      "p99_latency"\n    ]' in \
        (out / "config.json").read_text()
    points = pd.read_csv(out / "holdout_points.csv")
    assert {"energy", "predicted_energy", "p99_latency", "predicted_p99_latency"} <= set(points.columns)
    assert {"energy_tau", "p99_latency_tau"} <= set(pd.read_csv(out / "holdout.csv")["metric"])


def test_pareto_csv_carries_the_values_the_front_was_chosen_by(three, cache_dir):
    front = pd.read_csv(three.out / "pareto.csv")
    run = start_search(small_search_config(objectives=("accuracy", "energy", "p99_latency"), sizes={"holdout": 3}),
                       three.out, cache_dir, resume=True)
    records = run.archive.pareto()
    p99 = OBJECTIVES["p99_latency"]
    assert front["p99_latency"].tolist() == pytest.approx([p99.read(r.score) for r in records])
    assert front["energy"].tolist() == pytest.approx(front["average_energy"].tolist())
    assert {"energy", "p99_latency"} <= set(three.front.columns)  # what the command prints too


def test_the_report_of_a_three_objective_run_shows_its_projections_and_objectives(three, tmp_path, capsys,
                                                                                 monkeypatch):
    done = run_eenas(monkeypatch, capsys, "report", three.out, "--out", tmp_path)
    assert done.code == 0, done.err
    page = (tmp_path / "report.md").read_text()
    for a, b in [("accuracy", "energy"), ("accuracy", "p99_latency"), ("energy", "p99_latency")]:
        assert f"](pareto_{a}_{b}.png)" in page and (tmp_path / f"pareto_{a}_{b}.png").stat().st_size > 0
    assert "](pareto.png)" not in page and not (tmp_path / "pareto.png").exists()
    assert "objectives accuracy, energy, p99_latency;" in page
    header = next(line for line in page.splitlines() if line.startswith("|   k |"))
    assert "p99_latency" in header and "energy" in header


def test_the_three_objective_front_is_non_dominated_on_its_objectives(three, tmp_path, cache_dir):
    cfg = small_search_config(objectives=("accuracy", "energy", "p99_latency"), sizes={"holdout": 3})
    run = start_search(cfg, three.out, cache_dir, resume=True)  # the finished run, read back
    ok = [r for r in run.archive.ok if r.feasible]
    F = objective_matrix(run.objectives, [r.score for r in ok])
    best = {ok[i].genome for i in NonDominatedSorting().do(F, only_non_dominated_front=True)}
    assert {r.genome for r in run.archive.pareto()} <= best
    p99 = OBJECTIVES["p99_latency"]
    assert all(p99.read(r.score) >= min(e.cum_latency_cycles for e in r.score.cost.exits) for r in ok)


def test_random_search_evaluates_random_candidates_without_a_predictor(tmp_path, cache_dir):
    result = start_search(small_search_config(strategy="random"), tmp_path / "run", cache_dir).run()
    archive = pd.read_csv(result.out / "archive.csv")
    assert set(archive["source"]) == {"initial", "selected"}
    assert (archive["iteration"] > 0).sum() == 2 * 2  # --per-iteration 2 in each of 2 iterations
    assert set(pd.read_csv(result.out / "predictor.csv")["predictor"].dropna()) == {"none"}
    assert result.holdout is None and len(result.front)


def test_the_command_line_takes_strategy_objectives_and_the_p99_bound(monkeypatch, tmp_path):
    from tests.conftest import search_config_from_command_line

    cfg = search_config_from_command_line(monkeypatch, "--strategy", "random", "--objectives",
                                          "accuracy, energy,p99_latency", "--max-p99-latency-cycles", "5e6",
                                          "--out", str(tmp_path / "run"))
    assert cfg.strategy == "random" and cfg.objectives == ("accuracy", "energy", "p99_latency")
    assert cfg.max_p99_latency == 5e6
    assert cfg.to_dict()["strategy"] == "random" and cfg.to_dict()["max_p99_latency"] == 5e6
    default = small_search_config().to_dict()
    assert not {"strategy", "objectives", "max_p99_latency"} & set(default)  # earlier runs resume unchanged


def test_the_p99_bound_holds_on_the_front_and_an_impossible_one_is_refused(tmp_path, cache_dir):
    run = start_search(small_search_config(), tmp_path / "free", cache_dir)
    run.step()
    p99 = OBJECTIVES["p99_latency"]
    values = sorted(p99.read(r.score) for r in run.archive.ok)
    bound = values[len(values) // 2]
    result = start_search(small_search_config(max_p99_latency=bound), tmp_path / "bound", cache_dir).run()
    archive = pd.read_csv(result.out / "archive.csv")
    assert len(result.front) and archive["feasible"].any() and not archive["feasible"].all()
    bounded = start_search(small_search_config(max_p99_latency=bound), tmp_path / "bound", cache_dir, resume=True)
    assert all(p99.read(r.score) <= bound for r in bounded.archive.pareto())
    with pytest.raises(EenasError, match="--max-p99-latency-cycles 1 cycles is impossible"):
        start_search(small_search_config(max_p99_latency=1), tmp_path / "never", cache_dir).run()


def test_hypervolume_of_three_objectives_is_pymoo_s(three, cache_dir):
    cfg = small_search_config(objectives=("accuracy", "energy", "p99_latency"), sizes={"holdout": 3})
    run = start_search(cfg, three.out, cache_dir, resume=True)
    scores, reference = [r.score for r in run.archive.pareto()], run.reference_cost()
    value = hypervolume(run.objectives, scores, reference)
    assert 0 < value <= 1.0 * 1.5 * 1.5
    assert pd.read_csv(three.out / "predictor.csv")["hypervolume"].iloc[-1] == pytest.approx(value)


def test_a_run_whose_candidates_all_fail_explores_at_random_instead_of_fitting_nothing(tmp_path, cache_dir,
                                                                                      monkeypatch):
    from eenas.search.evaluator import Evaluator

    seen = []

    def fail(self, arch):
        seen.append(arch)
        return None, "failed: HeadDead: every head of this test is dead"

    monkeypatch.setattr(Evaluator, "try_score", fail)
    result = start_search(small_search_config(), tmp_path / "run", cache_dir).run()  # the session's backbones
    assert result.front.empty
    cfg = small_search_config().search
    assert len(seen) == cfg.initial + cfg.iterations * cfg.per_iteration  # every iteration still proposed
