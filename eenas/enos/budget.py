"""ENOS budgets: network size, data and epochs for the search, the fine-tune and the baselines.

* ``tiny``: tests; a 1-unit-per-stage network at 1/8 width on a few hundred images,
  softmax relaxation (every candidate runs), seconds per scheme.
* ``quick``: a CPU sweep on CIFAR-10 in under half an hour on 2 cores: networks at 1/4
  width (ShuffleNetV2 with 1, 2, 1 units per stage), 8,000 training, 1,000 validation and
  2,000 test images, 3 search epochs with hard Gumbel sampling (one candidate runs per
  step) and 2 fine-tune epochs; each single-operator baseline trains for the same 5 epochs.
* ``standard``: the full networks and datasets for a GPU, with the softmax relaxation.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from eenas.enos.networks import NetworkSize
from eenas.errors import EenasError


@dataclass(frozen=True)
class EnosBudget:
    name: str
    size: NetworkSize
    train_limit: int | None  # cap on training images (None: the whole training split)
    val_limit: int | None  # cap on the validation images (bi-level search steps alpha on them)
    test_limit: int | None
    batch_size: int
    search_epochs: int
    finetune_epochs: int
    lr: float  # peak SGD rate for weights in the search and for baselines from scratch
    finetune_lr: float  # cosine-annealed SGD rate for the discretised network
    arch_lr: float  # Adam rate for the architecture logits
    relaxation: str  # default relaxation: softmax or gumbel
    synthetic_size: int = 1600

    def recipe(self) -> dict:
        """The fields that change results (cache keys hash these)."""
        data = asdict(self)
        data.pop("name")
        return data


ENOS_BUDGETS: dict[str, EnosBudget] = {
    b.name: b
    for b in (
        EnosBudget("tiny", NetworkSize(0.125, (1, 1, 1)), train_limit=192, val_limit=64, test_limit=128,
                   batch_size=64, search_epochs=2, finetune_epochs=1, lr=0.05, finetune_lr=0.01, arch_lr=0.1,
                   relaxation="softmax", synthetic_size=320),
        EnosBudget("quick", NetworkSize(0.25, (1, 2, 1)), train_limit=8000, val_limit=1000, test_limit=2000,
                   batch_size=128, search_epochs=3, finetune_epochs=2, lr=0.1, finetune_lr=0.05, arch_lr=0.05,
                   relaxation="gumbel"),
        EnosBudget("standard", NetworkSize(1.0), train_limit=None, val_limit=None, test_limit=None,
                   batch_size=128, search_epochs=50, finetune_epochs=30, lr=0.1, finetune_lr=0.01, arch_lr=3e-3,
                   relaxation="softmax"),
    )
}


def get_enos_budget(name: str) -> EnosBudget:
    try:
        return ENOS_BUDGETS[name]
    except KeyError:
        raise EenasError(f"unknown budget '{name}' (known: {', '.join(ENOS_BUDGETS)})") from None
