"""Training jobs on a Dask cluster (``--workers N`` or ``--scheduler ADDRESS``).

A job is one missing cache entry (a QAT backbone, an exit head, a backbone's final logits, an ENOS search
or training), submitted once under its cache key.  A worker builds it without a cache of its own, or in a
private temporary one (a search's entries, from the backbones the client sends), and returns
the entry; the client alone writes the cache and the run directory, so workers need
no shared file system, only the dataset.  An entry is seeded from its key (or its run's
seed), so it does not depend on which worker builds it or when.  A worker runs one job at a
time, with ``TRAINING_THREADS`` torch threads (:func:`~eenas.train.pipeline.training_threads`,
as a serial run trains), in the dtype the client resolved (its cache keys name it): a serial run
gives the same bytes.  Only a float pretraining differs: a worker's runs with those threads too, a
serial one with the process's (``OMP_NUM_THREADS``).

This module imports dask only in :meth:`Cluster.connect`; the single-process path needs none.
"""

from __future__ import annotations

import logging
import tempfile
import threading
import time
from collections.abc import Callable, Hashable, Iterable
from dataclasses import replace

from eenas.arch import Precision
from eenas.errors import EenasError
from eenas.malloc import keep_freed_memory
from eenas.train.cache import Cache
from eenas.train.pipeline import FLOAT, Pipeline, TrainConfig, amp_name, training_threads

log = logging.getLogger(__name__)

WORKER_THREADS = 1  # Dask threads per worker process: one job at a time
# Attempts after the first, for a job that raised: past them its candidates fail.  A job whose worker
# died is retried by the scheduler (its allowed-failures, 3 by default) and then fails the same way.
JOB_RETRIES = 2
CONNECT_TIMEOUT = "20s"
# Dask's nannies start their workers with MALLOC_TRIM_THRESHOLD_=65536 (to hand freed memory back to the OS).
# Setting it also fixes glibc's mmap threshold, so every tensor over 128 KiB is mapped and unmapped afresh: a tiny
# float pretraining took 22-26 s on such a worker (or with the variable set by hand) against 5-10 s without it.
# The local cluster's workers start without it (None unsets it; a value in the client's environment still reaches
# them).  They also start with one malloc arena: a worker trains in a thread of its own, and glibc's per-thread
# arenas hand freed memory back regardless of eenas.malloc's settings, so the tiny head bank run in a thread took
# 3.8 million page faults and 6 s of system time against 0.09 million and 0.2 s in the main thread (or in a thread
# with MALLOC_ARENA_MAX=1; docs/cluster.md).  Dask's statistical profiler, which walks the training thread's stack
# every 10 ms, is off: the head bank's jobs took 9% longer with it.  Every Dask process's event loop also wakes on
# timers (a 20 ms "tick" that watches for a blocked loop, a 500 ms system monitor, the nanny's 100 ms memory poll):
# on 2 cores each wake-up preempts a worker's training, about 150 times a second per worker, and at 1 s, 2 s and 1 s
# the involuntary context switches fell from about 4,000 to 1,000 per worker and the workers' CPU time over the
# tiny head bank from 24 s to 21-22 s each.  The Dask config options for ``dask.config.set``.
WORKER_CONFIG = {"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None,
                 "distributed.nanny.pre-spawn-environ.MALLOC_ARENA_MAX": "1",
                 "distributed.worker.profile.enabled": False,
                 "distributed.admin.tick.interval": "1s",
                 "distributed.admin.system-monitor.interval": "2s",
                 "distributed.worker.memory.monitor-interval": "1s"}

# No Dask memory limit on the local cluster's workers: a job's memory is torch tensors (a worker's feature banks,
# 9.5 GB at quick) that Dask can neither spill nor free, so its default limit (the machine's memory over the
# workers) only paused a worker at 80% (stalling its jobs) and would kill it at 95%, where a serial run goes on.
WORKER_MEMORY_LIMIT = 0

HeadId = tuple[Precision, int, str, Precision]
Job = tuple[str, Callable[..., dict], tuple]  # cache key, the function a worker runs, its arguments


def _timed(build: Callable[..., dict], *args) -> tuple[dict, float]:
    """On a worker: one job's entry and its seconds."""
    start = time.perf_counter()
    with training_threads():
        entry = build(*args)
    return entry, time.perf_counter() - start


# Per worker process: the pipeline of the last config it trained for, in a temporary cache that holds the
# backbones it was sent, so that a backbone's feature bank is extracted once per worker rather than once per
# head job.  Only one is kept: banks are large, and a long-lived worker may serve many runs.
_PIPELINES: dict[TrainConfig, tuple[tempfile.TemporaryDirectory, Pipeline]] = {}


def train_entry(cfg: TrainConfig, kind: str, args: tuple, backbones: dict[str, dict]) -> dict:
    """On a worker: a pipeline entry, trained in the worker's temporary cache seeded with ``backbones``."""
    if cfg not in _PIPELINES:
        _PIPELINES.clear()
        tmp = tempfile.TemporaryDirectory(prefix="eenas-worker-")
        _PIPELINES[cfg] = tmp, Pipeline(replace(cfg, cache_dir=tmp.name))
    pipeline = _PIPELINES[cfg][1]
    for key, entry in backbones.items():
        if not pipeline.cache.path("backbone", key).exists():
            pipeline.cache.save("backbone", key, entry)
    return pipeline.train_entry(kind, args)


async def _prepare_worker() -> bool:
    """On a worker, as soon as it is connected: the worker unpickles this function by importing this module, which
    loads torch and eenas (2-3 s a process) while the client sets up, not inside the worker's first job.  A
    coroutine, because Dask runs only those without waiting for them."""
    return keep_freed_memory()


def check_options(workers: int | None, scheduler: str | None) -> None:
    """Refuse bad ``--workers``/``--scheduler`` before a run touches any file."""
    if workers is not None and scheduler is not None:
        raise EenasError("--workers and --scheduler: give one of them")
    if workers is not None and workers < 1:
        raise EenasError(f"--workers {workers}: needs at least 1")


class Cluster:
    """A Dask client (and the local cluster it started): runs cache-keyed jobs whose entries the client stores."""

    def __init__(self, client, cluster=None) -> None:
        self.client, self.cluster = client, cluster
        self.homes: dict[Hashable, str] = {}  # a job group's worker (:meth:`preferred`), kept from run to run
        self._closing: threading.Thread | None = None
        client.run(_prepare_worker, wait=False)
        workers = client.scheduler_info().get("workers", {}).values()
        # One job per GPU where the workers declare GPUs (dask-worker --resources GPU=1).
        self.resources = {"GPU": 1} if any("GPU" in w.get("resources", {}) for w in workers) else None

    @classmethod
    def connect(cls, workers: int | None = None, scheduler: str | None = None) -> Cluster:
        """A local cluster of ``workers`` processes (one thread each), or the scheduler at ``scheduler``."""
        check_options(workers, scheduler)
        try:
            from distributed import Client, LocalCluster
        except ImportError:
            flag = "--workers" if workers is not None else "--scheduler"
            raise EenasError(f"{flag} needs Dask: pip install 'eenas[dask]'") from None
        # Dask logs each process's start and stop at INFO (its importing set that level), a closing connection
        # with a traceback among them: below eenas's debug output (``eenas -v``) only its warnings are shown.
        if not log.isEnabledFor(logging.DEBUG):
            logging.getLogger("distributed").setLevel(logging.WARNING)
        if scheduler is None:
            import dask

            with dask.config.set(WORKER_CONFIG):
                # No dashboard; the scheduler's HTTP server (health checks) on a free port, not Dask's 8787, which
                # another cluster on the machine (a notebook's, say) may hold: Dask would warn and move.
                cluster = LocalCluster(n_workers=workers, threads_per_worker=WORKER_THREADS, processes=True,
                                       dashboard_address=None, scheduler_kwargs={"dashboard_address": ":0"},
                                       memory_limit=WORKER_MEMORY_LIMIT)
            return cls(Client(cluster), cluster)
        try:
            client = Client(scheduler, timeout=CONNECT_TIMEOUT)
        except OSError as exc:
            raise EenasError(f"--scheduler {scheduler}: cannot connect ({exc})") from None
        return cls(client)

    def close(self) -> None:
        """Close the client, and the local cluster if this started it (never a cluster given by address); after
        :meth:`release`, wait for that."""
        if self._closing is None:
            self._shut_down()
        else:
            self._closing.join()

    def release(self) -> None:
        """Start closing in a thread, for a caller whose remaining work needs no cluster: the workers' shutdown
        (1-2 s, mostly waiting for their processes to end) then overlaps it.  :meth:`close` waits for it."""
        if self._closing is None:
            self._closing = threading.Thread(target=self._shut_down, name="eenas-cluster-close", daemon=True)
            self._closing.start()

    def _shut_down(self) -> None:
        self.client.close()
        if self.cluster is not None:
            self.cluster.close()

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def scatter(self, data: dict) -> dict:
        """``data`` sent once to every worker (what each job of a batch needs), to pass as job arguments."""
        return self.client.scatter(data, broadcast=True) if data else {}

    def run(self, cache: Cache, kind: str, jobs: Iterable[Job],
            group: Callable[[str], Hashable] | None = None) -> dict[str, str]:
        """Build every ``kind`` entry of ``jobs`` the cache lacks, each once, and store them.

        ``group`` (of a job's cache key) names what a worker prepares for a job and keeps for the next: the jobs of
        one group go to one worker first (:meth:`preferred`), any worker when that one is busy.  Entries are stored
        in submission order, so the cache's records do not depend on which job finished first.  Returns
        ``{key: reason}`` of the jobs that kept failing.
        """
        unique: dict[str, Job] = {}
        for job in jobs:
            if job[0] not in unique and not cache.path(kind, job[0]).exists():
                unique[job[0]] = job
        jobs = list(unique.values())
        if not jobs:
            return {}
        log.info("training %d %s job(s) on the cluster", len(jobs), kind)
        where = self.preferred([group(key) for key, _, _ in jobs]) if group else [None] * len(jobs)
        futures = [self.client.submit(_timed, build, *args, key=f"{kind}-{key}", pure=False, retries=JOB_RETRIES,
                                      resources=self.resources,
                                      **({"workers": worker, "allow_other_workers": True} if worker else {}))
                   for (key, build, args), worker in zip(jobs, where)]
        failed = {}
        for (key, _, _), future in zip(jobs, futures):
            try:
                entry, seconds = future.result()
            except Exception as exc:  # the job kept failing: the caller decides what that fails
                log.warning("%s job %s failed: %s", kind, key, exc)
                failed[key] = f"{type(exc).__name__}: {exc}"
                continue
            cache.store(kind, key, entry, seconds)
        return failed

    def preferred(self, groups: list[Hashable]) -> list[list[str] | None]:
        """A worker per job, the same for every job of a group, in this run and the next ones (what the worker
        prepared for the group is still there), new groups dealt round-robin over the workers in order of first
        appearance; None where there is no choice to make: one group or one worker."""
        workers = sorted(self.client.scheduler_info().get("workers", {}))
        if len(set(groups)) < 2 or len(workers) < 2:
            return [None] * len(groups)
        for g in dict.fromkeys(groups):
            if self.homes.get(g) not in workers:  # a new group, or its worker is gone
                self.homes[g] = workers[len(self.homes) % len(workers)]
        return [[self.homes[g]] for g in groups]


class ClusterTrainer:
    """Trains a pipeline's missing backbones and heads on a :class:`Cluster` and stores them in its cache."""

    def __init__(self, pipeline: Pipeline, cluster: Cluster) -> None:
        self.pipeline, self.cluster = pipeline, cluster
        # The workers train in the dtype the client's keys name, not the one they would resolve (--amp auto).
        self.cfg = replace(pipeline.cfg, amp=amp_name(pipeline.amp))

    def close(self) -> None:
        self.cluster.close()

    def release(self) -> None:
        """Training is over: start closing the cluster (:meth:`Cluster.release`)."""
        self.cluster.release()

    def backbones(self, precisions: Iterable[Precision]) -> dict[Precision, str]:
        """Train the float backbone, then the QAT ones in parallel, where the cache lacks them.

        Returns the precisions whose job (or the float backbone's) kept failing, with the reason.
        """
        precisions = list(dict.fromkeys(precisions))
        qat = [p for p in precisions if p != FLOAT]
        if FLOAT in precisions or any(not self._cached("backbone", (p,)) for p in qat):
            failed = self._run("backbone", [(FLOAT,)], [])
            if failed:
                return dict.fromkeys([FLOAT, *qat], failed[(FLOAT,)])
        return {args[0]: reason for args, reason in self._run("backbone", [(p,) for p in qat], [FLOAT]).items()}

    def train(self, backbones: Iterable[Precision] = (), heads: Iterable[HeadId] = ()) -> dict[HeadId, str]:
        """Train every entry missing from the cache that these backbones and heads need.

        Returns the heads whose job (or whose backbone's job) kept failing, with the reason.
        """
        heads = list(dict.fromkeys(heads))
        lost = self.backbones([*backbones, *(h[0] for h in heads)])
        failed = {h: lost[h[0]] for h in heads if h[0] in lost}
        needs = list(dict.fromkeys(h[0] for h in heads if h[0] not in lost))
        failed.update(self._run("head", [h for h in heads if h not in failed], needs))
        # The heads' backbones' own logits, which scoring needs next: the worker that just trained a backbone's heads
        # holds them in its feature bank, where the client would run the backbone over both evaluation splits.
        self._run("final", [(p,) for p in needs], needs)
        return failed

    def _key(self, kind: str, args: tuple) -> str:
        if kind == "backbone":
            return self.pipeline.backbone_key(args[0])
        return self.pipeline.final_key(args[0]) if kind == "final" else self.pipeline.head_key(*args)

    def _cached(self, kind: str, args: tuple) -> bool:
        if kind == "backbone":
            return self.pipeline.has_backbone(args[0])  # registered float weights and shipped fine-tunes count
        return self.pipeline.cache.path(kind, self._key(kind, args)).exists()

    def _run(self, kind: str, jobs: list[tuple], needs: list[Precision]) -> dict[tuple, str]:
        """Train the jobs (backbone or head ids) whose entry is not cached, sending each worker the backbones
        ``needs`` names; ``{job id: reason}`` of the jobs that kept failing."""
        cache, key_of = self.pipeline.cache, {args: self._key(kind, args) for args in jobs}
        todo = [args for args in jobs if not self._cached(kind, args)]
        if not todo:
            return {}
        shipped = {}
        for p in needs:
            entry = cache.load("backbone", self.pipeline.backbone_key(p))
            if entry is not None:
                shipped[self.pipeline.backbone_key(p)] = entry
        sent = self.cluster.scatter(shipped)
        # A worker extracts a backbone's feature bank before its first head on it: heads (and the backbone's final
        # logits) go by backbone precision, a head id's first field.
        by_backbone = {key_of[a]: a[0] for a in todo}.get if kind != "backbone" else None
        failed = self.cluster.run(cache, kind, [(key_of[a], train_entry, (self.cfg, kind, a, sent)) for a in todo],
                                  group=by_backbone)
        if kind != "final":  # logits, not a training
            self.pipeline.trained += [Pipeline.entry_name(kind, a) for a in todo if key_of[a] not in failed]
        return {args: failed[key_of[args]] for args in todo if key_of[args] in failed}


def pretrain_backbones(pipeline: Pipeline, precisions: list[Precision], workers: int | None,
                       scheduler: str | None) -> None:
    """``eenas pretrain --workers/--scheduler``: the float backbone, then the QAT precisions in parallel."""
    with Cluster.connect(workers, scheduler) as cluster:
        failed = ClusterTrainer(pipeline, cluster).backbones(precisions)
    if failed:
        p, reason = next(iter(failed.items()))
        raise EenasError(f"backbone {p.tag}: its job kept failing on the cluster ({reason})")
