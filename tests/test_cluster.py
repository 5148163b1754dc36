"""Training jobs on a Dask cluster: the same bytes as a serial run, and faults that fail candidates, not the run."""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from conftest import SEARCH_SEED, SMALL_SEARCH, small_search_config, start_search, tiny_sweep_args

distributed = pytest.importorskip("distributed")
import dask  # noqa: E402 (installed with distributed)

from eenas.train.cluster import WORKER_CONFIG  # noqa: E402 (the workers' settings eenas gives a local cluster)
from eenas.train.pipeline import Pipeline  # noqa: E402

FILES = ("pareto.csv", "archive.csv")


def config(**sizes):
    """The session's small search (conftest's ``small_search``), which the clustered runs repeat."""
    return small_search_config(seed=SEARCH_SEED, sizes=sizes)


@pytest.fixture
def serial(small_search):
    """A serial run (one torch thread, as the workers train) and its cache."""
    return small_search[0]


def test_two_workers_give_the_serial_run_byte_for_byte(serial, tmp_path, monkeypatch):
    # No holdout: its archs' heads change neither file compared (test_search), and a cold cache would train them all.
    run = start_search(config(holdout=0), tmp_path / "run", tmp_path / "cache", workers=2)
    # The local cluster's workers: glibc's mmap threshold left alone, one malloc arena, no profiler, an event loop
    # that wakes rarely (eenas.train.cluster).
    client = run.trainer.cluster.client
    assert set(client.run(os.environ.get, "MALLOC_TRIM_THRESHOLD_").values()) == {None}
    assert set(client.run(os.environ.get, "MALLOC_ARENA_MAX").values()) == {"1"}
    assert set(client.run(dask.config.get, "distributed.worker.profile.enabled").values()) == {False}
    assert set(client.run(dask.config.get, "distributed.admin.tick.interval").values()) == {"1s"}
    assert {w["memory_limit"] for w in client.scheduler_info()["workers"].values()} == {0}  # never paused or killed

    def on_the_client(self, p):
        raise AssertionError(f"the client computed {p.tag}'s final logits: the workers' feature banks hold them")

    monkeypatch.setattr(Pipeline, "_final_entry", on_the_client)  # this process only: the workers are others
    run.run()
    for name in FILES:
        assert (run.out / name).read_bytes() == (serial.out / name).read_bytes(), name
    # The cluster trained everything (its cache was cold) and the client stored it.
    assert any(e.startswith("head/") for e in run.pipeline.cache.trained)
    assert any(e.startswith("backbone/") for e in run.pipeline.cache.trained)
    assert any(e.startswith("final/") for e in run.pipeline.cache.trained)
    assert run.trainer.cluster.client.status == "closed"  # closed with the run, the local cluster too
    assert run.trainer.cluster.cluster.status.name == "closed"


def _backbones_of(serial, cache: Path) -> Path:
    """``cache`` holding only the serial run's backbones: a run in it trains every head itself."""
    shutil.copytree(serial.pipeline.cache.root / "backbone", cache / "backbone")
    return cache


def _without_later_heads(serial, cache: Path) -> set[str]:
    """Copy the serial run's cache into ``cache``, less the heads its search trained after the initial sample;
    returns those entries.  A run from this cache trains exactly them, in iterations 1 and 2."""
    shutil.copytree(serial.pipeline.cache.root, cache)
    def heads(first: bool) -> set:
        return {h for r in serial.archive if (r.iteration == 0) == first
                for h in serial.evaluator.heads(serial.space.decode(r.genome))}

    later = {f"head/{serial.pipeline.head_key(*h)}" for h in heads(False) - heads(True)}
    for entry in later:
        (cache / f"{entry}.pt").unlink()
    assert len(later) >= 2
    return later


def test_a_worker_killed_in_the_middle_of_a_job_is_replaced_and_the_job_retried(serial, tmp_path):
    marker = tmp_path / "killed"

    class KillOnce(distributed.WorkerPlugin):  # local, so it is pickled by value for the worker processes
        """In each worker process: the first head training to start kills its process (SIGKILL, no cleanup)."""

        def setup(self, worker) -> None:
            from eenas.train import pipeline

            real = pipeline.fit

            def fit(*args, **kwargs):
                if kwargs.get("desc", "").startswith("head") and not marker.exists():
                    marker.write_text(str(os.getpid()))
                    os.kill(os.getpid(), signal.SIGKILL)
                return real(*args, **kwargs)

            pipeline.fit = fit

    later = _without_later_heads(serial, tmp_path / "cache")
    with dask.config.set(WORKER_CONFIG), \
            distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cl, \
            distributed.Client(cl) as client:
        client.register_plugin(KillOnce())
        run = start_search(config(), tmp_path / "run", tmp_path / "cache", scheduler=cl.scheduler_address)
        run.run()
        alive = set(client.run(os.getpid).values())
    killed = int(marker.read_text())
    assert killed not in alive  # the worker did die, and the nanny started another
    assert set(run.pipeline.cache.trained) == later  # the killed job too, on its second attempt
    assert (run.archive.table()["status"] == "ok").all()
    for name in FILES:
        assert (run.out / name).read_bytes() == (serial.out / name).read_bytes(), name


def _trained_events(out: Path) -> list[str]:
    lines = (out / "events.jsonl").read_text().splitlines() if (out / "events.jsonl").exists() else []
    return [e["entry"] for e in map(json.loads, lines) if e["event"] == "trained"]


def test_a_killed_client_resumes_and_retrains_no_finished_job(serial, tmp_path):
    out, cache = tmp_path / "run", tmp_path / "cache"
    later = _without_later_heads(serial, cache)
    sizes = [f"--{k.replace('_', '-')}={v}" for k, v in SMALL_SEARCH.items()]
    command = [sys.executable, "-m", "eenas", "search", "--dataset", "synthetic", "--budget", "tiny", "--bits", "8,4",
               "--seed", str(SEARCH_SEED), *sizes, "--device", "cpu", "--cache-dir", str(cache), "--out", str(out),
               "--workers", "2"]
    client = subprocess.Popen(command, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:  # kill the client (and its local cluster) at the first job it stores: after its first checkpoint
        while client.poll() is None and not _trained_events(out):
            time.sleep(0.2)
    finally:
        os.killpg(client.pid, signal.SIGKILL)
        client.wait()
    assert client.returncode == -signal.SIGKILL, "the search ended before it could be killed"
    assert (out / "checkpoint.json").exists()
    stored = _trained_events(out)
    assert 0 < len(stored) < len(later)

    run = start_search(config(), out, cache, resume=True, workers=2)
    run.run()
    again = _trained_events(out)[len(stored):]
    assert not set(again) & set(stored)  # what the killed client stored is never trained again
    assert sorted(stored + again) == sorted(later)  # and every missing entry is trained once
    for name in FILES:
        assert (out / name).read_bytes() == (serial.out / name).read_bytes(), name


def test_a_job_that_keeps_failing_fails_its_candidates_and_a_flaky_one_is_retried(serial, tmp_path, monkeypatch):
    """Head jobs fail here; the serial run's backbones spare the cluster their training."""
    from eenas.train.pipeline import Pipeline

    real, calls = Pipeline._train_head, Counter()

    def faulty(self, p_backbone, mount, head, p_exit, key):
        calls[key] += 1
        if head == "dsconv_pool_fc" or calls[key] == 1:  # one head type always fails, every other job once
            raise RuntimeError(f"worker lost at {head}")
        return real(self, p_backbone, mount, head, p_exit, key)

    monkeypatch.setattr(Pipeline, "_train_head", faulty)  # the in-process worker sees it
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as cl:
        run = start_search(config(), tmp_path / "run", _backbones_of(serial, tmp_path / "cache"),
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


def _cli(monkeypatch, capsys, *args: str) -> str:
    from eenas.cli import main

    monkeypatch.setattr(sys, "argv", ["eenas", *args])
    main()
    return capsys.readouterr().out


def test_pretrain_with_two_workers_stores_the_serial_runs_backbones(serial, tmp_path, monkeypatch, capsys, caplog):
    import torch

    from eenas.arch import Precision
    from eenas.train.pipeline import FLOAT

    float_key = serial.pipeline.backbone_key(FLOAT)
    (tmp_path / "backbone").mkdir()
    shutil.copy(serial.pipeline.cache.path("backbone", float_key), tmp_path / "backbone")  # the QAT runs train
    text = _cli(monkeypatch, capsys, "pretrain", "--dataset", "synthetic", "--budget", "tiny", "--precisions",
                "w8a8,w4a4", "--seed", str(SEARCH_SEED), "--device", "cpu", "--cache-dir", str(tmp_path),
                "--workers", "2")
    assert "trained: backbone w8a8, backbone w4a4" in text  # on the cluster, stored here
    # Dask's INFO chatter (every process's start and stop) stays out of the log; its warnings would not.
    assert not [r for r in caplog.records if r.name.startswith("distributed") and r.levelno < logging.WARNING]
    assert float_key in text
    for p in (Precision(8, 8), Precision(4, 4)):
        key = serial.pipeline.backbone_key(p)
        assert key in text
        mine = torch.load(tmp_path / "backbone" / f"{key}.pt", weights_only=True)["state_dict"]
        theirs = serial.pipeline.cache.load("backbone", key)["state_dict"]
        assert mine.keys() == theirs.keys() and all(torch.equal(mine[k], theirs[k]) for k in mine), p.tag


def test_an_enos_sweep_on_two_workers_writes_the_serial_sweep(tmp_path, monkeypatch, capsys):
    args = ["enos", "sweep", *tiny_sweep_args(tmp_path, "0")]
    serial = _cli(monkeypatch, capsys, *args, "--cache-dir", str(tmp_path / "a"), "--out", str(tmp_path / "serial"))
    clustered = _cli(monkeypatch, capsys, *args, "--cache-dir", str(tmp_path / "b"), "--out", str(tmp_path / "two"),
                     "--workers", "2")
    assert clustered.split("results in")[0] == serial.split("results in")[0]
    for name in ("sweep.csv", "summary.csv", "iso_energy.csv"):
        assert (tmp_path / "two" / name).read_bytes() == (tmp_path / "serial" / name).read_bytes(), name
    # The grid's searches and trainings and the baselines came from the cluster: the same entries, stored here.
    assert sorted(p.name for p in (tmp_path / "b" / "enos").iterdir()) == \
        sorted(p.name for p in (tmp_path / "a" / "enos").iterdir())


def test_workers_train_in_the_dtype_the_clients_keys_name(monkeypatch):
    """A CPU client resolves --amp auto to float32: a worker that would resolve bfloat16 (a GPU) trains in float32."""
    from eenas.arch import Precision
    from eenas.train import Pipeline, TrainConfig, get_budget
    from eenas.train import pipeline as module
    from eenas.train.cluster import ClusterTrainer

    monkeypatch.setattr(module, "cpu_has_native_bf16", lambda: False)
    client = Pipeline(TrainConfig("synthetic", get_budget("tiny"), 0.25, device="cpu"))
    sent, head = ClusterTrainer(client, cluster=None).cfg, (Precision(8, 8), 3, "pool_fc", Precision(4, 4))
    key = client.head_key(*head)
    monkeypatch.setattr(module, "cpu_has_native_bf16", lambda: True)  # now on the worker
    assert Pipeline(client.cfg).amp is not None  # what the worker would resolve from --amp auto itself
    worker = Pipeline(sent)
    assert sent.amp == "fp32" and client.amp is None and worker.amp is None
    assert worker.head_key(*head) == key  # so its entry's key and seed are the client's


def test_workers_and_scheduler_are_one_line_errors(tmp_path):
    from eenas.errors import EenasError

    with pytest.raises(EenasError, match="--workers 0: needs at least 1"):
        start_search(small_search_config(), tmp_path / "a", tmp_path / "cache", workers=0)
    with pytest.raises(EenasError, match="give one of them"):
        start_search(small_search_config(), tmp_path / "b", tmp_path / "cache", workers=1, scheduler="tcp://x:1")
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()  # refused before any file is written


class FakeScheduler:
    """What :class:`~eenas.train.cluster.Cluster` asks of a Dask client, for workers at ``addresses``."""

    def __init__(self, *addresses):
        self.addresses, self.closed = addresses, 0

    def scheduler_info(self):
        return {"workers": {a: {"resources": {}} for a in self.addresses}}

    def run(self, function, wait=True):  # Cluster prepares its workers when it connects
        assert not wait

    def close(self):
        self.closed += 1


def test_a_released_cluster_closes_once_in_its_thread_and_close_waits_for_it():
    from eenas.train.cluster import Cluster

    client, local = FakeScheduler("tcp://a:1"), FakeScheduler()
    cluster = Cluster(client, local)
    cluster.release()
    cluster.release()
    cluster.close()
    assert (client.closed, local.closed) == (1, 1)
    cluster.close()
    assert (client.closed, local.closed) == (1, 1)


def test_a_local_cluster_leaves_dasks_dashboard_port_to_others(recwarn):
    import socket

    from eenas.train.cluster import Cluster

    with socket.socket() as other:  # another Dask cluster's dashboard, say
        try:
            other.bind(("", 8787))
        except OSError:
            pytest.skip("port 8787 is taken on this machine already")
        other.listen()
        with Cluster.connect(workers=1):
            pass
    assert not [w for w in recwarn if "8787" in str(w.message)]


def test_heads_on_one_backbone_go_to_one_worker_first():
    """A worker extracts a backbone's feature bank once for all its heads on it: jobs are dealt by group."""
    from eenas.train.cluster import Cluster

    two = Cluster(FakeScheduler("tcp://b:2", "tcp://a:1"))
    assert two.preferred(["w8", "w4", "w8", "w4", "w8"]) == [["tcp://a:1"], ["tcp://b:2"], ["tcp://a:1"],
                                                            ["tcp://b:2"], ["tcp://a:1"]]
    assert two.preferred(["w8", "w8"]) == [None, None]  # one group: any worker
    assert Cluster(FakeScheduler("tcp://a:1")).preferred(["w8", "w4"]) == [None, None]
    # A group keeps its worker from batch to batch (its feature bank is there); new groups are dealt on.
    assert two.preferred(["w4", "w8"]) == [["tcp://b:2"], ["tcp://a:1"]]
    assert two.preferred(["x", "y", "z"]) == [["tcp://a:1"], ["tcp://b:2"], ["tcp://a:1"]]  # more groups than workers
