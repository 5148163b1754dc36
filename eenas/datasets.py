"""The datasets eenas knows and their class counts.

Without torch and below the arch file, so the data loaders need not import the arch-file
format (:mod:`eenas.arch` re-exports both names).
"""

from __future__ import annotations

DATASET_CLASSES = {"cifar10": 10, "cifar100": 100, "synthetic": 10}


def unknown_dataset(name: str) -> str:
    return f"unknown dataset '{name}' (known: {', '.join(DATASET_CLASSES)})"
