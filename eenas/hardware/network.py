"""Early-exit networks on a multi-core accelerator: per-exit latency, energy, MACs and ET.

Execution (docs/hardware.md has the details):

* Stage i is the backbone blocks after exit i-1 up to exit i, plus exit head i; the stem
  belongs to stage 1 and the last stage ends with the last conv, pooling and classifier.
* Without overlap an exit is a barrier: the next stage (its weight fetches included)
  starts when the head's decision is known, so a sample leaving at exit i pays exactly
  for stages 1..i.  With ``ExitConfig.overlap`` the next stage starts speculatively on
  other cores while the head runs: continuing samples gain latency, and the speculative
  work done before the decision is counted, prorated, in the exit's energy as waste.
* A network that ends at its last exit (``ExitConfig.final``) stops after that exit's head:
  the later blocks and the classifier neither run nor fetch or hold weights, so its MACs,
  energy and weight-SRAM use count only what runs.  Its ET-ratio baseline is still the
  whole static backbone.
* The backbone's core mapping is chosen once per (hardware, weight mode, width, precision)
  on the static network (:mod:`~eenas.hardware.allocation`: greedy earliest finish, or the
  better of that and a genetic search) and reused for every exit configuration; head
  convolutions go to ``ExitConfig.core`` or the earliest-finishing core.  The report
  (:func:`network_cost`) can instead search it for one network's average ET at given exit
  ratios (objective ``average``).

Speed: a schedule is cut into parts (a backbone segment between two mount points, one
head), each simulated from a normalized :class:`~eenas.hardware.schedule.State` and cached
by (part, state).  After a barrier the state only depends on where the activation is,
so a candidate without overlap is a handful of cache look-ups.
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import Protocol

import numpy as np

from eenas.errors import EenasError
from eenas.hardware.accelerator import Accelerator, check_choice
from eenas.hardware.allocation import (
    DEFAULT_ALLOCATION,
    DEFAULT_OBJECTIVE,
    OBJECTIVES,
    Allocation,
    allocate,
    homogeneous,
    search,
    simulate,
)
from eenas.hardware.explain import Explanation, explain
from eenas.hardware.layer_cost import add_cost, conv_cost, pool_cost
from eenas.hardware.layers import ConvLayer
from eenas.hardware.loading import clear_loaded, load_accelerator
from eenas.hardware.schedule import (
    DRAM,
    Event,
    Simulator,
    State,
    Tensor,
    add_traffic,
    conv_profile,
    location_name,
    resident_reserve,
    route,
)
from eenas.hardware.workload import INPUT, Block, GraphWorkload, Node, exit_head, image_bits, network_blocks
from eenas.models.config import BackboneConfig
from eenas.models.registry import get_backbone
from eenas.models.spec import INPUT_CHANNELS, INPUT_SIZE
from eenas.precision import Precision

RATIO_TOLERANCE = 1e-6


class ExitLike(Protocol):
    after_block: int
    head: str
    core: int | None
    overlap: bool
    final: bool


class QuantLike(Protocol):
    backbone: Precision
    exits: Precision


class CostedNetwork(Protocol):
    """What the cost model reads of an early-exit network; :class:`eenas.arch.Arch` is one.  The cost model
    never imports the arch file's schema, which imports the hardware to validate its fields."""

    backbone: BackboneConfig
    exits: tuple[ExitLike, ...]
    quant: QuantLike
    hardware: str

    @property
    def num_classes(self) -> int: ...


@dataclass(frozen=True, eq=False)
class _Plan:
    """The backbone of one (hardware, backbone config, precision, classes) and its fixed core mapping."""

    acc: Accelerator
    blocks: tuple[Block, ...]
    num_classes: int
    image: Tensor
    allocation: Allocation
    mapping: Mapping[str, int]
    reserve: tuple[int, ...]  # weight-SRAM bits resident weights leave free, per core
    workload: Mapping[str, object]  # describes blocks and image in the allocation cache's key

    def first_core(self, block: int) -> int:
        return next(self.mapping[n.name] for n in self.blocks[block].nodes if n.name in self.mapping)


@functools.lru_cache(maxsize=64)
def _plan(acc: Accelerator, config: BackboneConfig, precision: Precision, num_classes: int, allocation: str) -> _Plan:
    blocks = network_blocks(config.spec(num_classes), precision)
    image = Tensor(INPUT, INPUT_CHANNELS * INPUT_SIZE**2 * image_bits(precision), ((DRAM, 0),))
    # The allocation cache's key: MobileNetV2's is the width alone, as before there were other backbones.
    family = {} if config.name == "mobilenet_v2" else {"backbone": config.name, **dict(config.option_items())}
    workload = {**family, "width_mult": config.width_mult, "precision": precision.tag, "num_classes": num_classes}
    return _make_plan(acc, blocks, image, num_classes, allocation, workload)


def _make_plan(
    acc: Accelerator, blocks: tuple[Block, ...], image: Tensor, num_classes: int, allocation: str,
    workload: Mapping[str, object],
) -> _Plan:
    alloc = allocate(acc, blocks, image, allocation, workload)
    nodes = [n for b in blocks for n in b.nodes]
    mapping = MappingProxyType(dict(zip([n.name for n in nodes if isinstance(n.layer, ConvLayer)], alloc.cores)))
    return _Plan(acc, blocks, num_classes, image, alloc, mapping, resident_reserve(acc, nodes),
                 MappingProxyType(dict(workload)))


@dataclass(frozen=True, slots=True)
class _Run:
    """One simulated part of a schedule, times relative to its normalized start state.

    Every event's start, end and energy are kept as flat tuples of numbers (cheap for the
    garbage collector to skip in a large cache); the events themselves only when detailed.
    """

    end_state: State  # the carried activation is the part's input (heads) or output (segments)
    done: int  # when the part's last layer ends
    energy_pj: float
    macs: int
    starts: tuple[int, ...]
    ends: tuple[int, ...]
    energies: tuple[float, ...]
    events: tuple[Event, ...]  # empty unless detailed


def _finish(sim: Simulator, last: str, carried: str) -> _Run:
    energies = tuple(sim.energies)
    return _Run(
        sim.state(carried), max(sim.tensors[last][1].values()), sum(energies), sim.macs,
        tuple(sim.starts), tuple(sim.ends), energies, tuple(sim.events),
    )


@functools.lru_cache(maxsize=64)
def _static(plan: _Plan) -> _Run:
    """The backbone without exits: the ET-ratio baseline."""
    return _placed(_segment, plan, 0, len(plan.blocks) - 1, False, state=State.initial(plan.acc, plan.image))[0]


@functools.lru_cache(maxsize=1 << 14)
def _segment(plan: _Plan, first: int, last: int, detailed: bool, state: State) -> _Run:
    """Backbone blocks ``first..last`` from a normalized state, on the plan's mapping."""
    sim = Simulator(plan.acc, state, plan.reserve, detailed)
    for block in plan.blocks[first : last + 1]:
        for node in block.nodes:
            sim.run(node, plan.mapping.get(node.name))
    output = plan.blocks[last].output
    return _finish(sim, output, output)


@dataclass(frozen=True, slots=True)
class _Exit:
    """What the schedule needs of one early exit: its head's layers and where it reads from."""

    block: int  # index into the plan's blocks: the head reads that block's output
    label: int | str  # ExitCost.after_block
    head: str
    nodes: tuple[Node, ...]
    core: int | None = None
    overlap: bool = False
    final: bool = False  # the network ends here


@functools.lru_cache(maxsize=1 << 12)
def _head_nodes(plan: _Plan, block: int, head: str, precision: Precision) -> tuple[Node, ...]:
    """Built once per plan: the nodes key the head and layer-cost caches by identity."""
    return exit_head(plan.blocks[block], head, precision, plan.num_classes)


@functools.lru_cache(maxsize=1 << 14)
def _head(
    plan: _Plan, block: int, nodes: tuple[Node, ...], core: int | None, avoid: tuple[int, ...], detailed: bool,
    state: State,
) -> _Run:
    """A head's ``nodes`` on block ``block``'s output from a normalized state (cores as :meth:`Simulator.run`)."""
    sim = Simulator(plan.acc, state, plan.reserve, detailed)
    for node in nodes:
        sim.run(node, core, avoid)
    return _finish(sim, nodes[-1].name, plan.blocks[block].output)


def _placed(part: Callable[..., _Run], *args: object, state: State) -> tuple[_Run, int]:
    """Run (or look up) a part from ``state``; returns it with the offset of its times."""
    offset, normalized = state.normalized()
    return part(*args, normalized), offset


@dataclass(frozen=True, slots=True)
class ExitCost:
    """One exit (the backbone's classifier is the last); cumulative values include stages 1..i."""

    after_block: int | str | None  # None for the final classifier; an ONNX network's exits name the node they read
    head: str  # "classifier" for the final exit (an ONNX network's: its output's name)
    overlap: bool
    stage_latency_cycles: int
    stage_energy_pj: float
    stage_macs: int
    cum_latency_cycles: int  # when the exit's decision is known
    cum_energy_pj: float  # every stage so far, earlier heads and speculative work included
    cum_macs: int
    wasted_energy_pj: float  # speculative next-stage energy included in cum_energy_pj

    @property
    def cum_et(self) -> float:
        return self.cum_energy_pj * self.cum_latency_cycles


@dataclass(frozen=True, slots=True)
class ArchCost:
    """What the search needs of one arch: cumulative costs per exit (the backbone's classifier last, unless the
    network ends at its last exit) and the static baseline."""

    exits: tuple[ExitCost, ...]
    static_latency_cycles: int
    static_energy_pj: float
    static_macs: int

    @property
    def static_et(self) -> float:
        return self.static_energy_pj * self.static_latency_cycles

    def average_et(self, ratios: Sequence[float]) -> float:
        """Sum of r_i * E_i * T_i: the average of the products, what a sample pays on average."""
        ratios = check_exit_ratios(ratios, len(self.exits))
        return sum(r * e.cum_et for r, e in zip(ratios, self.exits))

    def average_latency(self, ratios: Sequence[float]) -> float:
        """Sum of r_i * T_i: the cycles a sample takes on average."""
        return float(np.dot(check_exit_ratios(ratios, len(self.exits)), [e.cum_latency_cycles for e in self.exits]))

    def average_energy(self, ratios: Sequence[float]) -> float:
        """Sum of r_i * E_i: the pJ a sample costs on average."""
        return float(np.dot(check_exit_ratios(ratios, len(self.exits)), [e.cum_energy_pj for e in self.exits]))

    def product_of_averages_et(self, ratios: Sequence[float]) -> float:
        """(Sum of r_i * E_i) * (sum of r_i * T_i), reported beside :meth:`average_et`."""
        ratios = check_exit_ratios(ratios, len(self.exits))
        energy = sum(r * e.cum_energy_pj for r, e in zip(ratios, self.exits))
        return energy * sum(r * e.cum_latency_cycles for r, e in zip(ratios, self.exits))

    def et_ratio(self, ratios: Sequence[float]) -> float:
        """Average ET over the static backbone's ET (same backbone and precision, no exits)."""
        return self.average_et(ratios) / self.static_et


def check_exit_ratios(ratios: Iterable[float], count: int) -> tuple[float, ...]:
    """``count`` non-negative fractions of samples per exit that sum to 1 (within 1e-6)."""
    values = tuple(float(r) for r in ratios)
    if len(values) != count:
        raise EenasError(
            f"exit ratios: expected {count} values (one per exit, the final one last), got {len(values)}"
        )
    if any(not math.isfinite(r) or r < 0 for r in values):
        raise EenasError(f"exit ratios: {', '.join(map(str, values))}: every value must be a non-negative number")
    if abs(sum(values) - 1.0) > RATIO_TOLERANCE:
        raise EenasError(f"exit ratios: they sum to {sum(values):.6g}, not 1")
    return values


def parse_exit_ratios(text: str, count: int) -> tuple[float, ...]:
    """Parse ``"0.3,0.2,0.5"`` and check it (see :func:`check_exit_ratios`)."""
    try:
        values = [float(part) for part in text.split(",")]
    except ValueError:
        raise EenasError(f"exit ratios: '{text}' is not a comma-separated list of numbers") from None
    return check_exit_ratios(values, count)


@dataclass(frozen=True)
class _Schedule:
    """A whole network's schedule: parts per stage with their offsets, and decision times."""

    plan: _Plan
    exits: tuple[_Exit, ...]
    final_head: str
    stages: tuple[tuple[tuple[_Run, int], ...], ...]
    decisions: tuple[int, ...]


def _validate(arch: CostedNetwork, acc: Accelerator, mounts: tuple[int, ...]) -> None:
    seen, heads = set(), get_backbone(arch.backbone.name).heads
    for i, ex in enumerate(arch.exits):
        where = f"exits[{i}]"
        if ex.after_block not in mounts:
            raise EenasError(f"{where}.after_block: {ex.after_block} is out of range {mounts[0]}..{mounts[-1]}")
        if ex.after_block in seen or (i and ex.after_block < arch.exits[i - 1].after_block):
            raise EenasError(f"{where}.after_block: exits must have distinct mount points in increasing order")
        seen.add(ex.after_block)
        if ex.head not in heads:
            raise EenasError(f"{where}.head: unknown head '{ex.head}' (known: {', '.join(heads)})")
        if ex.core is not None and not 0 <= ex.core < len(acc.cores):
            raise EenasError(f"{where}.core: {ex.core} is not a compute core of {acc.name} (0..{len(acc.cores) - 1})")
        if ex.final and i != len(arch.exits) - 1:
            raise EenasError(f"{where}.final: only the last exit can end the network")


def _schedule(
    arch: CostedNetwork, acc: Accelerator, allocation: str, detailed: bool = False,
    objective: str = DEFAULT_OBJECTIVE, ratios: Sequence[float] | None = None,
) -> _Schedule:
    spec = arch.backbone.spec(arch.num_classes)
    _validate(arch, acc, spec.mounts)
    plan = _plan(acc, arch.backbone, arch.quant.backbone, arch.num_classes, allocation)
    offset = spec.mount_offset  # an exit after mount point m reads block m + offset
    exits = tuple(
        _Exit(ex.after_block + offset, ex.after_block, ex.head,
              _head_nodes(plan, ex.after_block + offset, ex.head, arch.quant.exits), ex.core, ex.overlap, ex.final)
        for ex in arch.exits
    )
    plan = _allocated(plan, exits, "classifier", allocation, objective, ratios)
    return _run_schedule(plan, exits, "classifier", detailed)


def _run_schedule(plan: _Plan, exits: tuple[_Exit, ...], final_head: str, detailed: bool) -> _Schedule:
    state = State.initial(plan.acc, plan.image)
    stages, decisions, first, decided = [], [], 0, 0
    for ex in exits:
        segment, seg_offset = _placed(_segment, plan, first, ex.block, detailed, state=state)
        state = segment.end_state.shifted(seg_offset)
        avoid = (plan.first_core(ex.block + 1),) if ex.overlap else ()
        head, head_offset = _placed(_head, plan, ex.block, ex.nodes, ex.core, avoid, detailed, state=state)
        # A sample reaches this decision only after every earlier one said "continue".
        decided = max(decided, head.done + head_offset)
        state = head.end_state.shifted(head_offset)
        state = state if ex.overlap else state.with_barrier(decided)
        stages.append(((segment, seg_offset), (head, head_offset)))
        decisions.append(decided)
        first = ex.block + 1
    if not (exits and exits[-1].final):
        segment, seg_offset = _placed(_segment, plan, first, len(plan.blocks) - 1, detailed, state=state)
        stages.append(((segment, seg_offset),))
        decisions.append(max(decided, segment.done + seg_offset))
    return _Schedule(plan, exits, final_head, tuple(stages), tuple(decisions))


def _wasted(schedule: _Schedule, stage: int) -> float:
    """Energy of later stages' work done before ``stage``'s decision, prorated by time."""
    t = schedule.decisions[stage]
    wasted = 0.0
    for parts in schedule.stages[stage + 1 :]:
        for run, offset in parts:
            for start, end, energy in zip(run.starts, run.ends, run.energies):
                start, end = start + offset, end + offset
                if start < t:
                    wasted += energy * (1.0 if end <= t else (t - start) / (end - start))
    return wasted


def _costs(schedule: _Schedule) -> ArchCost:
    static = _static(schedule.plan)
    exits, work, macs, prev_t, prev_e = [], 0.0, 0, 0, 0.0
    configs = [*schedule.exits, None]
    for i, (parts, t) in enumerate(zip(schedule.stages, schedule.decisions)):
        ex = configs[i]
        overlap = bool(ex and ex.overlap)
        work += sum(run.energy_pj for run, _ in parts)
        stage_macs = sum(run.macs for run, _ in parts)
        macs += stage_macs
        wasted = _wasted(schedule, i) if overlap else 0.0
        energy = work + wasted
        exits.append(ExitCost(
            ex.label if ex else None, ex.head if ex else schedule.final_head, overlap,
            t - prev_t, energy - prev_e, stage_macs, t, energy, macs, wasted,
        ))
        prev_t, prev_e = t, energy
    return ArchCost(tuple(exits), static.done, static.energy_pj, static.macs)


def _with_cores(plan: _Plan, allocation: Allocation) -> _Plan:
    return replace(plan, allocation=allocation, mapping=MappingProxyType(dict(zip(plan.mapping, allocation.cores))))


def _for_exits(plan: _Plan, exits: tuple[_Exit, ...], final_head: str, ratios: tuple[float, ...]) -> _Plan:
    """``plan`` with its backbone allocation searched again for the average ET of ``exits`` at ``ratios``.

    The GA starts from the static allocation, greedy and every homogeneous placement, so it is never worse on
    this objective than any of them; the plan is returned as it is when the static allocation stays the best.
    """
    acc, blocks, image, reserve = plan.acc, plan.blocks, plan.image, plan.reserve
    greedy = simulate(acc, blocks, image, reserve, None)
    seeds = [greedy.cores, plan.allocation.cores, *(a.cores for a in homogeneous(acc, blocks, image, reserve))]

    def average_et(cores: tuple[int, ...]) -> float:
        candidate = _with_cores(plan, replace(plan.allocation, cores=cores))
        return _costs(_run_schedule(candidate, exits, final_head, False)).average_et(ratios)

    workload = {
        **plan.workload, "objective": "average", "ratios": list(ratios),
        "exits": [[ex.block, ex.core, ex.overlap, ex.final, [[n.name, n.weight_bits, n.act_bits] for n in ex.nodes]]
                  for ex in exits],
    }
    cores = search(acc, workload, greedy, seeds, average_et)
    if cores == plan.allocation.cores:
        return plan
    return _with_cores(plan, replace(simulate(acc, blocks, image, reserve, cores), method="average"))


def _allocated(
    plan: _Plan, exits: tuple[_Exit, ...], final_head: str, allocation: str, objective: str,
    ratios: Sequence[float] | None,
) -> _Plan:
    """The plan whose allocation minimises ``objective`` (see :data:`~eenas.hardware.allocation.OBJECTIVES`)."""
    if check_choice(objective, OBJECTIVES, "allocation objective") == "static":
        return plan
    if allocation != "searched":
        raise EenasError(f"allocation objective: '{objective}' searches the allocation; not with allocation "
                         f"'{allocation}'")
    if ratios is None:
        raise EenasError(f"allocation objective: '{objective}' needs the exit ratios")
    ratios = check_exit_ratios(ratios, len(exits) + (0 if exits and exits[-1].final else 1))
    return plan if len(plan.acc.cores) == 1 else _for_exits(plan, exits, final_head, ratios)


Hardware = str | os.PathLike | Accelerator


def _accelerator(arch: CostedNetwork, hardware: Hardware | None, weights: str | None) -> Accelerator:
    return load_accelerator(arch.hardware if hardware is None else hardware).with_weights(weights)


def backbone_allocation(
    arch: CostedNetwork, hardware: Hardware | None = None, weights: str | None = None,
    allocation: str = DEFAULT_ALLOCATION,
) -> Allocation:
    """The core allocation of ``arch``'s backbone and its static cost (arguments as :func:`cost_arch`)."""
    acc = _accelerator(arch, hardware, weights)
    return _plan(acc, arch.backbone, arch.quant.backbone, arch.num_classes, allocation).allocation


def cost_arch(
    arch: CostedNetwork, hardware: Hardware | None = None, weights: str | None = None,
    allocation: str = DEFAULT_ALLOCATION,
) -> ArchCost:
    """Per-exit cumulative latency, energy and MACs of ``arch``, plus its static baseline.

    The search's scoring function: cached per part, so a warm call takes well under a
    millisecond.  ``hardware`` (a preset name, YAML path or Accelerator) overrides
    ``arch.hardware``, ``weights`` (``streamed`` or ``resident``) the accelerator's weight
    mode; ``allocation`` is ``greedy`` or ``searched`` (:mod:`eenas.hardware.allocation`).
    """
    acc = _accelerator(arch, hardware, weights)
    return _costs(_schedule(arch, acc, allocation))


@dataclass(frozen=True)
class LayerRecord:
    """One scheduled layer, for the per-layer table."""

    name: str
    stage: int  # 1-based
    kind: str  # conv, depthwise, pointwise, fc, pool or add
    location: str  # core name, "pool" or "simd"
    params: str  # convolutions: "resident", "fetched" (before it runs) or "streamed" (while it runs)
    macs: int
    utilization: float
    cycles: int  # the layer's own latency
    start: int
    end: int
    energy_pj: float  # the layer's own energy
    transfer_pj: float  # moving its inputs and fetching its weights


@dataclass(frozen=True)
class NetworkCost:
    """The full report of one arch on one accelerator (what ``eenas cost`` prints)."""

    hardware: str
    weights: str  # streamed or resident
    allocation: Allocation  # of the backbone
    layers: tuple[LayerRecord, ...]
    cost: ArchCost
    exit_ratios: tuple[float, ...] | None
    overlap_saved_cycles: int  # final-exit latency saved by overlap against no overlap
    explanation: Explanation | None = None  # why the backbone's convolutions run where they do, when asked


def _records(schedule: _Schedule) -> tuple[LayerRecord, ...]:
    acc = schedule.plan.acc
    records = []
    for stage, parts in enumerate(schedule.stages, start=1):
        for run, offset in parts:
            moved: dict[str, float] = {}
            for e in run.events:
                if e.kind != "compute":
                    moved[e.node.name] = moved.get(e.node.name, 0.0) + e.energy_pj
            for e in run.events:
                if e.kind == "compute" and e.cost is not None:
                    records.append(LayerRecord(
                        e.node.name, stage, e.node.layer.kind, location_name(acc, e.location), e.params, e.cost.macs,
                        e.cost.utilization, e.cost.latency_cycles, e.start + offset, e.end + offset,
                        e.energy_pj, moved.get(e.node.name, 0.0),
                    ))
    return tuple(records)


def network_cost(
    arch: CostedNetwork,
    hardware: Hardware | None = None,
    exit_ratios: Sequence[float] | None = None,
    weights: str | None = None,
    allocation: str = DEFAULT_ALLOCATION,
    explained: bool = False,
    objective: str = DEFAULT_OBJECTIVE,
) -> NetworkCost:
    """Per-layer schedule, per-exit costs and (with ratios) average ET of ``arch`` (arguments as :func:`cost_arch`);
    ``explained``: with the :class:`~eenas.hardware.explain.Explanation` of its backbone's allocation;
    ``objective``: what the searched allocation minimises, ``static`` or ``average`` (this network's average ET
    at ``exit_ratios``)."""
    acc = _accelerator(arch, hardware, weights)
    return _report(_schedule(arch, acc, allocation, True, objective, exit_ratios), exit_ratios, explained)


def _report(schedule: _Schedule, exit_ratios: Sequence[float] | None, explained: bool) -> NetworkCost:
    plan = schedule.plan
    acc = plan.acc
    ratios = None if exit_ratios is None else check_exit_ratios(exit_ratios, len(schedule.stages))
    saved = 0
    if any(ex.overlap for ex in schedule.exits):
        plain = tuple(replace(ex, overlap=False) for ex in schedule.exits)
        saved = _run_schedule(plan, plain, schedule.final_head, False).decisions[-1] - schedule.decisions[-1]
    explanation = explain(acc, plan.blocks, plan.image, plan.allocation) if explained else None
    return NetworkCost(acc.name, acc.weights, plan.allocation, _records(schedule), _costs(schedule), ratios,
                       saved, explanation)


def graph_network_cost(
    workload: GraphWorkload,
    hardware: Hardware,
    exit_ratios: Sequence[float] | None = None,
    weights: str | None = None,
    allocation: str = DEFAULT_ALLOCATION,
    explained: bool = False,
    objective: str = DEFAULT_OBJECTIVE,
) -> NetworkCost:
    """:func:`network_cost` of a network read from elsewhere (``eenas cost --onnx``): same schedule, same report.

    The trunk's core allocation is searched as an arch's backbone's is; heads go to the earliest-finishing core.
    """
    acc = load_accelerator(hardware).with_weights(weights)
    image = Tensor(workload.image, workload.image_bits, ((DRAM, 0),))
    plan = _make_plan(acc, workload.blocks, image, 0, allocation, {"graph": workload.digest})
    exits = []
    for i, (name, nodes) in enumerate(zip(workload.exit_names, workload.heads)):
        core = workload.cores[i] if workload.cores else None
        if core is not None and not 0 <= core < len(acc.cores):
            raise EenasError(f"{name}: core {core} is not a compute core of {acc.name} (0..{len(acc.cores) - 1})")
        exits.append(_Exit(i, workload.blocks[i].output, name, nodes, core,
                           bool(workload.overlaps and workload.overlaps[i])))
    final = workload.exit_names[-1]
    plan = _allocated(plan, tuple(exits), final, allocation, objective, exit_ratios)
    return _report(_run_schedule(plan, tuple(exits), final, True), exit_ratios, explained)


def clear_caches() -> None:
    """Forget every cached accelerator, plan, part and layer cost (for cold-start benchmarks)."""
    clear_loaded()
    caches = (_plan, _static, _segment, _head_nodes, _head, conv_profile, route, add_traffic, conv_cost, pool_cost,
              add_cost)
    for cached in caches:
        cached.cache_clear()
