"""Training jobs on a Dask cluster: the same bytes as a serial run, and faults that fail candidates, not the run."""

from __future__ import annotations

from collections import Counter

import pytest
from conftest import small_search_config, start_search

distributed = pytest.importorskip("distributed")

FILES = ("pareto.csv", "archive.csv")


@pytest.fixture(scope="module")
def serial(tmp_path_factory, cache_dir):
    """A serial run (one torch thread, as the workers train) and its cache."""
    run = start_search(small_search_config(seed=5), tmp_path_factory.mktemp("serial") / "run", cache_dir)
    run.run()
    return run


def test_two_workers_give_the_serial_run_byte_for_byte(serial, tmp_path):
    run = start_search(small_search_config(seed=5), tmp_path / "run", tmp_path / "cache", workers=2)
    run.run()
    for name in FILES:
        assert (run.out / name).read_bytes() == (serial.out / name).read_bytes(), name
    # The cluster trained everything (its cache was cold) and the client stored it.
    assert any(e.startswith("head/") for e in run.pipeline.cache.trained)
    assert any(e.startswith("backbone/") for e in run.pipeline.cache.trained)


def test_a_job_that_keeps_failing_fails_its_candidates_and_a_flaky_one_is_retried(tmp_path, monkeypatch):
    from eenas.train.pipeline import Pipeline

    real, calls = Pipeline._train_head, Counter()

    def faulty(self, p_backbone, mount, head, p_exit, key):
        calls[key] += 1
        if head == "dsconv_pool_fc" or calls[key] == 1:  # one head type always fails, every other job once
            raise RuntimeError(f"worker lost at {head}")
        return real(self, p_backbone, mount, head, p_exit, key)

    monkeypatch.setattr(Pipeline, "_train_head", faulty)  # the in-process worker sees it
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as cl:
        run = start_search(small_search_config(seed=3), tmp_path / "run", tmp_path / "cache",
                           scheduler=cl.scheduler_address)
        run.run()
        assert cl.scheduler_address  # the run closed its client, not the cluster it was given
    archive = run.archive.table()
    failed = archive[archive["status"] != "ok"]
    assert len(failed) and failed["exits"].str.contains("dsconv_pool_fc").all()
    assert failed["status"].str.startswith("failed: RuntimeError: worker lost at dsconv_pool_fc").all()
    assert (archive["status"] == "ok").any()
    assert max(calls.values()) == 3  # the first attempt and JOB_RETRIES retries of a job that keeps failing
    assert 2 in calls.values()  # a job that failed once succeeded on its retry


def test_workers_and_scheduler_are_one_line_errors(tmp_path):
    from eenas.errors import EenasError

    with pytest.raises(EenasError, match="--workers 0: needs at least 1"):
        start_search(small_search_config(), tmp_path / "a", tmp_path / "cache", workers=0)
    with pytest.raises(EenasError, match="give one of them"):
        start_search(small_search_config(), tmp_path / "b", tmp_path / "cache", workers=1, scheduler="tcp://x:1")
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()  # refused before any file is written
