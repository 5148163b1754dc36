"""Speed of the hardware cost model (``benchmarks/run.py cost``).

* cold: a full width-1.0 MobileNetV2 with 4 exits, every cache emptied first (YAML
  parsing, per-layer costs, the backbone's core mapping, all schedule parts);
* warm: the same network again, through the search's scoring function
  (:func:`eenas.hardware.cost_arch`) and through the full per-layer report;
* candidates/s: distinct random exit configurations through ``cost_arch`` on one core:
  4 exits at random mount points with random heads, core pins and overlap, random exit
  precision and a random 8- or 4-bit backbone.  Measured from empty caches (best of 3, the
  machine may be shared) and again after a warm-up on other random candidates, as in a
  search that has run for a while.
Also prints the static INT8 backbone's totals at widths 1.0 and 0.5 on edge_tpu_quad.
"""

from __future__ import annotations

import random
import statistics
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
from eenas.hardware import clear_caches, cost_arch, network_cost
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
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


def _rate(archs: list[Arch]) -> float:
    start = time.perf_counter()
    for candidate in archs:
        cost_arch(candidate)
    return len(archs) / (time.perf_counter() - start)


def run() -> pd.DataFrame:
    arch = Arch("cifar10", exits=FOUR_EXITS)
    clear_caches()
    start = time.perf_counter()
    cost_arch(arch)
    cold = 1e3 * (time.perf_counter() - start)
    warm = _ms(lambda: cost_arch(arch), WARM_REPEATS)
    warm_report = _ms(lambda: network_cost(arch), 20)

    archs = [_random_arch(random.Random(seed)) for seed in range(CANDIDATES)]
    cold_rates = []
    for _ in range(3):
        clear_caches()
        cold_rates.append(_rate(archs))
    _rate([_random_arch(random.Random(-1 - seed)) for seed in range(WARMUP_CANDIDATES)])
    warm_rate = _rate(archs)

    rows = [
        ("cold_ms", cold, "ms", ""),
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
