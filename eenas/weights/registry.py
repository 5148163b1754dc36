"""Pretrained float weights shipped with the package, in the style of torchvision's ``weights=`` enums.

Each entry of ``registry.yaml`` (torch-free metadata beside the files) names one trained network:
its backbone family and options, dataset, data split, file and SHA-256, parameter count, the
accuracies measured by the shipped code, the recipe, the command that reproduces it, its wall time
and the CPU it ran on.  Nothing is downloaded: the files are package data, written by
``eenas weights publish`` from a float backbone that ``eenas pretrain`` trained.  A file whose hash
does not match is an error, never a silent retrain.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from eenas.errors import EenasError
from eenas.io import write_text

PACKAGE_DIR = Path(__file__).parent
REGISTRY_FILE = "registry.yaml"
WEIGHTS_DIR_ENV = "EENAS_WEIGHTS_DIR"  # another registry folder (tests; a lab's own weights)
PRETRAINED_MODES = ("auto", "none")  # besides an entry's name


@dataclass(frozen=True)
class WeightsEntry:
    """One shipped float network; ``accuracy`` maps a precision tag (w32a32, w8a8, w4a4) to val/test top-1."""

    name: str
    dataset: str
    backbone: str
    options: Mapping[str, Any]  # the family's options, width_mult included
    file: str  # relative to the registry folder
    sha256: str
    parameters: int
    split: Mapping[str, Any]  # seed and val_fraction of the train/validation split it was trained on
    recipe: Mapping[str, Any]
    command: str
    wall_time_s: float
    cpu: str
    threads: int
    accuracy: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    qat_budget: str = ""  # the budget whose QAT recipe measured the quantized accuracies
    history: tuple[Mapping[str, float], ...] = ()  # validation accuracy against pretraining epochs
    notes: str = ""
    # QAT fine-tunes shipped beside the float file, by precision tag: {file, sha256, key, budget, seconds,
    # threads, cpu}.  ``key`` is the training cache's key of that fine-tune (recipe, seed, data, these weights' hash),
    # so a run uses the file exactly where it would otherwise train the same weights.
    qat: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    @property
    def tag(self) -> str:
        """What a cache key and an arch's training block record: the name and the file's hash."""
        return f"{self.name}@sha256:{self.sha256[:16]}"

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["options"], data["history"] = dict(self.options), [dict(h) for h in self.history]
        data["qat"] = {tag: dict(q) for tag, q in self.qat.items()}
        if not data["qat"]:
            data.pop("qat")  # entries without shipped fine-tunes read as before
        return data


class WeightsRegistry:
    """The entries of one registry folder (the package's, or ``$EENAS_WEIGHTS_DIR``)."""

    def __init__(self, root: str | os.PathLike | None = None) -> None:
        self.root = Path(root or os.environ.get(WEIGHTS_DIR_ENV) or PACKAGE_DIR)
        self.entries = self._read()

    def _read(self) -> dict[str, WeightsEntry]:
        path = self.root / REGISTRY_FILE
        if not path.exists():
            return {}
        try:
            raw = yaml.safe_load(path.read_text(encoding="utf-8")) or []
            entries = [WeightsEntry(**{**item, "history": tuple(item.get("history", ()))}) for item in raw]
        except (yaml.YAMLError, TypeError) as exc:
            raise EenasError(f"{path}: not a weights registry ({str(exc).splitlines()[0]})") from None
        return {e.name: e for e in entries}

    def save(self, entry: WeightsEntry) -> None:
        """Add or replace ``entry`` (an atomic rewrite of the registry file).

        The file is read again first: a publish that ran for hours must not write back the other entries as it
        read them when it started (one did, and dropped another entry's shipped fine-tunes).
        """
        self.entries = {**self._read(), entry.name: entry}
        text = yaml.safe_dump([e.to_dict() for e in self.entries.values()], sort_keys=False, width=120)
        write_text(self.root / REGISTRY_FILE, text)

    def get(self, name: str, where: str = "--pretrained") -> WeightsEntry:
        if name not in self.entries:
            known = ", ".join(self.entries) or "none registered"
            modes = "; or auto, none" if where == "--pretrained" else ""
            raise EenasError(f"{where}: unknown weights '{name}' (known: {known}{modes})")
        return self.entries[name]

    def find(self, dataset: str, backbone: str, options: Mapping[str, Any]) -> list[WeightsEntry]:
        """Entries trained for this dataset and exactly this backbone configuration."""
        return [e for e in self.entries.values()
                if e.dataset == dataset and e.backbone == backbone and dict(e.options) == dict(options)]

    def path(self, entry: WeightsEntry) -> Path:
        return self.root / entry.file

    def verified_path(self, entry: WeightsEntry, qat: str | None = None) -> Path:
        """The entry's file (or its shipped ``qat`` fine-tune's) after checking its SHA-256: a missing or altered
        file is an error, not a retrain."""
        record = entry.qat[qat] if qat else {"file": entry.file, "sha256": entry.sha256}
        what = f"weights '{entry.name}'" + (f" ({qat} fine-tune)" if qat else "")
        path = self.root / record["file"]
        if not path.exists():
            raise EenasError(f"{what}: file {path} is missing (reinstall eenas, or pass "
                             "--pretrained none to train from scratch)")
        digest = sha256_of(path)
        if digest != record["sha256"]:
            raise EenasError(f"{what}: {path} has sha256 {digest[:16]}..., the registry says "
                             f"{record['sha256'][:16]}... (a corrupted or replaced file; reinstall eenas, or pass "
                             "--pretrained none)")
        return path


def sha256_of(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def resolve_pretrained(mode: str, dataset: str, backbone: str, options: Mapping[str, Any], seed: int,
                       val_fraction: float, registry: WeightsRegistry | None = None) -> WeightsEntry | None:
    """The entry a training run starts from: ``none`` -> None; ``auto`` -> the registered weights of this
    dataset, backbone and data split, if any; a name -> that entry, which must fit.

    Weights fit only the split they were trained on: with another seed's split they have seen validation
    images, so ``auto`` then trains from scratch and an explicit name is an error.  The file's hash is checked.
    """
    if mode == "none":
        return None
    registry = registry or WeightsRegistry()
    split = {"seed": seed, "val_fraction": val_fraction}
    if mode == "auto":
        fits = [e for e in registry.find(dataset, backbone, options) if dict(e.split) == split]
        if not fits:
            return None
        entry = fits[0]
    else:
        entry = registry.get(mode)
    wanted = {"dataset": dataset, "backbone": backbone, "options": dict(options), "split": split}
    have = {"dataset": entry.dataset, "backbone": entry.backbone, "options": dict(entry.options),
            "split": dict(entry.split)}
    for key, value in wanted.items():
        if have[key] != value:
            raise EenasError(f"--pretrained {mode}: trained with {key} {have[key]}, this run has {value}")
    registry.verified_path(entry)  # checked whenever a run resolves them, even if it then reads only cached logits
    return entry
