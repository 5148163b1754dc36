"""Search settings: budgets and the resolved configuration a run records."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from eenas.arch import DATASET_CLASSES, BackboneConfig, unknown_dataset
from eenas.errors import EenasError
from eenas.hardware import load_accelerator
from eenas.hardware.accelerator import DEFAULT_HARDWARE, check_weight_mode
from eenas.hardware.space import load_hardware_space
from eenas.models.registry import DEFAULT_BACKBONE, check_option, get_backbone
from eenas.search.objectives import DEFAULT_OBJECTIVES, get_objectives
from eenas.search.space import ThresholdGrid, check_bit_choices
from eenas.train.budget import get_budget
from eenas.train.pipeline import VAL_FRACTION
from eenas.weights.registry import WeightsEntry, resolve_pretrained

# The search's predictors (eenas.search.structured.new_predictor).  The default is the tree ensemble.  On the head
# bank from the shipped weights, with a quarter of the quick space's heads trained, the three strategies reach
# 96.7% (trees), 97.4% (structured) and 97.2% (random) of the exhaustive front's validation hypervolume, paired
# differences inside the noise of 10 seeds; the structured predictor ranks single candidates better (tau 0.80
# against 0.50), but a new default would change every published front for no measured gain on the front found
# (docs/results.md: Predictors against the exhaustive front).
PREDICTORS = ("structured", "trees")
DEFAULT_PREDICTOR = "trees"
LEGACY_PREDICTOR = "trees"
DEFAULT_STRATEGY = "progressive"
HARDWARE_OPTIONS_EXCLUDE = ("--hardware and --hardware-space exclude each other: a co-search's accelerators are its "
                            "space's")


@dataclass(frozen=True)
class SearchBudget:
    initial: int  # true evaluations before the first predictor fit
    iterations: int  # predictor refits (each followed by an NSGA-II run and true evaluations)
    per_iteration: int  # candidates that may pay for training per iteration
    population: int
    generations: int
    holdout: int  # random archs evaluated after the search to measure the predictor (0: none)


SEARCH_BUDGETS = {
    "tiny": SearchBudget(initial=6, iterations=2, per_iteration=3, population=16, generations=5, holdout=8),
    # The demo's budget: its held-out predictor check (13 of its 59 minutes) is opt-in, --holdout 32.
    "quick": SearchBudget(initial=16, iterations=4, per_iteration=6, population=40, generations=30, holdout=0),
    "long": SearchBudget(initial=24, iterations=6, per_iteration=8, population=60, generations=40, holdout=32),
    "standard": SearchBudget(initial=32, iterations=8, per_iteration=8, population=80, generations=60, holdout=32),
}


@dataclass(frozen=True)
class SearchConfig:
    """Every setting that shapes a search's result (``config.json`` records it)."""

    dataset: str
    budget: str = "quick"
    seed: int = 0
    hardware: str = DEFAULT_HARDWARE
    weights: str | None = None  # streamed or resident; None: the accelerator file's mode
    width_mult: float | None = None
    amp: str = "auto"  # training dtype (eenas.train.pipeline.resolve_amp)
    bits: tuple[int, ...] = (8, 4)
    heads: tuple[str, ...] = ()  # empty: every head of the backbone's family
    max_exits: int = 6
    max_accuracy_drop: float = 1.0
    max_latency: float | None = None
    max_energy: float | None = None
    thresholds: ThresholdGrid = field(default_factory=ThresholdGrid)
    search: SearchBudget = field(default_factory=lambda: SEARCH_BUDGETS["quick"])
    backbone: str = DEFAULT_BACKBONE  # a registered family, at its default options (width: width_mult)
    mounts: tuple[int, ...] = ()  # empty: every mount point of the backbone's spec
    strategy: str = DEFAULT_STRATEGY  # how candidates are proposed (eenas.search.strategies)
    predictor: str = DEFAULT_PREDICTOR  # one of PREDICTORS
    pretrained: str = "none"  # registered float weights the backbone starts from (create resolves auto), or none
    objectives: tuple[str, ...] = DEFAULT_OBJECTIVES  # eenas.search.objectives.OBJECTIVES
    max_p99_latency: float | None = None  # cycles within which 99% of the samples leave
    hardware_space: str | None = None  # a co-search's accelerators (eenas.hardware.space); hardware is then unused

    def __post_init__(self) -> None:
        if not self.heads:
            object.__setattr__(self, "heads", tuple(get_backbone(self.backbone, "--backbone").heads))

    @classmethod
    def create(cls, dataset: str, budget: str = "quick", overrides: dict | None = None,
               pretrained: str = "auto", **kwargs) -> SearchConfig:
        """Resolve the budget's search sizes, apply ``overrides`` (population, ...), validate.

        ``pretrained`` defaults to ``auto`` as on the command line, so Python callers (the benchmarks) start
        from the shipped weights too; the field's own default, ``none``, is what configs written before
        the weights shipped mean.
        """
        if budget not in SEARCH_BUDGETS:
            get_budget(budget)  # raises the standard unknown-budget error
        sizes = replace(SEARCH_BUDGETS[budget], **{k: v for k, v in (overrides or {}).items() if v is not None})
        cfg = cls(dataset, budget, search=sizes, pretrained=pretrained, **kwargs)
        cfg.validate()
        if cfg.pretrained == "auto":  # recorded resolved: a resumed run must not switch weights when some ship
            cfg = replace(cfg, pretrained=cfg.weights_entry.name if cfg.weights_entry else "none")
        return cfg

    @property
    def exhaustive(self) -> bool:
        """Whether the whole head bank is trained first (``--strategy exhaustive``)."""
        return self.strategy == "exhaustive"

    @property
    def weights_entry(self) -> WeightsEntry | None:
        """The registered float weights the search's backbone starts from (raises if they do not fit)."""
        config = BackboneConfig(self.backbone, self.resolved_width)
        return resolve_pretrained(self.pretrained, self.dataset, self.backbone, dict(config.option_items()),
                                  self.seed, VAL_FRACTION)

    @property
    def resolved_width(self) -> float:
        """The backbone's width: the budget's unless given; 1.0 for families without a width option."""
        if "width_mult" not in get_backbone(self.backbone).options:
            return 1.0
        return get_budget(self.budget).width_mult if self.width_mult is None else self.width_mult

    def validate(self) -> None:
        s = self.search
        checks = [
            (self.dataset in DATASET_CLASSES, unknown_dataset(self.dataset)),
            (s.population >= 2, f"--population must be at least 2 (got {s.population})"),
            (s.generations >= 1, f"--generations must be at least 1 (got {s.generations})"),
            (s.iterations >= 0, f"--iterations must be at least 0 (got {s.iterations})"),
            (s.initial >= 2, f"--initial must be at least 2 (got {s.initial})"),
            (s.per_iteration >= 1, f"--per-iteration must be at least 1 (got {s.per_iteration})"),
            (s.holdout >= 0, f"--holdout must be at least 0 (got {s.holdout})"),
            (self.max_accuracy_drop >= 0, f"--max-accuracy-drop must be >= 0 (got {self.max_accuracy_drop})"),
            (self.max_latency is None or self.max_latency > 0, "--max-latency must be positive"),
            (self.max_energy is None or self.max_energy > 0, "--max-energy must be positive"),
            (self.max_p99_latency is None or self.max_p99_latency > 0, "--max-p99-latency-cycles must be positive"),
            (self.width_mult is None or "width_mult" in get_backbone(self.backbone).options,
             f"--width-mult: backbone '{self.backbone}' has no width option"),
            (self.hardware_space is None or self.hardware == DEFAULT_HARDWARE, HARDWARE_OPTIONS_EXCLUDE),
        ]
        for ok, message in checks:
            if not ok:
                raise EenasError(message)
        if self.width_mult is not None:  # the arch file's range: the run's archs must be ones evaluate accepts
            check_option(self.backbone, "width_mult", self.width_mult, "--width-mult")
        check_bit_choices(self.bits)
        self.thresholds.validate()
        get_objectives(self.objectives)
        from eenas.search.strategies import get_strategy  # lazy: the strategies import modules that import this one

        get_strategy(self.strategy)
        if self.predictor not in PREDICTORS:
            raise EenasError(f"--predictor: unknown predictor '{self.predictor}' (known: {', '.join(PREDICTORS)})")
        self._validate_mounts()
        if self.hardware_space is None:
            load_accelerator(self.hardware)  # unknown preset or bad file: a clear error now, not later
        else:
            load_hardware_space(self.hardware_space)
        if self.weights is not None:
            check_weight_mode(self.weights, "--weights")

    def _validate_mounts(self) -> None:
        """Mount points of the backbone, each once, in the backbone's order (so exits decode in order)."""
        known = BackboneConfig(self.backbone, self.resolved_width).spec(DATASET_CLASSES[self.dataset]).mounts
        bad = [m for m in self.mounts if m not in known]
        if bad:
            raise EenasError(f"--mounts: {bad[0]} is not a mount point of {self.backbone} "
                             f"({', '.join(map(str, known))})")
        if list(self.mounts) != sorted(set(self.mounts)):
            raise EenasError(f"--mounts: {','.join(map(str, self.mounts))} must be increasing, each mount once")

    def to_dict(self) -> dict:
        data = asdict(self)
        data["bits"], data["heads"], data["mounts"] = list(self.bits), list(self.heads), list(self.mounts)
        data["objectives"] = list(self.objectives)
        if self.hardware_space is not None:  # a co-search's accelerators are the space's
            del data["hardware"]
        # Before --strategy, an exhaustive run recorded "exhaustive": true; it still does, so it resumes unchanged.
        if self.exhaustive:
            del data["strategy"]
            data["exhaustive"] = True
        # Keys newer than some saved runs are left out at their default, so those runs resume unchanged.
        # Runs from before --predictor used the tree ensemble: "trees" is left out, so they resume unchanged.
        for key, default in (("backbone", DEFAULT_BACKBONE), ("mounts", []), ("strategy", DEFAULT_STRATEGY),
                             ("predictor", LEGACY_PREDICTOR), ("pretrained", "none"),
                             ("objectives", list(DEFAULT_OBJECTIVES)), ("max_p99_latency", None),
                             ("hardware_space", None)):
            if data.get(key) == default:
                data.pop(key, None)
        return data


# config.json settings that are `eenas search` options of the same name and value.
_PLAIN_SETTINGS = ("dataset", "budget", "seed", "hardware", "weights", "width_mult", "amp", "max_exits",
                   "max_accuracy_drop", "max_latency", "max_energy", "backbone", "strategy", "predictor", "pretrained",
                   "max_p99_latency", "hardware_space")


def options_from_settings(settings: Any, where: str) -> dict[str, Any]:
    """``eenas search`` option values (by parameter name) from a run's recorded settings (``config.json``'s
    ``search`` block, as :meth:`SearchConfig.to_dict` writes it), so ``--config`` starts a new run with them."""
    if not isinstance(settings, dict):
        raise EenasError(f"{where}: expected a JSON object of search settings")
    # Left out of a record at these values (to_dict), where the command line's defaults differ: a run records
    # its weights resolved, so none means none, not auto.
    options: dict[str, Any] = {"pretrained": "none", "predictor": LEGACY_PREDICTOR}
    for key, value in settings.items():
        if key in _PLAIN_SETTINGS:
            options[key] = value
        elif key in ("bits", "mounts", "objectives"):
            if not isinstance(value, list):
                raise EenasError(f"{where}: {key}: expected a list")
            options[key] = ",".join(str(v) for v in value)
        elif key == "thresholds":
            grid = value if isinstance(value, dict) else {}
            if set(grid) != {"start", "stop", "step"}:
                raise EenasError(f"{where}: thresholds: expected start, stop and step")
            options[key] = f"{grid['start']}:{grid['stop']}:{grid['step']}"
        elif key == "search":
            sizes = value if isinstance(value, dict) else {}
            unknown = sorted(set(sizes) - {f.name for f in fields(SearchBudget)})
            if unknown or not isinstance(value, dict):
                raise EenasError(f"{where}: search: " + (f"unknown field '{unknown[0]}'" if unknown else
                                                          "expected an object"))
            options.update(sizes)
        elif key == "exhaustive":
            if value:
                options["strategy"] = "exhaustive"
        elif key == "heads":
            family = get_backbone(settings.get("backbone", DEFAULT_BACKBONE), f"{where}: backbone")
            if list(value) != list(family.heads):
                raise EenasError(f"{where}: heads: a subset of the heads has no `eenas search` option")
        else:
            raise EenasError(f"{where}: unknown setting '{key}'")
    return options
