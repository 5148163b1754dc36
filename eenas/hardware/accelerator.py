"""Accelerator descriptions: frozen dataclasses, loaded and validated from YAML.

Units follow ZigZag and Stream so their numbers can be copied as they are: sizes in bits,
bandwidths in bits per cycle, energies in pJ per access of a port's full width.  Every
error names the file and the field (``hw.yaml: cores[2].mac_array.energy_per_mac_pj: ...``)
because these files are written by hand.  The format is documented in docs/hardware.md.
"""

from __future__ import annotations

import functools
import itertools
import math
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from eenas.errors import EenasError

if TYPE_CHECKING:
    from importlib.resources.abc import Traversable

    from eenas.hardware.core import Core

PRESETS = ("edge_tpu_quad", "edge_tpu_single")  # in eenas's own format
# The Stream case study's nine four-core systems (E Edge-TPU-like, M Meta-prototype-like, Y Eyeriss-like
# cores, presets/cores/), in Stream's 1.x format.
CASE_STUDY_PRESETS = tuple(f"sys_{mix}" for mix in ("EEEE", "EEEY", "EEMM", "EEMY", "EEYY", "EYYY", "MMMM", "MMYY",
                                                     "YYYY"))


def is_preset(name: object) -> bool:
    return name in PRESETS or name in CASE_STUDY_PRESETS


DEFAULT_HARDWARE = "edge_tpu_quad"
# streamed: every inference starts with empty weight SRAMs (Stream's single-inference view);
# resident: the weights that fit stay in the weight SRAMs across inferences.
WEIGHT_MODES = ("streamed", "resident")
# Upper bounds of a file's values (docs/hardware.md), far beyond real accelerators: an absurd value (a 10^400-bit
# SRAM, a 1e300 pJ access) is an error naming the field, not an overflow or a meaningless cost.
MAX_SIZE_BITS = 2**40  # a memory's size_bits: 128 GiB
MAX_INTEGER = 2**24  # any other integer: bandwidths, register and operand widths, array sizes, lanes, positions
MAX_ENERGY_PJ = 1e9  # an energy per access, MAC, operation or bit: 1 mJ


def _hash_once(self: Any) -> int:
    """Hash of a nested frozen dataclass, computed once: cost caches hash it on every look-up."""
    try:
        return self.__dict__["_hash"]
    except KeyError:
        value = hash(tuple(getattr(self, f.name) for f in fields(self)))
        self.__dict__["_hash"] = value
        return value


@dataclass(frozen=True)
class Memory:
    """An SRAM or DRAM with one read and one write port (DRAM: one shared port).

    ``size_bits`` is None for off-chip DRAM, which never runs out.
    """

    size_bits: int | None
    read_bw_bits: int
    write_bw_bits: int
    min_bw_bits: int
    read_energy_pj: float
    write_energy_pj: float
    min_write_bw_bits: int = 0  # write granularity when it differs from the read one (ZigZag files); 0: the same

    __hash__ = _hash_once

    @staticmethod
    def _accesses(bits: float, granule: int, bw: int) -> float:
        """ZigZag's partial-access rule: ceil(bits / bw_min) * bw_min / bw_max full accesses."""
        return math.ceil(bits / granule) * granule / bw

    def read_energy(self, bits: float, events: float = 1) -> float:
        return events * self._accesses(bits, self.min_bw_bits, self.read_bw_bits) * self.read_energy_pj if bits else 0.0

    def write_energy(self, bits: float, events: float = 1) -> float:
        granule = self.min_write_bw_bits or self.min_bw_bits
        return events * self._accesses(bits, granule, self.write_bw_bits) * self.write_energy_pj if bits else 0.0

    def read_cycles(self, bits: int, events: int = 1) -> int:
        return events * math.ceil(bits / self.read_bw_bits)

    def write_cycles(self, bits: int, events: int = 1) -> int:
        return events * math.ceil(bits / self.write_bw_bits)


@dataclass(frozen=True)
class Register:
    """A register file instance in the MAC array; wider operands take several accesses."""

    bits: int
    read_energy_pj: float
    write_energy_pj: float

    def read_energy(self, bits: int, count: int) -> float:
        return count * math.ceil(bits / self.bits) * self.read_energy_pj

    def write_energy(self, bits: int, count: int) -> float:
        return count * math.ceil(bits / self.bits) * self.write_energy_pj


class PackingArray:
    """What every MAC array shares: its size, and how many low-precision MACs a multiplier packs."""

    sizes: tuple[int, ...]
    native_bits: int
    packs_low_precision: bool

    @property
    def macs_per_cycle(self) -> int:
        return math.prod(self.sizes)

    def pack_factor(self, weight_bits: int, act_bits: int) -> int:
        """How many low-precision MACs one multiplier does per cycle (1 unless packing)."""
        widest = max(weight_bits, act_bits)
        if not self.packs_low_precision or widest >= self.native_bits:
            return 1
        return self.native_bits // widest


@dataclass(frozen=True)
class MacArray(PackingArray):
    """A 4-D MAC array unrolling (D1, D2, D3, D4) = (K, C, OX, OY)."""

    sizes: tuple[int, int, int, int]
    energy_per_mac_pj: float
    psum_bits: int
    native_bits: int
    packs_low_precision: bool
    depthwise_groups_on_d1: bool


@dataclass(frozen=True)
class CoreDesign:
    """What a compute core is made of; identical cores share one design and its cached costs."""

    mac_array: MacArray
    weight_rf: Register
    output_rf: Register
    weight_sram: Memory
    act_sram: Memory

    __hash__ = _hash_once


@dataclass(frozen=True)
class ComputeCore:
    name: str
    mesh_position: tuple[int, int]
    design: CoreDesign | Core  # eenas's own format, or a ZigZag core file's (eenas.hardware.core)


@dataclass(frozen=True)
class PoolingCore:
    """Pooling units arranged as a window of ``units[0] x units[1]`` over ``units[2]`` channels."""

    units: tuple[int, int, int]
    energy_per_op_pj: float
    sram: Memory
    link_bw_bits: int


@dataclass(frozen=True)
class SimdCore:
    """Element-wise core for residual additions; its links are free and unlimited."""

    lanes: int
    energy_per_op_pj: float


@dataclass(frozen=True)
class Mesh:
    link_bw_bits: int
    link_energy_pj_per_bit: float


@dataclass(frozen=True)
class Accelerator:
    """A multi-core accelerator: compute cores on a mesh, a pooling and a SIMD core, DRAM."""

    name: str
    description: str
    cores: tuple[ComputeCore, ...]
    mesh: Mesh
    pooling_core: PoolingCore
    simd_core: SimdCore
    dram: Memory
    weights: str = "streamed"  # one of WEIGHT_MODES

    __hash__ = _hash_once

    def with_weights(self, mode: str | None) -> Accelerator:
        """This accelerator in weight mode ``mode`` (None: as described)."""
        if mode is None or mode == self.weights:
            return self
        return _with_weights(self, check_weight_mode(mode))

    @functools.cached_property
    def designs(self) -> tuple[CoreDesign, ...]:
        return tuple(c.design for c in self.cores)

    @functools.cached_property
    def weight_sram_bits(self) -> tuple[int, ...]:
        return tuple(c.design.weight_sram.size_bits for c in self.cores)  # type: ignore[misc]

    @functools.cached_property
    def mesh_links(self) -> tuple[tuple[int, int], ...]:
        """Neighbouring core pairs (Manhattan distance 1), one link resource each."""
        pos = [c.mesh_position for c in self.cores]
        return tuple(
            (a, b)
            for a in range(len(pos))
            for b in range(a + 1, len(pos))
            if abs(pos[a][0] - pos[b][0]) + abs(pos[a][1] - pos[b][1]) == 1
        )

    @functools.cached_property
    def routes(self) -> dict[tuple[int, int], tuple[int, ...]]:
        """Link indices on the XY route (then YX if XY leaves the mesh) between every core pair."""
        link_index = {pair: i for i, pair in enumerate(self.mesh_links)}
        at = {c.mesh_position: i for i, c in enumerate(self.cores)}
        routes: dict[tuple[int, int], tuple[int, ...]] = {}
        for a, core_a in enumerate(self.cores):
            for b, core_b in enumerate(self.cores):
                if a != b:
                    src, dst = core_a.mesh_position, core_b.mesh_position
                    path = _route(src, dst, at, xy=True) or _route(src, dst, at, xy=False)
                    if path is None:
                        raise EenasError(f"{self.name}: cores {a} and {b} are not connected by the mesh")
                    routes[a, b] = tuple(link_index[min(p, q), max(p, q)] for p, q in itertools.pairwise(path))
        return routes


def check_choice(value: object, options: tuple[str, ...], where: str) -> str:
    if not isinstance(value, str) or value not in options:
        raise EenasError(f"{where}: {value!r} is not one of {', '.join(options)}")
    return value


def check_weight_mode(mode: object, where: str = "weights") -> str:
    return check_choice(mode, WEIGHT_MODES, where)


@functools.lru_cache(maxsize=32)
def _with_weights(acc: Accelerator, mode: str) -> Accelerator:
    """One object per (accelerator, mode), so the cost caches keyed by it hit by identity."""
    return replace(acc, weights=mode)


def _route(src: tuple[int, int], dst: tuple[int, int], at: dict, xy: bool) -> list[int] | None:
    """Core indices visited going along x then y (or y then x); None if a hop has no core."""
    (x, y), path = src, [at[src]]
    axes = (0, 1) if xy else (1, 0)
    for axis in axes:
        while (x, y)[axis] != dst[axis]:
            step = 1 if dst[axis] > (x, y)[axis] else -1
            x, y = (x + step, y) if axis == 0 else (x, y + step)
            if (x, y) not in at:
                return None
            path.append(at[x, y])
    return path


class _Fields:
    """Reads one YAML mapping, naming ``where.field`` in every error and rejecting unknown keys."""

    def __init__(self, data: Any, where: str, root: str = "hardware") -> None:
        if not isinstance(data, dict):
            raise EenasError(f"{where or root}: expected a mapping")
        self.data, self.where, self.root, self.seen = data, where, root, set()

    def _path(self, key: str) -> str:
        return f"{self.where}.{key}" if self.where else key

    def _get(self, key: str, default: Any = ...) -> Any:
        self.seen.add(key)
        if key not in self.data:
            if default is ...:
                raise EenasError(f"{self.where or self.root}: missing field '{key}'")
            return default
        return self.data[key]

    def number(self, key: str, positive: bool = True) -> float:
        """An energy: compared, never converted first (a 10^400 int overflows a float; NaN fails every test)."""
        value = self._get(key)
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        if not (ok and (0 < value if positive else 0 <= value) and value <= MAX_ENERGY_PJ):
            kind = "positive" if positive else "non-negative"
            raise EenasError(f"{self._path(key)}: expected a {kind} number up to {MAX_ENERGY_PJ:g}")
        return float(value)

    def integer(self, key: str, default: Any = ..., maximum: int = MAX_INTEGER) -> int:
        value = self._get(key, default)
        if not _whole(value, 1, maximum):
            raise EenasError(f"{self._path(key)}: expected a positive integer up to {_power(maximum)}")
        return value

    def integers(self, key: str, length: int, minimum: int = 1) -> tuple[int, ...]:
        value = self._get(key)
        if not (isinstance(value, list) and len(value) == length and all(_whole(v, minimum) for v in value)):
            kind = "positive" if minimum > 0 else "non-negative"
            raise EenasError(f"{self._path(key)}: expected a list of {length} {kind} integers up to "
                             f"{_power(MAX_INTEGER)}")
        return tuple(value)

    def boolean(self, key: str, default: bool) -> bool:
        value = self._get(key, default)
        if not isinstance(value, bool):
            raise EenasError(f"{self._path(key)}: expected true or false")
        return value

    def text(self, key: str, default: Any = ..., empty: bool = True) -> str:
        value = self._get(key, default)
        if not isinstance(value, str) or not (empty or value.strip()):
            raise EenasError(f"{self._path(key)}: expected a {'' if empty else 'non-empty '}string")
        return value

    def choice(self, key: str, options: tuple[str, ...], default: str) -> str:
        return check_choice(self._get(key, default), options, self._path(key))

    def accept(self, *keys: str) -> None:
        """Fields that are valid but change no cost (an area, a comment-like type)."""
        self.seen.update(keys)

    def section(self, key: str) -> _Fields:
        return _Fields(self._get(key), self._path(key))

    def items(self, key: str) -> list[_Fields]:
        value = self._get(key)
        if not isinstance(value, list) or not value:
            raise EenasError(f"{self._path(key)}: expected a non-empty list")
        return [_Fields(item, f"{self._path(key)}[{i}]") for i, item in enumerate(value)]

    def done(self) -> None:
        unknown = sorted(str(k) for k in set(self.data) - self.seen if self.where or not str(k).startswith("x-"))
        if unknown:
            raise EenasError(f"{self.where or self.root}: unknown field '{unknown[0]}'")


def _whole(value: Any, minimum: int, maximum: int = MAX_INTEGER) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and minimum <= value <= maximum


def _power(limit: int) -> str:
    """A power-of-two bound as people write it: 2^40."""
    return f"2^{limit.bit_length() - 1}"


def _memory(f: _Fields, sized: bool = True) -> Memory:
    size = f.integer("size_bits", maximum=MAX_SIZE_BITS) if sized else None
    if sized:
        read_bw, write_bw, min_bw = f.integer("read_bw_bits"), f.integer("write_bw_bits"), f.integer("min_bw_bits")
    else:
        read_bw = write_bw = min_bw = f.integer("bw_bits")
    if min_bw > min(read_bw, write_bw):
        raise EenasError(f"{f.where}.min_bw_bits: {min_bw} exceeds a port's bandwidth")
    if read_bw % min_bw or write_bw % min_bw:
        raise EenasError(f"{f.where}.min_bw_bits: {min_bw} does not divide the ports' bandwidths "
                         f"({read_bw}, {write_bw}): a port moves whole access words")
    read_pj, write_pj = f.number("read_energy_pj", False), f.number("write_energy_pj", False)
    memory = Memory(size, read_bw, write_bw, min_bw, read_pj, write_pj)
    f.done()
    return memory


def _register(f: _Fields) -> Register:
    reg = Register(f.integer("bits"), f.number("read_energy_pj", False), f.number("write_energy_pj", False))
    f.done()
    return reg


def _mac_array(f: _Fields) -> MacArray:
    array = MacArray(
        sizes=f.integers("sizes", 4),  # type: ignore[arg-type]
        energy_per_mac_pj=f.number("energy_per_mac_pj"),
        psum_bits=f.integer("psum_bits"),
        native_bits=f.integer("native_bits", 8),
        packs_low_precision=f.boolean("packs_low_precision", False),
        depthwise_groups_on_d1=f.boolean("depthwise_groups_on_d1", True),
    )
    if array.psum_bits < array.native_bits:
        raise EenasError(f"{f.where}.psum_bits: {array.psum_bits} is narrower than native_bits "
                         f"({array.native_bits}): a partial sum cannot hold one product")
    f.done()
    return array


def _core(f: _Fields) -> ComputeCore:
    core = ComputeCore(
        name=f.text("name", empty=False),
        mesh_position=f.integers("mesh_position", 2, minimum=0),  # type: ignore[arg-type]
        design=CoreDesign(
            mac_array=_mac_array(f.section("mac_array")),
            weight_rf=_register(f.section("weight_rf")),
            output_rf=_register(f.section("output_rf")),
            weight_sram=_memory(f.section("weight_sram")),
            act_sram=_memory(f.section("act_sram")),
        ),
    )
    array, sram = core.design.mac_array, core.design.weight_sram
    tile = array.sizes[0] * array.sizes[1] * array.native_bits
    if sram.size_bits < tile:  # type: ignore[operator]
        raise EenasError(f"{f.where}.weight_sram.size_bits: {sram.size_bits} cannot hold one D1 x D2 weight tile "
                         f"({tile} bits)")
    f.done()
    return core


def accelerator_from_dict(data: Any, default_name: str) -> Accelerator:
    """Validate a parsed hardware description; errors name the field (``cores[2].mac_array...``).

    Top-level keys starting with ``x-`` are ignored, so a file can hold YAML anchor templates.
    """
    top = _Fields(data, "")
    name = top.text("name", default_name, empty=False)
    description = top.text("description", "")
    cores = tuple(_core(f) for f in top.items("cores"))
    for field in ("name", "mesh_position"):
        values = [getattr(c, field) for c in cores]
        for i, value in enumerate(values):
            if values.index(value) != i:
                shown = list(value) if isinstance(value, tuple) else repr(value)
                raise EenasError(f"cores[{i}].{field}: {shown} is taken by cores[{values.index(value)}]")
    mesh_f = top.section("mesh")
    mesh = Mesh(mesh_f.integer("link_bw_bits"), mesh_f.number("link_energy_pj_per_bit", False))
    mesh_f.done()
    pool_f = top.section("pooling_core")
    pooling = PoolingCore(
        units=pool_f.integers("units", 3),  # type: ignore[arg-type]
        energy_per_op_pj=pool_f.number("energy_per_op_pj", False),
        sram=_memory(pool_f.section("sram")),
        link_bw_bits=pool_f.integer("link_bw_bits"),
    )
    pool_f.done()
    simd_f = top.section("simd_core")
    simd = SimdCore(simd_f.integer("lanes"), simd_f.number("energy_per_op_pj", False))
    simd_f.done()
    dram = _memory(top.section("dram"), sized=False)
    weights = top.choice("weights", WEIGHT_MODES, "streamed")
    top.done()
    acc = Accelerator(name, description, cores, mesh, pooling, simd, dram, weights)
    acc.routes  # noqa: B018 - fail now, not mid-search, on a disconnected mesh
    return acc


def read_yaml(path: Path | Traversable, source: str) -> Any:
    """A YAML file's data; a file that is not UTF-8 text or not YAML is one line naming ``source``."""
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise EenasError(f"{source}: not a text file (byte {exc.start} is not UTF-8)") from None
    try:
        return yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "parse error"
        raise EenasError(f"{source}: not valid YAML ({problem}{where})") from None
