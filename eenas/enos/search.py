"""One ENOS run: search the per-layer (operator, mode) assignment, discretise, fine-tune, test.

Also trains the single-operator baselines (every layer one candidate) with the same total
epochs, for the sweep.  Outputs of a run (:func:`write_run`): ``assignment.json`` (each
layer's chosen operator and mode with the probabilities of all candidates, and the run's
accuracy and energy), ``layers.csv`` and ``layers.md`` (operator, mode, MACs, energy).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path

import pandas as pd
import torch

from eenas.data import Batches, Splits, load_splits
from eenas.enos.budget import EnosBudget, get_enos_budget
from eenas.enos.energy import DEFAULT_TABLE, EnergyTable, load_energy_table
from eenas.enos.networks import NETWORKS, SearchableNetwork, build_network
from eenas.enos.relaxation import RELAXATIONS, Architecture, VariationalArchitecture
from eenas.enos.schemes import get_scheme
from eenas.enos.searcher import Searcher, SearchSettings
from eenas.errors import EenasError
from eenas.io import write_json, write_text
from eenas.train.cache import Cache, config_hash
from eenas.train.loops import TrainingDiverged, fit, predict
from eenas.train.pipeline import resolve_device

log = logging.getLogger(__name__)

VAL_FRACTION = 0.1
CACHE_VERSION = 1  # part of every cache key: bump it when a change alters trained results
POSTERIOR_SAMPLES = 1000  # Monte-Carlo samples for the variational scheme's uncertainty


def check_energy_weight(value: float) -> None:
    if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
        raise EenasError(f"energy weight: expected a non-negative number, got {value}")


@dataclass(frozen=True)
class EnosConfig:
    """Everything that determines one run's result."""

    model: str = "shufflenet_v2"
    dataset: str = "cifar10"
    scheme: str = "single"
    energy_weight: float = 0.0
    budget: str = "quick"
    energy_table: str = DEFAULT_TABLE
    relaxation: str | None = None  # None: the budget's
    seed: int = 0
    data_dir: str | None = None
    device: str = "auto"

    def __post_init__(self) -> None:
        check_energy_weight(self.energy_weight)
        if self.model not in NETWORKS:
            raise EenasError(f"unknown network '{self.model}' (known: {', '.join(NETWORKS)})")
        if self.relaxation is not None and self.relaxation not in RELAXATIONS:
            raise EenasError(f"unknown relaxation '{self.relaxation}' (known: {', '.join(RELAXATIONS)})")
        get_scheme(self.scheme)
        get_enos_budget(self.budget)

    @property
    def budget_spec(self) -> EnosBudget:
        return get_enos_budget(self.budget)

    @property
    def relaxation_used(self) -> str:
        return self.relaxation or self.budget_spec.relaxation


@dataclass(frozen=True)
class LayerChoice:
    """A layer's chosen candidate, its cost, and how sure the search was."""

    name: str
    kind: str
    macs: int
    operator: str
    mode: str
    energy_pj: float
    probabilities: dict[str, float]
    entropy: float  # of the candidate distribution, in nats (0: certain)
    choice_frequency: float | None = None  # variational: share of posterior samples that pick the choice
    choice_probability_std: float | None = None  # variational: spread of the choice's probability


@dataclass(frozen=True)
class RunResult:
    """A trained network (searched or single-operator): its layers, accuracy and energy."""

    label: str
    test_accuracy: float
    energy_pj: float
    layers: tuple[LayerChoice, ...]
    seconds: float
    details: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"label": self.label, "test_accuracy": self.test_accuracy, "energy_pj": self.energy_pj,
                "seconds": round(self.seconds, 1), **self.details, "layers": [asdict(c) for c in self.layers]}

    @classmethod
    def from_dict(cls, data: dict) -> RunResult:
        fields = ("label", "test_accuracy", "energy_pj", "seconds", "layers")
        details = {k: v for k, v in data.items() if k not in fields}
        layers = tuple(LayerChoice(**c) for c in data["layers"])
        return cls(data["label"], data["test_accuracy"], data["energy_pj"], layers, data["seconds"], details)

    def table(self) -> pd.DataFrame:
        return pd.DataFrame([
            {"layer": c.name, "kind": c.kind, "operator": c.operator, "mode": c.mode, "macs": c.macs,
             "energy_pj": c.energy_pj, "probability": c.probabilities[f"{c.operator}/{c.mode}"]}
            for c in self.layers
        ])


class Workspace:
    """What every run of one model/dataset/budget shares: data, energy table, device."""

    def __init__(self, cfg: EnosConfig) -> None:
        self.cfg, self.budget = cfg, cfg.budget_spec
        self.table: EnergyTable = load_energy_table(cfg.energy_table)
        self.device = resolve_device(cfg.device)
        b = self.budget
        s = load_splits(cfg.dataset, cfg.data_dir, VAL_FRACTION, cfg.seed, b.synthetic_size)
        self.splits = Splits(s.dataset, s.train.subset(b.train_limit), s.val.subset(b.val_limit),
                             s.test.subset(b.test_limit))

    def batches(self, split: str, train: bool = False) -> Batches:
        return Batches(getattr(self.splits, split), self.cfg.dataset, self.budget.batch_size, self.device,
                       shuffle=train, augment=train, seed=self.cfg.seed)

    def network(self) -> tuple[SearchableNetwork, torch.Tensor]:
        """A fresh seeded network and its ``[layers, candidates]`` energy matrix in pJ."""
        torch.manual_seed(self.cfg.seed)
        net = build_network(self.cfg.model, self.splits.num_classes, self.budget.size, self.table)
        energy = self.table.matrix([layer.shape for layer in net.layers])
        return net.to(self.device, memory_format=torch.channels_last), energy

    @torch.no_grad()
    def test_accuracy(self, net: SearchableNetwork) -> float:
        net.eval()
        torch.manual_seed(self.cfg.seed)  # CIM noise is drawn at inference too
        logits = predict(net, self.batches("test"), desc="test")[0]
        return (logits.argmax(1) == self.splits.test.labels).float().mean().item()


def _entropy(p: torch.Tensor) -> float:
    return float(-(p * p.clamp_min(1e-12).log()).sum())


def _choices(net: SearchableNetwork, energy: torch.Tensor, table: EnergyTable, probs: torch.Tensor,
             picks: list[int], posterior: torch.Tensor | None) -> tuple[LayerChoice, ...]:
    """Per-layer records; ``posterior`` (``[samples, layers, candidates]``) adds uncertainty."""
    out = []
    for i, (layer, k) in enumerate(zip(net.layers, picks)):
        cand = table.candidates[k]
        extra = {}
        if posterior is not None:
            samples = posterior[:, i]
            extra = {"choice_frequency": float((samples.argmax(-1) == k).float().mean()),
                     "choice_probability_std": float(samples[:, k].std())}
        out.append(LayerChoice(
            layer.name, layer.shape.kind, layer.shape.macs, cand.operator, cand.mode, float(energy[i, k]),
            {label: round(float(p), 6) for label, p in zip(table.labels, probs[i])}, _entropy(probs[i]), **extra,
        ))
    return tuple(out)


def run_search(cfg: EnosConfig, ws: Workspace | None = None) -> RunResult:
    """Search, discretise to each layer's most probable candidate, fine-tune, and test."""
    ws = ws or Workspace(cfg)
    b, scheme = ws.budget, get_scheme(cfg.scheme)
    net, energy = ws.network()
    train, val = ws.batches("train", train=True), ws.batches("val")
    layers, candidates = len(net.layers), len(ws.table.candidates)
    arch_cls = VariationalArchitecture if scheme.variational else Architecture
    arch = arch_cls(layers, candidates).to(ws.device)
    settings = SearchSettings(
        energy_weight=cfg.energy_weight, relaxation=cfg.relaxation_used, lr=b.lr, arch_lr=b.arch_lr,
        total_steps=b.search_epochs * len(train), kl_weight=1.0 / len(ws.splits.train) if scheme.variational else 0.0,
    )
    searcher = Searcher(net, arch, energy, settings)
    start = time.perf_counter()
    scheme.run(searcher, train, val, b.search_epochs)
    searched = time.perf_counter() - start

    posterior = None
    if isinstance(arch, VariationalArchitecture):
        posterior = arch.sample_probabilities(POSTERIOR_SAMPLES, torch.Generator().manual_seed(cfg.seed)).cpu()
        probs = posterior.mean(0)  # the posterior predictive: no layer is pinned in this scheme
    else:
        probs = searcher.reported_probabilities()
    picks = [int(k) for k in probs.argmax(dim=1)]
    choices = _choices(net, energy, ws.table, probs, picks, posterior)
    for layer, k in zip(net.layers, picks):
        layer.keep_only(k)
    fit(net, train, b.finetune_epochs, b.finetune_lr, desc="enos fine-tune")
    accuracy = ws.test_accuracy(net)
    total = float(sum(c.energy_pj for c in choices))
    seconds = time.perf_counter() - start
    log.info("%s λ=%g: test accuracy %.4f, energy %.4g pJ (search %.0f s, total %.0f s)",
             cfg.scheme, cfg.energy_weight, accuracy, total, searched, seconds)
    details = {"config": asdict(cfg), "relaxation": cfg.relaxation_used, "budget": b.recipe(),
               "energy_table": ws.table.name, "search_seconds": searched,
               "pin_order": [net.layers[i].name for i in searcher.pinned],
               "single_operator_energy_pj": dict(zip(ws.table.labels, energy.sum(0).tolist()))}
    return RunResult(f"enos λ={cfg.energy_weight:g}", accuracy, total, choices, seconds, details)


def train_single_operator(cfg: EnosConfig, index: int, ws: Workspace | None = None) -> RunResult:
    """A baseline with every layer on candidate ``index``, trained for search + fine-tune epochs."""
    ws = ws or Workspace(cfg)
    b = ws.budget
    net, energy = ws.network()
    for layer in net.layers:
        layer.keep_only(index)
    label = ws.table.labels[index]
    start = time.perf_counter()
    fit(net, ws.batches("train", train=True), b.search_epochs + b.finetune_epochs, b.lr, one_cycle=True,
        desc=f"single {label}")
    accuracy = ws.test_accuracy(net)
    onehot = torch.zeros(len(ws.table.candidates))
    onehot[index] = 1.0
    choices = _choices(net, energy, ws.table, onehot.expand(len(net.layers), -1), [index] * len(net.layers), None)
    total = float(energy[:, index].sum())
    log.info("single %s: test accuracy %.4f, energy %.4g pJ", label, accuracy, total)
    return RunResult(label, accuracy, total, choices, time.perf_counter() - start, {"config": asdict(cfg)})


def cached(kind: str, ws: Workspace, cache: Cache, build: Callable[[], RunResult], **identity) -> RunResult:
    """``build()``, or its stored result from an earlier run with the same identity.

    The key holds the model, dataset, seed, budget recipe and the whole energy table (its
    numbers and CIM settings change results), plus what ``identity`` adds.
    """
    cfg = ws.cfg
    key = config_hash({"stage": f"enos-{kind}", "version": CACHE_VERSION, "model": cfg.model,
                       "dataset": cfg.dataset, "seed": cfg.seed, "budget": ws.budget.recipe(),
                       "table": repr(ws.table), **identity})
    return RunResult.from_dict(cache.get_or_build("enos", key, lambda: build().to_dict()))


def run_enos(cfg: EnosConfig, out: Path, cache_dir: str | None = None) -> RunResult:
    """``eenas enos``: one search (cached), its outputs written under ``out``."""
    ws = Workspace(cfg)
    try:
        result = cached("search", ws, Cache(cache_dir), partial(run_search, cfg, ws), scheme=cfg.scheme,
                        energy_weight=cfg.energy_weight, relaxation=cfg.relaxation_used)
    except TrainingDiverged as exc:
        raise EenasError(f"training diverged ({exc}); try a smaller --energy-weight or another --seed") from None
    write_run(result, out)
    return result


def write_run(result: RunResult, out: Path) -> list[Path]:
    """``assignment.json``, ``layers.csv`` and ``layers.md`` under ``out``."""
    table = result.table()
    paths = [
        write_json(out / "assignment.json", result.to_dict()),
        write_text(out / "layers.csv", table.to_csv(index=False)),
        write_text(out / "layers.md", table.to_markdown(index=False, floatfmt=".4g") + "\n\n"
                   + f"test accuracy {result.test_accuracy:.4f}, energy {result.energy_pj:.4g} pJ per image\n"),
    ]
    return paths
