"""Run every ``benchmarks/bench_*.py`` and print one table (``make bench``).

Each benchmark module exposes ``run() -> pandas.DataFrame`` with the columns
``benchmark, metric, value, unit, target`` (and ``spread``, where a value is the median of repeated runs: the
runs); this script only collects and prints them.
The heavy ones (:data:`HEAVY`) run only when named: ``benchmarks/run.py predictor`` (``make bench-predictor``).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pandas as pd

HEAVY = {"predictor"}  # trains or loads a whole head bank at quick: tens of minutes on a CPU


def _load(path: Path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def main(argv: list[str]) -> None:
    here = Path(__file__).parent
    selected = set(argv)
    frames = []
    for path in sorted(here.glob("bench_*.py")):
        name = path.stem.removeprefix("bench_")
        if not (name in selected if selected else name not in HEAVY):
            continue
        print(f"running {path.stem} ...", file=sys.stderr, flush=True)
        frames.append(_load(path).run())
    table = pd.concat(frames, ignore_index=True)
    if "spread" in table:
        table["spread"] = table["spread"].fillna("")
    print(f"machine: {machine()}")
    print(table.to_markdown(index=False, floatfmt=".4g"))


def machine() -> str:
    """What the numbers were measured on: timings compare only within one machine."""
    import os

    import torch

    from eenas.machine import cpu_name

    return (f"{cpu_name()}, {os.cpu_count()} cores, torch {torch.__version__} with {torch.get_num_threads()} threads"
            f" (OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}), "
            f"{torch.backends.cpu.get_cpu_capability()}")


if __name__ == "__main__":
    main(sys.argv[1:])
