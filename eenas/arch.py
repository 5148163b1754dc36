"""The arch file (``arch.json``): one early-exit network, versioned and validated.

Every error names the offending field (``exits[1].after_block``) so a user can fix a
hand-written file, and the search writes the same format, so ``eenas evaluate`` takes
its Pareto archs as they are.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from eenas.datasets import DATASET_CLASSES, unknown_dataset
from eenas.errors import EenasError
from eenas.hardware.accelerator import DEFAULT_HARDWARE, WEIGHT_MODES, is_preset
from eenas.io import read_json, write_json
from eenas.models.config import BackboneConfig
from eenas.models.registry import DEFAULT_BACKBONE, check_option, get_backbone
from eenas.precision import BITWIDTHS, Precision

ARCH_VERSION = 1
FINETUNE_MODES = ("none", "joint")
TRAINING_DTYPES = ("fp32", "bf16")  # what --amp resolves to (eenas.train.pipeline.resolve_amp)


@dataclass(frozen=True)
class QuantConfig:
    backbone: Precision = field(default_factory=Precision)
    exits: Precision = field(default_factory=Precision)


@dataclass(frozen=True)
class ExitConfig:
    """An early exit mounted after block ``after_block`` (a mount point of the backbone's spec; MobileNetV2: 1..17).

    ``core`` pins the head to a compute core (None: the cost model's default mapping) and
    ``overlap`` lets the next backbone block start on another core while the head runs.
    ``final`` (the last exit only) ends the network there: every sample that reaches it leaves,
    so its threshold is 0 and nothing overlaps it, and the backbone's later blocks and its
    classifier are not part of the network (a search writes it where no validation sample went on).
    """

    after_block: int
    head: str
    threshold: float
    core: int | None = None
    overlap: bool = False
    final: bool = False

    def __post_init__(self) -> None:
        if self.final:
            object.__setattr__(self, "threshold", 0.0)
            object.__setattr__(self, "overlap", False)


@dataclass(frozen=True)
class TrainingRecord:
    """How the weights behind an arch's numbers were trained: the arch file's optional ``training`` block.

    Everything the training pipeline's cache identity holds besides the arch's own dataset and
    width, plus the budget's name and the fine-tune mode, so ``eenas evaluate`` rebuilds the
    same pipeline from it, trains nothing and prints the numbers the file was written with.
    """

    budget: str
    seed: int
    finetune: str  # one of FINETUNE_MODES
    amp: str  # the autocast dtype training ran in
    training_version: int  # eenas.train.pipeline.TRAINING_VERSION of the code that trained
    val_fraction: float
    recipe: tuple[tuple[str, Any], ...]  # the budget's recipe (its fields that change weights)
    pretrained: str = "none"  # the registered float weights it started from (NAME@sha256:...), or none

    @property
    def pretrained_name(self) -> str:
        """What ``--pretrained`` takes to start from the same weights: the entry's name, or none."""
        return self.pretrained.split("@")[0]

    def to_dict(self, arch: Arch) -> dict[str, Any]:
        return {"dataset": arch.dataset, "width_mult": arch.backbone.width_mult, "budget": self.budget,
                "seed": self.seed, "finetune": self.finetune, "amp": self.amp,
                "training_version": self.training_version, "val_fraction": self.val_fraction,
                "recipe": dict(self.recipe), "pretrained": self.pretrained}


@dataclass(frozen=True)
class Arch:
    dataset: str
    backbone: BackboneConfig = field(default_factory=BackboneConfig)
    exits: tuple[ExitConfig, ...] = ()
    quant: QuantConfig = field(default_factory=QuantConfig)
    hardware: str = DEFAULT_HARDWARE
    weights: str | None = None  # streamed or resident weight SRAMs; None: the accelerator file's mode
    training: TrainingRecord | None = None  # None: unknown (a hand-written arch)

    def __post_init__(self) -> None:
        """Valid by construction: archs built in code (the search, the studies) meet the arch file's rules, with the
        same field-naming errors; the exits are kept in backbone order."""
        _require(self.dataset in DATASET_CLASSES, "dataset", unknown_dataset(self.dataset))
        entry, mounts = get_backbone(self.backbone.name), self.backbone.spec(self.num_classes).mounts
        for i, e in enumerate(self.exits):
            where = f"exits[{i}]"
            _require(e.after_block in mounts, f"{where}.after_block",
                     f"{e.after_block} is out of range {_span(mounts)}")
            _require(e.head in entry.heads, f"{where}.head",
                     f"unknown head '{e.head}' (known: {', '.join(entry.heads)})")
            _require(e.core is None or e.core >= 0, f"{where}.core", f"{e.core} is negative")
            _require(e.final or 0.0 < e.threshold <= 1.0, f"{where}.threshold", f"{e.threshold} is outside (0, 1]")
        blocks = [e.after_block for e in self.exits]
        dup = next((b for b in blocks if blocks.count(b) > 1), None)
        _require(dup is None, "exits", f"duplicate mount point after_block={dup}")
        early = next((i for i, e in enumerate(self.exits) if e.final and e.after_block != max(blocks)), None)
        _require(early is None, f"exits[{early}].final", "only the deepest exit can end the network")
        _require(self.weights in (None, *WEIGHT_MODES), "weights",
                 f"'{self.weights}' is not one of {list(WEIGHT_MODES)}")
        object.__setattr__(self, "exits", tuple(sorted(self.exits, key=lambda e: e.after_block)))

    @property
    def num_classes(self) -> int:
        return DATASET_CLASSES[self.dataset]

    @property
    def ends_at_exit(self) -> bool:
        """Whether the network ends at its last exit (``ExitConfig.final``) rather than at the backbone's classifier."""
        return bool(self.exits) and self.exits[-1].final

    @property
    def n_outputs(self) -> int:
        """Where a sample can leave: every exit, and the backbone's classifier unless the network ends before it."""
        return len(self.exits) + (0 if self.ends_at_exit else 1)

    def static(self) -> Arch:
        """The same backbone and precision without early exits (the ET-ratio baseline)."""
        return replace(self, exits=())

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["exits"] = [_exit_dict(e) for e in data["exits"]]
        data["backbone"] = {"name": self.backbone.name, **dict(self.backbone.option_items())}
        del data["training"]
        if self.weights is None:
            del data["weights"]
        if self.training is not None:
            data["training"] = self.training.to_dict(self)
        return {"eenas_version": ARCH_VERSION, **data}


def _exit_dict(exit_: dict[str, Any]) -> dict[str, Any]:
    """An exit as the arch file writes it: fields at their default left out, and a final exit without a threshold."""
    data = {k: v for k, v in exit_.items() if not (k == "core" and v is None) and not (k in ("overlap", "final")
                                                                                       and not v)}
    if exit_["final"]:
        del data["threshold"]
    return data


def _require(cond: bool, where: str, message: str) -> None:
    if not cond:
        raise EenasError(f"{where}: {message}")


def _get(obj: dict, key: str, where: str, kind: type | tuple[type, ...], default: Any = ...) -> Any:
    if key not in obj:
        _require(default is not ..., where, f"missing field '{key}'")
        return default
    value = obj[key]
    ok = isinstance(value, kind) and not (isinstance(value, bool) and bool not in _as_tuple(kind))
    names = "/".join(t.__name__ for t in _as_tuple(kind))
    _require(ok, f"{where}.{key}" if where else key, f"expected {names}, got {json.dumps(value)}")
    return value


def _as_tuple(kind: type | tuple[type, ...]) -> tuple[type, ...]:
    return kind if isinstance(kind, tuple) else (kind,)


def _no_unknown(obj: dict, allowed: set[str], where: str) -> None:
    unknown = sorted(set(obj) - allowed)
    _require(not unknown, where or "arch", f"unknown field '{unknown[0]}'" if unknown else "")


def _precision(obj: Any, where: str) -> Precision:
    _require(isinstance(obj, dict), where, "expected an object with 'weights' and 'activations'")
    _no_unknown(obj, {"weights", "activations"}, where)
    bits = {}
    for key in ("weights", "activations"):
        value = _get(obj, key, where, int)
        _require(value in BITWIDTHS, f"{where}.{key}", f"{value} is not one of {list(BITWIDTHS)}")
        bits[key] = value
    return Precision(**bits)


def arch_from_dict(data: Any) -> Arch:
    """Validate a parsed arch file; raise :class:`EenasError` naming the bad field."""
    _require(isinstance(data, dict), "arch", "expected a JSON object")
    _no_unknown(data, {"eenas_version", "dataset", "backbone", "exits", "quant", "hardware", "weights", "training"},
                "arch")
    version = _get(data, "eenas_version", "", int)
    _require(version == ARCH_VERSION, "eenas_version", f"{version} is not supported (expected {ARCH_VERSION})")

    dataset = _get(data, "dataset", "", str)
    _require(dataset in DATASET_CLASSES, "dataset", unknown_dataset(dataset))

    backbone = _backbone(_get(data, "backbone", "", dict, {}))

    raw_exits = _get(data, "exits", "", list, [])
    exits = []
    for i, raw in enumerate(raw_exits):  # the JSON's types here; the rules of an arch in Arch itself
        where = f"exits[{i}]"
        _require(isinstance(raw, dict), where, "expected an object")
        _no_unknown(raw, {"after_block", "head", "threshold", "core", "overlap", "final"}, where)
        block = _get(raw, "after_block", where, int)
        head = _get(raw, "head", where, str)
        core = _get(raw, "core", where, (int, type(None)), None)
        overlap = _get(raw, "overlap", where, bool, False)
        final = _get(raw, "final", where, bool, False)
        if final:
            _require("threshold" not in raw, f"{where}.threshold",
                     "a final exit takes every sample that reaches it: leave the threshold out")
            _require(not overlap, f"{where}.overlap", "nothing runs after a final exit to overlap with it")
            threshold = 0.0
        else:
            threshold = float(_get(raw, "threshold", where, (int, float)))
        exits.append(ExitConfig(block, head, threshold, core, overlap, final))

    quant = _get(data, "quant", "", dict, {})
    _no_unknown(quant, {"backbone", "exits"}, "quant")
    qb = _precision(quant.get("backbone", {"weights": 8, "activations": 8}), "quant.backbone")
    qe = _precision(quant.get("exits", {"weights": 8, "activations": 8}), "quant.exits")

    hardware = _get(data, "hardware", "", str, DEFAULT_HARDWARE)
    weights = _get(data, "weights", "", str, None)
    training = _training(data["training"], dataset, backbone.width_mult) if "training" in data else None
    return Arch(dataset, backbone, tuple(exits), QuantConfig(qb, qe), hardware, weights, training)


def _span(mounts: tuple[int, ...]) -> str:
    return f"{mounts[0]}..{mounts[-1]}"


def _backbone(bb: dict) -> BackboneConfig:
    """The ``backbone`` object: ``name`` (a registered family) and that family's options."""
    name = _get(bb, "name", "backbone", str, DEFAULT_BACKBONE)
    entry = get_backbone(name)
    _no_unknown(bb, {"name", *entry.options}, "backbone")
    values = {}
    for key, option in entry.options.items():
        number = isinstance(option.default, float)
        value = _get(bb, key, "backbone", (int, float) if number else type(option.default), option.default)
        value = float(value) if number else value
        values[key] = check_option(name, key, value, f"backbone.{key}")
    return BackboneConfig(name, values.pop("width_mult", 1.0), tuple(values.items()))


def _training(raw: Any, dataset: str, width: float) -> TrainingRecord:
    where = "training"
    _require(isinstance(raw, dict), where, "expected an object")
    _no_unknown(raw, {"dataset", "width_mult", "budget", "seed", "finetune", "amp", "training_version",
                      "val_fraction", "recipe", "pretrained"}, where)
    own = _get(raw, "dataset", where, str)
    _require(own == dataset, f"{where}.dataset", f"'{own}' is not the arch's dataset '{dataset}'")
    own = float(_get(raw, "width_mult", where, (int, float)))
    _require(own == width, f"{where}.width_mult", f"{own} is not the arch's backbone.width_mult {width}")
    budget = _get(raw, "budget", where, str)
    _require(bool(budget), f"{where}.budget", "is empty")
    seed = _get(raw, "seed", where, int)
    finetune = _get(raw, "finetune", where, str)
    _require(finetune in FINETUNE_MODES, f"{where}.finetune", f"'{finetune}' is not one of {list(FINETUNE_MODES)}")
    amp = _get(raw, "amp", where, str)
    _require(amp in TRAINING_DTYPES, f"{where}.amp", f"'{amp}' is not one of {list(TRAINING_DTYPES)}")
    version = _get(raw, "training_version", where, int)
    _require(version >= 1, f"{where}.training_version", f"{version} is not a version (1 or more)")
    val_fraction = float(_get(raw, "val_fraction", where, (int, float)))
    _require(0 < val_fraction < 1, f"{where}.val_fraction", f"{val_fraction} is outside (0, 1)")
    recipe = _get(raw, "recipe", where, dict)
    for key, value in recipe.items():
        _require(value is None or isinstance(value, (int, float, str)), f"{where}.recipe.{key}",
                 f"expected a number, string or null, got {json.dumps(value)}")
    pretrained = _get(raw, "pretrained", where, str, "none")  # absent in files from before the weights registry
    _require(bool(pretrained), f"{where}.pretrained", "is empty (a weights name, or none)")
    return TrainingRecord(budget, seed, finetune, amp, version, val_fraction, tuple(recipe.items()), pretrained)


def load_arch(path: str | os.PathLike) -> Arch:
    path = Path(path)
    data = read_json(path, "arch file")
    try:
        arch = arch_from_dict(data)
    except EenasError as exc:
        raise EenasError(f"{path}: {exc}") from None
    return replace(arch, hardware=_hardware_path(arch.hardware, path.parent, loading=True))


def save_arch(arch: Arch, path: str | os.PathLike) -> None:
    write_json(path, arch_data(arch, Path(path).parent))


def arch_data(arch: Arch, folder: Path) -> dict:
    """``arch`` as a file in ``folder`` holds it: its hardware file relative to that folder, so the folder can move."""
    return {**arch.to_dict(), "hardware": _hardware_path(arch.hardware, folder, loading=False)}


def _hardware_path(hardware: str, folder: Path, loading: bool) -> str:
    """A hardware file named in an arch file is relative to that file's folder; in an Arch, to the working one."""
    if is_preset(hardware) or os.path.isabs(hardware):
        return hardware
    return os.path.normpath(folder / hardware) if loading else os.path.relpath(hardware, folder)
