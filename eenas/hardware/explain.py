"""Why each backbone convolution runs where it does, and what the mix of core styles bought.

Cores with the same design form one *style* (the Stream case study's E, M and Y cores).  For a
given allocation (the one the schedule uses, passed in, never searched again) the static network
is replayed layer by layer; just before each convolution is placed, what it would cost on every
style is evaluated from that very point of the schedule: its own cycles, and the energy the
schedule would charge it there (its own, moving its input to that core, fetching its
parameters), so that a layer kept on a worse-suited core to avoid moving its input shows why.
The chosen style's numbers are the ones the schedule charged, so they add up to the static
network's energy with those of pooling and additions, which have no core to choose.

Per-layer numbers are local: the allocation minimises the whole network's ET, where a busy
core, a weight prefetch, the weight-SRAM room a layer's resident parameters take from later
layers or the next layer's input can outweigh a layer's own EDP.  The network
view is the placements: the allocation against every convolution on one style (greedy earliest
finish among that style's cores).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from eenas.hardware.accelerator import Accelerator
from eenas.hardware.allocation import Allocation, core_groups, homogeneous
from eenas.hardware.layers import ConvLayer
from eenas.hardware.schedule import Simulator, State, Tensor, resident_reserve
from eenas.hardware.workload import Block


@dataclass(frozen=True)
class CoreStyle:
    """Compute cores of one design; ``label`` is their common name without its index (else their names)."""

    label: str
    cores: tuple[int, ...]


@dataclass(frozen=True)
class Option:
    """One convolution on one core, from the point of the schedule where it is placed."""

    core: int
    cycles: int  # its own latency
    energy_pj: float  # its own energy, moving its input there and fetching its parameters

    @property
    def edp(self) -> float:
        return self.energy_pj * self.cycles


@dataclass(frozen=True)
class LayerChoice:
    """A backbone convolution: what it would cost on each style (:attr:`Explanation.styles` order), and where it ran.

    A style's option is its core of least EDP, except the chosen style's, which is the core the layer ran on.
    """

    name: str
    kind: str
    style: int  # index of the chosen style
    options: tuple[Option, ...]

    @property
    def chosen(self) -> Option:
        return self.options[self.style]

    @property
    def best_other(self) -> int | None:
        """The style of least EDP besides the chosen one (None on an accelerator of one style)."""
        others = [i for i in range(len(self.options)) if i != self.style]
        return min(others, key=lambda i: (self.options[i].edp, i)) if others else None


@dataclass(frozen=True)
class Placement:
    """The static network with one placement of its convolutions."""

    label: str
    allocation: Allocation


@dataclass(frozen=True)
class Explanation:
    """Per convolution, its cost on every style; and the allocation against every homogeneous placement."""

    styles: tuple[CoreStyle, ...]
    core_names: tuple[str, ...]
    layers: tuple[LayerChoice, ...]
    fixed_energy_pj: float  # pooling and additions with their moves: no core to choose
    placements: tuple[Placement, ...]  # the allocation first, then every convolution on one style

    @property
    def conv_energy_pj(self) -> float:
        """The convolutions' energy on their chosen cores; with :attr:`fixed_energy_pj`, the static energy."""
        return sum(layer.chosen.energy_pj for layer in self.layers)

    def convs_per_style(self, allocation: Allocation) -> tuple[int, ...]:
        return tuple(sum(c in style.cores for c in allocation.cores) for style in self.styles)


def core_styles(acc: Accelerator) -> tuple[CoreStyle, ...]:
    """The accelerator's core styles (:func:`~eenas.hardware.allocation.core_groups`), labelled."""
    groups = core_groups(acc)
    stems = [{re.sub(r"\d+$", "", acc.cores[i].name) for i in cores} for cores in groups]
    unique = [len(s) == 1 and "" not in s and stems.count(s) == 1 for s in stems]
    return tuple(
        CoreStyle(next(iter(stem)) if ok else "+".join(acc.cores[i].name for i in cores), cores)
        for cores, stem, ok in zip(groups, stems, unique)
    )


def explain(acc: Accelerator, blocks: Sequence[Block], image: Tensor, allocation: Allocation) -> Explanation:
    """Replay the static network of ``blocks`` on ``allocation`` and cost every convolution on every style."""
    styles = core_styles(acc)
    style_of = {c: i for i, s in enumerate(styles) for c in s.cores}
    nodes = [n for b in blocks for n in b.nodes]
    reserve = resident_reserve(acc, nodes)
    sim = Simulator(acc, State.initial(acc, image), reserve)
    placed = dict(zip([n.name for n in nodes if isinstance(n.layer, ConvLayer)], allocation.cores, strict=True))
    layers, fixed = [], 0.0
    for node in nodes:
        if node.name not in placed:
            before = len(sim.energies)
            sim.run(node)
            fixed += sum(sim.energies[before:])
            continue
        core = placed[node.name]
        options = []
        for style in styles:
            costs = [(c, *sim.conv_option(node, c)) for c in ((core,) if core in style.cores else style.cores)]
            best = min((Option(c, cost.latency_cycles, energy) for c, cost, energy in costs),
                       key=lambda o: (o.edp, o.core))
            options.append(best)
        layers.append(LayerChoice(node.name, node.layer.kind, style_of[core], tuple(options)))
        sim.run(node, core)
    placements = [Placement(f"allocation ({allocation.method})", allocation)] + [
        Placement(f"every conv on {s.label}", a) for s, a in zip(styles, homogeneous(acc, blocks, image, reserve))
    ]
    return Explanation(styles, tuple(c.name for c in acc.cores), tuple(layers), fixed, tuple(placements))
