"""Validation accuracy of a uniform `long` ENOS network after a fine-tune at a given rate and length.

``python benchmarks/enos_finetune.py MODEL LABEL:LR:IMAGES...``: every layer on candidate LABEL,
from the shipped float weights, one cosine epoch over the first IMAGES training images at LR
(0 images: no fine-tune), then BatchNorm recalibrated as every ENOS network is; the validation
split only, as the choice of the budget's rate was made (docs/enos.md, *Warm start*).
"""

from __future__ import annotations

import sys
import time
from dataclasses import replace

from eenas.enos import budget
from eenas.enos.search import EnosConfig, Workspace
from eenas.train.loops import fit


def main(model: str, specs: list[str]) -> None:
    long = budget.ENOS_BUDGETS["long"]
    for spec in specs:
        label, lr, images = spec.split(":")
        budget.ENOS_BUDGETS["long"] = replace(long, finetune_lr=float(lr), finetune_limit=int(images))
        ws = Workspace(EnosConfig(model=model, dataset="cifar10", budget="long", device="cpu"))
        net, _ = ws.network()
        for layer in net.layers:
            layer.keep_only(ws.table.labels.index(label))
        start = time.perf_counter()
        if int(images):
            fit(net, ws.batches("train", train=True, limit=int(images)), 1, float(lr), one_cycle=False, desc=label)
        print(f"{model} {label} lr {lr} images {images}: validation {ws.accuracy(net, 'val'):.4f} "
              f"({time.perf_counter() - start:.0f} s)", flush=True)
    budget.ENOS_BUDGETS["long"] = long


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
