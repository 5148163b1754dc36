"""Training jobs on a Dask cluster (``--workers N`` or ``--scheduler ADDRESS``).

Each missing cache entry (a QAT backbone, an exit head) is one job, submitted once under its
cache key.  A worker trains it in a private, temporary cache holding only the backbones the
job needs (sent by the client) and returns the entry; the client alone writes the cache and
the run directory, so workers need no shared file system, only the dataset.  An entry is
seeded from its key (see ``_seed_from``), so it does not depend on which worker trains it or
when.  Workers train with ``WORKER_THREADS`` torch threads: a serial run gives the same bytes
when it trains with as many (``OMP_NUM_THREADS=1``).

This module imports dask; nothing else in eenas does, so the single-process path needs none.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Iterable
from dataclasses import replace

import torch

from eenas.arch import Precision
from eenas.errors import EenasError
from eenas.train.pipeline import FLOAT, Pipeline, TrainConfig

log = logging.getLogger(__name__)

WORKER_THREADS = 1
# Attempts after the first, for a job whose worker died or that raised: past them its candidates fail.
JOB_RETRIES = 2
CONNECT_TIMEOUT = "20s"

HeadId = tuple[Precision, int, str, Precision]


def train_job(cfg: TrainConfig, kind: str, args: tuple, backbones: dict[str, dict]) -> tuple[dict, float]:
    """On a worker: one entry (and its seconds), trained in a temporary cache seeded with ``backbones``."""
    torch.set_num_threads(WORKER_THREADS)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="eenas-job-") as tmp:
        pipeline = Pipeline(replace(cfg, cache_dir=tmp))
        for key, entry in backbones.items():
            pipeline.cache.save("backbone", key, entry)
        return pipeline.train_entry(kind, args), time.perf_counter() - start


def check_options(workers: int | None, scheduler: str | None) -> None:
    """Refuse bad ``--workers``/``--scheduler`` before a run touches any file."""
    if workers is not None and scheduler is not None:
        raise EenasError("--workers and --scheduler: give one of them")
    if workers is not None and workers < 1:
        raise EenasError(f"--workers {workers}: needs at least 1")


class ClusterTrainer:
    """Trains a pipeline's missing entries on a Dask cluster and stores them in the client's cache."""

    def __init__(self, pipeline: Pipeline, client, cluster=None) -> None:
        self.pipeline, self.client, self.cluster = pipeline, client, cluster
        workers = client.scheduler_info().get("workers", {}).values()
        # One job per GPU where the workers declare GPUs (dask-worker --resources GPU=1).
        self.resources = {"GPU": 1} if any("GPU" in w.get("resources", {}) for w in workers) else None

    @classmethod
    def connect(cls, pipeline: Pipeline, workers: int | None = None, scheduler: str | None = None) -> ClusterTrainer:
        """A local cluster of ``workers`` processes (one thread each), or the scheduler at ``scheduler``."""
        check_options(workers, scheduler)
        try:
            from distributed import Client, LocalCluster
        except ImportError:
            flag = "--workers" if workers is not None else "--scheduler"
            raise EenasError(f"{flag} needs Dask: pip install 'eenas[dask]'") from None
        if scheduler is None:
            cluster = LocalCluster(n_workers=workers, threads_per_worker=WORKER_THREADS, processes=True,
                                   dashboard_address=None)
            return cls(pipeline, Client(cluster), cluster)
        try:
            client = Client(scheduler, timeout=CONNECT_TIMEOUT)
        except OSError as exc:
            raise EenasError(f"--scheduler {scheduler}: cannot connect ({exc})") from None
        return cls(pipeline, client)

    def close(self) -> None:
        self.client.close()
        if self.cluster is not None:
            self.cluster.close()

    def train(self, backbones: Iterable[Precision] = (), heads: Iterable[HeadId] = ()) -> dict[HeadId, str]:
        """Train every entry missing from the cache that these backbones and heads need.

        Returns the heads whose job (or whose backbone's job) kept failing, with the reason.
        Results are stored in submission order, so the cache's records do not depend on which
        job finished first.
        """
        heads = list(dict.fromkeys(heads))
        precisions = list(dict.fromkeys([*backbones, *(h[0] for h in heads)]))
        failed_backbones: dict[Precision, str] = {}
        qat = [p for p in precisions if p != FLOAT and not self._cached("backbone", self.pipeline.backbone_key(p))]
        if FLOAT in precisions or qat:
            failed_backbones.update(self._run("backbone", [(FLOAT,)], []))
        if FLOAT not in failed_backbones:
            failed_backbones.update(self._run("backbone", [(p,) for p in qat], [FLOAT]))
        else:
            failed_backbones.update({p: failed_backbones[FLOAT] for p in qat})
        failed = {h: failed_backbones[h[0]] for h in heads if h[0] in failed_backbones}
        needs = list(dict.fromkeys(h[0] for h in heads))
        failed.update(self._run("head", [h for h in heads if h not in failed], needs))
        return failed

    def _cached(self, kind: str, key: str) -> bool:
        return self.pipeline.cache.path(kind, key).exists()

    def _run(self, kind: str, jobs: list[tuple], needs: list[Precision]) -> dict:
        """Submit the jobs whose entry is not cached, store what they return; ``{job args: reason}`` of failures."""
        pipeline = self.pipeline
        keyed = [(args, pipeline.backbone_key(args[0]) if kind == "backbone" else pipeline.head_key(*args))
                 for args in jobs]
        keyed = [(args, key) for args, key in keyed if not self._cached(kind, key)]
        if not keyed:
            return {}
        shipped = {}
        for p in needs:
            entry = pipeline.cache.load("backbone", pipeline.backbone_key(p))
            if entry is not None:
                shipped[pipeline.backbone_key(p)] = entry
        sent = self.client.scatter(shipped, broadcast=True) if shipped else {}
        log.info("training %d %s job(s) on the cluster", len(keyed), kind)
        futures = [self.client.submit(train_job, pipeline.cfg, kind, args, sent, key=f"{kind}-{key}", pure=False,
                                      retries=JOB_RETRIES, resources=self.resources)
                   for args, key in keyed]
        failed = {}
        for (args, key), future in zip(keyed, futures):
            try:
                entry, seconds = future.result()
            except Exception as exc:  # the job kept failing: its candidates fail, the run goes on
                log.warning("%s job %s failed: %s", kind, key, exc)
                failed[args[0] if kind == "backbone" else args] = f"{type(exc).__name__}: {exc}"
                continue
            pipeline.cache.store(kind, key, entry, seconds)
        return failed
