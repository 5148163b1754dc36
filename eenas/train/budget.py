"""Training budgets: how much compute each stage of the pipeline gets.

``tiny`` is for tests (seconds on synthetic data), ``quick`` is the CPU default (the demo:
pretraining plus search within half an hour on 2 cores), ``long`` is for CPU results worth
publishing (within two hours on 2 cores), ``standard`` is the full recipe for a GPU.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from eenas.errors import EenasError


@dataclass(frozen=True)
class Budget:
    name: str
    width_mult: float  # default backbone width for pretrain/search
    pretrain_epochs: int
    qat_epochs: int
    head_epochs: int
    joint_epochs: int
    batch_size: int
    lr: float  # peak SGD learning rate of float pretraining
    train_limit: int | None  # cap on training images (None: all 45k)
    eval_limit: int | None  # cap on validation and test images
    head_train_limit: int | None = None  # cap on the cached training features exit heads see
    synthetic_size: int = 1600  # training-set size of the synthetic dataset
    label_smoothing: float = 0.0  # of the backbone's pretraining loss
    dropout: float = 0.2  # before the backbone's classifier (torchvision's default)

    @property
    def head_qat_epochs(self) -> int:
        """Epochs of an exit head's QAT fine-tune: a third of its float training."""
        return max(1, self.head_epochs // 3)

    def recipe(self) -> dict:
        """The fields that change trained weights (cache keys hash these)."""
        data = asdict(self)
        data.pop("name")
        data.pop("width_mult")
        return data

    def pretrain_recipe(self) -> dict:
        """The fields that change the float pretraining alone (its cache key hashes only these, so a change to
        the QAT or head recipe never discards hours of pretraining)."""
        return {name: getattr(self, name) for name in PRETRAIN_FIELDS}


PRETRAIN_FIELDS = ("pretrain_epochs", "batch_size", "lr", "train_limit", "synthetic_size", "label_smoothing", "dropout")

BUDGETS: dict[str, Budget] = {
    b.name: b
    for b in (
        Budget("tiny", 0.25, pretrain_epochs=8, qat_epochs=1, head_epochs=3, joint_epochs=1,
               batch_size=64, lr=0.05, train_limit=1024, eval_limit=512),
        Budget("quick", 0.5, pretrain_epochs=20, qat_epochs=1, head_epochs=4, joint_epochs=2,
               batch_size=128, lr=0.15, train_limit=None, eval_limit=None, head_train_limit=20000,
               label_smoothing=0.1, dropout=0.0),
        Budget("long", 0.5, pretrain_epochs=40, qat_epochs=2, head_epochs=6, joint_epochs=3,
               batch_size=128, lr=0.15, train_limit=None, eval_limit=None, head_train_limit=30000,
               label_smoothing=0.1, dropout=0.0),
        Budget("standard", 1.0, pretrain_epochs=150, qat_epochs=15, head_epochs=20, joint_epochs=10,
               batch_size=128, lr=0.1, train_limit=None, eval_limit=None),
    )
}


def get_budget(name: str) -> Budget:
    try:
        return BUDGETS[name]
    except KeyError:
        raise EenasError(f"unknown budget '{name}' (known: {', '.join(BUDGETS)})") from None
