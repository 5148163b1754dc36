"""Layer-by-layer list scheduling on a multi-core accelerator, the way Stream schedules.

Layers are scheduled one at a time in graph order.  A layer starts when its inputs have
arrived on its core, its parameters are there and the core is free.  Resources keep a
busy-until time, so transfers queue on the mesh links and on the one shared DRAM port:

* Parameters (weights, biases, scales) start in DRAM.  A layer whose parameters fit the
  core's weight SRAM has them fetched over the DRAM port before it starts (DRAM read + SRAM
  write); the fetch may run ahead while the core still works on its previous layer if both
  layers' parameters fit together, else it waits for that layer to end.  Larger kernels
  stream from DRAM while the layer runs (:func:`~eenas.hardware.layer_cost.conv_cost` with
  DRAM), holding the port.  With resident weights (``Accelerator.weights``), a layer whose
  parameters fit what earlier layers left free of its core's weight SRAM, less a reserve
  (:func:`resident_reserve`), keeps them there across inferences: it fetches nothing, and
  the space stays taken.
* Activations stay in the memory of the location that produced them (a compute core's act
  SRAM, the pooling core's SRAM, DRAM for the image), and every copy is read from the
  memory it is in.  A consumer on another core receives them over the XY route of the mesh
  (every link on the route is held for ``bits / link bandwidth`` cycles); pooling layers
  receive theirs over the pooling core's link of the sending core.  A transfer costs the
  sender's read and the receiver's write.
* Residual additions read both operands from the memories of their earliest copies (the
  cheaper read on a tie) and write the sum beside the first operand (the projection's);
  the SIMD core's links are free.
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
from eenas.hardware.core import Core
from eenas.hardware.layer_cost import LayerCost, add_cost, channel_tile_bits, conv_cost, pool_cost
from eenas.hardware.layers import AddLayer, ConvLayer
from eenas.hardware.workload import Node

DRAM, POOL, SIMD = -1, -2, -3  # locations besides the compute cores 0..n-1


def location_name(acc: Accelerator, loc: int) -> str:
    return {DRAM: "dram", POOL: "pool", SIMD: "simd"}.get(loc) or acc.cores[loc].name


def memory_at(acc: Accelerator, loc: int) -> Memory:
    """The memory a tensor copy at ``loc`` lives in (the SIMD core has none: it never holds one)."""
    if loc == DRAM:
        return acc.dram
    if loc == POOL:
        return acc.pooling_core.sram
    assert 0 <= loc < len(acc.cores), f"location {loc} holds no tensor"
    return acc.cores[loc].design.act_sram


@dataclass(frozen=True, slots=True)
class Tensor:
    """An activation and where copies of it are ready: ((location, cycle), ...)."""

    name: str
    bits: int
    copies: tuple[tuple[int, int], ...]


def _since(times: tuple[int, ...], t: int) -> tuple[int, ...]:
    """Busy-until times relative to ``t`` (0: free by then)."""
    return tuple([x - t if x > t else 0 for x in times])


@dataclass(frozen=True, slots=True)
class State:
    """Busy-until times of every resource between two parts of a schedule, in cycles."""

    barrier: int  # nothing starts earlier (an exit's decision)
    core_free: tuple[int, ...]
    core_start: tuple[int, ...]  # start of each core's last layer
    core_wbits: tuple[int, ...]  # weight SRAM bits that layer holds besides the resident ones
    resident: tuple[int, ...]  # weight SRAM bits of each core held by resident parameters
    dram_free: int
    link_free: tuple[int, ...]  # mesh links, then each core's link to the pooling core
    pool_free: int
    simd_free: int
    tensor: Tensor  # the activation the next part reads

    @classmethod
    def initial(cls, acc: Accelerator, tensor: Tensor) -> State:
        n = len(acc.cores)
        zeros = (0,) * n
        return cls(0, zeros, zeros, zeros, zeros, 0, (0,) * (len(acc.mesh_links) + n), 0, 0, tensor)

    def normalized(self) -> tuple[int, State]:
        """``(t, state)``: the state with times relative to ``t``, the earliest a later event can start.

        Every later event starts after the barrier and either uses the DRAM port (weights) or
        reads the carried activation (transfers, pooling, additions), so it starts no earlier
        than ``t = max(barrier, min(dram_free, first copy ready))``.  Times before ``t`` are
        therefore ``t`` as far as the rest of the schedule is concerned, and idle cores forget
        their weights.  Equal normalized states schedule identically, which is what lets the
        network cache parts of schedules.
        """
        tensor = self.tensor
        t = max(self.barrier, min(self.dram_free, min([r for _, r in tensor.copies])))
        return t, State(
            0,
            _since(self.core_free, t),
            _since(self.core_start, t),
            tuple([w if f > t else 0 for w, f in zip(self.core_wbits, self.core_free)]),
            self.resident,
            self.dram_free - t if self.dram_free > t else 0,
            _since(self.link_free, t),
            self.pool_free - t if self.pool_free > t else 0,
            self.simd_free - t if self.simd_free > t else 0,
            Tensor(tensor.name, tensor.bits, tuple([(loc, r - t if r > t else 0) for loc, r in tensor.copies])),
        )

    def shifted(self, dt: int) -> State:
        if dt == 0:
            return self
        t = self.tensor
        return State(
            self.barrier + dt, tuple([x + dt for x in self.core_free]), tuple([x + dt for x in self.core_start]),
            self.core_wbits, self.resident, self.dram_free + dt, tuple([x + dt for x in self.link_free]),
            self.pool_free + dt, self.simd_free + dt,
            Tensor(t.name, t.bits, tuple([(loc, r + dt) for loc, r in t.copies])),
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
    params: str = ""  # for a convolution's "compute" event: "resident", "fetched" or "streamed"


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
    streams: bool = False  # its parameters stream from DRAM while it runs
    resident: bool = False  # its parameters stay in the weight SRAM across inferences

    @property
    def energy(self) -> float:
        moved = (self.transfer[2] if self.transfer else 0.0) + (self.fetch[2] if self.fetch else 0.0)
        return self.cost.energy_pj + moved + self.traffic

    @property
    def params(self) -> str:
        """Where a convolution's parameters come from ("" for pooling and additions)."""
        if not isinstance(self.node.layer, ConvLayer):
            return ""
        return "resident" if self.resident else "streamed" if self.streams else "fetched"


@functools.lru_cache(maxsize=1 << 16)
def route(acc: Accelerator, src: int, dst: int, bits: int) -> tuple[tuple[int, ...], int, float]:
    """Links held, cycles and energy (both ends) of moving ``bits`` from ``src`` to ``dst``.

    DRAM transfers use the DRAM port (no link); the pooling core has its own link to every
    compute core; compute cores talk over the mesh.
    """
    energy = memory_at(acc, src).read_energy(bits) + memory_at(acc, dst).write_energy(bits)
    if DRAM in (src, dst):
        return (), math.ceil(bits / acc.dram.read_bw_bits), energy
    if POOL in (src, dst):
        core = dst if src == POOL else src
        return (len(acc.mesh_links) + core,), math.ceil(bits / acc.pooling_core.link_bw_bits), energy
    links = acc.routes[src, dst]
    energy += acc.mesh.link_energy_pj_per_bit * bits * len(links)
    return links, math.ceil(bits / acc.mesh.link_bw_bits), energy


def resident_reserve(acc: Accelerator, nodes: Iterable[Node]) -> tuple[int, ...]:
    """Weight-SRAM bits per core that resident parameters leave free: one output-channel tile of
    the largest kernel, so that every layer that is not resident still crosses the DRAM port once
    (fetched whole, or streamed a tile at a time) and resident weights never cost more energy."""
    convs = [n for n in nodes if isinstance(n.layer, ConvLayer)]
    return tuple(
        max((channel_tile_bits(n.layer, c.design, n.weight_bits) for n in convs), default=0)  # type: ignore[arg-type]
        for c in acc.cores
    )


@functools.lru_cache(maxsize=1 << 12)
def add_traffic(acc: Accelerator, first: int, second: int, bits: int) -> float:
    """An addition's operands read where they are, and its sum written beside the first."""
    home = memory_at(acc, first)
    return home.read_energy(bits) + memory_at(acc, second).read_energy(bits) + home.write_energy(bits)


@functools.lru_cache(maxsize=1 << 16)
def conv_profile(node: Node, design: CoreDesign | Core, dram: Memory, capacity: int) -> tuple[LayerCost, int, float]:
    """A convolution's cost with ``capacity`` weight-SRAM bits free, and its parameter fetch (cycles, pJ)."""
    bits = node.param_bits
    cost = conv_cost(node.layer, design, node.weight_bits, node.act_bits, node.input_bits, dram,  # type: ignore[arg-type]
                     capacity)
    return cost, dram.read_cycles(bits), dram.read_energy(bits) + design.weight_sram.write_energy(bits)


class Simulator:
    """Schedules nodes one by one from a :class:`State`; see the module docstring."""

    def __init__(self, acc: Accelerator, state: State, reserve: tuple[int, ...], detailed: bool = False) -> None:
        self.acc, self.reserve = acc, reserve
        self.resident_mode = acc.weights == "resident"
        self.barrier = state.barrier
        self.core_free, self.core_start = list(state.core_free), list(state.core_start)
        self.core_wbits, self.resident = list(state.core_wbits), list(state.resident)
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
                step = self._conv_step(node, core)
            else:
                n = len(self.acc.cores)
                candidates = [c for c in range(n) if c not in avoid] or range(n)
                step = min((self._conv_step(node, c) for c in candidates), key=lambda s: (s.end, s.energy, s.location))
        elif isinstance(layer, AddLayer):
            step = self._add_step(node)
        else:
            step = self._pool_step(node)
        self._commit(step)
        return step.location

    def conv_option(self, node: Node, core: int) -> tuple[LayerCost, float]:
        """What convolution ``node`` would cost on ``core`` from the current state, without scheduling it: its
        own cost, and the energy the schedule would charge it (its own, moving its input, fetching its parameters)."""
        step = self._conv_step(node, core)
        return step.cost, step.energy

    def state(self, output: str) -> State:
        bits, copies = self.tensors[output]
        tensor = Tensor(output, bits, tuple(sorted(copies.items())))
        return State(
            self.barrier, tuple(self.core_free), tuple(self.core_start), tuple(self.core_wbits), tuple(self.resident),
            self.dram_free, tuple(self.link_free), self.pool_free, self.simd_free, tensor,
        )

    # -- placing one layer -------------------------------------------------------------

    def _arrival(self, name: str, dst: int) -> tuple[int, tuple[int, int, float, tuple[int, ...]] | None, int]:
        """When tensor ``name`` can be at ``dst`` (moved from its best copy), the move, and the DRAM port."""
        bits, copies = self.tensors[name]
        ready = copies.get(dst)
        if ready is not None:
            return ready, None, self.dram_free
        best, best_src, link_free = None, None, self.link_free
        for src, ready in copies.items():
            links, cycles, energy = route(self.acc, src, dst, bits)
            start = max(ready, self.barrier, self.dram_free if src == DRAM else 0)
            for i in links:
                start = max(start, link_free[i])
            if best is None or start + cycles < best[1] or (start + cycles == best[1] and energy < best[2]):
                best, best_src = (start, start + cycles, energy, links), src
        assert best is not None
        return best[1], best, best[1] if best_src == DRAM else self.dram_free

    def _conv_step(self, node: Node, c: int) -> _Step:
        acc, bits, barrier = self.acc, node.param_bits, self.barrier
        free = acc.weight_sram_bits[c] - self.resident[c]
        cost, fetch_cycles, fetch_energy = conv_profile(node, acc.designs[c], acc.dram, free)
        ready, transfer, dram_free = self._arrival(node.inputs[0], c)
        fetch = None
        resident = self.resident_mode and bits <= free - self.reserve[c]
        streams = not resident and bits > free  # then conv_cost streams them while the layer runs
        if not (resident or streams):
            fits_beside = self.core_wbits[c] + bits <= free
            fetch_start = max(dram_free, self.core_start[c] if fits_beside else self.core_free[c], barrier)
            dram_free = fetch_start + fetch_cycles
            fetch = (fetch_start, dram_free, fetch_energy)
        runs_on_dram = cost.dram_bits > 0  # streaming parameters or spilling activations: the port is held
        if fetch or runs_on_dram:
            ready = max(ready, dram_free)
        start = max(ready, self.core_free[c], barrier)
        end = start + cost.latency_cycles
        return _Step(node, c, cost, start, end, end if runs_on_dram else dram_free, c, transfer, fetch, 0.0, streams,
                     resident)

    def _pool_step(self, node: Node) -> _Step:
        cost = pool_cost(node.layer, self.acc.pooling_core, node.input_bits, node.act_bits)  # type: ignore[arg-type]
        ready, transfer, dram_free = self._arrival(node.inputs[0], POOL)
        start = max(ready, self.pool_free, self.barrier)
        return _Step(node, POOL, cost, start, start + cost.latency_cycles, dram_free, POOL, transfer)

    def _add_step(self, node: Node) -> _Step:
        """The SIMD core reads both operands where they are and writes the sum beside the first.

        Each operand is read from the memory of its earliest copy (the cheaper read on a
        tie): a copy may sit on a compute core, or on the pooling core after an exit head
        pooled it.
        """
        cost = add_cost(node.layer, self.acc.simd_core)  # type: ignore[arg-type]
        bits, acc = node.output_bits, self.acc

        def earliest(name: str) -> tuple[int, int]:
            copies = self.tensors[name][1]
            if len(copies) == 1:
                return next(iter(copies.items()))
            return min(copies.items(), key=lambda kv: (kv[1], memory_at(acc, kv[0]).read_energy(bits), kv[0]))

        (home, first), (other, second) = (earliest(name) for name in node.inputs)
        start = max(first, second, self.simd_free, self.barrier)
        end = start + cost.latency_cycles
        return _Step(node, SIMD, cost, start, end, self.dram_free, home, traffic=add_traffic(acc, home, other, bits))

    def _record(
        self, node: Node, kind: str, loc: int, start: int, end: int, energy: float, cost: LayerCost | None = None,
        params: str = "",
    ) -> None:
        self.starts.append(start)
        self.ends.append(end)
        self.energies.append(energy)
        if self.detailed:
            self.events.append(Event(node, kind, loc, start, end, energy, cost, params))

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
        self._record(node, "compute", loc, step.start, step.end, step.cost.energy_pj, step.cost,
                     step.params if self.detailed else "")
        self.macs += step.cost.macs
        self.dram_free = step.dram_free
        if loc == POOL:
            self.pool_free = step.end
        elif loc == SIMD:
            self.simd_free = step.end
        else:
            self.core_free[loc], self.core_start[loc] = step.end, step.start
            # What its parameters hold of the weight SRAM's free part while it runs.
            if step.resident:
                self.resident[loc] += node.param_bits
                self.core_wbits[loc] = 0
            elif step.streams:
                self.core_wbits[loc] = self.acc.weight_sram_bits[loc] - self.resident[loc]
            else:
                self.core_wbits[loc] = node.param_bits
        self.tensors[node.name] = (node.output_bits, {step.home: step.end})
