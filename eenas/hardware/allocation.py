"""The backbone's layer-to-core allocation: greedy earliest finish, or searched by a genetic algorithm.

* ``greedy``: each convolution goes to the compute core on which it would finish first
  (list scheduling, :meth:`~eenas.hardware.schedule.Simulator.run`).
* ``searched``: what Stream does for the paper, a genetic algorithm over one gene per
  backbone convolution (its compute core), here pymoo's GA with uniform crossover and a
  reset mutation, fitness = the static network's energy-delay product.  The greedy
  allocation is in the first population and the GA keeps its best individuals, so the
  result is never worse than greedy; the best of it, greedy and, on a heterogeneous
  accelerator, every homogeneous allocation (greedy among the cores of one design,
  :func:`homogeneous`) is used: on the case study's mixed systems with streamed weights the
  better of the GA and greedy has a static ET up to 4.4% above that of every layer on the Edge-TPU-like cores
  (docs/hardware.md).  The seed is fixed, so
  the result is deterministic; it is cached in-process and, inside :func:`use_cache_dir`, on
  disk, keyed by a hash of the accelerator (weight mode included), the workload, the
  precision and the GA's settings.

Either way the allocation is computed once per (accelerator, width, precision, mode) on
the static network and reused for every exit configuration; only the report can search it
for one network's average ET instead (objective ``average``, :func:`search` with that fitness).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from eenas.hardware.accelerator import Accelerator, check_choice
from eenas.hardware.layers import ConvLayer
from eenas.hardware.schedule import Simulator, State, Tensor, resident_reserve
from eenas.hardware.workload import Block
from eenas.io import write_json

log = logging.getLogger(__name__)

ALLOCATIONS = ("greedy", "searched")
DEFAULT_ALLOCATION = "searched"
# What the searched allocation minimises: the static network's ET (once per backbone, reused by every exit
# configuration), or one early-exit network's average ET at given exit ratios (searched for that network alone).
OBJECTIVES = ("static", "average")
DEFAULT_OBJECTIVE = "static"
POPULATION = 64  # Stream's default for the paper's allocation search
GENERATIONS = 64
SEED = 0
_cache_dir: Path | None = None


@dataclass(frozen=True)
class Allocation:
    """A compute core per backbone convolution (graph order) and the static network's cost with it."""

    cores: tuple[int, ...]
    latency_cycles: int
    energy_pj: float
    method: str  # "greedy"; "searched" when the GA or a homogeneous allocation beat it; "average" when the search
    # for one network's average ET moved layers off the static allocation

    @property
    def et(self) -> float:
        return self.energy_pj * self.latency_cycles


@contextlib.contextmanager
def use_cache_dir(path: str | Path | None) -> Iterator[None]:
    """While the block runs, keep searched allocations under ``path/allocation`` across processes.

    A context manager, so a command's cache folder never leaks into what runs after it.
    """
    global _cache_dir
    previous, _cache_dir = _cache_dir, None if path is None else Path(path).expanduser()
    try:
        yield
    finally:
        _cache_dir = previous


def simulate(
    acc: Accelerator, blocks: Sequence[Block], image: Tensor, reserve: tuple[int, ...], cores: Sequence[int] | None,
    avoid: tuple[int, ...] = (),
) -> Allocation:
    """The static network with convolutions on ``cores`` (None: greedy earliest finish, never on ``avoid``)."""
    sim = Simulator(acc, State.initial(acc, image), reserve)
    genes = iter(cores) if cores is not None else None
    chosen = []
    for block in blocks:
        for node in block.nodes:
            core = next(genes) if genes is not None and isinstance(node.layer, ConvLayer) else None
            location = sim.run(node, core, avoid)
            if isinstance(node.layer, ConvLayer):
                chosen.append(location)
    return Allocation(tuple(chosen), max(sim.ends), sum(sim.energies), "greedy")


def core_groups(acc: Accelerator) -> tuple[tuple[int, ...], ...]:
    """The compute cores of each distinct design (a core style), in order of their first core."""
    groups: dict[object, list[int]] = {}
    for i, design in enumerate(acc.designs):
        groups.setdefault(design, []).append(i)
    return tuple(tuple(cores) for cores in groups.values())


def homogeneous(
    acc: Accelerator, blocks: Sequence[Block], image: Tensor, reserve: tuple[int, ...]
) -> tuple[Allocation, ...]:
    """Per core style (:func:`core_groups`), every convolution on that style's cores, greedy among them."""
    every = range(len(acc.cores))
    return tuple(simulate(acc, blocks, image, reserve, None, tuple(c for c in every if c not in group))
                 for group in core_groups(acc))


def allocate(
    acc: Accelerator, blocks: Sequence[Block], image: Tensor, method: str, workload: Mapping[str, object]
) -> Allocation:
    """The allocation ``method`` gives (``searched``: the best of the GA's, greedy's and the homogeneous ones).

    ``workload`` describes ``blocks`` and ``image`` for the disk cache's key.
    """
    check_choice(method, ALLOCATIONS, "allocation")
    reserve = resident_reserve(acc, (n for b in blocks for n in b.nodes))
    greedy = simulate(acc, blocks, image, reserve, None)
    if method == "greedy" or len(acc.cores) == 1:
        return greedy
    cores = search(acc, workload, greedy, [greedy.cores], lambda genes: simulate(acc, blocks, image, reserve, genes).et)
    found = min([simulate(acc, blocks, image, reserve, cores), *homogeneous(acc, blocks, image, reserve)],
                key=lambda a: a.et)
    return dataclasses.replace(found, method="searched") if found.et < greedy.et else greedy


def search(
    acc: Accelerator, workload: Mapping[str, object], greedy: Allocation, seeds: Sequence[tuple[int, ...]],
    fitness: Callable[[tuple[int, ...]], float],
) -> tuple[int, ...]:
    """The GA's best allocation for ``fitness`` from ``seeds`` (greedy's first), or its disk cache entry.

    ``workload`` describes the network and the objective for the cache's key; ``greedy`` is the static greedy
    allocation, whose cost in the key changes it whenever the cost model does.
    """
    seeds = list(dict.fromkeys(seeds))
    path = _cache_path(acc, workload, greedy, seeds[1:])
    cores = _load(path, len(greedy.cores), len(acc.cores))
    if cores is None:
        cores = _search(len(acc.cores), seeds, fitness)
        if path is not None:
            write_json(path, {"cores": list(cores)})
    return cores


def _cache_path(
    acc: Accelerator, workload: Mapping[str, object], greedy: Allocation, seeds: Sequence[tuple[int, ...]]
) -> Path | None:
    """The disk entry of this search; greedy's result in the key changes it whenever the cost model does.

    ``seeds``, the GA's first individuals besides greedy, are in the key only when there are any, so that the
    static network's search keeps the entries written before there were seeds.
    """
    if _cache_dir is None:
        return None
    key: dict[str, object] = {
        "accelerator": dataclasses.asdict(acc), "workload": dict(workload),
        "ga": [POPULATION, GENERATIONS, SEED], "greedy": [greedy.latency_cycles, greedy.energy_pj, list(greedy.cores)],
    }
    if seeds:
        key["seeds"] = [list(s) for s in seeds]
    digest = hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:16]
    return _cache_dir / "allocation" / f"{digest}.json"


def _load(path: Path | None, genes: int, n_cores: int) -> tuple[int, ...] | None:
    """A cached allocation, or None if there is none or it is not a valid one (then it is rebuilt)."""
    if path is None or not path.exists():
        return None
    try:
        cores = json.loads(path.read_text())["cores"]
        valid = len(cores) == genes and all(isinstance(c, int) and 0 <= c < n_cores for c in cores)
    except (OSError, ValueError, KeyError, TypeError):
        valid = False
    if not valid:
        log.warning("allocation cache %s is not valid; searching again", path)
        return None
    return tuple(cores)


def _search(
    n_cores: int, seeds: Sequence[tuple[int, ...]], fitness: Callable[[tuple[int, ...]], float]
) -> tuple[int, ...]:
    """pymoo's GA over one core gene per convolution, minimising ``fitness``; ``seeds`` (distinct, greedy's first)
    are its first individuals, the rest random."""
    import numpy as np
    from pymoo.algorithms.soo.nonconvex.ga import GA
    from pymoo.core.mutation import Mutation
    from pymoo.core.problem import Problem
    from pymoo.operators.crossover.ux import UX
    from pymoo.optimize import minimize

    n_genes = len(seeds[0])

    class Objective(Problem):
        def __init__(self) -> None:
            super().__init__(n_var=n_genes, n_obj=1, xl=0, xu=n_cores - 1, vtype=int)

        def _evaluate(self, X, out, *args, **kwargs):
            out["F"] = np.array([[fitness(tuple(int(c) for c in row))] for row in X])

    class CoreMutation(Mutation):
        """Move each layer to a random core with probability 1 / genes (at least one layer)."""

        def _do(self, problem, X, *args, random_state=None, **kwargs):
            X = np.array(X, dtype=int)
            n = len(X)
            move = random_state.random(X.shape) < 1.0 / n_genes
            move[np.arange(n), random_state.integers(0, n_genes, size=n)] = True
            return np.where(move, random_state.integers(0, n_cores, size=X.shape), X)

    rng = np.random.default_rng(SEED)
    first = rng.integers(0, n_cores, size=(POPULATION, n_genes))
    first[: len(seeds)] = seeds[:POPULATION]
    algorithm = GA(pop_size=POPULATION, sampling=first, crossover=UX(), mutation=CoreMutation(),
                   eliminate_duplicates=True)
    result = minimize(Objective(), algorithm, ("n_gen", GENERATIONS), seed=SEED, verbose=False)
    return tuple(int(c) for c in np.atleast_2d(result.X)[0])
