"""Search: genome, operators, constraints, reproducibility, kill-and-resume, the holdout and
``eenas evaluate`` of its Pareto archs (synthetic, tiny)."""

from __future__ import annotations

import json
import logging
import sys
import types

import numpy as np
import pandas as pd
import pytest
from pymoo.core.population import Population
from pymoo.operators.crossover.ux import UX

from eenas.arch import ExitConfig, arch_from_dict, load_arch
from eenas.cli import main
from eenas.errors import EenasError
from eenas.evaluate import evaluate_arch
from eenas.hardware import cost_arch
from eenas.search import SearchConfig, SearchSpace, ThresholdGrid
from eenas.search.evaluator import Constraints
from eenas.search.holdout import kendall_tau_b, metrics
from eenas.search.operators import ExitRepair, ExitSampling, ResetMutation
from eenas.search.predictor import kendall
from eenas.search.problem import SurrogateProblem
from eenas.search.space import exits_text, genome_text
from eenas.search.structured import new_predictor
from eenas.search.tracking import SCALARS
from eenas.train.pipeline import FLOAT
from tests.conftest import SEARCH_SEED, SMALL_SEARCH, run_eenas, small_search_config, start_search


def small_config(**kwargs) -> SearchConfig:
    return small_search_config(**{"seed": SEARCH_SEED, **kwargs})


def _random_genomes(space, n, seed=0):
    rng = np.random.default_rng(seed)
    X = ExitSampling(space, expected_exits=6).do(None, n, random_state=rng).get("X")
    return rng, ResetMutation(space)._do(None, X, random_state=rng)


def _genomes(table: pd.DataFrame) -> np.ndarray:
    return np.array([[int(v) for v in g.split("-")] for g in table["genome"]])


@pytest.mark.parametrize("grid", [ThresholdGrid(), ThresholdGrid(0.5, 0.95, 0.05), ThresholdGrid(0.3, 0.99, 0.003)])
def test_genome_round_trip(grid):
    space = SearchSpace("synthetic", 0.25, thresholds=grid.values)
    rng, X = _random_genomes(space, 200)
    X = ExitRepair(space)._do(None, X, random_state=rng)
    for x in X:
        arch = space.decode(x)
        assert np.array_equal(space.encode(arch), x)
        assert arch_from_dict(arch.to_dict()) == arch  # a valid arch file


def test_threshold_grid_values_and_errors():
    assert ThresholdGrid().values[:3] == (0.1, 0.11, 0.12) and ThresholdGrid().values[-1] == 0.99
    assert len(ThresholdGrid().values) == 90 and str(ThresholdGrid()) == "0.1:0.99:0.01"
    assert ThresholdGrid.parse("0.5:0.99:0.01").values == tuple(round(0.50 + 0.01 * i, 2) for i in range(50))
    assert ThresholdGrid.parse("0.7:0.95:0.05").values == (0.7, 0.75, 0.8, 0.85, 0.9, 0.95)  # the reference's range
    for text, message in [("0.5:0.9", "is not START:STOP:STEP"), ("0:0.9:0.1", "needs 0 < START <= STOP <= 1"),
                          ("0.9:0.5:0.1", "needs 0 < START"), ("0.1:0.9:0", "STEP must be positive"),
                          ("0.1:0.9:1e-5", "80001 thresholds, at most 1000")]:
        with pytest.raises(EenasError, match=message):
            ThresholdGrid.parse(text)


def test_bad_threshold_grid_is_one_line_on_the_command_line(monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["eenas", "search", "--dataset", "synthetic", "--thresholds", "0.9:0.5:0.1"])
    with pytest.raises(SystemExit) as exited:
        main()
    assert exited.value.code == 2
    assert capsys.readouterr().err == "eenas: error: --thresholds 0.9:0.5:0.1: needs 0 < START <= STOP <= 1\n"


def test_holdout_metrics_golden_numbers():
    true, predicted = np.array([1.0, 2.0, 3.0, 4.0]), np.array([1.0, 3.0, 2.0, 4.0])
    # one discordant pair of six: tau = (5 - 1) / 6; RMSE = sqrt((0 + 1 + 1 + 0) / 4)
    assert kendall_tau_b(predicted, true) == pytest.approx(4 / 6) == kendall(predicted, true)
    points = pd.DataFrame({"accuracy": true, "predicted_accuracy": predicted, "average_et": true,
                           "predicted_average_et": true, "et_ratio": true, "predicted_et_ratio": true + 0.5,
                           "new_heads": [0, 1, 2, 0]})
    m = metrics(points, np.random.default_rng(0)).set_index("metric")
    assert m.loc["accuracy_tau", "value"] == pytest.approx(4 / 6)
    assert m.loc["accuracy_rmse", "value"] == pytest.approx(np.sqrt(0.5))
    assert m.loc["average_et_tau", ["value", "ci_low", "ci_high"]].tolist() == [1.0, 1.0, 1.0]  # in every resample
    assert m.loc["et_ratio_rmse", ["value", "ci_low", "ci_high"]].tolist() == pytest.approx([0.5] * 3)
    assert m.loc["accuracy_rmse", "ci_low"] <= m.loc["accuracy_rmse", "value"] <= m.loc["accuracy_rmse", "ci_high"]
    assert (m["candidates"] == 4).all() and (m["with_new_heads"] == 2).all()
    rng = np.random.default_rng(1)
    ties_a, ties_b = rng.integers(0, 4, (200, 9)).astype(float), rng.integers(0, 4, (200, 9)).astype(float)
    assert kendall_tau_b(ties_a, ties_b) == pytest.approx([kendall(a, b) for a, b in zip(ties_a, ties_b)],
                                                          nan_ok=True)  # scipy's tau-b, ties and all


def test_repair_always_yields_a_valid_arch_after_crossover_and_mutation():
    space = SearchSpace("synthetic", 0.25, max_exits=3)
    rng, X = _random_genomes(space, 60, seed=1)
    space.exit_genes(X[:10])[:] = 0  # no exit at all
    space.exit_genes(X[10:20])[:] = 1  # every mount point
    repair = ExitRepair(space)
    parents = Population.new(X=repair._do(None, X, random_state=rng))
    children = UX()._do(None, np.stack([X[:30], X[30:]]), random_state=rng)
    for x in repair._do(None, np.vstack([*children, X]), random_state=rng):
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
    run = start_search(small_config(max_latency=10), tmp_path / "run", cache_dir)
    with pytest.raises(EenasError, match="--max-latency 10 cycles is impossible"):
        run.run()


class FakeSummaryWriter:
    """Stands in for TensorBoard's SummaryWriter (not installed): records what the search writes."""

    made: list[FakeSummaryWriter] = []

    def __init__(self, logdir: str) -> None:
        self.logdir, self.scalars, self.closed = logdir, [], False
        FakeSummaryWriter.made.append(self)

    def add_scalar(self, tag: str, value: float, step: int) -> None:
        self.scalars.append((tag, value, step))

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True


def fake_tensorboard(monkeypatch: pytest.MonkeyPatch) -> None:
    module = types.ModuleType("torch.utils.tensorboard")
    module.SummaryWriter = FakeSummaryWriter
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", module)


@pytest.fixture(scope="module")
def tracked(small_search, tmp_path_factory, cache_dir):
    """The session's small search run again (all cached) logging to a (fake) TensorBoard writer, and what its run()
    returned."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        fake_tensorboard(monkeypatch)
        run = start_search(small_config(), tmp_path_factory.mktemp("tracked") / "run", cache_dir,
                           tensorboard=tmp_path_factory.mktemp("tensorboard"))
        return run, run.run()


def test_run_alone_leaves_a_complete_run_directory(small_search):
    run, result = small_search
    out = result.out
    pareto = pd.read_csv(out / "pareto.csv")
    expected = {"config.json", "checkpoint.json", "archive.csv", "predictor.csv", "holdout.csv", "holdout_points.csv",
                "pareto.csv", "pareto.png", "events.jsonl",
                *(f"pareto/{kind}_{k}.json" for k in pareto["k"] for kind in ("arch", "stats"))}
    assert {str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()} == expected
    assert result.front.to_dict("list") == pareto[result.front.columns].to_dict("list")
    assert result.statics == run.static_points() and result.holdout is not None
    archive = pd.read_csv(out / "archive.csv")
    assert len(archive) >= SMALL_SEARCH["initial"] and set(archive["iteration"]) >= {0, 1, 2}
    history = pd.read_csv(out / "predictor.csv")
    assert list(history["iteration"]) == [0, 1, 2]
    names = {"structured": ("structured",), "trees": ("random_forest", "extra_trees")}
    assert history["predictor"].iloc[1] in names[run.cfg.predictor]
    assert len(pareto) >= 1 and pareto["feasible"].all()
    assert (pareto["accuracy_drop"] <= 1.0 + 1e-9).all()
    assert pareto["average_et"].is_monotonic_increasing and pareto["accuracy"].is_monotonic_increasing
    ratios = pareto["exit_ratios"].astype(str).str.split(";").apply(lambda v: sum(map(float, v)))  # "1": an int
    assert np.allclose(ratios, 1.0)


def test_events_log_every_iteration_and_trained_job_as_strict_json(small_search):
    run, _ = small_search

    def refuse(constant):
        raise ValueError(f"{constant} is not JSON")

    events = [json.loads(line, parse_constant=refuse) for line in (run.out / "events.jsonl").read_text().splitlines()]
    kinds = [e["event"] for e in events]
    iterations = [e for e in events if e["event"] == "iteration"]
    assert [e["iteration"] for e in iterations] == [0, 1, 2] and kinds[-2:] == ["holdout", "finished"]
    assert [e["hypervolume"] for e in iterations] == pd.read_csv(run.out / "predictor.csv")["hypervolume"].tolist()
    assert sum(len(e["evaluated"]) for e in iterations) == len(run.archive)
    assert iterations[0]["cv_tau"] is None and all(e["time"].endswith("+00:00") for e in events)
    trained = [e["entry"] for e in events if e["event"] == "trained"]
    assert trained == list(run.pipeline.cache.trained) and trained  # the fixture trains heads at least


def test_tensorboard_gets_each_iterations_values_from_the_events(small_search, tracked):
    run, result = tracked
    for name in ("pareto.csv", "archive.csv", "holdout.csv"):  # tracking changes no result
        assert (run.out / name).read_bytes() == (small_search[0].out / name).read_bytes(), name
    (writer,) = [w for w in FakeSummaryWriter.made if w.logdir == str(run.run_dir.listeners[0].logdir)]
    assert writer.closed
    events = [json.loads(line) for line in (run.out / "events.jsonl").read_text().splitlines()]
    expected = [(f"search/{name}", e[name], e["iteration"]) for e in events if e["event"] == "iteration"
                for name in SCALARS if e[name] is not None]
    assert writer.scalars == expected
    history = pd.read_csv(run.out / "predictor.csv")
    last = {tag: value for tag, value, step in writer.scalars if step == history["iteration"].iloc[-1]}
    assert last["search/hypervolume"] == history["hypervolume"].iloc[-1]
    assert last["search/true_evaluations"] == len(run.archive.ok)
    assert last["search/best_accuracy"] == result.front["accuracy"].max()
    assert last["search/best_et_ratio"] == result.front["et_ratio"].min()
    assert {tag for tag, _, step in writer.scalars if step == 0} == {  # no predictor before the initial sample
        f"search/{name}" for name in SCALARS if name not in ("cv_tau", "tau_new", "rmse_new", "et_tau_new")}


def test_tensorboard_without_the_package_is_one_line_before_any_training(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # import fails as when it is not installed
    monkeypatch.setattr(sys, "argv", ["eenas", "search", "--dataset", "synthetic", "--budget", "tiny", "--out",
                                      str(tmp_path / "run"), "--tensorboard", str(tmp_path / "tb")])
    with pytest.raises(SystemExit) as exited:
        main()
    assert exited.value.code == 2
    assert capsys.readouterr().err == ("eenas: error: --tensorboard needs the tensorboard package: "
                                       "pip install eenas[tensorboard]\n")
    assert not (tmp_path / "run").exists() and not (tmp_path / "tb").exists()


def test_same_seed_same_front_even_with_a_warm_cache_and_without_the_holdout(small_search, tmp_path, cache_dir):
    finished, _ = small_search
    assert finished.cfg.search.holdout == 8  # the tiny budget's
    again = start_search(small_config(sizes={"holdout": 0}), tmp_path / "again", cache_dir)
    result = again.run()
    assert again.pipeline.trained == []  # everything came from the cache
    assert result.holdout is None and not (tmp_path / "again" / "holdout.csv").exists()
    for name in ("pareto.csv", "archive.csv"):  # held-out evaluations enter neither the archive nor the front
        assert (tmp_path / "again" / name).read_text() == (finished.out / name).read_text()
    first = json.loads((finished.out / "config.json").read_text())["cache"]
    second = json.loads((tmp_path / "again" / "config.json").read_text())["cache"]
    assert first["trained"] and second["trained"] == []
    assert set(second["loaded"]) <= set(first["trained"]) | set(first["loaded"])
    assert {e.split("/")[0] for e in first["trained"]} >= {"backbone", "final", "head"}
    assert all((finished.pipeline.cache.root / f"{entry}.pt").exists() for entry in first["trained"])


def test_holdout_is_predicted_then_evaluated_outside_the_archive(small_search):
    finished, result = small_search
    points = pd.read_csv(finished.out / "holdout_points.csv")
    table = pd.read_csv(finished.out / "holdout.csv").set_index("metric")
    assert 2 <= len(points) <= 8 and not set(points["genome"]) & {genome_text(r.genome) for r in finished.archive}
    assert (points["new_heads"] > 0).sum() == table["with_new_heads"].iloc[0] >= 1
    X = _genomes(points)
    evaluator = finished.evaluator
    # The predictor the holdout used: fitted on the archive and on the heads the search had evaluated.
    known, evaluator.known = evaluator.known, {h for r in finished.archive.ok
                                               for h in evaluator.heads(finished.space.decode(r.genome))}
    predictor = new_predictor(finished.cfg.predictor, finished.space, evaluator, finished.cfg.seed)
    predicted = predictor.fit(*finished.archive.training_set()).predict(X).accuracy
    evaluator.known = known
    assert points["predicted_accuracy"].tolist() == pytest.approx(predicted.tolist())
    truth = [evaluator.score(finished.space.decode(x)) for x in X]
    assert points["accuracy"].tolist() == pytest.approx([t.accuracy for t in truth])
    assert points["average_et"].tolist() == pytest.approx([t.average_et for t in truth])
    assert table.loc["accuracy_rmse", "value"] == pytest.approx(
        np.sqrt(np.mean((points["predicted_accuracy"] - points["accuracy"]) ** 2)))
    assert table.loc["average_et_tau", "value"] == pytest.approx(
        kendall(points["predicted_average_et"].to_numpy(), points["average_et"].to_numpy()), nan_ok=True)
    assert result.holdout.summary().startswith(f"held-out predictor quality on {len(points)} random archs")


def test_evaluate_of_a_pareto_arch_trains_nothing_and_agrees_with_its_stats(small_search, cache_dir, monkeypatch,
                                                                           capsys, caplog):
    """The bug this guards: evaluate retrained everything at its default budget and seed, then overwrote stats_k."""
    finished, _ = small_search
    for k in sorted({0, len(pd.read_csv(finished.out / "pareto.csv")) - 1}):
        arch, stats = finished.out / "pareto" / f"arch_{k}.json", finished.out / "pareto" / f"stats_{k}.json"
        written = stats.read_bytes()
        assert json.loads(arch.read_text())["training"]["seed"] == SEARCH_SEED  # not the CLI's default
        caplog.clear()
        res = run_eenas(monkeypatch, capsys, "evaluate", "--arch", arch, "--cache-dir", cache_dir, "--device", "cpu",
                        "--json")
        assert res.code == 0, res.err
        warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
        assert "trained: nothing (all cached)" in res.out and not warnings and "WARNING" not in res.err
        assert stats.read_bytes() == written  # the search's own file is untouched
        ours = json.loads((finished.out / "pareto" / f"arch_{k}.eval.json").read_text())
        theirs = json.loads(written)
        assert ours.pop("written_by") == "eenas evaluate" and theirs.pop("written_by") == "eenas search"
        assert ours == theirs
        assert f"accuracy {theirs['accuracy']:.4f} (validation {theirs['val_accuracy']:.4f}" in res.out


def test_every_front_arch_is_its_live_network_and_evaluate_reproduces_its_stats(small_search):
    """Issue 32: no written arch holds an exit no validation sample leaves at, nor backbone after the last exit
    that takes every sample left; pareto.csv describes those archs, and evaluating one gives its stats_k.json."""
    finished, _ = small_search
    front = pd.read_csv(finished.out / "pareto.csv")
    pruned = 0
    for k, row in zip(front["k"], front.to_dict("records")):
        arch = load_arch(finished.out / "pareto" / f"arch_{k}.json")
        stats = json.loads((finished.out / "pareto" / f"stats_{k}.json").read_text())
        assert len(stats["val_exit_ratios"]) == arch.n_outputs and min(stats["val_exit_ratios"]) > 0
        assert [e["after_block"] for e in stats["exits"]][-1] == ("final" if not arch.ends_at_exit else
                                                                   arch.exits[-1].after_block)
        assert row["exits"] == exits_text(arch)
        ratios = [float(r) for r in str(row["exit_ratios"]).split(";")]
        assert ratios == pytest.approx(stats["val_exit_ratios"], rel=1e-5)
        assert row["accuracy"] == pytest.approx(stats["val_accuracy"])
        genome = finished.space.decode(_genomes(front.iloc[[k]])[0])
        pruned += arch.exits != genome.exits
        evaluation = json.loads(json.dumps(evaluate_arch(arch, finished.pipeline, weights=finished.cfg.weights)
                                           .to_json()))
        assert evaluation == {key: value for key, value in stats.items() if key != "written_by"}
    assert pruned  # the front holds a network the search cut down (else this test shows nothing)


def test_the_archive_round_trips_through_the_checkpoint_without_loss(small_search, cache_dir):
    finished, _ = small_search
    resumed = start_search(small_config(), finished.out, cache_dir, resume=True)
    assert resumed.archive.records == finished.archive.records  # every float, the scores' costs included
    assert json.dumps(resumed.state.history) == json.dumps(finished.state.history)
    assert resumed.archive.table().equals(finished.archive.table())
    assert resumed.archive.pareto() == finished.archive.pareto()
    X, ratios, accuracy = resumed.archive.training_set()
    assert [r.score.ratios_as(finished.space.decode(r.genome)) for r in finished.archive.ok] == \
        [tuple(r) for r in ratios]  # not the CSV's rounding


def test_a_failed_record_round_trips_too():
    from eenas.search.archive import Archive, Record

    space = SearchSpace("synthetic", 0.25)
    genome = space.genome(space.encode(space.arch((ExitConfig(3, "pool_fc", 0.5),), 8, 4)))
    archive = Archive(space, [Record(genome, 3, "selected", "failed: loss is nan", new_heads=2)])
    again = Archive.from_json(space, json.loads(json.dumps(archive.to_json())))
    assert again.records == archive.records and again.ok == [] and genome in again
    row = again.table().iloc[0]
    assert row["status"] == "failed: loss is nan" and pd.isna(row["accuracy"]) and not row["feasible"]
    with pytest.raises(ValueError, match="already in the archive"):
        again.add(archive.records[0])


def test_resumed_after_a_later_iteration_training_its_own_heads_gives_the_same_front(small_search, tmp_path):
    """Killed after iteration 1, so the resumed run starts NSGA-II from the restored population; the first
    session trains everything but the float backbone in a cache that holds only that, so the front is also the
    same when the QAT backbones and every head train in another order.  (The float pretraining is the first job of
    any run, and a second pretraining from scratch gives the same weights: test_pipeline's stepwise pipeline.)
    Without the holdout, which changes neither file
    (test_same_seed_same_front_even_with_a_warm_cache_and_without_the_holdout) but would train its archs' heads."""
    finished, _ = small_search
    out, fresh = tmp_path / "killed", tmp_path / "fresh-cache"
    float_entry = finished.pipeline.cache.path("backbone", finished.pipeline.backbone_key(FLOAT))
    (fresh / "backbone").mkdir(parents=True)
    (fresh / "backbone" / float_entry.name).write_bytes(float_entry.read_bytes())
    first = start_search(small_config(sizes={"holdout": 0}), out, fresh)
    first.step()
    first.step()  # the process dies after its second checkpoint
    assert first.pipeline.trained and first.state.population is not None
    assert {e for e in first.pipeline.trained if e.startswith("backbone")} == {"backbone w8a8", "backbone w4a4"}
    resumed = start_search(small_config(sizes={"holdout": 0}), out, fresh, resume=True)
    assert resumed.state.iteration == 2 and resumed.state.population == first.state.population
    assert resumed.rng.bit_generator.state == first.rng.bit_generator.state
    resumed.run()
    for name in ("pareto.csv", "archive.csv"):
        assert (out / name).read_text() == (finished.out / name).read_text(), name


def test_non_empty_run_dir_needs_resume_or_force(small_search, cache_dir):
    finished, _ = small_search
    with pytest.raises(EenasError, match="--resume to continue it or --force"):
        start_search(small_config(), finished.out, cache_dir)
    with pytest.raises(EenasError, match="different 'seed'"):
        start_search(small_config(seed=5), finished.out, cache_dir, resume=True)
    with pytest.raises(EenasError, match="different 'thresholds'"):
        start_search(small_config(thresholds=ThresholdGrid(0.5)), finished.out, cache_dir, resume=True)


def test_a_diverging_candidate_is_recorded_as_failed(tmp_path, cache_dir, monkeypatch):
    from eenas.train.loops import TrainingDiverged
    from eenas.train.pipeline import Pipeline

    real = Pipeline.exit_logits

    def flaky(self, p_backbone, mount, head, p_exit):
        if head == "dsconv_pool_fc":
            raise TrainingDiverged("loss is nan")
        return real(self, p_backbone, mount, head, p_exit)

    monkeypatch.setattr(Pipeline, "exit_logits", flaky)
    run = start_search(small_config(), tmp_path / "flaky", cache_dir)  # the finished run's backbones
    run.run()
    archive = run.archive.table()
    failed = archive[archive["status"] != "ok"]
    assert len(failed) and failed["exits"].str.contains("dsconv_pool_fc").all()
    assert (archive["status"] == "ok").any()


def test_a_serial_search_never_retrains_a_head_whose_training_diverged(tmp_path, cache_dir, monkeypatch):
    """As a cluster run remembers a head whose job kept failing, a serial run remembers one that diverged: a later
    iteration's candidate holding it fails at once, with the same reason, instead of training it again."""
    from collections import Counter

    from eenas.arch import Precision
    from eenas.train.loops import TrainingDiverged
    from eenas.train.pipeline import Pipeline

    real, calls = Pipeline.exit_logits, Counter()
    bad = (Precision(8, 8), 3, "pool_fc", Precision(8, 8))

    def diverges_once(self, *head):
        calls[head] += 1
        if head == bad and calls[head] == 1:  # a retry would succeed
            raise TrainingDiverged("head pool_fc@3: loss is nan in epoch 1")
        return real(self, *head)

    monkeypatch.setattr(Pipeline, "exit_logits", diverges_once)
    run = start_search(small_config(), tmp_path / "run", cache_dir)
    space = run.space

    def genomes(*exits: ExitConfig) -> np.ndarray:
        return np.array([space.encode(space.arch(exits, 8, 8))])

    run.evaluate(genomes(ExitConfig(3, "pool_fc", 0.5)), "initial", 0)
    run.evaluate(genomes(ExitConfig(3, "pool_fc", 0.6), ExitConfig(5, "gap_fc", 0.5)), "selected", 1)
    assert calls[bad] == 1 and sum(calls.values()) == 1  # the second candidate's other head is not trained either
    reason = "failed: TrainingDiverged: head pool_fc@3: loss is nan in epoch 1"
    assert [(r.iteration, r.status) for r in run.archive] == [(0, reason), (1, reason)]


def test_surrogate_scores_exactly_what_the_run_knows(small_search):
    finished, _ = small_search
    problem = SurrogateProblem(finished.space, finished.evaluator, None, finished.constraints)
    ok = finished.archive.ok[:3]
    scores, exact = problem.scores(np.array([r.genome for r in ok]))
    assert exact.all()
    assert scores == [r.score for r in ok]


def test_the_search_package_has_no_import_cycle():
    """Not even under TYPE_CHECKING: every module of eenas/search imports only modules below it."""
    import ast
    from graphlib import TopologicalSorter
    from pathlib import Path

    import eenas.search

    root = Path(eenas.search.__file__).parent
    graph = {}
    for path in root.glob("*.py"):
        if path.stem == "__init__":
            continue
        names = {node.module for node in ast.walk(ast.parse(path.read_text()))
                 if isinstance(node, ast.ImportFrom) and node.module}
        graph[path.stem] = {n.split(".")[-1] for n in names if n.startswith("eenas.search.")}
    assert graph["run"] >= {"rundir", "archive"} and "run" not in set().union(*graph.values())
    list(TopologicalSorter(graph).static_order())  # raises CycleError on a cycle


def test_the_space_builds_the_archs_the_search_costs_without_fake_genomes():
    space = SearchSpace("synthetic", 0.25, bits=(8, 4))
    x = space.encode(space.arch((ExitConfig(5, "gap_fc", 0.5),), 4, 8))
    assert space.exit_genes(x).tolist() == [0, 0, 0, 0, 1] + [0] * 12 and space.n_exits(x) == 1
    for bits in space.bits:  # the static cost does not depend on the exits
        with_exit = space.arch((ExitConfig(1, "pool_fc", 0.9),), bits, bits)
        assert cost_arch(space.static_arch(bits)).static_et == cost_arch(with_exit).static_et
        assert space.static_arch(bits).exits == ()
    firsts = space.first_exit_archs()
    assert len(firsts) == len(space.heads) * len(space.bits)
    assert {(a.exits[0].after_block, a.exits[0].head, a.quant.backbone.weights) for a in firsts} == \
        {(1, h, b) for h in space.heads for b in space.bits}


def test_an_empty_front_is_written_as_a_header(tmp_path):
    """Earlier versions crashed here: the empty table already had a 'k' column when 'k' was inserted."""
    from eenas.search.archive import COLUMNS, Archive
    from eenas.search.rundir import PARETO_COLUMNS, RunDir

    table = RunDir(tmp_path, {}).write_front(Archive(SearchSpace("synthetic", 0.25)), [])
    assert table.empty and list(table.columns) == ["k", *COLUMNS] and set(PARETO_COLUMNS) <= set(table.columns)
    assert (tmp_path / "pareto.csv").read_text() == ",".join(["k", *COLUMNS]) + "\n"
