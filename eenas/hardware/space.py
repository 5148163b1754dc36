"""Hardware spaces: the accelerators a co-search (``eenas search --hardware-space FILE``) chooses among.

A space file lists accelerators (presets or files) and/or composes them: every multiset of core styles over a number
of slots, each put on a template system's mesh with its pooling, SIMD and off-chip cores.  A multiset is one
accelerator whatever the order of its slots (EEMY, never EMEY too): styles fill the slots in the file's order, as the
Stream case study names its systems.  A budget (total MACs, total on-chip memory) bounds the members; one over it is
not in the space, so the search never generates it (docs/search.md: Co-search says why a constraint).
"""

from __future__ import annotations

import itertools
import math
import os
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from eenas.errors import EenasError
from eenas.hardware.accelerator import Accelerator, _Fields, is_preset, read_yaml
from eenas.hardware.core import as_core
from eenas.hardware.loading import load_accelerator
from eenas.hardware.stream_format import stream_accelerator
from eenas.io import write_text

SPACE_PRESETS = ("case_study",)  # presets/spaces/*.yaml, by name
DEFAULT_TEMPLATE = "sys_EEEE"  # the case study's mesh (32 bit/cycle links) and pooling, SIMD and off-chip cores
MAX_SLOTS = 16
MAX_MEMBERS = 1000  # a larger space is a typo (too many slots or styles), not a search
ROLES = ("pooling", "simd", "offchip")  # the template's non-compute cores, in the order composed files list them
_STYLE_KEY = re.compile(r"^[A-Za-z0-9]$")


def macs_per_cycle(acc: Accelerator) -> int:
    """MACs per cycle over the compute cores: the core files' only area figure (``multiplier_area`` 1 per MAC,
    every memory's ``area`` 0), so the budget's area."""
    return sum(as_core(c.design).macs_per_cycle for c in acc.cores)


def on_chip_bits(acc: Accelerator) -> int:
    """On-chip memory over the compute cores: each level's size times its instances (a register file private to each
    point of the dimensions it does not serve counts once per point), as the case study's core files count it."""
    total = 0
    for c in acc.cores:
        core = as_core(c.design)
        for level in core.levels:
            instances = math.prod(n for d, n in enumerate(core.sizes) if d not in level.served)
            total += (level.memory.size_bits or 0) * instances
    return total


@dataclass(frozen=True)
class Budget:
    """Upper bounds on a member's compute and memory (None: unbounded)."""

    max_macs: int | None = None
    max_on_chip_bits: int | None = None

    def admits(self, acc: Accelerator) -> bool:
        return ((self.max_macs is None or macs_per_cycle(acc) <= self.max_macs)
                and (self.max_on_chip_bits is None or on_chip_bits(acc) <= self.max_on_chip_bits))

    def __str__(self) -> str:
        parts = [f"{label} <= {bound}" for label, bound in (("MACs", self.max_macs),
                                                             ("on-chip bits", self.max_on_chip_bits)) if bound]
        return ", ".join(parts) or "none"


@dataclass(frozen=True)
class Composition:
    """Style core files on a template's mesh; what a composed member's Stream file is made of."""

    styles: tuple[tuple[str, Path], ...]  # (one-character key, core file), in the file's order
    roles: tuple[Path, Path, Path]  # the template's pooling, SIMD and off-chip core files
    bandwidth: int
    unit_energy_cost: float

    def system(self, name: str, keys: tuple[str, ...], copies: bool = False) -> dict:
        """A Stream 1.x file's data: core files by path, or (``copies``) as :meth:`write_cores` names its copies."""
        files = dict(self.styles)
        cores = ([f"cores/style_{k}.yaml" for k in keys] + [f"cores/{role}.yaml" for role in ROLES] if copies else
                 [str(files[k]) for k in keys] + [str(p) for p in self.roles])
        n = len(keys)
        cols = next(c for c in range(1, n + 1) if n % c == 0 and c * c >= n)  # the most square row-major mesh
        return {"name": name, "cores": cores,
                "graph": {"type": "2d_mesh", "nb_rows": n // cols, "nb_cols": cols, "bandwidth": self.bandwidth,
                          "unit_energy_cost": self.unit_energy_cost, "pooling_core_id": n, "simd_core_id": n + 1,
                          "offchip_core_id": n + 2}}

    def write_cores(self, folder: Path) -> None:
        """Copies of every core file under ``folder/cores/``, named by style key or role (two styles may share a
        file name), so the composed files :meth:`write` puts in ``folder`` load anywhere the folder goes."""
        for stem, source in [*((f"style_{k}", p) for k, p in self.styles), *zip(ROLES, self.roles)]:
            write_text(folder / "cores" / f"{stem}.yaml", source.read_text(encoding="utf-8"))

    def write(self, folder: Path, name: str, keys: tuple[str, ...]) -> Path:
        """``folder/<name>.yaml``, a Stream file of the core copies :meth:`write_cores` leaves there."""
        path = folder / f"{name}.yaml"
        write_text(path, f"# composed by eenas from a hardware space: {', '.join(keys)}\n"
                         + yaml.safe_dump(self.system(name, keys, copies=True), sort_keys=False))
        return path


@dataclass(frozen=True)
class Member:
    """One accelerator of a space: listed (``hardware``, a preset or a file) or composed (``keys``, one per slot)."""

    name: str
    accelerator: Accelerator
    hardware: str | None = None
    keys: tuple[str, ...] = ()


@dataclass(frozen=True)
class HardwareSpace:
    """The members within the budget, listed ones first, then the composed ones in canonical order."""

    name: str
    members: tuple[Member, ...]
    budget: Budget
    excluded: tuple[str, ...]  # members over the budget: not in the space
    composition: Composition | None = None

    def hardware(self, folder: Path) -> tuple[str, ...]:
        """What each member's archs name: a listed preset or file as it is; a composed member's file under
        ``folder`` (:meth:`write` puts it there)."""
        return tuple(m.hardware or os.fspath(folder / f"{m.name}.yaml") for m in self.members)

    def write(self, folder: Path) -> None:
        """The composed members' accelerator files (and their core files) under ``folder``."""
        composition = self.composition
        if composition is not None:
            composition.write_cores(folder)
            for m in self.members:
                if m.keys:
                    composition.write(folder, m.name, m.keys)


def _presets_folder() -> Path:
    """On disk (composed files name core files by path), as a regular or editable install has it."""
    return Path(str(resources.files("eenas.hardware").joinpath("presets")))


def load_hardware_space(name_or_path: str | os.PathLike) -> HardwareSpace:
    """A space file (or a packaged one by name, :data:`SPACE_PRESETS`); every error is one line naming the file and
    the field."""
    text = os.fspath(name_or_path)
    path = _presets_folder() / "spaces" / f"{text}.yaml" if text in SPACE_PRESETS else Path(text)
    if not path.is_file():
        raise EenasError(f"--hardware-space: no file '{text}' (packaged spaces: {', '.join(SPACE_PRESETS)})")
    try:
        return _space(read_yaml(path, text), path)
    except EenasError as exc:
        raise EenasError(f"{text}: {exc}") from None


def _space(data: Any, path: Path) -> HardwareSpace:
    top = _Fields(data, "", root="hardware space")
    name = top.text("name", path.stem, empty=False)
    top.text("description", "")
    members = [_listed(entry, path.parent, i) for i, entry in enumerate(_entries(top))]
    composition = None
    if "compose" in top.data:
        compose = top.section("compose")
        composition, slots = _composition(compose, path.parent)
        members += _composed(composition, slots)
    elif not members:
        raise EenasError("expected 'accelerators', 'compose' or both")
    budget = _budget(top.section("budget")) if "budget" in top.data else Budget()
    top.done()
    names = [m.name for m in members]
    twice = next((n for i, n in enumerate(names) if n in names[:i]), None)
    if twice is not None:
        raise EenasError(f"accelerator '{twice}' is in the space twice")
    within = [budget.admits(m.accelerator) for m in members]
    if not any(within):
        raise EenasError(f"budget: no accelerator of the space is within it ({budget})")
    return HardwareSpace(name, tuple(m for m, ok in zip(members, within) if ok), budget,
                         tuple(m.name for m, ok in zip(members, within) if not ok), composition)


def _entries(top: _Fields) -> list[Any]:
    if "accelerators" not in top.data:
        return []
    entries = top._get("accelerators")
    if not isinstance(entries, list) or not entries:
        raise EenasError("accelerators: expected a non-empty list of presets or accelerator files")
    return entries


def _listed(entry: Any, folder: Path, i: int) -> Member:
    """A listed accelerator: a preset, or a file relative to the space file."""
    where = f"accelerators[{i}]"
    if not isinstance(entry, str) or not entry.strip():
        raise EenasError(f"{where}: expected a preset name or the path of an accelerator file")
    hardware = entry if is_preset(entry) or os.path.isabs(entry) else os.path.normpath(folder / entry)
    try:
        acc = load_accelerator(hardware)
    except EenasError as exc:
        raise EenasError(f"{where}: {exc}") from None
    return Member(acc.name, acc, hardware)


def _file(value: Any, folder: Path, where: str) -> Path:
    if not isinstance(value, str) or not value.strip():
        raise EenasError(f"{where}: expected the path of a file")
    path = Path(value) if os.path.isabs(value) else folder / value
    if not path.is_file():
        raise EenasError(f"{where}: file '{value}' not found")
    return path


def _composition(f: _Fields, folder: Path) -> tuple[Composition, tuple[int, ...]]:
    slots = f._get("slots")
    counts = slots if isinstance(slots, list) else [slots]
    if not counts or not all(isinstance(n, int) and not isinstance(n, bool) and 1 <= n <= MAX_SLOTS for n in counts) \
            or len(set(counts)) != len(counts):
        raise EenasError(f"compose.slots: expected a core count from 1 to {MAX_SLOTS}, or a list of distinct ones")
    table = f._get("styles")
    if not isinstance(table, dict) or not table:
        raise EenasError("compose.styles: expected a non-empty mapping of one-character keys to core files")
    styles = []
    for key, value in table.items():
        if not _STYLE_KEY.match(str(key)):
            raise EenasError(f"compose.styles: key {key!r} is not one letter or digit (members are named by keys)")
        styles.append((str(key), _file(value, folder, f"compose.styles.{key}")))
    template = f.text("template", DEFAULT_TEMPLATE, empty=False)
    f.done()
    roles, graph = _template(template, folder)
    count = sum(math.comb(n + len(styles) - 1, n) for n in counts)
    if count > MAX_MEMBERS:
        raise EenasError(f"compose: {count} multisets of {len(styles)} styles over {counts} slots, at most "
                         f"{MAX_MEMBERS}")
    return Composition(tuple(styles), roles, graph["bandwidth"], graph["unit_energy_cost"]), tuple(counts)


def _template(template: str, folder: Path) -> tuple[tuple[Path, Path, Path], dict]:
    """A Stream 1.x system's pooling, SIMD and off-chip core files and its ``graph``."""
    where = "compose.template"
    path = _presets_folder() / f"{template}.yaml" if is_preset(template) else _file(template, folder, where)
    try:
        load_accelerator(template if is_preset(template) else path)  # validated whole, or one line naming it
    except EenasError as exc:
        raise EenasError(f"{where}: {exc}") from None
    data = read_yaml(path, template)
    if "graph" not in data:
        raise EenasError(f"{where}: '{template}' is not a Stream 1.x system file (it has no graph:)")
    graph, cores = data["graph"], data["cores"]
    roles = tuple(Path(cores[graph[f"{role}_core_id"]]) for role in ROLES)
    return tuple(p if p.is_absolute() else path.parent / p for p in roles), graph  # type: ignore[return-value]


def _composed(composition: Composition, slots: tuple[int, ...]) -> list[Member]:
    """Every multiset of styles over each slot count, styles in the file's order (``sys_EEMY``)."""
    members = []
    keys = [k for k, _ in composition.styles]
    for n in slots:
        for combo in itertools.combinations_with_replacement(keys, n):
            name = f"sys_{''.join(combo)}"
            try:
                acc = stream_accelerator(composition.system(name, combo), Path("/"), name, [])
            except EenasError as exc:
                raise EenasError(f"compose: {name}: {exc}") from None
            members.append(Member(name, acc, keys=combo))
    return members


def _budget(f: _Fields) -> Budget:
    budget = Budget(*(f.integer(key, maximum=2**62) if key in f.data else None
                      for key in ("max_macs", "max_on_chip_bits")))
    f.done()
    if budget.max_macs is None and budget.max_on_chip_bits is None:
        raise EenasError("budget: expected max_macs, max_on_chip_bits or both")
    return budget
