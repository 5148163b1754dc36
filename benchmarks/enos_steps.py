"""Seconds per training step of the `long` ENOS networks, to size a CPU sweep (docs/enos.md).

``python benchmarks/enos_steps.py MODEL WHAT...``: WHAT is a candidate label (every layer on it)
or ``softmax``/``gumbel`` (the supernet, α uniform).  Real augmented CIFAR-10 batches of
``ENOS_BATCH`` images (default 128) from ``EENAS_DATA``; prints the median step after two and
the process's peak memory.
"""

from __future__ import annotations

import os
import resource
import sys
import time

import torch

from eenas.data import Batches, load_splits, resolve_data_dir
from eenas.enos.budget import get_enos_budget
from eenas.enos.energy import load_energy_table
from eenas.enos.networks import build_network
from eenas.enos.relaxation import relax

STEPS = 10


def main(model: str, kinds: list[str]) -> None:
    batch = int(os.environ.get("ENOS_BATCH", "128"))
    table = load_energy_table()
    splits = load_splits("cifar10", resolve_data_dir(None), 0.1, 0)
    batches = Batches(splits.train.subset(batch * STEPS), "cifar10", batch, torch.device("cpu"), shuffle=True,
                      augment=True)
    size = get_enos_budget("long").size(model)
    for what in kinds:
        torch.manual_seed(0)
        net = build_network(model, 10, size, table).to(memory_format=torch.channels_last)
        relaxed = what in ("softmax", "gumbel")
        alpha = torch.zeros(len(net.layers), len(table.candidates))
        if not relaxed:
            for layer in net.layers:
                layer.keep_only(table.labels.index(what))
        opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
        net.train()
        times = []
        for x, y in batches:
            start = time.perf_counter()
            if relaxed:
                for layer, mix in zip(net.layers, relax(alpha, what)):
                    layer.mix = mix
            loss = torch.nn.functional.cross_entropy(net(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            times.append(time.perf_counter() - start)
        step = sorted(times[2:])[len(times[2:]) // 2]
        peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
        print(f"{model} {what} batch {batch}: {step:.3f} s/step, {1000 * step / batch:.1f} s per 1,000 images, "
              f"peak memory {peak_gb:.1f} GB", flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
