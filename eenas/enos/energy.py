"""The ENOS energy table: per-(operator, mode) energies from a YAML file, per layer in pJ.

The file extends an accelerator description (``extends:``, a preset name or a path): the
digital entries scale that accelerator's compute-core MAC energy and add the weight and
partial-sum traffic its cost model charges (:func:`eenas.hardware.layer_cost`), so digital
numbers are never duplicated here.  CIM entries give an energy per operation from published
macro efficiencies.  The format and its numbers are documented in docs/enos.md and in the
preset ``eenas/enos/presets/enos_hybrid.yaml``.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import torch
import yaml

from eenas.enos.cim import CimConfig
from eenas.enos.operators import OPERATORS
from eenas.errors import EenasError
from eenas.hardware import Accelerator, ConvLayer, layer_cost, load_accelerator

MODES = ("digital", "cim")
DEFAULT_TABLE = "enos_hybrid"
CORE_TRAFFIC_TERMS = ("W.rf", "W.sram", "O.rf")  # what a CIM macro does in place; activations are left out
ENERGY_KEYS = ("core_scale", "pj_per_op", "tops_per_watt")
OPS_PER_MAC = 2  # TOPS/W counts a multiply and an add


@dataclass(frozen=True)
class CandidateEnergy:
    """One (operator, mode) pair: ``core_scale`` (digital) or ``pj_per_op``, and its source."""

    operator: str
    mode: str
    source: str
    core_scale: float | None = None
    pj_per_op: float | None = None

    @property
    def label(self) -> str:
        return f"{self.operator}/{self.mode}"


@dataclass(frozen=True)
class EnergyTable:
    name: str
    description: str
    accelerator: Accelerator
    core: int
    cim: CimConfig
    candidates: tuple[CandidateEnergy, ...]

    @property
    def labels(self) -> list[str]:
        return [c.label for c in self.candidates]

    def energy(self, candidate: CandidateEnergy, layer: ConvLayer) -> float:
        """Energy (pJ) of one inference of ``layer`` with ``candidate``."""
        if candidate.core_scale is not None:
            op = OPERATORS[candidate.operator]
            cost = layer_cost(layer, self.accelerator, self.core, op.storage_bits, op.act_bits)
            return cost.breakdown["mac"] * candidate.core_scale + sum(cost.breakdown[t] for t in CORE_TRAFFIC_TERMS)
        assert candidate.pj_per_op is not None
        if candidate.mode == "digital":
            return layer.macs * candidate.pj_per_op
        # One ADC conversion per chunk and output, each worth ``array_rows`` pairs of energy.
        _, chunks = self.cim.chunking(layer.in_channels // layer.groups, layer.kernel**2)
        outputs = layer.out_channels * layer.out_height * layer.out_width
        return outputs * chunks * self.cim.array_rows * candidate.pj_per_op

    def matrix(self, layers: list[ConvLayer]) -> torch.Tensor:
        """``[layers, candidates]`` energies in pJ (float64, so sums stay exact enough)."""
        return torch.tensor([[self.energy(c, layer) for c in self.candidates] for layer in layers], dtype=torch.float64)


def _number(value: Any, where: str, positive: bool = True) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value < 0 or (positive and value == 0):
        raise EenasError(f"{where}: expected a {'positive' if positive else 'non-negative'} number, got {value!r}")
    return float(value)


def _mapping(value: Any, where: str, allowed: tuple[str, ...]) -> dict:
    if not isinstance(value, dict):
        raise EenasError(f"{where}: expected a mapping")
    unknown = sorted(str(k) for k in value if k not in allowed)
    if unknown:
        raise EenasError(f"{where}: unknown field '{unknown[0]}' (known: {', '.join(allowed)})")
    return value


def _candidate(operator: str, mode: str, entry: Any, where: str) -> CandidateEnergy:
    entry = _mapping(entry, where, ("source", *ENERGY_KEYS))
    given = [k for k in ENERGY_KEYS if k in entry]
    if len(given) != 1:
        raise EenasError(f"{where}: give exactly one of {', '.join(ENERGY_KEYS)}")
    source = entry.get("source")
    if not isinstance(source, str) or not source.strip():
        raise EenasError(f"{where}.source: say where the number comes from (a non-empty string)")
    key = given[0]
    value = _number(entry[key], f"{where}.{key}")
    if key == "core_scale":
        if mode != "digital":
            raise EenasError(f"{where}.core_scale: only digital entries scale the core's MAC energy")
        return CandidateEnergy(operator, mode, source, core_scale=value)
    pj = value if key == "pj_per_op" else OPS_PER_MAC / value
    return CandidateEnergy(operator, mode, source, pj_per_op=pj)


def table_from_dict(data: Any, source: str, base_dir: Path | None) -> EnergyTable:
    """Validate a parsed energy file; every error names the field (``operators.mf.cim.source``)."""
    top = _mapping(data, source, ("name", "description", "extends", "core", "cim", "operators"))
    for key in ("name", "description", "extends"):
        if not isinstance(top.get(key, ""), str):
            raise EenasError(f"{key}: expected a string")
    extends = top.get("extends")
    if not extends:
        raise EenasError("extends: name the accelerator preset or YAML file whose core prices digital MACs")
    path = Path(extends)
    if base_dir is not None and not path.is_absolute() and (base_dir / path).exists():
        extends = str(base_dir / path)
    accelerator = load_accelerator(extends)
    core = top.get("core", 0)
    if not isinstance(core, int) or isinstance(core, bool) or not 0 <= core < len(accelerator.cores):
        last = len(accelerator.cores) - 1
        raise EenasError(f"core: {core!r} is not a compute core of {accelerator.name} (0..{last})")
    cim_data = _mapping(top.get("cim", {}), "cim", ("array_rows", "adc_bits", "noise_std"))
    for key in ("array_rows", "adc_bits"):
        if key in cim_data and (not isinstance(cim_data[key], int) or isinstance(cim_data[key], bool)):
            raise EenasError(f"cim.{key}: expected an integer, got {cim_data[key]!r}")
    if "noise_std" in cim_data:
        _number(cim_data["noise_std"], "cim.noise_std", positive=False)
    cim = CimConfig(**cim_data)
    operators = top.get("operators")
    if not isinstance(operators, dict) or not operators:
        raise EenasError("operators: expected a mapping of operator to modes")
    candidates = []
    for operator, modes in operators.items():
        if operator not in OPERATORS:
            raise EenasError(f"operators.{operator}: unknown operator '{operator}' (known: {', '.join(OPERATORS)})")
        modes = _mapping(modes, f"operators.{operator}", MODES)
        if not modes:
            raise EenasError(f"operators.{operator}: give at least one mode ({', '.join(MODES)})")
        candidates += [_candidate(operator, mode, entry, f"operators.{operator}.{mode}")
                       for mode, entry in modes.items()]
    return EnergyTable(top.get("name", source), top.get("description", ""), accelerator, core, cim, tuple(candidates))


def presets() -> list[str]:
    folder = resources.files("eenas.enos").joinpath("presets")
    return sorted(p.name.removesuffix(".yaml") for p in folder.iterdir() if p.name.endswith(".yaml"))


def _parse(text: str, source: str, base_dir: Path | None) -> EnergyTable:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise EenasError(f"{source}: not valid YAML ({getattr(exc, 'problem', None) or 'parse error'})") from None
    try:
        return table_from_dict(data, source, base_dir)
    except EenasError as exc:
        raise EenasError(f"{source}: {exc}") from None


def load_energy_table(name_or_path: str | os.PathLike = DEFAULT_TABLE) -> EnergyTable:
    """A preset by name (``enos_hybrid``) or an energy YAML file by path."""
    name_or_path = os.fspath(name_or_path)
    if name_or_path in presets():
        text = resources.files("eenas.enos").joinpath("presets", f"{name_or_path}.yaml").read_text()
        return _parse(text, name_or_path, None)
    path = Path(name_or_path)
    try:
        text = path.read_text()
    except OSError:
        raise EenasError(
            f"unknown energy table '{name_or_path}' (presets: {', '.join(presets())}; or a path to a YAML file)"
        ) from None
    return _parse(text, name_or_path, path.parent)


def expected_energy(probabilities: torch.Tensor, matrix: torch.Tensor) -> torch.Tensor:
    """``sum_l sum_i p[l, i] * E[l, i]``: the network's energy in expectation over the relaxation."""
    return (probabilities * matrix.to(probabilities.dtype)).sum()
