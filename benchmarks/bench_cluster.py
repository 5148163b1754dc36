"""Speed-up of ``eenas search --workers 2`` against a serial run (``benchmarks/run.py cluster``).

Two measurements on synthetic data, serial and then on 2 workers, each run in a cache of its own.
The serial runs train with one torch thread, as each worker does, so both write the same
``pareto.csv`` (checked here too).

* The tiny search from a cold cache: the whole run, backbones included.  Its iterations train a few
  one-second heads each, so the cluster's fixed costs (starting the worker processes, each worker's
  pass over the data for its feature bank) weigh as much as the parallel training.
* The head bank (issue 32's target): ``--strategy exhaustive`` at tiny trains every head of the space
  at once, from a cache that already holds the backbones, which is where a search spends its time
  when training dominates.

On 2 cores expect less than 2x: the client shares the cores with the workers.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch

from eenas.search import SearchConfig, build_run

WORKERS = 2
BANK_MOUNTS = (1, 3, 5, 8, 11, 14, 17)  # 7 of the 17 mounts: 112 heads


def _timed(cfg: SearchConfig, out: Path, cache: Path, workers: int | None) -> tuple[float, bytes, int]:
    """Seconds of the run, its ``pareto.csv`` and the size of its space's head bank."""
    search = build_run(cfg, out, cache_dir=str(cache), device="cpu", workers=workers)
    start = time.perf_counter()
    search.run()
    return time.perf_counter() - start, (search.out / "pareto.csv").read_bytes(), len(search.space.head_bank())


def run() -> pd.DataFrame:
    search = SearchConfig.create("synthetic", "tiny", overrides={"holdout": 0}, bits=(8, 4))
    bank = SearchConfig.create("synthetic", "tiny", overrides={"holdout": 0}, bits=(8, 4), strategy="exhaustive",
                               mounts=BANK_MOUNTS)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as each worker trains: the same bytes
    seconds, fronts = {}, {}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            for workers in (None, WORKERS):
                name = f"workers-{workers or 0}"
                seconds["search", workers], fronts["search", workers], _ = _timed(
                    search, root / name, root / f"cache-{name}", workers)
                # The bank's cache: the backbones that run trained, no heads.
                shutil.copytree(root / f"cache-{name}" / "backbone", root / f"bank-{name}" / "backbone")
                seconds["bank", workers], fronts["bank", workers], heads = _timed(
                    bank, root / f"bank-run-{name}", root / f"bank-{name}", workers)
    finally:
        torch.set_num_threads(threads)
    rows = [
        ("tiny search, serial (1 thread, cold cache)", seconds["search", None], "s", "<= 60 (idle 2 cores)"),
        (f"tiny search, --workers {WORKERS} (cold cache)", seconds["search", WORKERS], "s", ""),
        (f"tiny search, speed-up of --workers {WORKERS}", seconds["search", None] / seconds["search", WORKERS], "x",
         ""),
        (f"head bank ({heads} heads, backbones cached), serial", seconds["bank", None], "s", ""),
        (f"head bank, --workers {WORKERS}", seconds["bank", WORKERS], "s", ""),
        (f"head bank, speed-up of --workers {WORKERS}", seconds["bank", None] / seconds["bank", WORKERS], "x",
         ">= 1.5 (idle 2 cores)"),
        ("pareto.csv identical to the serial run's (both runs)",
         float(all(fronts[k, None] == fronts[k, WORKERS] for k in ("search", "bank"))), "", "1"),
    ]
    return pd.DataFrame([{"benchmark": "cluster", "metric": m, "value": v, "unit": u, "target": t}
                         for m, v, u, t in rows])


if __name__ == "__main__":
    print(run().to_markdown(index=False, floatfmt=".4g"))
