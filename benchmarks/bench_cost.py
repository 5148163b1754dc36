"""Speed of the hardware cost model (``benchmarks/run.py cost``).

* cold: a full width-1.0 MobileNetV2 with 4 exits, every cache emptied first (YAML
  parsing, per-layer costs, the genetic search of the backbone's core mapping, all
  schedule parts);
* warm: the same network again, through the search's scoring function
  (:func:`eenas.hardware.cost_arch`) and through the full per-layer report;
* candidates/s: distinct random exit configurations through ``cost_arch`` on one core:
  4 exits at random mount points with random heads, core pins and overlap, random exit
  precision and a random 8- or 4-bit backbone.  Measured from empty caches (best of 3, the
  machine may be shared) except the searched core allocations, which a search computes once
  per backbone precision before its first candidate and then loads from its cache folder,
  and again after a warm-up on other random candidates, as in a search that has run for a
  while;
* the genetic search of the backbone's core allocation on edge_tpu_quad, at W8A8 and W4A4,
  widths 0.5 and 1.0, both weight modes: its run time and its gain over the greedy
  allocation in static cycles, energy and ET (percent; 0 where greedy stays the better).
Also prints the static INT8 backbone's totals at widths 1.0 and 0.5 on edge_tpu_quad.

Times are CPU time of this single-threaded process (``time.process_time``), i.e. time on one
core: on the project's shared machine, wall time also counts the other jobs' turns.
"""

from __future__ import annotations

import random
import statistics
import tempfile
import time

import pandas as pd

from eenas.arch import (
    BITWIDTHS,
    Arch,
    BackboneConfig,
    ExitConfig,
    Precision,
    QuantConfig,
)
from eenas.hardware import WEIGHT_MODES, backbone_allocation, clear_caches, cost_arch, network_cost, use_cache_dir
from eenas.models.spec import HEADS, NUM_BLOCKS

CANDIDATES = 2000
WARMUP_CANDIDATES = 10_000
WARM_REPEATS = 200
FOUR_EXITS = (
    ExitConfig(3, "pool_fc", 0.9),
    ExitConfig(6, "conv_pool_fc", 0.9),
    ExitConfig(10, "dsconv_pool_fc", 0.9, overlap=True),
    ExitConfig(14, "gap_fc", 0.9, core=2),
)


def _random_arch(rng: random.Random) -> Arch:
    exits = tuple(
        ExitConfig(block, rng.choice(sorted(HEADS)), 0.9, rng.choice([None, 0, 1, 2, 3]), rng.random() < 0.5)
        for block in sorted(rng.sample(range(1, NUM_BLOCKS + 1), 4))
    )
    quant = QuantConfig(Precision(rng.choice([8, 4]), rng.choice([8, 4])),
                        Precision(rng.choice(BITWIDTHS), rng.choice(BITWIDTHS)))
    return Arch("cifar10", exits=exits, quant=quant)


def _ms(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.process_time()
        fn()
        times.append(time.process_time() - start)
    return 1e3 * statistics.median(times)


def _rate(archs: list[Arch]) -> float:
    start = time.process_time()
    for candidate in archs:
        cost_arch(candidate)
    return len(archs) / (time.process_time() - start)


def _gain(greedy: float, searched: float) -> float:
    return 100 * (1 - searched / greedy)


def _allocation_rows() -> list[tuple[str, float, str, str]]:
    """Run time and gain of the searched allocation over greedy (static network, edge_tpu_quad)."""
    rows, seconds = [], []
    for width in (0.5, 1.0):
        for bits in (8, 4):
            arch = Arch("cifar10", BackboneConfig("mobilenet_v2", width),
                        quant=QuantConfig(Precision(bits, bits), Precision(bits, bits)))
            for weights in WEIGHT_MODES:
                clear_caches()
                greedy = backbone_allocation(arch, weights=weights, allocation="greedy")
                start = time.process_time()
                searched = backbone_allocation(arch, weights=weights)
                seconds.append(time.process_time() - start)
                name = f"allocation_gain_w{width}_w{bits}a{bits}_{weights}"
                rows += [
                    (f"{name}_cycles", _gain(greedy.latency_cycles, searched.latency_cycles), "%", ""),
                    (f"{name}_energy", _gain(greedy.energy_pj, searched.energy_pj), "%", ""),
                    (f"{name}_et", _gain(greedy.et, searched.et), "%", ">= 0"),
                ]
    return [("allocation_search_s_mean", statistics.mean(seconds), "s", ""),
            ("allocation_search_s_max", max(seconds), "s", ""), *rows]


def run() -> pd.DataFrame:
    arch = Arch("cifar10", exits=FOUR_EXITS)
    rows = _allocation_rows()
    with tempfile.TemporaryDirectory() as cache, use_cache_dir(cache):
        clear_caches()
        start = time.process_time()
        cost_arch(arch)  # includes searching the allocation
        cold = 1e3 * (time.process_time() - start)
        warm = _ms(lambda: cost_arch(arch), WARM_REPEATS)
        warm_report = _ms(lambda: network_cost(arch), 20)

        archs = [_random_arch(random.Random(seed)) for seed in range(CANDIDATES)]
        for a in archs:  # the allocations of the four backbone precisions, searched once and cached on disk
            backbone_allocation(a)
        cold_rates = []
        for _ in range(3):
            clear_caches()
            cold_rates.append(_rate(archs))
        _rate([_random_arch(random.Random(-1 - seed)) for seed in range(WARMUP_CANDIDATES)])
        warm_rate = _rate(archs)

    rows += [
        ("cold_ms_with_allocation_search", cold, "ms", ""),
        ("warm_ms", warm, "ms", "< 5"),
        ("warm_full_report_ms", warm_report, "ms", ""),
        ("candidates_per_s", max(cold_rates), "1/s", ">= 1000"),
        (f"candidates_per_s_after_{WARMUP_CANDIDATES}", warm_rate, "1/s", ">= 1000"),
    ]
    for width in (1.0, 0.5):
        static = cost_arch(Arch("cifar10", BackboneConfig("mobilenet_v2", width)))
        rows += [
            (f"static_int8_w{width}_cycles", static.static_latency_cycles, "cycles", ""),
            (f"static_int8_w{width}_energy", static.static_energy_pj / 1e6, "uJ", ""),
            (f"static_int8_w{width}_et", static.static_et, "pJ*cycles", ""),
        ]
    return pd.DataFrame([{"benchmark": "cost", "metric": m, "value": v, "unit": u, "target": t} for m, v, u, t in rows])


if __name__ == "__main__":
    print(run().to_markdown(index=False, floatfmt=".4g"))
