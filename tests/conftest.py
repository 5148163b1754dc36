"""Shared fixtures: a tiny synthetic pipeline whose caches every test in a session reuses."""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
import yaml

from eenas.search import SearchConfig, SearchRun, build_run
from eenas.search.run import SearchResult
from eenas.train import Pipeline, TrainConfig, get_budget

# One intra-op thread for the tests and the CLIs they spawn: the tiny models gain nothing from
# more, and multi-threaded processes sharing 2 cores make OpenMP spin-wait (under the same load
# we measured a width-0.5 training step at 57 images/s with 2 threads and 233 with 1).
os.environ["OMP_NUM_THREADS"] = "1"
torch.set_num_threads(1)

SHARED_CIFAR = Path(__file__).resolve().parents[1].parent / "shared" / "datasets" / "cifar10"


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("eenas-cache")


@pytest.fixture(scope="session")
def tiny_pipeline(cache_dir) -> Pipeline:
    return Pipeline(TrainConfig("synthetic", get_budget("tiny"), 0.25, cache_dir=cache_dir, device="cpu"))


SMALL_SEARCH = {"initial": 4, "iterations": 2, "per_iteration": 2, "population": 8, "generations": 3}
# The seed of the small searches that test_search and test_cluster compare against: one seed, so the session's
# cache trains their backbones and heads once.  Not the CLI's default (0), as 'tiny' is not its default budget, so
# that evaluate must read an arch's training block to find them.
SEARCH_SEED = 7


def small_search_config(seed: int = 0, sizes: dict | None = None, **kwargs) -> SearchConfig:
    """A tiny synthetic search that takes seconds once the tiny pipeline is cached."""
    return SearchConfig.create("synthetic", "tiny", overrides={**SMALL_SEARCH, **(sizes or {})}, seed=seed,
                               **{"bits": (8, 4), **kwargs})


def start_search(cfg: SearchConfig, out: Path, cache_dir: Path, **kwargs) -> SearchRun:
    """A search run on the CPU with its training cache in ``cache_dir`` (``resume``, ``force`` pass through)."""
    return build_run(cfg, out, cache_dir=str(cache_dir), device="cpu", **kwargs)


@pytest.fixture(scope="session")
def small_search(tmp_path_factory, cache_dir) -> tuple[SearchRun, SearchResult]:
    """The small search at SEARCH_SEED and what its run() returned: run() alone, nothing else writes into its
    directory.  The session's first run at that seed, so it trains every backbone and head it uses (test_search
    checks its files and events; test_cluster's clustered runs must write its bytes)."""
    run = start_search(small_search_config(seed=SEARCH_SEED), tmp_path_factory.mktemp("search") / "run", cache_dir)
    return run, run.run()


@dataclass(frozen=True)
class Finished:
    """How ``eenas ARGS`` ended: its exit code and what it printed."""

    code: int
    out: str
    err: str


def run_eenas(monkeypatch, capsys, *args) -> Finished:
    """``eenas ARGS`` in this process, through ``main`` as the console script runs it (bad input: one
    ``eenas: error:`` line and exit code 2), without the seconds a new interpreter spends importing torch.  Log
    records go to pytest's handlers (``caplog``), not to ``err``."""
    from eenas.cli import main

    monkeypatch.setattr(sys, "argv", ["eenas", *map(str, args)])
    try:
        main()
        code = 0
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    return Finished(code, out, err)


def search_config_from_command_line(monkeypatch, *args: str) -> SearchConfig:
    """The config ``eenas search --dataset synthetic --budget tiny ARGS`` builds (the run is stopped before it
    touches anything)."""
    from eenas.cli import main

    seen = []

    class Stop(Exception):
        pass

    def capture(cfg, out, **kwargs):
        seen.append(cfg)
        raise Stop

    monkeypatch.setattr("eenas.search.build_run", capture)
    monkeypatch.setattr(sys, "argv", ["eenas", "search", "--dataset", "synthetic", "--budget", "tiny", *args])
    with pytest.raises(Stop):
        main()
    return seen[0]


def tiny_sweep_args(tmp_path: Path, seeds: str) -> list[str]:
    """``eenas enos sweep`` options at tiny on synthetic data: two λ, two operators (a table written in ``tmp_path``)
    and one bisection step; add ``--cache-dir`` and ``--out``."""
    energy = tmp_path / "two.yaml"
    energy.write_text(yaml.safe_dump({
        "extends": "edge_tpu_single",
        "cim": {"array_rows": 32, "adc_bits": 5},
        "operators": {"mac8": {"digital": {"core_scale": 1.0, "source": "core model"}},
                      "binary": {"cim": {"tops_per_watt": 210, "source": "test"}}},
    }, sort_keys=False))
    return ["--energy-weights", "0,100", "--seeds", seeds, "--dataset", "synthetic", "--budget", "tiny",
            "--energy-table", str(energy), "--device", "cpu", "--bisection-steps", "1"]


def arch_dict(**overrides) -> dict:
    data = {
        "eenas_version": 1,
        "dataset": "synthetic",
        "backbone": {"name": "mobilenet_v2", "width_mult": 0.25},
        "exits": [{"after_block": 3, "head": "pool_fc", "threshold": 0.9},
                  {"after_block": 7, "head": "conv_pool_fc", "threshold": 0.85}],
        "quant": {"backbone": {"weights": 8, "activations": 8}, "exits": {"weights": 8, "activations": 8}},
        "hardware": "edge_tpu_quad",
    }
    data.update(overrides)
    return data


def write_arch(path: Path, **overrides) -> Path:
    path.write_text(json.dumps(arch_dict(**overrides)))
    return path


@pytest.fixture
def cifar_dir() -> Path:
    path = Path(os.environ.get("EENAS_DATA", SHARED_CIFAR))
    if not (path / "cifar-10-batches-py").exists():
        pytest.skip(f"real CIFAR-10 not found at {path}")
    return path
