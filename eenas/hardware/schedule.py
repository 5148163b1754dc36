"""Layer-by-layer list scheduling on a multi-core accelerator, the way Stream schedules.

Layers are scheduled one at a time in graph order.  A layer starts when its inputs have
arrived on its core, its weights are there and the core is free.  Resources keep a
busy-until time, so transfers queue on the mesh links and on the one shared DRAM port:

* Weights start in DRAM.  A layer whose weights fit the core's weight SRAM has them
  fetched over the DRAM port before it starts (DRAM read + SRAM write); the fetch may run
  ahead while the core still works on its previous layer if both layers' weights fit
  together, else it waits for that layer to end.  Larger kernels stream from DRAM while
  the layer runs (:func:`~eenas.hardware.layer_cost.conv_cost` with DRAM), holding the port.
* Activations stay in the act SRAM of the core that produced them.  A consumer on another
  core receives them over the XY route of the mesh (every link on the route is held for
  ``bits / link bandwidth`` cycles); pooling layers receive theirs over the pooling core's
  link of the sending core.  A transfer costs the sender's read and the receiver's write.
* Residual additions read both operands where they are and write the sum to the core of
  the first operand (the projection's); the SIMD core's links are free.
* Convolutions without a given core go to the core that finishes them first (ties: less
  energy, then the lowest index): greedy earliest-finish-time list scheduling.

A :class:`State` captures everything a later part of the schedule depends on, so parts
(backbone segments, exit heads) can be simulated separately and cached.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import NamedTuple

from eenas.hardware.accelerator import Accelerator, CoreDesign, Memory
from eenas.hardware.layer_cost import LayerCost, add_cost, conv_cost, pool_cost
from eenas.hardware.layers import AddLayer, ConvLayer
from eenas.hardware.workload import Node

DRAM, POOL, SIMD = -1, -2, -3  # locations besides the compute cores 0..n-1


def location_name(acc: Accelerator, loc: int) -> str:
    return {DRAM: "dram", POOL: "pool", SIMD: "simd"}.get(loc) or acc.cores[loc].name


@dataclass(frozen=True, slots=True)
class Tensor:
    """An activation and where copies of it are ready: ((location, cycle), ...)."""

    name: str
    bits: int
    copies: tuple[tuple[int, int], ...]


@dataclass(frozen=True, slots=True)
class State:
    """Busy-until times of every resource between two parts of a schedule, in cycles."""

    barrier: int  # nothing starts earlier (an exit's decision)
    core_free: tuple[int, ...]
    core_start: tuple[int, ...]  # start of each core's last layer
    core_wbits: tuple[int, ...]  # weight SRAM bits that layer holds
    dram_free: int
    link_free: tuple[int, ...]  # mesh links, then each core's link to the pooling core
    pool_free: int
    simd_free: int
    tensor: Tensor  # the activation the next part reads

    @classmethod
    def initial(cls, acc: Accelerator, tensor: Tensor) -> State:
        n = len(acc.cores)
        zeros = (0,) * n
        return cls(0, zeros, zeros, zeros, 0, (0,) * (len(acc.mesh_links) + n), 0, 0, tensor)

    def normalized(self) -> tuple[int, State]:
        """``(t, state)``: the state with times relative to ``t``, the earliest a later event can start.

        Every later event starts after the barrier and either uses the DRAM port (weights) or
        reads the carried activation (transfers, pooling, additions), so it starts no earlier
        than ``t = max(barrier, min(dram_free, first copy ready))``.  Times before ``t`` are
        therefore ``t`` as far as the rest of the schedule is concerned, and idle cores forget
        their weights.  Equal normalized states schedule identically, which is what lets the
        network cache parts of schedules.
        """
        t = max(self.barrier, min(self.dram_free, min(r for _, r in self.tensor.copies)))
        tensor = self.tensor
        return t, State(
            0,
            tuple(x - t if x > t else 0 for x in self.core_free),
            tuple(x - t if x > t else 0 for x in self.core_start),
            tuple(w if f > t else 0 for w, f in zip(self.core_wbits, self.core_free)),
            self.dram_free - t if self.dram_free > t else 0,
            tuple(x - t if x > t else 0 for x in self.link_free),
            self.pool_free - t if self.pool_free > t else 0,
            self.simd_free - t if self.simd_free > t else 0,
            Tensor(tensor.name, tensor.bits, tuple((loc, r - t if r > t else 0) for loc, r in tensor.copies)),
        )

    def shifted(self, dt: int) -> State:
        if dt == 0:
            return self
        t = self.tensor
        return State(
            self.barrier + dt, tuple(x + dt for x in self.core_free), tuple(x + dt for x in self.core_start),
            self.core_wbits, self.dram_free + dt, tuple(x + dt for x in self.link_free), self.pool_free + dt,
            self.simd_free + dt, Tensor(t.name, t.bits, tuple((loc, r + dt) for loc, r in t.copies)),
        )

    def with_barrier(self, t: int) -> State:
        return replace(self, barrier=max(t, self.barrier))


class Event(NamedTuple):
    """Something that takes time on a resource: a layer, a weight fetch or a transfer."""

    node: Node
    kind: str  # "compute", "weights" or "transfer"
    location: int  # where the layer runs (a core, POOL or SIMD)
    start: int
    end: int
    energy_pj: float
    cost: LayerCost | None  # the layer's own cost, for "compute" events


@dataclass(slots=True)
class _Step:
    """A layer placed on a location, before it is committed to the schedule."""

    node: Node
    location: int
    cost: LayerCost
    start: int
    end: int
    dram_free: int
    home: int  # where the output lands
    transfer: tuple[int, int, float, tuple[int, ...]] | None = None  # input moved: start, end, pJ, links
    fetch: tuple[int, int, float] | None = None  # weights fetched: start, end, pJ
    traffic: float = 0.0  # an addition's operand reads and result write

    @property
    def energy(self) -> float:
        moved = (self.transfer[2] if self.transfer else 0.0) + (self.fetch[2] if self.fetch else 0.0)
        return self.cost.energy_pj + moved + self.traffic


@functools.lru_cache(maxsize=1 << 16)
def route(acc: Accelerator, src: int, dst: int, bits: int) -> tuple[tuple[int, ...], int, float]:
    """Links held, cycles and energy (both ends) of moving ``bits`` from ``src`` to ``dst``."""
    n_mesh = len(acc.mesh_links)
    if src == DRAM:
        dram, sram = acc.dram, acc.cores[dst].design.act_sram
        return (), math.ceil(bits / dram.read_bw_bits), dram.read_energy(bits) + sram.write_energy(bits)
    if src == POOL:
        pool, sram = acc.pooling_core, acc.cores[dst].design.act_sram
        energy = pool.sram.read_energy(bits) + sram.write_energy(bits)
        return (n_mesh + dst,), math.ceil(bits / pool.link_bw_bits), energy
    read = acc.cores[src].design.act_sram.read_energy(bits)
    if dst == POOL:
        pool = acc.pooling_core
        return (n_mesh + src,), math.ceil(bits / pool.link_bw_bits), read + pool.sram.write_energy(bits)
    links = acc.routes[src, dst]
    energy = read + acc.cores[dst].design.act_sram.write_energy(bits)
    energy += acc.mesh.link_energy_pj_per_bit * bits * len(links)
    return links, math.ceil(bits / acc.mesh.link_bw_bits), energy


@functools.lru_cache(maxsize=1 << 16)
def conv_profile(node: Node, design: CoreDesign, dram: Memory) -> tuple[LayerCost, int, float, int]:
    """A convolution's cost with DRAM streaming, its weight fetch (cycles, pJ) and the weight SRAM size."""
    weights = node.weight_total_bits
    cost = conv_cost(node.layer, design, node.weight_bits, node.act_bits, dram)  # type: ignore[arg-type]
    energy = dram.read_energy(weights) + design.weight_sram.write_energy(weights)
    return cost, dram.read_cycles(weights), energy, design.weight_sram.size_bits


class Simulator:
    """Schedules nodes one by one from a :class:`State`; see the module docstring."""

    def __init__(self, acc: Accelerator, state: State, detailed: bool = False) -> None:
        self.acc = acc
        self.barrier = state.barrier
        self.core_free, self.core_start = list(state.core_free), list(state.core_start)
        self.core_wbits = list(state.core_wbits)
        self.dram_free, self.link_free = state.dram_free, list(state.link_free)
        self.pool_free, self.simd_free = state.pool_free, state.simd_free
        carried = state.tensor
        self.tensors: dict[str, tuple[int, dict[int, int]]] = {carried.name: (carried.bits, dict(carried.copies))}
        # Every event's start, end and energy; the Event objects only when detailed.
        self.starts: list[int] = []
        self.ends: list[int] = []
        self.energies: list[float] = []
        self.macs = 0
        self.detailed = detailed
        self.events: list[Event] = []

    def run(self, node: Node, core: int | None = None, avoid: Iterable[int] = ()) -> int:
        """Schedule ``node``; a convolution goes to ``core`` or, if None, the earliest-finishing core."""
        layer = node.layer
        if isinstance(layer, ConvLayer):
            if core is not None:
                candidates: Iterable[int] = (core,)
            else:
                candidates = [c for c in range(len(self.acc.cores)) if c not in avoid] or range(len(self.acc.cores))
            steps = [self._conv_step(node, c) for c in candidates]
            step = steps[0] if len(steps) == 1 else min(steps, key=lambda s: (s.end, s.energy, s.location))
        elif isinstance(layer, AddLayer):
            step = self._add_step(node)
        else:
            step = self._pool_step(node)
        self._commit(step)
        return step.location

    def state(self, output: str) -> State:
        bits, copies = self.tensors[output]
        tensor = Tensor(output, bits, tuple(sorted(copies.items())))
        return State(
            self.barrier, tuple(self.core_free), tuple(self.core_start), tuple(self.core_wbits), self.dram_free,
            tuple(self.link_free), self.pool_free, self.simd_free, tensor,
        )

    # -- placing one layer -------------------------------------------------------------

    def _arrival(self, name: str, dst: int) -> tuple[int, tuple[int, int, float, tuple[int, ...]] | None, int]:
        """When tensor ``name`` can be at ``dst`` (moved from its best copy), the move, and the DRAM port."""
        bits, copies = self.tensors[name]
        ready = copies.get(dst)
        if ready is not None:
            return ready, None, self.dram_free
        best, best_src = None, None
        for src, ready in copies.items():
            links, cycles, energy = route(self.acc, src, dst, bits)
            start = max(ready, self.barrier, *(self.link_free[i] for i in links), self.dram_free if src == DRAM else 0)
            if best is None or (start + cycles, energy) < (best[1], best[2]):
                best, best_src = (start, start + cycles, energy, links), src
        assert best is not None
        return best[1], best, best[1] if best_src == DRAM else self.dram_free

    def _conv_step(self, node: Node, c: int) -> _Step:
        cost, fetch_cycles, fetch_energy, wsram_bits = conv_profile(node, self.acc.cores[c].design, self.acc.dram)
        ready, transfer, dram_free = self._arrival(node.inputs[0], c)
        fetch = None
        streams = cost.dram_bits > 0
        if streams:
            ready = max(ready, dram_free)
        else:
            fits_beside = self.core_wbits[c] + node.weight_total_bits <= wsram_bits
            fetch_start = max(dram_free, self.core_start[c] if fits_beside else self.core_free[c], self.barrier)
            dram_free = fetch_start + fetch_cycles
            fetch = (fetch_start, dram_free, fetch_energy)
            ready = max(ready, dram_free)
        start = max(ready, self.core_free[c], self.barrier)
        end = start + cost.latency_cycles
        return _Step(node, c, cost, start, end, end if streams else dram_free, c, transfer, fetch)

    def _pool_step(self, node: Node) -> _Step:
        cost = pool_cost(node.layer, self.acc.pooling_core, node.act_bits)  # type: ignore[arg-type]
        ready, transfer, dram_free = self._arrival(node.inputs[0], POOL)
        start = max(ready, self.pool_free, self.barrier)
        return _Step(node, POOL, cost, start, start + cost.latency_cycles, dram_free, POOL, transfer)

    def _add_step(self, node: Node) -> _Step:
        """The SIMD core reads both operands where they are and writes the sum beside the first."""
        cost = add_cost(node.layer, self.acc.simd_core)  # type: ignore[arg-type]
        bits, cores = node.output_bits, self.acc.cores
        sources = [min(self.tensors[name][1].items(), key=lambda kv: kv[1]) for name in node.inputs]
        traffic = sum(cores[loc].design.act_sram.read_energy(bits) for loc, _ in sources)
        traffic += cores[sources[0][0]].design.act_sram.write_energy(bits)
        start = max(*(ready for _, ready in sources), self.simd_free, self.barrier)
        end = start + cost.latency_cycles
        return _Step(node, SIMD, cost, start, end, self.dram_free, sources[0][0], traffic=traffic)

    def _record(
        self, node: Node, kind: str, loc: int, start: int, end: int, energy: float, cost: LayerCost | None = None
    ) -> None:
        self.starts.append(start)
        self.ends.append(end)
        self.energies.append(energy)
        if self.detailed:
            self.events.append(Event(node, kind, loc, start, end, energy, cost))

    def _commit(self, step: _Step) -> None:
        node, loc = step.node, step.location
        if step.transfer is not None:
            start, end, energy, links = step.transfer
            for i in links:
                self.link_free[i] = end
            self.tensors[node.inputs[0]][1][loc] = end
            self._record(node, "transfer", loc, start, end, energy)
        if step.fetch is not None:
            self._record(node, "weights", loc, *step.fetch)
        if step.traffic:
            self._record(node, "transfer", loc, step.start, step.end, step.traffic)
        self._record(node, "compute", loc, step.start, step.end, step.cost.energy_pj, step.cost)
        self.macs += step.cost.macs
        self.dram_free = step.dram_free
        if loc == POOL:
            self.pool_free = step.end
        elif loc == SIMD:
            self.simd_free = step.end
        else:
            self.core_free[loc], self.core_start[loc] = step.end, step.start
            sram_bits = self.acc.cores[loc].design.weight_sram.size_bits
            self.core_wbits[loc] = sram_bits if step.cost.dram_bits else node.weight_total_bits
        self.tensors[node.name] = (node.output_bits, {step.home: step.end})
