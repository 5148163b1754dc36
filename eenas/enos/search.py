"""One ENOS run: search the per-layer (operator, mode) assignment, discretise, retrain, test.

The standard NAS protocol: the search ends in an assignment (each layer's most probable
candidate); the supernet discretised to it, with its BatchNorm statistics recalibrated, is
scored on validation images; then :func:`train_assignment` trains that assignment exactly as
it trains every single-operator baseline (every layer one candidate).  Supernet and trained
networks alike start from the budget's pretrained float weights when some are registered
(``--pretrained auto``, the default), else from scratch (``--pretrained none``).
Every choice uses validation accuracy; test accuracy is only reported.  Searches and
trainings are cached separately (a training by its assignment), so a bisection on λ
(``sweep.py``) pays for the searches it needs, and an assignment is never trained twice.

Outputs of a run (:func:`write_run`): ``assignment.json`` (each layer's chosen operator and
mode with the probabilities of all candidates, and the run's accuracies and energy),
``layers.csv`` and ``layers.md`` (operator, mode, MACs, energy).
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import asdict, dataclass, field, replace
from functools import partial
from pathlib import Path

import pandas as pd
import torch

from eenas.data import Batches, Splits, load_splits
from eenas.enos.budget import WEIGHT_SHARING, EnosBudget, get_enos_budget
from eenas.enos.energy import DEFAULT_TABLE, EnergyTable, load_energy_table
from eenas.enos.networks import NETWORKS, NetworkSize, SearchableNetwork, build_network
from eenas.enos.relaxation import RELAXATIONS, Architecture, VariationalArchitecture
from eenas.enos.schemes import get_scheme
from eenas.enos.searcher import Searcher, SearchSettings
from eenas.errors import EenasError
from eenas.io import write_json, write_text
from eenas.report.tables import markdown, write_csv
from eenas.train.cache import Cache, config_hash
from eenas.train.loops import TrainingDiverged, fit, predict
from eenas.train.pipeline import resolve_amp, resolve_device
from eenas.weights.files import load_state_dict
from eenas.weights.registry import WeightsEntry, resolve_pretrained

log = logging.getLogger(__name__)

VAL_FRACTION = 0.1
SPLIT_SEED = 0  # one train/validation split for every seed: the pretrained weights have seen its training part
CACHE_VERSION = 4  # part of every cache key: bump it when a change alters trained results
# Augmented training batches that recalibrate BatchNorm statistics.  Augmented, as in training: the weights learned
# to expect the statistics of cropped-and-flipped images, and stats of plain ones cost the pretrained float networks
# 2.3 (SqueezeNet) and 4.3 (ShuffleNetV2) points of validation accuracy (docs/enos.md).
BN_BATCHES = 20
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
    weights: str | None = None  # None: the budget's weight sharing (shared or family)
    pretrained: str = "auto"  # float weights every network starts from: auto, none or a registered name

    def __post_init__(self) -> None:
        check_energy_weight(self.energy_weight)
        if self.weights is not None and self.weights not in WEIGHT_SHARING:
            raise EenasError(f"unknown weight sharing '{self.weights}' (known: {', '.join(WEIGHT_SHARING)})")
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

    @property
    def weights_used(self) -> str:
        return self.weights or self.budget_spec.weights


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
    val_accuracy: float = math.nan

    def to_dict(self) -> dict:
        return {"label": self.label, "val_accuracy": self.val_accuracy, "test_accuracy": self.test_accuracy,
                "energy_pj": self.energy_pj, "seconds": round(self.seconds, 1), **self.details,
                "layers": [asdict(c) for c in self.layers]}

    @classmethod
    def from_dict(cls, data: dict) -> RunResult:
        fields = ("label", "val_accuracy", "test_accuracy", "energy_pj", "seconds", "layers")
        details = {k: v for k, v in data.items() if k not in fields}
        layers = tuple(LayerChoice(**c) for c in data["layers"])
        return cls(data["label"], data["test_accuracy"], data["energy_pj"], layers, data["seconds"], details,
                   data["val_accuracy"])

    @property
    def picks(self) -> list[int]:
        """Each layer's candidate index, in the energy table's order."""
        labels = list(self.layers[0].probabilities) if self.layers else []
        return [labels.index(f"{c.operator}/{c.mode}") for c in self.layers]

    def table(self) -> pd.DataFrame:
        return pd.DataFrame([
            {"layer": c.name, "kind": c.kind, "operator": c.operator, "mode": c.mode, "macs": c.macs,
             "energy_pj": c.energy_pj, "probability": c.probabilities[f"{c.operator}/{c.mode}"]}
            for c in self.layers
        ])


def network_options(model: str, size: NetworkSize) -> dict:
    """A network's size as a weights entry records it (SqueezeNet has no units per stage)."""
    return {"width": size.width} if model == "squeezenet" else {"width": size.width, "repeats": list(size.repeats)}


class Workspace:
    """What every run of one model/dataset/budget shares: data, energy table, device, pretrained weights."""

    def __init__(self, cfg: EnosConfig, amp: str = "auto") -> None:
        self.cfg, self.budget = cfg, cfg.budget_spec
        self.size = self.budget.size(cfg.model)
        # Weights are resolved (and their hash checked) up front, so a run never switches them half-way.
        self.pretrained: WeightsEntry | None = resolve_pretrained(
            cfg.pretrained, cfg.dataset, cfg.model, network_options(cfg.model, self.size), SPLIT_SEED, VAL_FRACTION)
        self._float_state: dict[str, torch.Tensor] | None = None
        self.table: EnergyTable = load_energy_table(cfg.energy_table)
        self.device = resolve_device(cfg.device)
        self.amp = resolve_amp(amp, self.device)  # a cluster worker gets the client's (its cache keys name it)
        b = self.budget
        s = load_splits(cfg.dataset, cfg.data_dir, VAL_FRACTION, SPLIT_SEED, b.synthetic_size)
        self.splits = Splits(s.dataset, s.train.subset(b.train_limit), s.val.subset(b.val_limit),
                             s.test.subset(b.test_limit))

    def batches(self, split: str, train: bool = False, limit: int | None = None,
                batch_size: int | None = None) -> Batches:
        return Batches(getattr(self.splits, split).subset(limit), self.cfg.dataset,
                       batch_size or self.budget.batch_size, self.device, shuffle=train, augment=train,
                       seed=self.cfg.seed)

    def float_state(self) -> dict[str, torch.Tensor] | None:
        """The pretrained float weights (None: from scratch), read once."""
        if self.pretrained is not None and self._float_state is None:
            self._float_state = load_state_dict(self.pretrained)
        return self._float_state

    def network(self, weights: str = "shared") -> tuple[SearchableNetwork, torch.Tensor]:
        """A fresh network (seeded; from the pretrained weights if any) and its ``[layers, candidates]`` energy
        matrix in pJ."""
        torch.manual_seed(self.cfg.seed)
        net = build_network(self.cfg.model, self.splits.num_classes, self.size, self.table, weights,
                            self.float_state())
        energy = self.table.matrix([layer.shape for layer in net.layers])
        return net.to(self.device, memory_format=torch.channels_last), energy

    @torch.no_grad()
    def accuracy(self, net: SearchableNetwork, split: str) -> float:
        """Top-1 accuracy on ``val`` or ``test``, after recalibrating BatchNorm statistics."""
        torch.manual_seed(self.cfg.seed)  # CIM noise is drawn at inference too
        recalibrate_bn(net, self.batches("train", train=True), BN_BATCHES)
        logits = predict(net, self.batches(split), desc=split, amp=self.amp)[0]
        return (logits.argmax(1) == getattr(self.splits, split).labels).float().mean().item()


@torch.no_grad()
def recalibrate_bn(net: torch.nn.Module, batches: Batches, max_batches: int) -> None:
    """Recompute every BatchNorm's statistics as a plain average over ``max_batches`` batches.

    A supernet's per-candidate statistics were gathered under the mixed inputs of the search,
    and a trained network's are a running average weighted to the last few augmented batches.
    """
    norms = [m for m in net.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average
    net.train()
    for i, (x, _) in enumerate(batches):
        if i == max_batches:
            break
        net(x)
    for m, momentum in zip(norms, momenta):
        m.momentum = momentum
    net.eval()


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


def search_assignment(cfg: EnosConfig, ws: Workspace | None = None) -> RunResult:
    """Search, discretise to each layer's most probable candidate, and score the supernet on validation.

    The result's ``val_accuracy`` is the discretised supernet's (BatchNorm recalibrated); it
    has no test accuracy: only the retrained network (:func:`run_search`) is tested.
    """
    ws = ws or Workspace(cfg)
    b, scheme = ws.budget, get_scheme(cfg.scheme)
    net, energy = ws.network(cfg.weights_used)
    train = ws.batches("train", train=True, limit=b.search_limit, batch_size=b.search_batch_size)
    val = ws.batches("val", batch_size=b.search_batch_size)
    layers, candidates = len(net.layers), len(ws.table.candidates)
    arch_cls = VariationalArchitecture if scheme.variational else Architecture
    arch = arch_cls(layers, candidates).to(ws.device)
    settings = SearchSettings(
        energy_weight=cfg.energy_weight, relaxation=cfg.relaxation_used,
        lr=b.finetune_lr if ws.pretrained is not None else b.lr, arch_lr=b.arch_lr,
        total_steps=b.search_epochs * len(train), kl_weight=1.0 / len(train.data) if scheme.variational else 0.0,
        tau=b.tau, warmup_steps=b.warmup_epochs * len(train),
    )
    searcher = Searcher(net, arch, energy, settings)
    start = time.perf_counter()
    scheme.run(searcher, train, val, b.search_epochs)

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
    supernet_val = ws.accuracy(net, "val")
    total = float(sum(c.energy_pj for c in choices))
    seconds = time.perf_counter() - start
    log.info("%s λ=%g: energy %.4g pJ, discretised supernet val accuracy %.4f (search %.0f s)",
             cfg.scheme, cfg.energy_weight, total, supernet_val, seconds)
    details = {"config": asdict(cfg), "relaxation": cfg.relaxation_used, "weights": cfg.weights_used,
               "budget": b.recipe(), "energy_table": ws.table.name, "search_seconds": seconds,
               "pin_order": [net.layers[i].name for i in searcher.pinned],
               "single_operator_energy_pj": dict(zip(ws.table.labels, energy.sum(0).tolist()))}
    return RunResult(f"enos λ={cfg.energy_weight:g}", math.nan, total, choices, seconds, details, supernet_val)


def train_assignment(ws: Workspace, picks: list[int], label: str) -> dict:
    """Train a fresh network with layer ``l`` on candidate ``picks[l]``: the one recipe for every network.

    From the pretrained float weights, a cosine fine-tune at the budget's ``finetune_lr``; from
    scratch (``--pretrained none``), one-cycle SGD at ``lr``; both for ``train_epochs``, then
    BatchNorm recalibration.  Returns validation and test accuracy and the seconds it took.
    """
    b = ws.budget
    net, _ = ws.network()
    for layer, k in zip(net.layers, picks):
        layer.keep_only(k)
    start = time.perf_counter()
    warm = ws.pretrained is not None
    fit(net, ws.batches("train", train=True, limit=b.finetune_limit), b.train_epochs,
        b.finetune_lr if warm else b.lr, one_cycle=not warm, desc=f"{'fine-tune' if warm else 'train'} {label}",
        label_smoothing=b.label_smoothing, amp=ws.amp)
    result = {"val_accuracy": ws.accuracy(net, "val"), "test_accuracy": ws.accuracy(net, "test"),
              "train_seconds": time.perf_counter() - start}
    log.info("%s: val accuracy %.4f, test accuracy %.4f", label, result["val_accuracy"], result["test_accuracy"])
    return result


def _trained(ws: Workspace, cache: Cache, picks: list[int], label: str) -> dict:
    return cache.get_or_build("enos", train_key(ws, picks), partial(train_assignment, ws, picks, label))


def searched(cfg: EnosConfig, ws: Workspace, cache: Cache) -> RunResult:
    """The (cached) search at ``cfg``'s energy weight, not yet retrained."""
    return RunResult.from_dict(cache.get_or_build("enos", search_key(cfg, ws),
                                                  lambda: search_assignment(cfg, ws).to_dict()))


def run_search(cfg: EnosConfig, ws: Workspace, cache: Cache) -> RunResult:
    """Search (cached), then train the assignment with the baseline recipe (cached)."""
    found = searched(cfg, ws, cache)
    trained = _trained(ws, cache, found.picks, found.label)
    details = {**found.details, "supernet_val_accuracy": found.val_accuracy, "train_seconds": trained["train_seconds"]}
    return replace(found, val_accuracy=trained["val_accuracy"], test_accuracy=trained["test_accuracy"],
                   seconds=found.seconds + trained["train_seconds"], details=details)


def train_single_operator(cfg: EnosConfig, index: int, ws: Workspace, cache: Cache) -> RunResult:
    """A baseline: every layer on candidate ``index``, trained by :func:`train_assignment`."""
    label = ws.table.labels[index]
    net, energy = ws.network()
    picks = [index] * len(net.layers)
    trained = _trained(ws, cache, picks, label)
    onehot = torch.zeros(len(ws.table.candidates))
    onehot[index] = 1.0
    choices = _choices(net, energy, ws.table, onehot.expand(len(net.layers), -1), picks, None)
    return RunResult(label, trained["test_accuracy"], float(energy[:, index].sum()), choices,
                     trained["train_seconds"], {"config": asdict(cfg)}, trained["val_accuracy"])


def cache_key(kind: str, ws: Workspace, **identity) -> str:
    """The cache key of a run of ``kind`` (``search`` or ``train``) in ``ws``.

    It holds the model, dataset, seed, budget recipe, the training precision, the pretrained
    weights (name and hash) and the whole energy table (its numbers and CIM settings change
    results), plus what ``identity`` adds.
    """
    cfg = ws.cfg
    return config_hash({"stage": f"enos-{kind}", "version": CACHE_VERSION, "model": cfg.model,
                        "dataset": cfg.dataset, "seed": cfg.seed, "budget": ws.budget.recipe(),
                        "table": repr(ws.table), "amp": str(ws.amp),
                        "pretrained": ws.pretrained.tag if ws.pretrained else None, **identity})


def search_key(cfg: EnosConfig, ws: Workspace) -> str:
    return cache_key("search", ws, scheme=cfg.scheme, energy_weight=cfg.energy_weight,
                     relaxation=cfg.relaxation_used, weights=cfg.weights_used)


def train_key(ws: Workspace, picks: list[int]) -> str:
    return cache_key("train", ws, picks=picks)


def run_enos(cfg: EnosConfig, out: Path, cache_dir: str | None = None) -> RunResult:
    """``eenas enos``: one search (cached), its outputs written under ``out``."""
    ws = Workspace(cfg)
    try:
        result = run_search(cfg, ws, Cache(cache_dir))
    except TrainingDiverged as exc:
        raise EenasError(f"training diverged ({exc}); try a smaller --energy-weight or another --seed") from None
    write_run(result, out)
    return result


def write_run(result: RunResult, out: Path) -> list[Path]:
    """``assignment.json``, ``layers.csv`` and ``layers.md`` under ``out``."""
    table = result.table()
    paths = [
        write_json(out / "assignment.json", result.to_dict()),
        write_csv(out, "layers", table),
        write_text(out / "layers.md", markdown(table) + "\n\n"
                   + f"validation accuracy {result.val_accuracy:.4f}, test accuracy {result.test_accuracy:.4f}, "
                   f"energy {result.energy_pj:.4g} pJ per image\n"),
    ]
    return paths
