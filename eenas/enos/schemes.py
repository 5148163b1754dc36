"""The ENOS training schemes, in a small registry (``SCHEMES[name]``).

Every scheme leaves the logits alone during the searcher's weights-only warm-up.

* ``single``: weights and logits take one joint step per training batch.
* ``bilevel``: first-order DARTS; per training batch, the logits step on a validation
  batch (never on a training batch), then the weights step on the training batch.
* ``sequential``: as the reference describes, each training step learns the assignment of
  one layer: the weights step on every batch, and the logits of layer ``t mod layers`` only
  (round robin, in execution order).
* ``progressive``: after the weights-only warm-up, joint steps for ``WARMUP_FRACTION`` of the
  remaining steps (so the logits have learned something before the first pin); then, spread
  evenly over the rest, layers are pinned one at a time to their most probable candidate,
  always the most confident undecided layer first (largest top probability; ties go to the
  earlier layer), with joint steps (fine-tuning weights and the remaining logits) between
  pins.  Every layer is pinned by the end.
* ``variational``: as ``single``, but the logits are a Gaussian posterior sampled every step
  with a KL term to the prior, weighted ``1 / training images`` (Bayes by backprop).
"""

from __future__ import annotations

import itertools
import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sized

import torch
from tqdm.auto import tqdm

from eenas.enos.searcher import Searcher, StepStats
from eenas.errors import EenasError

WARMUP_FRACTION = 0.3
Batches = Iterable[tuple[torch.Tensor, torch.Tensor]]


class Scheme(ABC):
    """How weights and logits are trained; ``variational`` asks for a Gaussian architecture."""

    name: str = ""
    variational: bool = False

    @abstractmethod
    def run(self, searcher: Searcher, train: Batches, val: Batches, epochs: int) -> None:
        """Train ``searcher``'s weights and logits for ``epochs`` passes over ``train``."""


SCHEMES: dict[str, Scheme] = {}


def register(cls: type[Scheme]) -> type[Scheme]:
    SCHEMES[cls.name] = cls()
    return cls


def get_scheme(name: str) -> Scheme:
    try:
        return SCHEMES[name]
    except KeyError:
        raise EenasError(f"unknown scheme '{name}' (known: {', '.join(SCHEMES)})") from None


def _loop(train: Batches, epochs: int, desc: str, step: Callable[[int, torch.Tensor, torch.Tensor], StepStats]) -> None:
    """Run ``step(global_step, x, y)`` over every batch of every epoch, with a progress bar."""
    t = 0
    for epoch in range(epochs):
        bar = tqdm(train, desc=f"{desc} {epoch + 1}/{epochs}", leave=False, dynamic_ncols=True, disable=None)
        for x, y in bar:
            stats = step(t, x, y)
            bar.set_postfix(loss=f"{stats.loss:.3f}", acc=f"{stats.accuracy:.3f}")
            t += 1


@register
class Single(Scheme):
    name = "single"

    def run(self, searcher: Searcher, train: Batches, val: Batches, epochs: int) -> None:
        _loop(train, epochs, f"enos {self.name}", lambda t, x, y: searcher.step(x, y))


@register
class Bilevel(Scheme):
    name = "bilevel"

    def run(self, searcher: Searcher, train: Batches, val: Batches, epochs: int) -> None:
        val_batches = itertools.cycle(val)  # cycle() replays its first pass: fixed order, as DARTS's loader

        def step(t: int, x: torch.Tensor, y: torch.Tensor) -> StepStats:
            if not searcher.warming_up:
                searcher.step(*next(val_batches), weights=False)
            return searcher.step(x, y, arch=False)

        _loop(train, epochs, f"enos {self.name}", step)


@register
class Sequential(Scheme):
    name = "sequential"

    def run(self, searcher: Searcher, train: Batches, val: Batches, epochs: int) -> None:
        layers = len(searcher.layers)
        _loop(train, epochs, f"enos {self.name}", lambda t, x, y: searcher.step(x, y, rows=[t % layers]))


@register
class Progressive(Scheme):
    name = "progressive"

    def run(self, searcher: Searcher, train: Batches, val: Batches, epochs: int) -> None:
        total = epochs * len(train) if isinstance(train, Sized) else searcher.settings.total_steps
        weights_only = searcher.settings.warmup_steps
        warmup = weights_only + int((total - weights_only) * WARMUP_FRACTION)
        layers = len(searcher.layers)

        def step(t: int, x: torch.Tensor, y: torch.Tensor) -> StepStats:
            stats = searcher.step(x, y)
            if t >= warmup:
                due = min(layers, math.ceil((t - warmup + 1) * layers / max(1, total - warmup)))
                while int(searcher.fixed_mask().sum()) < due:
                    searcher.fix(self.next_layer(searcher))
            return stats

        _loop(train, epochs, f"enos {self.name}", step)
        while not bool(searcher.fixed_mask().all()):
            searcher.fix(self.next_layer(searcher))

    @staticmethod
    def next_layer(searcher: Searcher) -> int:
        """The undecided layer whose top candidate is most probable (the earliest on ties)."""
        confidence = searcher.mean_probabilities().max(dim=1).values
        confidence[searcher.fixed_mask()] = -1.0
        return int(confidence.argmax())


@register
class Variational(Single):
    name = "variational"
    variational = True
