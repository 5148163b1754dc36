"""Speed-up of ``eenas search --workers 2`` against a serial run (``benchmarks/run.py cluster``).

The tiny search on synthetic data, each run in a cold cache of its own, so both train every
backbone and head.  The serial run trains with one torch thread, as each worker does, so the
two runs write the same ``pareto.csv`` (checked here too).  On 2 cores expect less than 2x:
the float backbone is one job that nothing runs beside, every iteration waits for its last
job, the client's own work (starting the cluster, sending backbones, extracting the final
classifier's features, scoring, NSGA-II) does not run in parallel, and the client shares
the two cores with the workers.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import pandas as pd
import torch

from eenas.search import SearchConfig, build_run

WORKERS = 2


def run() -> pd.DataFrame:
    cfg = SearchConfig.create("synthetic", "tiny", overrides={"holdout": 0}, bits=(8, 4))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as each worker trains: the same bytes
    seconds, fronts = {}, {}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for workers in (None, WORKERS):
                name = f"workers-{workers or 0}"
                search = build_run(cfg, Path(tmp) / name, cache_dir=str(Path(tmp) / f"cache-{name}"), device="cpu",
                                  workers=workers)
                start = time.perf_counter()
                search.run()
                seconds[workers] = time.perf_counter() - start
                fronts[workers] = (search.out / "pareto.csv").read_bytes()
    finally:
        torch.set_num_threads(threads)
    rows = [
        ("tiny search, serial (1 thread, cold cache)", seconds[None], "s", "<= 60 (idle 2 cores)"),
        (f"tiny search, --workers {WORKERS} (cold cache)", seconds[WORKERS], "s", ""),
        (f"speed-up of --workers {WORKERS}", seconds[None] / seconds[WORKERS], "x", ">= 1.5 (idle 2 cores)"),
        ("pareto.csv identical to the serial run's", float(fronts[None] == fronts[WORKERS]), "", "1"),
    ]
    return pd.DataFrame([{"benchmark": "cluster", "metric": m, "value": v, "unit": u, "target": t}
                         for m, v, u, t in rows])


if __name__ == "__main__":
    print(run().to_markdown(index=False, floatfmt=".4g"))
