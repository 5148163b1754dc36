"""Predict a candidate by standing in for its untrained heads, then scoring it with the exact routing.

An early-exit network's accuracy and exit ratios follow exactly from its heads' per-sample
outputs (:func:`eenas.scoring.route`); only the heads the run has not trained are unknown.  For
each of those, this borrows the per-sample confidence and correctness of the trained head most
like it, then corrects them by a model of how a head's statistics differ across mount points,
head types and precisions:

* the *donor* is the trained head with the least expected per-sample disagreement, a distance
  learned on the pairs of trained heads (which attributes differ: type, backbone precision, exit
  precision, how far apart the mounts are);
* the *correction* moves the donor's standalone accuracy and mean confidence (log-odds) by the
  difference measured on matched pairs of trained heads (the same change of attributes, all else
  equal; e.g. the same head at 8 and at 4 exit bits), or, without such a pair, by the difference an
  additive ridge model of those two statistics predicts: confidences shift in log-odds, and
  correctness becomes a probability whose mean is the corrected accuracy, moved where the
  confidence says (:func:`corrected_correctness`).  Moving it evenly over the samples biased
  routed accuracy low: a better head is right mostly on the samples it is sure of, which are
  the ones that leave at its exit.

A candidate made only of trained heads is therefore predicted exactly, and nothing is trained.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import nnls

from eenas.arch import Precision
from eenas.errors import EenasError
from eenas.scoring import ExitStats, route
from eenas.search.config import PREDICTORS
from eenas.search.evaluator import Evaluator, HeadId
from eenas.search.predictor import Prediction, Predictor, Surrogate
from eenas.search.space import SearchSpace

RIDGE = 1e-2  # penalty of the statistics model: keeps coefficients of unseen attributes near 0
MAX_PAIRS = 4000  # head pairs the distance is learned on (a random subset beyond that)
EPS = 1e-6  # confidences are clipped to [EPS, 1 - EPS] before taking log-odds


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, EPS, 1 - EPS)
    return np.log(p / (1 - p))


def _capped_share(weight: np.ndarray, total: float) -> np.ndarray:
    """``p_i = min(1, k * weight_i)`` with ``sum(p) = total`` (water-filling; ``total`` at most the support)."""
    p = np.zeros_like(weight)
    free = weight > 0
    while free.any():
        p[free] = weight[free] * (total - p[~free].sum()) / weight[free].sum()
        over = free & (p > 1)
        if not over.any():
            break
        p[over] = 1.0
        free &= ~over
    return p


def corrected_correctness(correct: np.ndarray, confidence: np.ndarray, accuracy: float) -> np.ndarray:
    """Per-sample probabilities of being right, with mean ``accuracy``, moved from a donor's ``correct``.

    A head more accurate than its donor turns wrong samples right with a probability proportional to its
    ``confidence`` in them; a less accurate one turns right samples wrong in proportion to its doubt.  Samples
    keep their identity (hard samples stay hard for the later exits too).
    """
    c = correct.astype(float)
    gap = (accuracy - c.mean()) * c.size
    if gap > 0:
        return c + _capped_share((1 - c) * np.maximum(confidence, EPS), min(gap, float((1 - c).sum())))
    if gap < 0:
        return c - _capped_share(c * np.maximum(1 - confidence, EPS), min(-gap, float(c.sum())))
    return c


class StructuredPredictor:
    """Same interface as :class:`~eenas.search.predictor.Predictor`; reads the heads ``evaluator`` knows at fit."""

    name = "structured"

    def __init__(self, space: SearchSpace, evaluator: Evaluator, seed: int = 0, split: str = "val") -> None:
        self.space, self.evaluator, self.seed, self.split = space, evaluator, seed, split
        self.cv_tau = float("nan")
        self.stats: dict[HeadId, ExitStats] = {}
        self.finals: dict[Precision, ExitStats] = {}
        self._standins: dict[HeadId, tuple[ExitStats, float]] = {}

    # ------------------------------------------------------------------ features
    def _position(self, mount: int) -> float:
        """A mount's place in the backbone, 0 (first) to 1 (last)."""
        return self.space.mounts.index(mount) / max(1, self.space.n_mounts - 1)

    def _features(self, head: HeadId) -> np.ndarray:
        """Inputs of the statistics model: main effects, mount trend and the interactions likely to matter."""
        pb, mount, kind, pe = head
        t = self._position(mount)
        kinds = np.array([kind == k for k in self.space.heads], dtype=float)
        bb = np.array([pb.weights == b for b in self.space.bits], dtype=float)
        ex = np.array([pe.weights == b for b in self.space.bits], dtype=float)
        mounts = np.array([mount == m for m in self.space.mounts], dtype=float)
        return np.concatenate([[1.0, t, t * t], kinds, bb, ex, mounts, np.outer(kinds, [t, t * t]).ravel(),
                               np.outer(kinds, ex).ravel(), bb * t])

    def _pair(self, a: HeadId, b: HeadId) -> np.ndarray:
        """Inputs of the learned distance: a constant (differences do not add up), which attributes differ,
        and how far apart the mounts are."""
        gap = abs(self._position(a[1]) - self._position(b[1]))
        return np.array([1.0, a[2] != b[2], a[0] != b[0], a[3] != b[3], gap, gap * gap], dtype=float)

    # ------------------------------------------------------------------ fitting
    def fit(self, X: np.ndarray | None = None, ratios: list | None = None,
            accuracy: np.ndarray | None = None) -> StructuredPredictor:
        """Learn from the heads the evaluator knows now (the archive's genomes add nothing to them)."""
        heads = sorted(self.evaluator.known, key=lambda h: (h[0].weights, h[1], h[2], h[3].weights))
        if not heads:
            raise ValueError("the structured predictor needs at least one trained head")
        self.stats = {h: self.evaluator.head_stats(h, self.split) for h in heads}
        self.finals = {Precision(b, b): self.evaluator.final_stats(Precision(b, b), self.split)
                       for b in self.space.bits}
        self._standins = {}
        conf = np.array([self.stats[h].confidence[0] for h in heads])
        correct = np.array([self.stats[h].correct[0] for h in heads], dtype=float)
        targets = np.stack([correct.mean(axis=1), _logit(conf).mean(axis=1)], axis=1)  # [heads, 2]
        F = np.array([self._features(h) for h in heads])
        A = np.vstack([F, np.sqrt(RIDGE) * np.eye(F.shape[1])])
        B = np.vstack([targets, np.zeros((F.shape[1], 2))])
        self.coef = np.linalg.lstsq(A, B, rcond=None)[0]
        self.summary = dict(zip(heads, targets))

        pairs = [(i, j) for i in range(len(heads)) for j in range(i + 1, len(heads))]
        if len(pairs) > MAX_PAIRS:
            rng = np.random.default_rng(self.seed)
            pairs = [pairs[k] for k in rng.choice(len(pairs), MAX_PAIRS, replace=False)]
        self.weights = np.ones(6)
        if pairs:
            i, j = np.array(pairs).T
            gap = (correct[i] != correct[j]).mean(axis=1) + np.abs(conf[i] - conf[j]).mean(axis=1)
            self.weights = nnls(np.array([self._pair(heads[a], heads[b]) for a, b in pairs]), gap)[0]
        return self

    # ------------------------------------------------------------------ stand-ins
    def distance(self, a: HeadId, b: HeadId) -> float:
        """Expected per-sample disagreement of two heads (errors plus mean confidence gap), as learned."""
        return float(self._pair(a, b) @ self.weights)

    def standin(self, head: HeadId) -> tuple[ExitStats, float]:
        """Per-sample stats for ``head`` (exact when known) and their expected disagreement with the truth."""
        if head in self.stats:
            return self.stats[head], 0.0
        if head not in self._standins:
            donors = list(self.stats)
            gaps = np.array([self.distance(head, d) for d in donors])
            donor = donors[int(np.argmin(gaps))]  # the first of equals: donors are sorted
            shift = self._shift(donor, head)
            acc = float(np.clip(self.summary[donor][0] + shift[0], 0, 1))
            s = self.stats[donor]
            confidence = 1 / (1 + np.exp(-(_logit(s.confidence) + shift[1])))
            correct = corrected_correctness(s.correct, confidence, acc)
            self._standins[head] = ExitStats(confidence, correct), float(gaps.min())
        return self._standins[head]

    def _shift(self, donor: HeadId, head: HeadId) -> np.ndarray:
        """How (accuracy, mean confidence log-odds) change from ``donor`` to ``head``: the mean over matched
        trained pairs, else the ridge model's difference."""
        differ = [k for k in range(4) if donor[k] != head[k]]
        moves = []
        for a in self.stats:
            if all(a[k] == donor[k] for k in differ):
                b = tuple(head[k] if k in differ else a[k] for k in range(4))
                if b in self.summary:
                    moves.append(self.summary[b] - self.summary[a])
        if moves:
            return np.mean(moves, axis=0)
        return (self._features(head) - self._features(donor)) @ self.coef

    def predict(self, X: np.ndarray) -> Prediction:
        X = np.atleast_2d(X)
        accuracy, spread, ratios = np.empty(len(X)), np.empty(len(X)), []
        for n, x in enumerate(X):
            arch = self.space.decode(x)
            parts = [self.standin(h) for h in Evaluator.heads(arch)]
            final = self.finals[arch.quant.backbone]
            stats = ExitStats(np.concatenate([p[0].confidence for p in parts] + [final.confidence]),
                              np.concatenate([p[0].correct for p in parts] + [final.correct]))
            outcome = route(stats, [e.threshold for e in arch.exits])
            accuracy[n], spread[n] = outcome.accuracy, sum(p[1] for p in parts)
            ratios.append(outcome.exit_ratios)
        return Prediction(accuracy, spread, ratios)


def new_predictor(kind: str, space: SearchSpace, evaluator: Evaluator, seed: int) -> Surrogate:
    """The search's predictor by name (``--predictor``): this module's, or the tree ensemble on the genome."""
    if kind == "structured":
        return StructuredPredictor(space, evaluator, seed)
    if kind == "trees":
        return Predictor(space, seed)
    raise EenasError(f"--predictor: unknown predictor '{kind}' (known: {', '.join(PREDICTORS)})")
