"""Speed-up of ``eenas search --workers 2`` against a serial run (``benchmarks/run.py cluster``).

Two measurements on synthetic data, serial and then on 2 workers, each run in a cache of its own and a
fresh Python process (so that no run finds the cost model's plans in another's memory).  The serial
runs train with one torch thread, as each worker does, so both write the same ``pareto.csv`` (checked
here too).

* The tiny search from a cold cache: the whole run, backbones included.  Its iterations train a few
  one-second heads each, so the cluster's fixed costs (starting the worker processes, each worker's
  pass over the data for its feature bank) weigh as much as the parallel training.
* The head bank (issue 32's target): ``--strategy exhaustive`` at tiny trains every head of the space
  at once, from a cache that already holds the backbones (and, as ``eenas search`` keeps them beside
  those, the cost model's searched core allocations), which is where a search spends its time when
  training dominates.  :data:`BANK_ROUNDS` rounds; the rows give the median and every round.

On 2 cores expect less than 2x: the client shares the cores with the workers, and two busy processes slow each
other down.  How much is measured too: the serial head bank run twice at once, in two processes of their own.
The ceiling for two workers is 2 over that slowdown, before the client's own serial work (scoring, NSGA-II,
results).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from statistics import median
from typing import NamedTuple

import pandas as pd
import torch

from eenas.hardware import use_cache_dir
from eenas.search import SearchConfig, build_run

WORKERS = 2
BANK_MOUNTS = (1, 3, 5, 8, 11, 14, 17)  # 7 of the 17 mounts: 112 heads
# Rounds of the bank measurement, each serial, clustered and paired.  A 2-vCPU machine's two cores slow each
# other by 0-20% from one run to the next (the paired serial runs show it too), so one run is not a figure.
BANK_ROUNDS = 3
CACHED = ("backbone", "allocation")  # the cache folders the bank starts with


def _config(kind: str) -> SearchConfig:
    """The tiny search, or (``bank``) the same settings training the whole head bank over :data:`BANK_MOUNTS`."""
    bank = {"strategy": "exhaustive", "mounts": BANK_MOUNTS} if kind == "bank" else {}
    return SearchConfig.create("synthetic", "tiny", overrides={"holdout": 0}, bits=(8, 4), **bank)


def timed(kind: str, out: str, cache: str, workers: int) -> float:
    """Seconds of one ``kind`` run (``search`` or ``bank``) in this process, serial where ``workers`` is 0."""
    torch.set_num_threads(1)  # as each worker trains: the same bytes
    search = build_run(_config(kind), Path(out), cache_dir=cache, device="cpu", workers=workers or None)
    start = time.perf_counter()
    with use_cache_dir(cache):  # as eenas search does
        search.run()
    return time.perf_counter() - start


def _at_once(runs: list[tuple[str, Path, Path, int]]) -> list[float]:
    """The seconds of each run (:func:`timed`'s arguments), all started at once, each in a fresh process."""
    procs = []
    for kind, out, cache, workers in runs:
        code = (f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); import bench_cluster; "
                f"print(bench_cluster.timed({kind!r}, {str(out)!r}, {str(cache)!r}, {workers}))")
        procs.append(subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      text=True))
    seconds = []
    for proc in procs:
        stdout, stderr = proc.communicate()
        if proc.returncode:
            raise RuntimeError(f"benchmark run failed: {(stderr.strip().splitlines() or ['no output'])[-1]}")
        seconds.append(float(stdout.split()[-1]))
    return seconds


def _bank_cache(search_cache: Path, cache: Path) -> None:
    """The bank's cache: what the search left in ``search_cache`` but its heads."""
    for folder in CACHED:
        shutil.copytree(search_cache / folder, cache / folder)


class BankRound(NamedTuple):
    """One round of the bank: the seconds serially, on the workers and (mean) serially twice at once."""

    serial: float
    clustered: float
    paired: float
    same_front: bool  # the clustered run wrote the serial run's pareto.csv


def _bank_round(root: Path, search_cache: Path, i: int) -> BankRound:
    runs = {}
    for workers in (0, WORKERS):
        name = f"bank-{i}-workers-{workers}"
        _bank_cache(search_cache, root / f"{name}-cache")
        runs[workers], = _at_once([("bank", root / name, root / f"{name}-cache", workers)])
    for j in range(WORKERS):
        _bank_cache(search_cache, root / f"pair-{i}-{j}-cache")
    paired = _at_once([("bank", root / f"pair-{i}-{j}", root / f"pair-{i}-{j}-cache", 0) for j in range(WORKERS)])
    serial_front, clustered_front = ((root / f"bank-{i}-workers-{w}" / "pareto.csv").read_bytes() for w in (0, WORKERS))
    return BankRound(runs[0], runs[WORKERS], sum(paired) / len(paired), serial_front == clustered_front)


def _spread(values: list[float]) -> str:
    return f"median of {len(values)}; runs {', '.join(f'{v:.3g}' for v in values)}"


def run() -> pd.DataFrame:
    seconds, fronts = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for workers in (0, WORKERS):
            name = f"workers-{workers}"
            seconds[workers], = _at_once([("search", root / name, root / f"cache-{name}", workers)])
            fronts[workers] = (root / name / "pareto.csv").read_bytes()
        rounds = [_bank_round(root, root / "cache-workers-0", i) for i in range(BANK_ROUNDS)]
        events = pd.read_json(root / "bank-0-workers-0" / "events.jsonl", lines=True)
        heads = int(events.loc[events["event"] == "head_bank", "heads"].iloc[0])
    serial, clustered, paired = ([r.serial for r in rounds], [r.clustered for r in rounds], [r.paired for r in rounds])
    speedup = [s / c for s, c in zip(serial, clustered)]
    ceiling = [WORKERS * s / p for s, p in zip(serial, paired)]
    reached = [s / c for s, c in zip(speedup, ceiling)]  # the cluster's own cost, apart from the machine's state
    identical = fronts[0] == fronts[WORKERS] and all(r.same_front for r in rounds)
    rows = [
        ("tiny search, serial (1 thread, cold cache)", seconds[0], "s", "<= 60 (idle 2 cores)", ""),
        (f"tiny search, --workers {WORKERS} (cold cache)", seconds[WORKERS], "s", "", ""),
        (f"tiny search, speed-up of --workers {WORKERS}", seconds[0] / seconds[WORKERS], "x", "", ""),
        (f"head bank ({heads} heads, backbones cached), serial", median(serial), "s", "", _spread(serial)),
        (f"head bank, --workers {WORKERS}", median(clustered), "s", "", _spread(clustered)),
        (f"head bank, speed-up of --workers {WORKERS}", median(speedup), "x", ">= 1.5 (idle 2 cores)",
         _spread(speedup)),
        (f"head bank, serial, {WORKERS} at once in processes of their own", median(paired), "s", "",
         _spread(paired)),
        (f"head bank, ceiling of {WORKERS} workers' speed-up on this machine", median(ceiling), "x", "",
         _spread(ceiling)),
        ("head bank, speed-up over the ceiling of its round", median(reached), "", "", _spread(reached)),
        ("pareto.csv identical to the serial run's (every run)", float(identical), "", "1", ""),
    ]
    return pd.DataFrame([{"benchmark": "cluster", "metric": m, "value": v, "unit": u, "target": t, "spread": sp}
                         for m, v, u, t, sp in rows])


if __name__ == "__main__":
    print(run().to_markdown(index=False, floatfmt=".4g"))
