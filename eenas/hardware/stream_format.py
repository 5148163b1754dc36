"""Stream accelerator files and their ZigZag core files, read into an :class:`Accelerator`.

Two forms of the accelerator file: Stream 1.x (a ``cores:`` list of core files and
``graph: {type: 2d_mesh, ...}`` naming the pooling, SIMD and off-chip cores) and stream-dse
2.x (``cores:`` by id, ``offchip_core_id``, ``core_connectivity`` links).  Core files are
ZigZag's (``memories``, ``operational_array``, ``dataflows``), ports in either the
``r_bw``/``r_port`` form or the ``ports: [{name, type, bandwidth_min, ...}]`` form, and
resolved relative to the accelerator file.  Cores are keyed by position: names repeat.

What eenas cannot model is an error naming the field, never dropped: an unknown field, a
missing core file, a mapping the array cannot hold.  docs/hardware.md lists what maps to what.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from eenas.errors import EenasError
from eenas.hardware.accelerator import (
    Accelerator,
    ComputeCore,
    Memory,
    Mesh,
    PoolingCore,
    SimdCore,
    _Fields,
    read_yaml,
)
from eenas.hardware.core import LAYER_TYPES, LOOPS, Core, Level

if TYPE_CHECKING:
    from importlib.resources.abc import Traversable

OPERAND_OF = {"I2": "W", "I1": "I", "O": "O"}  # ZigZag memory operand -> layer operand (its default links)
_PORT = re.compile(r"^(r|w|rw)_port_(\d+)$")
_INT_BITS = re.compile(r"^u?int(\d+)$")


def is_stream(data: Any) -> bool:
    """A Stream accelerator file: a ``graph``, ``core_connectivity`` or ``offchip_core_id`` key."""
    return isinstance(data, dict) and bool({"graph", "core_connectivity", "offchip_core_id"} & set(data))


class _CoreFile:
    """One ZigZag core file, validated: its array, MAC energy, levels and mappings."""

    def __init__(self, data: Any, where: str) -> None:
        f = _Fields(data, where)
        self.name = f.text("name", empty=False)
        kind = f.text("type", "zigzag.compute")
        if kind.split(".")[-1] not in ("compute", "offchip", "memory"):
            raise EenasError(f"{where}.type: {kind!r} is not a ZigZag compute, memory or off-chip core")
        array = f.section("operational_array")
        self.dims = self._dims(array)
        sizes = array._get("sizes")
        if not (isinstance(sizes, list) and len(sizes) == len(self.dims)
                and all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 2**24 for v in sizes)):
            raise EenasError(f"{array.where}.sizes: expected {len(self.dims)} non-negative integers, one per dimension")
        self.sizes = tuple(sizes)
        energy_key = "unit_energy" if "unit_energy" in array.data else "multiplier_energy"
        self.mac_pj = array.number(energy_key, positive=False)
        array.accept("unit_area", "multiplier_area")
        if array.boolean("is_imc", False):
            raise EenasError(f"{array.where}.is_imc: in-memory computing cores are not modelled")
        self.native_bits = 8
        if "input_precision" in array.data:
            precision = array._get("input_precision")
            if not (isinstance(precision, list) and len(precision) == 2 and precision[0] == precision[1]
                    and isinstance(precision[0], int) and precision[0] > 0):
                raise EenasError(f"{array.where}.input_precision: expected [bits, bits], one width for both operands")
            self.native_bits = precision[0]
        array.done()
        self.psum_bits = 2 * self.native_bits  # ZigZag's partial sums: twice the operands (O: 16 for 8-bit)
        if "operand_precision" in data:
            self._operand_precision(f.section("operand_precision"))
        memories = f.section("memories")
        if not memories.data:
            raise EenasError(f"{memories.where}: expected at least one memory")
        self.levels = [self._level(memories.section(str(name)), str(name)) for name in memories.data]
        memories.done()
        self.mappings = self._mappings(f)
        f.done()
        self.where = where

    def _dims(self, array: _Fields) -> tuple[str, ...]:
        dims = array._get("dimensions")
        if not (isinstance(dims, list) and dims and dims == [f"D{i + 1}" for i in range(len(dims))]):
            raise EenasError(f"{array.where}.dimensions: expected [D1, D2, ...] in order")
        return tuple(dims)

    def _operand_precision(self, f: _Fields) -> None:
        """Stream 2.x's ``operand_precision: {input: int8, accumulator: int32}``."""
        for key in ("input", "accumulator"):
            if key in f.data:
                match = _INT_BITS.match(str(f.data[key]))
                if not match:
                    raise EenasError(f"{f.where}.{key}: expected intN, got {f.data[key]!r}")
                bits = int(match.group(1))
                if key == "input":
                    self.native_bits = bits
                else:
                    self.psum_bits = bits
        f.accept("input", "accumulator")
        f.done()
        self.psum_bits = max(self.psum_bits, self.native_bits)

    def _served(self, f: _Fields) -> tuple[int, ...]:
        served = f._get("served_dimensions")
        if not isinstance(served, list) or any(d not in self.dims for d in served):
            raise EenasError(f"{f.where}.served_dimensions: expected a list of {', '.join(self.dims)}")
        return tuple(sorted(self.dims.index(d) for d in set(served)))

    def _level(self, f: _Fields, name: str) -> tuple[Level, bool]:
        """A memory and whether it is the core's DRAM (``mem_type: dram`` or named ``dram``)."""
        size = f.integer("size", maximum=2**40)
        operands = f._get("operands")
        if not (isinstance(operands, list) and operands and all(op in OPERAND_OF for op in operands)):
            raise EenasError(f"{f.where}.operands: expected a list of I1, I2, O")
        if f.integer("latency", 1) != 1:
            raise EenasError(f"{f.where}.latency: only single-cycle accesses (1) are modelled")
        if f.boolean("auto_cost_extraction", False):
            raise EenasError(f"{f.where}.auto_cost_extraction: CACTI cost extraction is not modelled; give r_cost "
                             "and w_cost")
        mem_type = f.text("mem_type", "sram")
        f.accept("area")
        r_pj, w_pj = f.number("r_cost", False), f.number("w_cost", False)
        if "r_bw" in f.data:
            (r_bw, r_min), (w_bw, w_min), shared = self._old_ports(f, len(operands))
        else:
            (r_bw, r_min), (w_bw, w_min), shared = self._new_ports(f)
        served = self._served(f)
        f.done()
        memory = Memory(size, r_bw, w_bw, r_min, r_pj, w_pj, w_min)
        level = Level(name, memory, tuple(dict.fromkeys(OPERAND_OF[op] for op in operands)), served,
                      len(served) < len(self.dims), shared)
        return level, mem_type == "dram" or name == "dram"

    def _old_ports(self, f: _Fields, operands: int) -> tuple[tuple[int, int], tuple[int, int], bool]:
        """``r_bw``, ``w_bw``, ``min_*_granularity`` (default: the bandwidth), port counts and their use."""
        r_bw, w_bw = f.integer("r_bw"), f.integer("w_bw")
        r_min, w_min = f.integer("min_r_granularity", r_bw), f.integer("min_w_granularity", w_bw)
        counts = {kind: self._count(f, f"{kind}_port") for kind in ("r", "w", "rw")}
        ports = f._get("ports")
        if not (isinstance(ports, list) and len(ports) == operands and all(isinstance(p, dict) for p in ports)):
            raise EenasError(f"{f.where}.ports: expected one mapping per operand ({operands})")
        for i, use in enumerate(ports):
            for direction, port in use.items():
                match = _PORT.match(str(port))
                declared = match is not None and int(match.group(2)) <= counts[match.group(1)]
                if direction not in ("fh", "tl", "fl", "th") or not declared:
                    raise EenasError(f"{f.where}.ports[{i}].{direction}: {port!r} is not a declared port")
        for name, value, bw in (("min_r_granularity", r_min, r_bw), ("min_w_granularity", w_min, w_bw)):
            if value > bw:
                raise EenasError(f"{f.where}.{name}: {value} exceeds the bandwidth {bw}")
        if counts["r"] + counts["rw"] == 0 or counts["w"] + counts["rw"] == 0:
            raise EenasError(f"{f.where}: a memory needs a read and a write port (r_port, w_port or rw_port)")
        return (r_bw, r_min), (w_bw, w_min), counts["r"] == counts["w"] == 0

    @staticmethod
    def _count(f: _Fields, key: str) -> int:
        value = f._get(key, 0)
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 64:
            raise EenasError(f"{f.where}.{key}: expected a port count from 0 to 64")
        return value

    def _new_ports(self, f: _Fields) -> tuple[tuple[int, int], tuple[int, int], bool]:
        """The widest read and write port of ``ports: [{name, type, bandwidth_min, bandwidth_max, allocation}]``."""
        best: dict[str, tuple[int, int]] = {}
        kinds = set()
        for port in f.items("ports"):
            kind = port.choice("type", ("read", "write", "read_write"), "read")
            port.text("name", empty=False)
            port.accept("allocation")
            high, low = port.integer("bandwidth_max"), port.integer("bandwidth_min")
            if low > high:
                raise EenasError(f"{port.where}.bandwidth_min: {low} exceeds bandwidth_max {high}")
            port.done()
            kinds.add(kind)
            for direction in ("read", "write"):
                if kind in (direction, "read_write") and high > best.get(direction, (0, 0))[0]:
                    best[direction] = (high, low)
        if set(best) != {"read", "write"}:
            raise EenasError(f"{f.where}.ports: a memory needs a read and a write port")
        return best["read"], best["write"], kinds == {"read_write"}

    def _mapping(self, f: _Fields, fixed: bool) -> tuple[tuple[str, ...], ...]:
        """Per dimension the loops it may unroll: ``D1: ["K, 8"]`` (dataflows) or ``D1: [K, C]`` (hint)."""
        per_dim: list[tuple[str, ...]] = [() for _ in self.dims]
        for dim, entries in f.data.items():
            if dim not in self.dims:
                raise EenasError(f"{f.where}: unknown dimension '{dim}' (the array has {', '.join(self.dims)})")
            size = self.sizes[self.dims.index(dim)]
            if not isinstance(entries, list) or not entries or (fixed and len(entries) != 1):
                raise EenasError(f"{f.where}.{dim}: expected {'one entry' if fixed else 'a list of loops'} "
                                 "(mixed unrollings of one dimension are not modelled)")
            loops = []
            for entry in entries:
                loop, _, factor = str(entry).partition(",")
                loop = loop.strip()
                if loop not in LOOPS:
                    raise EenasError(f"{f.where}.{dim}: unknown loop '{loop}' (expected one of {', '.join(LOOPS)})")
                if factor and factor.strip() != str(size):
                    raise EenasError(f"{f.where}.{dim}: unrolls {loop} {factor.strip()} wide on a dimension of "
                                     f"{size}; only whole dimensions are modelled")
                loops.append(loop)
            per_dim[self.dims.index(dim)] = tuple(loops)
            f.accept(dim)
        fixed_loops = [d[0] for d in per_dim if len(d) == 1]
        if fixed and len(fixed_loops) != len(set(fixed_loops)):
            raise EenasError(f"{f.where}: a loop is unrolled on two dimensions")
        return tuple(per_dim)

    def _mappings(self, f: _Fields) -> tuple[tuple[str, tuple[tuple[str, ...], ...]], ...]:
        """``dataflows`` fix one mapping for every layer type; ``spatial_mapping`` gives one per type."""
        if "dataflows" in f.data:
            return (("default", self._mapping(f.section("dataflows"), fixed=True)),)
        if "spatial_mapping" not in f.data:
            return ()
        table = f.section("spatial_mapping")
        out = []
        for kind in table.data:
            if kind not in LAYER_TYPES:
                raise EenasError(f"{table.where}: unknown layer type '{kind}' (expected {', '.join(LAYER_TYPES)})")
            out.append((str(kind), self._mapping(table.section(str(kind)), fixed=False)))
        return tuple(out)

    # -- what the file becomes ---------------------------------------------------------

    def on_chip(self) -> tuple[Level, ...]:
        """Its levels without its DRAM, which stands for off-chip memory (the off-chip core's, in eenas)."""
        return tuple(level for level, dram in self.levels if not dram)

    def compute(self) -> Core:
        levels = self.on_chip()
        if not self.sizes or 0 in self.sizes or self.mac_pj <= 0:
            raise EenasError(f"{self.where}.operational_array: a compute core needs MACs (sizes above 0) and a "
                             "positive MAC energy")
        for op, zz in (("W", "I2"), ("I", "I1"), ("O", "O")):
            if not any(op in level.operands for level in levels):
                raise EenasError(f"{self.where}.memories: no on-chip memory holds {zz}")
        core = Core(self.name, self.sizes, self.mac_pj, self.psum_bits, self.native_bits, False, levels, self.mappings,
                    searches_order=True)
        if core.chains["I"][-1] is not core.chains["O"][-1]:
            raise EenasError(f"{self.where}.memories: inputs (I1) and outputs (O) must share their top on-chip memory "
                             f"({core.chains['I'][-1].name} vs {core.chains['O'][-1].name})")
        return core

    def pooling(self, link_bw_bits: int) -> PoolingCore:
        """A pooling core: dataflows unroll FY and FX (the window) and a channel loop."""
        table = dict(self.mappings).get("default", ())
        loops = {d[0]: size for d, size in zip(table, self.sizes) if d}
        channel = next((x for x in ("K", "C", "G") if x in loops), None)
        if not ({"FX", "FY"} <= set(loops) and channel):
            raise EenasError(f"{self.where}.dataflows: a pooling core unrolls FY, FX and a channel loop (K, C or G)")
        return PoolingCore((loops["FY"], loops["FX"], loops[channel]), self.mac_pj, self._top_memory("I"), link_bw_bits)

    def simd(self) -> SimdCore:
        if 0 in self.sizes:
            raise EenasError(f"{self.where}.operational_array.sizes: a SIMD core needs lanes")
        return SimdCore(math.prod(self.sizes), self.mac_pj)

    def offchip(self) -> Memory:
        """The off-chip core's memory: its top level."""
        memory = self.levels[-1][0].memory
        return Memory(None, memory.read_bw_bits, memory.write_bw_bits, memory.min_bw_bits, memory.read_energy_pj,
                      memory.write_energy_pj, memory.min_write_bw_bits)

    def _top_memory(self, op: str) -> Memory:
        levels = [level for level in self.on_chip() if op in level.operands]
        if not levels:
            raise EenasError(f"{self.where}.memories: no on-chip memory holds its data")
        return levels[-1].memory


def _load_core(base: Path | Traversable, entry: Any, where: str, read: list[str]) -> _CoreFile:
    if not isinstance(entry, str) or not entry.strip():
        raise EenasError(f"{where}: expected the path of a core file")
    path = Path(entry) if Path(entry).is_absolute() else base.joinpath(entry)
    read.append(str(path))
    if not path.is_file():
        raise EenasError(f"{where}: core file '{entry}' not found")
    return _CoreFile(read_yaml(path, f"{where} ({entry})"), f"{where} ({entry})")


def _mesh_positions(n: int, cols: int) -> list[tuple[int, int]]:
    """Stream's 2-D mesh: compute cores row-major, ``cols`` to a row."""
    return [(i % cols, i // cols) for i in range(n)]


def _link_value(values: dict[str, tuple[float, str]], key: str, value: float, where: str) -> None:
    """One bandwidth (or energy) for every link of a kind: eenas's mesh has uniform links."""
    if key in values and values[key][0] != value:
        raise EenasError(f"{where}: {value:g} differs from {values[key][0]:g} at {values[key][1]}; links of different "
                         "bandwidths or energies are not modelled")
    values.setdefault(key, (value, where))


def stream_accelerator(data: dict, base: Path | Traversable, default_name: str, read: list[str]) -> Accelerator:
    """An :class:`Accelerator` from a Stream file of either form (see the module docstring); the
    core files it reads (resolved from ``base``) are appended to ``read``."""
    top = _Fields(data, "")
    name = top.text("name", default_name, empty=False)
    if "graph" in data:
        return _stream_1x(top, name, base, read)
    return _stream_2x(top, name, base, read)


def _stream_1x(top: _Fields, name: str, base: Path | Traversable, read: list[str]) -> Accelerator:
    entries = top._get("cores")
    if not isinstance(entries, list) or not entries:
        raise EenasError("cores: expected a list of core files")
    files = [_load_core(base, entry, f"cores[{i}]", read) for i, entry in enumerate(entries)]
    graph = top.section("graph")
    if graph.text("type") != "2d_mesh":
        raise EenasError(f"graph.type: {graph.data['type']!r} is not modelled (only 2d_mesh)")
    rows, cols, bandwidth = graph.integer("nb_rows"), graph.integer("nb_cols"), graph.integer("bandwidth")
    energy = graph.number("unit_energy_cost", positive=False)
    roles = {}
    for role in ("pooling_core_id", "simd_core_id", "offchip_core_id"):
        value = graph._get(role)
        if not (isinstance(value, int) and not isinstance(value, bool) and 0 <= value < len(files)) \
                or value in roles.values():
            raise EenasError(f"graph.{role}: expected a distinct index into cores (0..{len(files) - 1})")
        roles[role] = value
    graph.done()
    top.done()
    compute = [i for i in range(len(files)) if i not in roles.values()]
    if len(compute) != rows * cols:
        raise EenasError(f"graph.nb_rows: a {rows} x {cols} mesh holds {rows * cols} compute cores, the file has "
                         f"{len(compute)}")
    cores = tuple(ComputeCore(f"{files[i].name}{k}", pos, files[i].compute())
                  for k, (i, pos) in enumerate(zip(compute, _mesh_positions(len(compute), cols))))
    return _accelerator(name, cores, Mesh(bandwidth, energy), files[roles["pooling_core_id"]].pooling(bandwidth),
                        files[roles["simd_core_id"]].simd(), files[roles["offchip_core_id"]].offchip())


def _stream_2x(top: _Fields, name: str, base: Path | Traversable, read: list[str]) -> Accelerator:
    table = top._get("cores")
    if not isinstance(table, dict) or sorted(table) != list(range(len(table))):
        raise EenasError("cores: expected core files by id 0, 1, 2, ...")
    files = {i: _load_core(base, entry, f"cores[{i}]", read) for i, entry in table.items()}
    offchip = top._get("offchip_core_id")
    if offchip not in files:
        raise EenasError("offchip_core_id: expected the id of a core in cores")
    default_energy = top.number("unit_energy_cost", positive=False) if "unit_energy_cost" in top.data else 0.0
    sharing = top._get("core_memory_sharing", [])
    if sharing:
        raise EenasError("core_memory_sharing: cores sharing memory are not modelled")
    pooling = [i for i, f in files.items() if i != offchip and {"FX", "FY"} <= {d[0] for d in dict(f.mappings).get(
        "default", ()) if d}]
    simd = [i for i, f in files.items() if i != offchip and i not in pooling and len(f.sizes) == 1]
    if len(pooling) != 1 or len(simd) != 1:
        raise EenasError("cores: expected one pooling core (dataflows unrolling FY and FX) and one SIMD core (a "
                         f"one-dimensional array); found {len(pooling)} and {len(simd)}")
    compute = [i for i in files if i not in (offchip, pooling[0], simd[0])]
    links: dict[str, tuple[float, str]] = {}
    edges = set()
    for k, conn in enumerate(top.items("core_connectivity") if top.data.get("core_connectivity") else []):
        where = f"core_connectivity[{k}]"
        kind = conn.choice("type", ("link", "bus"), "link")
        ids = conn._get("cores")
        if not (isinstance(ids, list) and len(ids) >= 2 and all(i in files for i in ids)):
            raise EenasError(f"{where}.cores: expected at least two core ids of cores")
        bandwidth = conn.integer("bandwidth")
        energy = conn.number("unit_energy_cost", positive=False) if "unit_energy_cost" in conn.data else default_energy
        conn.done()
        inner = [i for i in ids if i in compute]
        if offchip in ids or simd[0] in ids:
            continue  # the off-chip core's one port bounds DRAM traffic; the SIMD core's links are free (as eenas's)
        if pooling[0] in ids:
            _link_value(links, "pooling", bandwidth, f"{where}.bandwidth")
            continue
        if kind == "bus" and len(inner) > 2:
            raise EenasError(f"{where}.type: a bus between compute cores is not modelled (give links)")
        _link_value(links, "mesh", bandwidth, f"{where}.bandwidth")
        _link_value(links, "energy", energy, f"{where}.unit_energy_cost")
        edges.add(frozenset(compute.index(i) for i in inner))
    positions = _positions_2x(top, compute, edges)
    top.done()
    mesh_bw = int(links.get("mesh", links.get("pooling", (32, "")))[0])
    cores = tuple(ComputeCore(f"{files[i].name}{k}", pos, files[i].compute())
                  for k, (i, pos) in enumerate(zip(compute, positions)))
    return _accelerator(name, cores, Mesh(mesh_bw, links.get("energy", (default_energy, ""))[0]),
                        files[pooling[0]].pooling(int(links.get("pooling", (mesh_bw, ""))[0])),
                        files[simd[0]].simd(), files[offchip].offchip())


def _positions_2x(top: _Fields, compute: list[int], edges: set[frozenset[int]]) -> list[tuple[int, int]]:
    """Mesh positions: ``core_coordinates``, else the row-major grid whose neighbours are exactly the links."""
    if "core_coordinates" in top.data:
        coords = top._get("core_coordinates")
        if not isinstance(coords, dict) or any(i not in coords for i in compute):
            raise EenasError("core_coordinates: expected [x, y] for every compute core")
        return [tuple(coords[i]) for i in compute]  # type: ignore[misc]
    n = len(compute)
    for cols in range(1, n + 1):
        if n % cols:
            continue
        pos = _mesh_positions(n, cols)
        grid = {frozenset((a, b)) for a in range(n) for b in range(a + 1, n)
                if abs(pos[a][0] - pos[b][0]) + abs(pos[a][1] - pos[b][1]) == 1}
        if grid == edges:
            return pos
    raise EenasError("core_connectivity: the links between compute cores do not form a 2-D mesh "
                     "(give core_coordinates)")


def _accelerator(name: str, cores: tuple[ComputeCore, ...], mesh: Mesh, pooling: PoolingCore, simd: SimdCore,
                 dram: Memory) -> Accelerator:
    acc = Accelerator(name, "", cores, mesh, pooling, simd, dram)
    acc.routes  # noqa: B018 - fail now, not mid-search, on a disconnected mesh
    return acc
