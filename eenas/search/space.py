"""The search space and its fixed-length integer genome.

Layout (``M`` = the backbone's mount points, 17 for MobileNetV2)::

    [0, M)       exit gene per mount point: 0 = no exit, k = head type k (1-based)
    [M, 2M)      threshold gene per mount point: index into the threshold grid (``--thresholds``)
    [2M, 3M)     mapping gene per mount point: core * 2 + overlap
    3M           backbone bit-width index
    3M + 1       exit bit-width index
    3M + 2       co-search only (``--hardware-space``): the accelerator, an index into the space's choices

Every gene is an integer in ``[0, upper]``, so pymoo's integer operators work unchanged.
Genes of mount points without an exit are kept at 0, and in a co-search a mapping gene's core
is taken modulo the chosen accelerator's core count (see the repair), so one network has one
genome and duplicate elimination works.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from eenas.arch import DATASET_CLASSES, Arch, BackboneConfig, ExitConfig, Precision, QuantConfig
from eenas.errors import EenasError
from eenas.hardware.accelerator import DEFAULT_HARDWARE
from eenas.models.registry import get_backbone
from eenas.precision import BITWIDTHS, check_bits

MAX_THRESHOLDS = 1000  # a grid finer than this only slows the search down
Genome = tuple[int, ...]


def check_bit_choices(bits: tuple[int, ...]) -> None:
    """``--bits``: one or more supported widths, each once (a genome gene indexes them: a repeat would be one
    network under two genomes)."""
    if not bits:
        raise EenasError(f"--bits: empty: give one or more of {', '.join(map(str, BITWIDTHS))}")
    for b in bits:
        check_bits("--bits", b)
    if len(set(bits)) != len(bits):
        raise EenasError(f"--bits {','.join(map(str, bits))}: give each bit-width once")


@dataclass(frozen=True)
class ThresholdGrid:
    """The exit thresholds a search may choose: ``start``, ``start + step``, ... up to ``stop``.

    The default floor is 1/10, the lowest maximum softmax a 10-class network can produce: an
    exit at that threshold takes every sample, so on CIFAR-10 the floor cannot bind.
    """

    start: float = 0.10
    stop: float = 0.99
    step: float = 0.01

    @classmethod
    def parse(cls, text: str) -> ThresholdGrid:
        """``START:STOP:STEP``, e.g. ``0.10:0.99:0.01``; raises a one-line error naming ``--thresholds``."""
        try:
            start, stop, step = (float(v) for v in text.split(":"))
        except ValueError:
            raise EenasError(f"--thresholds: '{text}' is not START:STOP:STEP (e.g. 0.10:0.99:0.01)") from None
        grid = cls(start, stop, step)
        grid.validate()
        return grid

    def validate(self) -> None:
        if not 0 < self.start <= self.stop <= 1:
            raise EenasError(f"--thresholds {self}: needs 0 < START <= STOP <= 1")
        if not self.step > 0:
            raise EenasError(f"--thresholds {self}: STEP must be positive")
        if self.count > MAX_THRESHOLDS:
            raise EenasError(f"--thresholds {self}: {self.count} thresholds, at most {MAX_THRESHOLDS}")

    @property
    def count(self) -> int:
        return math.floor((self.stop - self.start) / self.step + 1e-9) + 1

    @property
    def values(self) -> tuple[float, ...]:
        return tuple(round(self.start + i * self.step, 10) for i in range(self.count))

    def __str__(self) -> str:
        return f"{self.start:g}:{self.stop:g}:{self.step:g}"


def _threshold_text(threshold: float) -> str:
    return f"{threshold:.2f}" if round(threshold, 2) == threshold else f"{threshold:g}"


def exits_text(arch: Arch) -> str:
    """An arch's exits in one table cell, e.g. ``3:pool_fc@0.90/c0+o;7:gap_fc@final/c1`` (``+o``: overlap;
    ``@final``: the network ends there)."""
    return ";".join(f"{e.after_block}:{e.head}@{'final' if e.final else _threshold_text(e.threshold)}"
                    f"/c{e.core}{'+o' if e.overlap else ''}" for e in arch.exits)


@dataclass(frozen=True)
class HardwareChoice:
    """One accelerator a co-search may choose: its name (tables), what its archs name, its compute cores."""

    name: str
    hardware: str
    cores: int


@dataclass(frozen=True)
class SearchSpace:
    """Exits on one backbone; ``heads`` and ``mounts`` default (when empty) to all of its spec's.

    ``choices`` (a co-search) adds the accelerator gene; ``hardware`` and ``cores`` then become the first choice's
    (its static backbone is the hypervolume's reference) and the most cores of any (the mapping genes' range).
    """

    dataset: str
    width_mult: float
    hardware: str = DEFAULT_HARDWARE
    cores: int = 4
    heads: tuple[str, ...] = ()
    bits: tuple[int, ...] = (8, 4)
    thresholds: tuple[float, ...] = ThresholdGrid().values
    mounts: tuple[int, ...] = ()
    max_exits: int = 6
    backbone: BackboneConfig = field(default_factory=BackboneConfig)  # its width_mult is ignored: width_mult's
    choices: tuple[HardwareChoice, ...] = ()

    def __post_init__(self) -> None:
        if self.choices:
            object.__setattr__(self, "hardware", self.choices[0].hardware)
            object.__setattr__(self, "cores", max(c.cores for c in self.choices))
        config = BackboneConfig(self.backbone.name, self.width_mult, self.backbone.options)
        object.__setattr__(self, "backbone", config)
        known = get_backbone(config.name).heads
        object.__setattr__(self, "heads", self.heads or tuple(known))
        spec_mounts = config.spec(DATASET_CLASSES[self.dataset]).mounts
        object.__setattr__(self, "mounts", self.mounts or spec_mounts)
        unknown = [h for h in self.heads if h not in known]
        if unknown:
            raise EenasError(f"unknown head '{unknown[0]}' (known: {', '.join(known)})")
        bad = [m for m in self.mounts if m not in spec_mounts]
        if bad:
            raise EenasError(f"mount point {bad[0]} is not one of {config.name}'s ({', '.join(map(str, spec_mounts))})")
        if not 1 <= self.max_exits <= len(self.mounts):
            raise EenasError(f"--max-exits {self.max_exits} must be between 1 and {len(self.mounts)}")
        check_bit_choices(self.bits)

    @property
    def n_mounts(self) -> int:
        return len(self.mounts)

    @property
    def n_var(self) -> int:
        return 3 * self.n_mounts + 2 + bool(self.choices)

    @property
    def upper(self) -> np.ndarray:
        m = self.n_mounts
        up = np.empty(self.n_var, dtype=int)
        up[:m] = len(self.heads)
        up[m : 2 * m] = len(self.thresholds) - 1
        up[2 * m : 3 * m] = 2 * self.cores - 1
        up[3 * m : 3 * m + 2] = len(self.bits) - 1
        if self.choices:
            up[3 * m + 2] = len(self.choices) - 1
        return up

    # ------------------------------------------------------------------ genes
    # Every index into the genome is below: the rest of the search asks the space for genes.
    def exit_genes(self, X: np.ndarray) -> np.ndarray:
        """The exit genes of a genome or a matrix of genomes (a view: writing to it writes ``X``)."""
        return X[..., : self.n_mounts]

    def slices(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, int, int]:
        m = self.n_mounts
        return x[:m], x[m : 2 * m], x[2 * m : 3 * m], int(x[3 * m]), int(x[3 * m + 1])

    def n_exits(self, x) -> int:
        return int(np.count_nonzero(self.exit_genes(np.asarray(x))))

    def choice(self, x) -> HardwareChoice | None:
        """The accelerator a genome chose (None: not a co-search)."""
        return self.choices[int(x[3 * self.n_mounts + 2])] if self.choices else None

    @property
    def hardware_names(self) -> tuple[str, ...]:
        """What the space's archs may name as their hardware: every choice's, or the one accelerator's."""
        return tuple(c.hardware for c in self.choices) or (self.hardware,)

    # ------------------------------------------------------------------ decoding
    def decode(self, x) -> Arch:
        x = self.canonical(x)  # a co-search's mapping genes fit the chosen accelerator's cores only once repaired
        heads, thresholds, mapping, bb, ex = self.slices(x)
        exits = tuple(
            ExitConfig(self.mounts[i], self.heads[heads[i] - 1], self.thresholds[thresholds[i]],
                       core=int(mapping[i]) // 2, overlap=bool(mapping[i] % 2))
            for i in np.flatnonzero(heads)
        )
        choice = self.choice(x)
        return self.arch(exits, self.bits[bb], self.bits[ex], choice.hardware if choice else None)

    def arch(self, exits: tuple[ExitConfig, ...], backbone_bits: int, exit_bits: int,
             hardware: str | None = None) -> Arch:
        """An arch of this space's dataset and width on ``hardware`` (default: the space's; weights and activations
        share each width)."""
        quant = QuantConfig(Precision(backbone_bits, backbone_bits), Precision(exit_bits, exit_bits))
        return Arch(self.dataset, self.backbone, exits, quant, hardware or self.hardware)

    def static_arch(self, bits: int, hardware: str | None = None) -> Arch:
        """The backbone without exits at ``bits`` (its cost is the ET-ratio baseline), on ``hardware`` (default: the
        space's)."""
        return self.arch((), bits, bits, hardware)

    def head_bank(self) -> list[tuple[Precision, int, str, Precision]]:
        """Every head this space's networks can hold, named as the evaluator names them (backbone
        precision, mount, head type, exit precision), grouped by backbone precision so each backbone
        trains once before its heads."""
        return [(Precision(b, b), mount, head, Precision(e, e))
                for b in self.bits for e in self.bits for mount in self.mounts for head in self.heads]

    def first_exit_archs(self) -> list[Arch]:
        """One exit of every head at the first mount point, at every precision, on every accelerator: the cheapest
        first exits."""
        return [self.arch((ExitConfig(self.mounts[0], head, self.thresholds[0], core=0),), bits, bits, hardware)
                for hardware in self.hardware_names for head in self.heads for bits in self.bits]

    def encode(self, arch: Arch) -> np.ndarray:
        """The genome of an arch from this space; raises if the arch lies outside it."""
        m = self.n_mounts
        x = np.zeros(self.n_var, dtype=int)
        try:
            for e in arch.exits:
                i = self.mounts.index(e.after_block)
                x[i] = self.heads.index(e.head) + 1
                x[m + i] = self._threshold_index(e.threshold)
                x[2 * m + i] = 2 * (e.core or 0) + int(e.overlap)
            x[3 * m] = self.bits.index(arch.quant.backbone.weights)
            x[3 * m + 1] = self.bits.index(arch.quant.exits.weights)
            if self.choices:
                x[3 * m + 2] = self.hardware_names.index(arch.hardware)
        except ValueError as exc:
            raise EenasError(f"arch lies outside the search space: {exc}") from None
        return x

    def _threshold_index(self, threshold: float) -> int:
        i = int(np.argmin(np.abs(np.asarray(self.thresholds) - threshold)))
        if not math.isclose(self.thresholds[i], threshold, abs_tol=1e-9):
            raise ValueError(f"threshold {threshold} is not on the grid")
        return i

    def canonical(self, x: np.ndarray) -> np.ndarray:
        """Zero the threshold and mapping genes of mount points that have no exit; in a co-search, take each mapping
        gene's core modulo the chosen accelerator's cores (its overlap bit kept)."""
        x = np.array(x, dtype=int)
        m = self.n_mounts
        off = x[:m] == 0
        x[m : 2 * m][off] = 0
        x[2 * m : 3 * m][off] = 0
        choice = self.choice(x)
        if choice is not None:
            mapping = x[2 * m : 3 * m]
            mapping[:] = mapping // 2 % choice.cores * 2 + mapping % 2
        return x

    def genome(self, x) -> Genome:
        """The canonical genome as a tuple of ints: a hashable identity of one network."""
        return tuple(int(v) for v in self.canonical(x))

    def features(self, X: np.ndarray) -> np.ndarray:
        """Predictor inputs: per mount (has exit, head rank, threshold) and the two bit-widths.

        Mapping genes and the accelerator gene are left out: they change cost, which the cost model
        gives exactly, never accuracy.
        """
        X = np.atleast_2d(X).astype(int)
        m = self.n_mounts
        active = (X[:, :m] > 0).astype(float)
        head = X[:, :m] / len(self.heads)
        thr = np.asarray(self.thresholds)[X[:, m : 2 * m]] * active
        bits = np.asarray(self.bits, dtype=float)[X[:, 3 * m : 3 * m + 2]]
        return np.hstack([active, head, thr, bits])

    def targets(self, X: np.ndarray, ratios: list, accuracy: np.ndarray) -> np.ndarray:
        """Predictor targets: [accuracy, ratio at each mount point (0 without an exit), final ratio]."""
        Y = np.zeros((len(X), self.n_mounts + 2))
        Y[:, 0] = accuracy
        for row, x, r in zip(Y, np.atleast_2d(X), ratios):
            row[1 + np.flatnonzero(self.exit_genes(x))] = r[:-1]
            row[-1] = r[-1]
        return Y

    def ratios(self, X: np.ndarray, Y: np.ndarray) -> list[np.ndarray]:
        """Per genome, the exit ratios (its exits, then the final) read back from rows laid out as :meth:`targets`."""
        out = []
        for x, row in zip(np.atleast_2d(X), Y):
            r = np.clip(np.append(row[1 + np.flatnonzero(self.exit_genes(x))], row[-1]), 0, None)
            out.append(r / r.sum() if r.sum() > 0 else np.eye(len(r))[-1])
        return out


def genome_text(genome) -> str:
    """A genome in one table cell, e.g. ``1-0-3-...`` (CSV files only; in memory a genome is a tuple)."""
    return "-".join(str(int(v)) for v in genome)

