"""``eenas search --exhaustive``: the head bank is trained once, and the front is the space's true front
(synthetic, tiny; a space small enough to enumerate)."""

from __future__ import annotations

import itertools
import json
import shutil

import numpy as np
import pandas as pd
import pytest

from eenas.errors import EenasError
from eenas.search import SearchSpace, ThresholdGrid
from eenas.train.pipeline import Pipeline
from tests.conftest import search_config_from_command_line, small_search_config, start_search

# One head type at 3 mount points on a one-core accelerator (mapping gene: overlap or not), 2 thresholds,
# one precision, at most 2 exits: 3 * 4 + 3 * 4 * 4 = 60 genomes and 3 heads.  The population (64) is larger
# than the space, so NSGA-II's population can hold every genome and its front cannot miss a true front member.
SPACE = {"hardware": "edge_tpu_single", "heads": ("gap_fc",), "mounts": (2, 4, 6), "bits": (8,), "max_exits": 2,
         "thresholds": ThresholdGrid(0.2, 0.5, 0.3), "max_accuracy_drop": 100.0}
SIZES = {"iterations": 2, "population": 64, "generations": 8}


def exhaustive_config(**kwargs):
    return small_search_config(sizes=SIZES, strategy="exhaustive", **{**SPACE, **kwargs})


def head_entries(run) -> list[str]:
    return [e for e in run.pipeline.cache.trained if e.startswith("head/")]


@pytest.fixture(scope="module")
def exhaustive(tmp_path_factory):
    """A finished exhaustive run in a cache of its own (so every head of its bank is trained by it)."""
    cache = tmp_path_factory.mktemp("exhaustive-cache")
    run = start_search(exhaustive_config(), tmp_path_factory.mktemp("exhaustive") / "run", cache)
    return run, run.run(), cache


def test_the_quick_space_has_272_heads_each_once():
    """docs/search.md's count: 17 mounts x 4 head types x 2 exit precisions x 2 backbone precisions."""
    bank = SearchSpace("cifar10", 0.5).head_bank()
    assert len(bank) == len(set(bank)) == 17 * 4 * 2 * 2 == 272


def test_every_head_is_trained_exactly_once_and_a_second_run_trains_nothing(exhaustive, tmp_path):
    run, result, cache = exhaustive
    bank = run.space.head_bank()
    assert len(bank) == 3 and run.evaluator.known == set(bank)
    assert len(head_entries(run)) == 3  # one cache entry per head, none twice (the cache keys are unique)
    events = [json.loads(line) for line in (result.out / "events.jsonl").read_text().splitlines()]
    assert [e["entry"] for e in events if e["event"] == "trained" and e["entry"].startswith("head/")] == \
        head_entries(run)
    bank_at = next(i for i, e in enumerate(events) if e["event"] == "head_bank")
    trained_before = sum(e["event"] == "trained" for e in events[:bank_at])  # the backbone too, in a fresh cache
    assert (events[bank_at]["heads"], events[bank_at]["trained"]) == (3, trained_before)
    assert [e["event"] for e in events].count("head_bank") == 1 and trained_before >= 3
    config = json.loads((result.out / "config.json").read_text())
    assert config["search"]["exhaustive"] is True and config["search"]["mounts"] == [2, 4, 6]
    history = pd.read_csv(result.out / "predictor.csv")
    assert list(history["predictor"].fillna("")) == ["", "exact", "exact"]
    archive = pd.read_csv(result.out / "archive.csv")
    assert set(archive["source"]) == {"free"} and (archive["new_heads"] == 0).all()
    assert result.holdout is None and not (result.out / "holdout.csv").exists()

    again = start_search(exhaustive_config(), tmp_path / "again", cache)
    assert again.run().front.to_dict("list") == result.front.to_dict("list")
    assert not again.pipeline.cache.trained


def test_a_run_resumed_after_the_head_bank_trains_nothing_and_ends_on_the_same_front(exhaustive, tmp_path):
    run, result, cache = exhaustive
    out = tmp_path / "killed"
    first = start_search(exhaustive_config(), out, cache)
    first.step()  # the head bank, then the process dies
    resumed = start_search(exhaustive_config(), out, cache, resume=True)
    resumed.run()
    assert not first.pipeline.cache.trained and not resumed.pipeline.cache.trained
    assert (out / "pareto.csv").read_text() == (result.out / "pareto.csv").read_text()


def _backbones_of(cache, tmp_path):
    """A cache holding only ``cache``'s backbones: a run in it trains the head bank itself."""
    shutil.copytree(cache / "backbone", tmp_path / "cache" / "backbone")
    return tmp_path / "cache"


def test_on_two_workers_the_head_bank_trains_on_the_cluster_and_the_front_is_the_same(exhaustive, tmp_path,
                                                                                      monkeypatch):
    pytest.importorskip("distributed")
    run, result, cache = exhaustive

    def refuse(*args):
        raise AssertionError("the client trained a head")

    monkeypatch.setattr(Pipeline, "_train_head", refuse)  # in this process only, not in the worker processes
    clustered = start_search(exhaustive_config(), tmp_path / "run", _backbones_of(cache, tmp_path), workers=2)
    clustered.run()
    assert head_entries(clustered) == head_entries(run)
    assert (clustered.out / "pareto.csv").read_bytes() == (result.out / "pareto.csv").read_bytes()


def test_a_head_bank_job_that_keeps_failing_stops_the_run_and_a_resume_trains_only_its_head(exhaustive, tmp_path,
                                                                                            monkeypatch):
    distributed = pytest.importorskip("distributed")
    run, result, cache = exhaustive
    out, mine, real = tmp_path / "run", _backbones_of(cache, tmp_path), Pipeline._train_head

    def faulty(self, p_backbone, mount, head, p_exit, key):
        if mount == 4:
            raise RuntimeError("worker lost")
        return real(self, p_backbone, mount, head, p_exit, key)

    monkeypatch.setattr(Pipeline, "_train_head", faulty)  # the in-process worker sees it
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as cl:
        first = start_search(exhaustive_config(), out, mine, scheduler=cl.scheduler_address)
        with pytest.raises(EenasError, match=r"head bank: 1 job\(s\) kept failing, e.g. gap_fc@4 w8a8 on the w8a8 "
                                             r"backbone \(RuntimeError: worker lost\)"):
            first.run()
    assert len(head_entries(first)) == 2
    monkeypatch.undo()
    resumed = start_search(exhaustive_config(), out, mine, resume=True)
    resumed.run()
    assert head_entries(resumed) == [e for e in head_entries(run) if e not in head_entries(first)]
    assert (out / "pareto.csv").read_bytes() == (result.out / "pareto.csv").read_bytes()


def test_the_front_is_the_brute_force_front_of_every_genome(exhaustive):
    """Every valid genome scored exactly, the non-dominated feasible set taken by pairwise comparison."""
    run, result, _ = exhaustive
    space = run.space
    m, n_thr, n_map = space.n_mounts, len(space.thresholds), 2 * space.cores
    genomes = []
    for heads in itertools.product(range(len(space.heads) + 1), repeat=m):
        active = [i for i in range(m) if heads[i]]
        if not 1 <= len(active) <= space.max_exits:
            continue
        for thr, mapping in itertools.product(itertools.product(range(n_thr), repeat=len(active)),
                                              itertools.product(range(n_map), repeat=len(active))):
            x = np.zeros(space.n_var, dtype=int)
            x[:m] = heads
            x[m + np.array(active)] = thr
            x[2 * m + np.array(active)] = mapping
            genomes.append(tuple(x))  # the bit genes stay 0: one precision
    assert len(genomes) == len(set(genomes)) == 60

    scores = [run.evaluator.score(space.decode(g)) for g in genomes]
    points = [(s.accuracy, s.average_et) for s in scores if run.constraints.feasible(s)]
    front = {p for p in points
             if not any(q[0] >= p[0] and q[1] <= p[1] and q != p for q in points)}
    found = set(zip(result.front["accuracy"], result.front["average_et"]))
    assert len(front) > 1  # a front, not a single point (its size depends on the CPU's float rounding)
    assert found == front


def test_the_command_line_flag_reaches_the_run_config(monkeypatch, tmp_path):
    """``--exhaustive`` sets the config (the run itself is stopped before any training)."""
    cfg = search_config_from_command_line(monkeypatch, "--exhaustive", "--out", str(tmp_path / "run"))
    assert cfg.exhaustive and cfg.to_dict()["exhaustive"] is True
    assert "exhaustive" not in small_search_config().to_dict()  # runs from before the flag resume unchanged


def test_a_mount_point_outside_the_backbone_is_a_clear_error():
    with pytest.raises(EenasError, match="mount point 99 is not one of mobilenet_v2's"):
        SearchSpace("synthetic", 0.25, mounts=(2, 99))
