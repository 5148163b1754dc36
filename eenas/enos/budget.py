"""ENOS budgets: network size, data and epochs for the search and for training the chosen networks.

The protocol is the standard NAS one: a search (weights-only warm-up, then weights and
architecture logits together), discretisation, and then the chosen assignment is trained
with exactly the recipe of the single-operator baselines, so the sweep compares networks,
not training runs: from the pretrained float weights a cosine fine-tune at ``finetune_lr``
(the supernet's weights too), from scratch one-cycle at ``lr``; ``train_epochs`` and
``label_smoothing`` either way.

* ``tiny``: tests; a 1-unit-per-stage network at 1/8 width on a few hundred images, seconds per run.
* ``quick``: a CPU smoke sweep on 8,000 CIFAR-10 images, networks at 1/4 width.
* ``long``: the CPU sweep on the whole CIFAR-10 training split (45,000 training, 5,000
  validation, 10,000 test images), ShuffleNetV2 at 1/2 width and SqueezeNet at full width,
  warm-started from their pretrained weights; the softmax supernet costs 14
  single-network steps per step on a CPU, so the search sees the first 4,000 training
  images (docs/enos.md has the measured step times and the sweep's time).
* ``standard``: the full networks and datasets for a GPU.

Each budget also fixes the network sizes and the float pretraining (``eenas enos pretrain``) whose
weights warm-start its runs: at ``long``, ShuffleNetV2 at width 1/2 and SqueezeNet 1.1 at full
width, the smallest sizes whose float accuracy is expected at or above 88% (docs/enos.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field

from eenas.enos.networks import NetworkSize
from eenas.errors import EenasError

WEIGHT_SHARING = ("shared", "family")


@dataclass(frozen=True)
class PretrainRecipe:
    """The float pretraining of a budget's networks: one-cycle SGD from scratch, crop-and-flip augmentation."""

    epochs: int
    lr: float
    label_smoothing: float = 0.1
    monitor_every: int = 5  # epochs between validation measurements (kept in the weights' history)


@dataclass(frozen=True)
class EnosBudget:
    name: str
    sizes: Mapping[str, NetworkSize]  # per network
    train_limit: int | None  # cap on training images (None: the whole training split)
    val_limit: int | None  # cap on the validation images (bi-level search steps alpha on them)
    test_limit: int | None
    batch_size: int
    search_limit: int | None  # the search's training images (the first of the training split; None: all)
    search_epochs: int  # the whole search, warm-up included
    warmup_epochs: int  # weights only: the logits start learning once the weights mean something
    train_epochs: int  # every trained network, searched or single-operator: a fine-tune, or from scratch
    lr: float  # peak SGD rate for weights, in the search and in training from scratch
    arch_lr: float  # Adam rate for the architecture logits
    relaxation: str  # default relaxation: softmax or gumbel
    tau: tuple[float, float] = (1.0, 1.0)  # relaxation temperature, annealed geometrically from first to second
    weights: str = "shared"  # float weights of a layer: one for all candidates, or one per operator family
    label_smoothing: float = 0.0
    synthetic_size: int = 1600
    finetune_lr: float = 0.01  # cosine SGD rate of a trained network that starts from pretrained weights
    finetune_limit: int | None = None  # training images of every trained network (None: the whole training split)
    search_batch_size: int | None = None  # the supernet's batch (None: batch_size): it holds every candidate's
    # activations, so memory grows with the candidates (SqueezeNet at batch 128: 13 GB)
    pretrain: PretrainRecipe = field(default_factory=lambda: PretrainRecipe(epochs=2, lr=0.05))

    def recipe(self) -> dict:
        """The fields that change results (cache keys hash these)."""
        data = asdict(self)
        data.pop("name")
        return data

    def size(self, model: str) -> NetworkSize:
        return self.sizes[model]


def _same_size(size: NetworkSize) -> dict[str, NetworkSize]:
    return {"shufflenet_v2": size, "squeezenet": size}


ENOS_BUDGETS: dict[str, EnosBudget] = {
    b.name: b
    for b in (
        EnosBudget("tiny", _same_size(NetworkSize(0.125, (1, 1, 1))), train_limit=192, val_limit=64, test_limit=128,
                   batch_size=64, search_limit=None, search_epochs=2, warmup_epochs=1, train_epochs=2, lr=0.05,
                   arch_lr=0.1, relaxation="softmax", tau=(2.0, 0.5), synthetic_size=320),
        EnosBudget("quick", _same_size(NetworkSize(0.25, (1, 2, 1))), train_limit=8000, val_limit=1000, test_limit=2000,
                   batch_size=128, search_limit=None, search_epochs=3, warmup_epochs=1, train_epochs=5, lr=0.1,
                   arch_lr=0.05, relaxation="softmax", tau=(2.0, 0.5), pretrain=PretrainRecipe(epochs=10, lr=0.1)),
        # Warm-started: the weights mean something from the first step, so no warm-up; a fine-tune sees the
        # first 4,096 training images once at 0.003, the rate chosen on validation (docs/enos.md, "Sizing").
        EnosBudget("long", {"shufflenet_v2": NetworkSize(0.5), "squeezenet": NetworkSize(1.0)}, train_limit=None,
                   val_limit=None, test_limit=None, batch_size=128, search_limit=2048, search_epochs=1,
                   warmup_epochs=0, train_epochs=1, lr=0.1, arch_lr=0.1, relaxation="softmax", tau=(2.0, 0.5),
                   finetune_lr=0.003, finetune_limit=4096, search_batch_size=32,
                   pretrain=PretrainRecipe(epochs=60, lr=0.1)),
        EnosBudget("standard", _same_size(NetworkSize(1.0)), train_limit=None, val_limit=None, test_limit=None,
                   batch_size=128, search_limit=None, search_epochs=50, warmup_epochs=10, train_epochs=200, lr=0.1,
                   arch_lr=3e-3, relaxation="softmax", tau=(2.0, 0.2), label_smoothing=0.1,
                   pretrain=PretrainRecipe(epochs=200, lr=0.1)),
    )
}


def get_enos_budget(name: str) -> EnosBudget:
    try:
        return ENOS_BUDGETS[name]
    except KeyError:
        raise EenasError(f"unknown budget '{name}' (known: {', '.join(ENOS_BUDGETS)})") from None
