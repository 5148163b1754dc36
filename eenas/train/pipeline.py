"""The training pipeline, every stage cached under ``--cache-dir``.

1. ``float_backbone``: the float backbone (a registered family) is pretrained once per config (``eenas pretrain``).
2. ``backbone(precision)``: a QAT fine-tune per backbone precision.
3. ``FeatureBank``: one pass of the frozen quantized backbone stores every block's output,
   so exit heads train without re-running the backbone each epoch.
4. ``exit_logits``: a head at (mount, head type, exit precision) depends on nothing else, so
   its validation and test logits are cached; any set of exits and thresholds then scores
   exactly without training.
5. ``joint_logits``: optional fine-tune of the backbone with all exits of one arch together.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import logging
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from eenas.arch import DATASET_CLASSES, Arch, BackboneConfig, Precision
from eenas.data import Batches, Splits, TensorSet, load_splits
from eenas.errors import EenasError
from eenas.machine import cpu_name
from eenas.malloc import keep_freed_memory
from eenas.models.backbone import TappedBackbone
from eenas.models.early_exit import EarlyExitNet
from eenas.models.heads import build_head
from eenas.models.registry import DEFAULT_BACKBONE, get_backbone, head_spec
from eenas.precision import FLOAT
from eenas.quant import calibrate, quantize_backbone, quantize_head
from eenas.train.budget import Budget
from eenas.train.cache import Cache, config_hash
from eenas.train.loops import TensorBatches, TrainingDiverged, autocast, fit, predict
from eenas.weights.registry import WeightsEntry, resolve_pretrained

log = logging.getLogger(__name__)

VAL_FRACTION = 0.1
# Fine-tunes with frozen (folded) BN diverge at pretraining rates: we measured a tiny W8A8
# backbone fall from 72% to 62% at lr 0.01 but rise to 91% at 0.001.  They use lr / 50.
FINETUNE_LR_FACTOR = 1 / 50
# Part of every cache key: bump it whenever a change to the training code changes weights.
# 3: label smoothing and classifier dropout became budget fields, and mixed precision a setting.
# 4: QAT fine-tunes, heads and joint fine-tunes train with TRAINING_THREADS threads, whatever the process has.
# 5: heads fit on 90% of their training features and are judged in eval mode on the rest after each stage.
# 6: conv heads train at CONV_HEAD_LR (head_schedules).
# 7: ... with a one-cycle warm-up.
TRAINING_VERSION = 7
# Torch intra-op threads of every training job but the float pretraining (whose weights come from the registry
# or are cached under a key of their own).  On a CPU, trained weights follow the thread count: reductions such
# as weight gradients are split per thread, and float sums depend on their order (a tiny head's logits moved by
# up to 0.26 between 1 and 2 threads).  No cache key names the count, so it is fixed instead: a serial run then
# trains the same bytes under any OMP_NUM_THREADS, and the same as cluster workers.  One thread: every machine
# has it, oversubscribed OpenMP threads spin-wait, and --workers gives the parallelism.  Inference (feature
# banks, logits) gave the same bytes with 1 and 2 threads and keeps the process's count.
TRAINING_THREADS = 1
# The float pretraining's own version (its key hashes no other stage's recipe): bump it whenever a change to
# the code changes pretrained weights.  1: one-cycle SGD, pad-4 crop and flip, weight decay 5e-4.
PRETRAIN_VERSION = 1
# Validation accuracy is measured every this many pretraining epochs (the accuracy-against-epochs record).
PRETRAIN_EVAL_EVERY = 5
AMP_MODES = ("auto", "fp32", "bf16")
# Peak float learning rate of an exit head (SGD, Nesterov momentum 0.9, cosine).  A head with a BN + ReLU6 block
# (conv_pool_fc, dsconv_pool_fc) trains at CONV_HEAD_LR: at 0.05 its BN scale and shift are driven negative in the
# first steps until its ReLU6 channels never fire (constant outputs, loss ln 10; with or without a warm-up), which
# killed conv heads at mounts 1-3.  A one-cycle warm-up to it keeps 99-100% of channels alive at mounts 1-3, adds
# 1.5-15 points there (nothing measurable at mounts 5-13).  Measured in benchmarks/head_recipes.py and
# docs/training.md ("Exit heads").  Linear heads keep 0.05 without a warm-up, where they learn more in the same epochs.
LINEAR_HEAD_LR = 0.05
CONV_HEAD_LR = 0.01
# The head's QAT fine-tune rate, and the rate of its one retry when the fine-tune kills it (two heads of the quick
# space collapsed to chance in it; folded BN makes fine-tunes diverge at high rates, see FINETUNE_LR_FACTOR).
HEAD_QAT_LR = 0.005
HEAD_QAT_RETRY_LR = HEAD_QAT_LR / 10
# Share of a head's cached training features held back from fitting: after each stage the head is judged on them
# in eval mode (BN running statistics, folded under QAT: the function whose logits are cached).  Unseen images, so
# a head that only memorised its batches is not mistaken for a live one; training images, so no choice is ever
# made on validation or test.
HEAD_CHECK_FRACTION = 0.1
# A head is live when its held-back accuracy reaches this multiple of chance (20% on 10 classes).  A dead head
# (constant outputs) scores the share of one class: chance +- 3 points on tiny's 102 held-back images, so the bar
# is 3 standard errors above it, where the old bar (1.5x chance, on training accuracy) was 1.7.  Yet it is low
# enough for the weakest live heads we measured: conv_pool_fc at mounts 1 and 2 on tiny's real CIFAR-10 backbone
# (26% top-1) reach 25-33% in both stages, after lr 0.05 (with or without warm-up) left them at 9-16%.
LIVE_HEAD_CHANCE_FACTOR = 2.0
# Fewer held-back features than this cannot tell a dead head from a live one (a test cutting tiny to 64 images
# holds back 6): such a head is taken as live.  On 50, chance is 2.4 standard errors below the bar.
HEAD_CHECK_MIN_SAMPLES = 50


@contextlib.contextmanager
def training_threads() -> Iterator[None]:
    """Run a training job with :data:`TRAINING_THREADS` torch threads, then restore the caller's count.

    Also keeps the allocator's freed memory for reuse (:func:`keep_freed_memory`), on cluster workers too.
    """
    keep_freed_memory()
    before = torch.get_num_threads()
    torch.set_num_threads(TRAINING_THREADS)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def head_schedules(head: str) -> tuple[tuple[float, bool], ...]:
    """Float schedules of exit head ``head``, (peak lr, one-cycle warm-up), tried in order while it ends dead.

    The first is the recipe; the retries (a warm-up where the recipe has none, then a tenth of the rate) are a
    logged safety net.
    """
    spec = head_spec(head)
    if spec.conv_channels or spec.depthwise:
        return (CONV_HEAD_LR, True), (CONV_HEAD_LR / 10, True)
    return (LINEAR_HEAD_LR, False), (LINEAR_HEAD_LR, True), (LINEAR_HEAD_LR / 10, True)


def resolve_amp(mode: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for training: ``auto`` is bfloat16 where it is native, else float32.

    On CPUs without AVX-512 BF16 or AMX, bfloat16 is emulated and trained 13x slower than
    float32 in our benchmark, so ``auto`` keeps float32 there; ``fp32`` is the reference.
    """
    if mode not in AMP_MODES:
        raise EenasError(f"--amp {mode}: unknown (use {', '.join(AMP_MODES)})")
    if mode == "auto":
        native = torch.cuda.is_bf16_supported() if device.type == "cuda" else cpu_has_native_bf16()
        mode = "bf16" if native else "fp32"
    return torch.bfloat16 if mode == "bf16" else None


def amp_name(dtype: torch.dtype | None) -> str:
    """The ``--amp`` mode that names a resolved autocast dtype (in cache keys, and for cluster workers)."""
    return "fp32" if dtype is None else "bf16"


def cpu_has_native_bf16() -> bool:
    return torch.backends.cpu.get_cpu_capability() in ("AVX512_BF16", "AMX")


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise EenasError(f"--device {name}: CUDA is not available on this machine (use --device cpu or auto)")
    try:
        return torch.device(name)
    except RuntimeError:
        raise EenasError(f"--device {name}: not a device (use auto, cpu or cuda[:N])") from None


@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines trained weights, plus where they live."""

    dataset: str
    budget: Budget
    width_mult: float
    seed: int = 0
    data_dir: str | None = None
    cache_dir: str | Path | None = None
    device: str = "auto"
    amp: str = "auto"  # autocast dtype: auto, fp32 or bf16 (see resolve_amp)
    backbone: str = DEFAULT_BACKBONE  # a registered family
    backbone_options: tuple[tuple[str, Any], ...] = ()  # its options besides width_mult
    pretrained: str = "auto"  # float weights: auto (the registered ones, if any), none (pretrain) or a name

    @property
    def backbone_config(self) -> BackboneConfig:
        return BackboneConfig(self.backbone, self.width_mult, self.backbone_options)

    @functools.cached_property
    def weights(self) -> WeightsEntry | None:
        """The registered float weights this run starts from (None: it pretrains its own)."""
        config = self.backbone_config
        return resolve_pretrained(self.pretrained, self.dataset, config.name, dict(config.option_items()), self.seed,
                                  VAL_FRACTION)

    def identity(self) -> dict:
        amp = resolve_amp(self.amp, resolve_device(self.device))
        # MobileNetV2's keys predate the registry: they name no family, so its caches stay valid.
        options = dict(self.backbone_config.options)
        family = {} if self.backbone == DEFAULT_BACKBONE else {"backbone": self.backbone, "backbone_options": options}
        return {"dataset": self.dataset, "width": self.width_mult, "seed": self.seed,
                "recipe": self.budget.recipe(), "val_fraction": VAL_FRACTION, "training_version": TRAINING_VERSION,
                "amp": amp_name(amp), "pretrained": self.weights.tag if self.weights else "none", **family}


@dataclass(frozen=True)
class ExitLogits:
    """Logits of one exit on the validation and test splits."""

    val: torch.Tensor
    test: torch.Tensor


class HeadDead(TrainingDiverged):
    """An exit head still at chance after its retries: never cached; the search records its candidates as failed."""


@dataclass(frozen=True)
class HeadTraining:
    """How a head's training went, kept in its cache entry (``eenas study heads`` reports it)."""

    schedule: int  # index of the float schedule kept in head_schedules(head) (each earlier one ended dead)
    float_accuracy: float  # held-back accuracy in eval mode after float training
    qat_accuracy: float | None = None  # the same after the QAT fine-tune (None: a float exit)
    qat_retries: int = 0  # 1: the fine-tune at HEAD_QAT_LR ended dead and was redone at HEAD_QAT_RETRY_LR

    @property
    def retries(self) -> int:
        return self.schedule + self.qat_retries


@dataclass(frozen=True)
class HeadData:
    """A head's cached training features: the part it fits and the held-back part that judges it."""

    train: TensorBatches
    check: TensorBatches


def split_head_features(feats: torch.Tensor, labels: torch.Tensor, batch_size: int, device: torch.device,
                        seed: int) -> HeadData:
    """The first ``1 - HEAD_CHECK_FRACTION`` of a head's training features to fit (seeded shuffling), the rest to
    judge it."""
    cut = len(feats) - max(1, round(HEAD_CHECK_FRACTION * len(feats)))
    train = TensorBatches(feats[:cut], labels[:cut], batch_size, device, shuffle=True, seed=seed)
    return HeadData(train, TensorBatches(feats[cut:], labels[cut:], 1024, device))


@dataclass(frozen=True)
class FeatureBank:
    """Every block's output (float16, CPU) on the three splits, and the final logits."""

    train: dict[int, torch.Tensor]
    val: dict[int, torch.Tensor]
    test: dict[int, torch.Tensor]
    final: ExitLogits


def _seed_from(key: str) -> int:
    """Each job seeds itself from its cache key, so results do not depend on job order."""
    return int(key[:8], 16)


class Pipeline:
    """Trains, caches and serves the backbones and exit heads one dataset/budget needs."""

    def __init__(self, cfg: TrainConfig) -> None:
        self.cfg = cfg
        self.cache = Cache(cfg.cache_dir)
        self.device = resolve_device(cfg.device)
        self.amp = resolve_amp(cfg.amp, self.device)
        self.network = cfg.backbone_config.spec(DATASET_CLASSES[cfg.dataset])
        self._splits: Splits | None = None
        self._backbones: dict[Precision, TappedBackbone] = {}
        self._banks: dict[Precision, FeatureBank] = {}
        self.trained: list[str] = []  # what this pipeline trained (rather than loaded)

    # ----------------------------------------------------------------------------- data
    @property
    def splits(self) -> Splits:
        if self._splits is None:
            b = self.cfg.budget
            s = load_splits(self.cfg.dataset, self.cfg.data_dir, VAL_FRACTION, self.cfg.seed, b.synthetic_size)
            self._splits = Splits(s.dataset, s.train.subset(b.train_limit), s.val.subset(b.eval_limit),
                                  s.test.subset(b.eval_limit))
        return self._splits

    def labels(self) -> ExitLogits:
        return ExitLogits(self.splits.val.labels, self.splits.test.labels)

    def _batches(self, split: str, train: bool = False) -> Batches:
        return self._loader(getattr(self.splits, split), train)

    def _loader(self, data: TensorSet, train: bool = False) -> Batches:
        return Batches(data, self.cfg.dataset, self.cfg.budget.batch_size, self.device,
                       shuffle=train, augment=train, seed=self.cfg.seed)

    def _new_backbone(self) -> TappedBackbone:
        config = self.cfg.backbone_config
        return get_backbone(config.name).build(self.splits.num_classes, self.cfg.budget.dropout,
                                               dict(config.option_items()))

    def _to_device(self, model: nn.Module) -> nn.Module:
        return model.to(self.device, memory_format=torch.channels_last)

    # -------------------------------------------------------------------------- keys
    def float_key(self) -> str:
        """Registered weights are keyed by their hash; a pretraining by its own recipe alone."""
        identity = self.cfg.identity()
        identity.pop("training_version")
        if self.cfg.weights is not None:
            identity.pop("recipe")
            return config_hash({"stage": "float", **identity, "sha256": self.cfg.weights.sha256})
        identity.pop("pretrained")
        identity["recipe"] = self.cfg.budget.pretrain_recipe()
        return config_hash({"stage": "float", **identity, "pretrain_version": PRETRAIN_VERSION})

    def backbone_key(self, p: Precision) -> str:
        if p == FLOAT:
            return self.float_key()
        return config_hash({"stage": "qat", "float": self.float_key(), "precision": p.tag,
                            "identity": self.cfg.identity()})

    def head_key(self, p_backbone: Precision, mount: int, head: str, p_exit: Precision) -> str:
        return config_hash({"stage": "head", "backbone": self.backbone_key(p_backbone), "mount": mount,
                            "head": head, "precision": p_exit.tag})

    # --------------------------------------------------------------------- backbones
    def float_backbone(self) -> TappedBackbone:
        return self.backbone(FLOAT)

    def backbone(self, p: Precision) -> TappedBackbone:
        """The backbone at precision ``p`` (float pretrained, or QAT fine-tuned from it)."""
        if p not in self._backbones:
            key = self.backbone_key(p)
            model = quantize_backbone(self._new_backbone(), p)
            if p == FLOAT and self.cfg.weights is not None:
                entry = {"state_dict": self._registered_state()}
            else:
                self._install_shipped(p, key)
                entry = self.cache.get_or_build(
                    "backbone", key, lambda: self._train_backbone(p, key),
                    check=lambda d: model.load_state_dict(d["state_dict"]),
                )
            model.load_state_dict(entry["state_dict"])
            self._backbones[p] = self._to_device(model).eval()
        return self._backbones[p]

    def has_backbone(self, p: Precision) -> bool:
        """Whether backbone ``p`` needs no training: registered float weights, a shipped fine-tune, or cached."""
        if p == FLOAT and self.cfg.weights is not None:
            return True
        key = self.backbone_key(p)
        self._install_shipped(p, key)
        return self.cache.path("backbone", key).exists()

    def _install_shipped(self, p: Precision, key: str) -> None:
        """Copy the registered weights' shipped QAT fine-tune at ``p`` into the cache if it is the entry ``key``
        names (the same recipe, seed and data would train the same weights) and the cache lacks it."""
        weights = self.cfg.weights
        shipped = weights.qat.get(p.tag) if weights is not None and p != FLOAT else None
        if shipped is None or shipped["key"] != key or self.cache.path("backbone", key).exists():
            return
        from eenas.weights.files import load_state_dict

        log.info("backbone %s: the fine-tune shipped with %s (no QAT training)", p.tag, weights.tag)
        self.cache.save("backbone", key, {"state_dict": load_state_dict(weights, qat=p.tag),
                                          **{k: shipped[k] for k in ("seconds", "threads", "cpu") if k in shipped}})

    def _registered_state(self) -> dict[str, torch.Tensor]:
        from eenas.weights.files import load_state_dict

        weights = self.cfg.weights
        log.info("float backbone: registered weights %s (no pretraining)", weights.tag)
        state = load_state_dict(weights)
        try:
            self._new_backbone().load_state_dict(state)
        except RuntimeError as exc:
            raise EenasError(f"weights '{weights.name}' do not fit backbone {self.cfg.backbone_config} "
                             f"({str(exc).splitlines()[0]})") from None
        return state

    def _train_backbone(self, p: Precision, key: str) -> dict:
        b = self.cfg.budget
        if p == FLOAT:
            log.info("pretraining the float backbone (width %.2f, %d epochs)", self.cfg.width_mult, b.pretrain_epochs)
            torch.manual_seed(_seed_from(key))
            model = self._to_device(self._new_backbone())
            history: list[dict] = []
            fit(model, self._batches("train", train=True), b.pretrain_epochs, b.lr, one_cycle=True, desc="pretrain",
                label_smoothing=b.label_smoothing, amp=self.amp, checkpoint=self.cache.checkpoint("backbone", key),
                monitor=lambda: {"val_accuracy": self._accuracy(model, "val")}, monitor_every=PRETRAIN_EVAL_EVERY,
                history=history)
            self.trained.append(self.entry_name("backbone", (p,)))
            return {"state_dict": {k: v.cpu() for k, v in model.state_dict().items()}, "history": history,
                    "threads": torch.get_num_threads(), "cpu": cpu_name()}

        start = copy.deepcopy(self.float_backbone())  # may train it: seed and fix the threads only afterwards
        log.info("QAT fine-tuning the backbone at %s (%d epochs)", p.tag, b.qat_epochs)
        began = time.perf_counter()
        with training_threads():
            torch.manual_seed(_seed_from(key))
            model = self._to_device(quantize_backbone(start, p))
            calibrate(model, next(iter(self._batches("train")))[0])
            fit(model, self._batches("train", train=True), b.qat_epochs, b.lr * FINETUNE_LR_FACTOR,
                desc=f"QAT {p.tag}", label_smoothing=b.label_smoothing, amp=self.amp,
                checkpoint=self.cache.checkpoint("backbone", key))
        self.trained.append(self.entry_name("backbone", (p,)))
        return {"state_dict": {k: v.cpu() for k, v in model.state_dict().items()},
                "seconds": round(time.perf_counter() - began, 1), "threads": TRAINING_THREADS, "cpu": cpu_name()}

    def _accuracy(self, model: nn.Module, split: str) -> float:
        """Top-1 of ``model``'s last output on ``split`` (the model is left in training mode)."""
        logits = predict(model, self._batches(split), desc=f"accuracy {split}", amp=self.amp)[-1]
        model.train()
        return (logits.argmax(1) == getattr(self.splits, split).labels).float().mean().item()

    @staticmethod
    def entry_name(kind: str, args: tuple) -> str:
        """How :attr:`trained` names a ``backbone`` (args: precision) or ``head`` (args: a head id) entry."""
        if kind == "backbone":
            return f"backbone {args[0].tag}"
        _, mount, head, p_exit = args
        return f"head {head}@{mount} {p_exit.tag}"

    def train_entry(self, kind: str, args: tuple) -> dict:
        """Build the ``backbone`` (args: precision), ``head`` (args: a head id) or ``final`` (args: precision)
        entry without storing it.

        A cluster worker's job (eenas.train.cluster): the client stores what it returns.
        """
        if kind == "backbone":
            return self._train_backbone(args[0], self.backbone_key(args[0]))
        if kind == "final":
            return self._final_entry(args[0])
        return self._train_head(*args, self.head_key(*args))

    # --------------------------------------------------------------------- features
    def feature_bank(self, p: Precision) -> FeatureBank:
        if p not in self._banks:
            model, s = self.backbone(p), self.splits
            train, _ = self._extract(model, s.train.subset(self.cfg.budget.head_train_limit))
            val, val_final = self._extract(model, s.val)
            test, test_final = self._extract(model, s.test)
            self._banks[p] = FeatureBank(train, val, test, ExitLogits(val_final, test_final))
        return self._banks[p]

    @torch.no_grad()
    def _extract(self, model: TappedBackbone, data: TensorSet) -> tuple[dict[int, torch.Tensor], torch.Tensor]:
        """The output at every mount point (float16 on the CPU) and the final logits over ``data``."""
        mounts = self.network.mounts
        taps: dict[int, list[torch.Tensor]] = {m: [] for m in mounts}
        finals = []
        for x, _ in self._loader(data):
            with autocast(self.device, self.amp):
                out, final = model.taps(x, mounts)
            for m in mounts:
                taps[m].append(out[m].half().cpu())
            finals.append(final.float().cpu())
        return {m: torch.cat(v) for m, v in taps.items()}, torch.cat(finals)

    def final_logits(self, p: Precision) -> ExitLogits:
        """The backbone classifier's logits (the last exit, and the static network)."""
        entry = self.cache.get_or_build("final", self.final_key(p), lambda: self._final_entry(p))
        return ExitLogits(entry["val"], entry["test"])

    def final_key(self, p: Precision) -> str:
        return config_hash({"stage": "final", "backbone": self.backbone_key(p),
                            "eval_limit": self.cfg.budget.eval_limit})

    def _final_entry(self, p: Precision) -> dict:
        """From the feature bank when this process holds it (a cluster worker that trained the backbone's heads),
        else from the two evaluation splits alone: the training split's features are not needed."""
        if p in self._banks:
            final = self._banks[p].final
            return {"val": final.val, "test": final.test}
        model = self.backbone(p)
        return {split: self._extract(model, getattr(self.splits, split))[1] for split in ("val", "test")}

    # ---------------------------------------------------------------------- heads
    def exit_logits(self, p_backbone: Precision, mount: int, head: str, p_exit: Precision) -> ExitLogits:
        entry = self._head_entry(p_backbone, mount, head, p_exit)
        return ExitLogits(entry["val"], entry["test"])

    def head_training(self, p_backbone: Precision, mount: int, head: str, p_exit: Precision) -> HeadTraining:
        """How the head's training went: its checks and retries (trains it first if needed)."""
        return HeadTraining(**self._head_entry(p_backbone, mount, head, p_exit)["training"])

    def _head_entry(self, p_backbone: Precision, mount: int, head: str, p_exit: Precision) -> dict:
        key = self.head_key(p_backbone, mount, head, p_exit)
        return self.cache.get_or_build("head", key, lambda: self._train_head(p_backbone, mount, head, p_exit, key))

    def new_head(self, mount: int, head: str) -> nn.Module:
        unit = self.network.unit(mount)
        return build_head(head, unit.channels, unit.size, self.splits.num_classes)

    def _train_head(self, p_backbone: Precision, mount: int, head: str, p_exit: Precision, key: str) -> dict:
        """Float training on cached features, then (below 32 bits) a short QAT fine-tune; each stage must leave the
        head live (:meth:`_is_live`) or retry, else :class:`HeadDead`."""
        # May train the backbone: seed and fix the threads afterwards.
        bank = self.feature_bank(p_backbone)
        desc = f"head {head}@{mount}"
        with training_threads():
            data = self._head_data(bank.train[mount], key)
            model, schedule, float_acc = self._fit_live_head(data, mount, head, key, desc)
            qat_acc, qat_retries = None, 0
            if p_exit != FLOAT:
                model, qat_acc, qat_retries = self._fine_tune_live_head(model, data, p_exit, f"{desc} QAT {p_exit.tag}")
            logits = {}
            for split in ("val", "test"):
                feats = getattr(bank, split)[mount]
                batches = TensorBatches(feats, torch.zeros(len(feats), dtype=torch.long), 1024, self.device)
                logits[split] = predict(model, batches, amp=self.amp)[0]
        self.trained.append(self.entry_name("head", (p_backbone, mount, head, p_exit)))
        return {"state_dict": {k: v.cpu() for k, v in model.state_dict().items()}, **logits,
                "training": asdict(HeadTraining(schedule, float_acc, qat_acc, qat_retries))}

    def _head_data(self, feats: torch.Tensor, key: str) -> HeadData:
        return split_head_features(feats, self.splits.train.labels[: len(feats)], self.cfg.budget.batch_size,
                                   self.device, _seed_from(key))

    def _held_back_accuracy(self, model: nn.Module, data: HeadData) -> float:
        """Top-1 in eval mode on the held-back training features (BN running statistics, folded under QAT)."""
        logits = predict(model.eval(), data.check, amp=self.amp)[0]
        return (logits.argmax(1) == data.check.y).float().mean().item()

    def _is_live(self, accuracy: float, data: HeadData) -> bool:
        if len(data.check.y) < HEAD_CHECK_MIN_SAMPLES:
            return True
        return accuracy >= LIVE_HEAD_CHANCE_FACTOR / self.splits.num_classes

    def _fit_live_head(self, data: HeadData, mount: int, head: str, key: str,
                       desc: str) -> tuple[nn.Module, int, float]:
        """Float-train a head from its seeded initial weights, on the next of :func:`head_schedules` while it ends dead.

        Returns the head, the index of its schedule and its held-back accuracy; raises :class:`HeadDead` when every
        schedule ends dead.
        """
        epochs, tried = self.cfg.budget.head_epochs, []
        schedules = head_schedules(head)
        for attempt, (lr, warm_up) in enumerate(schedules):
            torch.manual_seed(_seed_from(key))
            data.train.gen.manual_seed(_seed_from(key))  # each schedule sees the same batches
            model = self.new_head(mount, head).to(self.device)
            fit(model, data.train, epochs, lr, one_cycle=warm_up, desc=desc, amp=self.amp)
            acc = self._held_back_accuracy(model, data)
            if self._is_live(acc, data):
                return model, attempt, acc
            tried.append(f"{acc:.3f} at lr {lr:g}{' with warm-up' if warm_up else ''}")
            log.warning("%s is dead after float training (held-back accuracy %s, live from %.3f)%s", desc, tried[-1],
                        LIVE_HEAD_CHANCE_FACTOR / self.splits.num_classes,
                        "; retraining" if attempt + 1 < len(schedules) else "")
        raise HeadDead(f"{desc}: dead after float training under every schedule (held-back accuracy "
                       f"{'; '.join(tried)})")

    def _fine_tune_live_head(self, head: nn.Module, data: HeadData, p_exit: Precision,
                             desc: str) -> tuple[nn.Module, float, int]:
        """QAT fine-tune of a live float head at ``HEAD_QAT_LR``, redone once from the float head at
        ``HEAD_QAT_RETRY_LR`` when it ends dead.

        Returns the quantized head, its held-back accuracy and the retries; raises :class:`HeadDead` when both end
        dead.
        """
        tried = []
        for retry, lr in enumerate((HEAD_QAT_LR, HEAD_QAT_RETRY_LR)):
            model = quantize_head(copy.deepcopy(head), p_exit).to(self.device)  # converts in place
            calibrate(model, next(iter(data.train))[0])
            fit(model, data.train, self.cfg.budget.head_qat_epochs, lr, desc=desc, amp=self.amp)
            acc = self._held_back_accuracy(model, data)
            if self._is_live(acc, data):
                return model, acc, retry
            tried.append(f"{acc:.3f} at lr {lr:g}")
            log.warning("%s: the head is dead after its QAT fine-tune (held-back accuracy %s)%s", desc, tried[-1],
                        "; retrying at a lower rate" if retry == 0 else "")
        raise HeadDead(f"{desc}: dead after the QAT fine-tune (held-back accuracy {'; '.join(tried)})")

    def load_head(self, p_backbone: Precision, mount: int, head: str, p_exit: Precision) -> nn.Module:
        """The trained head module (trains it first if needed)."""
        key = self.head_key(p_backbone, mount, head, p_exit)
        self.exit_logits(p_backbone, mount, head, p_exit)
        model = self.new_head(mount, head)
        if p_exit != FLOAT:
            model = quantize_head(model, p_exit)
        model.load_state_dict(self.cache.load("head", key)["state_dict"])
        return model

    # ------------------------------------------------------------------------ arch
    def arch_logits(self, arch: Arch, joint: bool = False) -> list[ExitLogits]:
        """Logits of every exit of ``arch``, the backbone's classifier last: for a network that ends at its last
        exit the QAT backbone's own, which gives the static accuracy (no sample reaches it)."""
        q = arch.quant
        if joint and arch.exits:
            outs = self._joint_logits(arch)
        else:
            outs = [self.exit_logits(q.backbone, e.after_block, e.head, q.exits) for e in arch.exits]
        return outs if len(outs) > len(arch.exits) else [*outs, self.final_logits(q.backbone)]

    def _joint_logits(self, arch: Arch) -> list[ExitLogits]:
        entry = self._joint(arch)
        return [ExitLogits(v, t) for v, t in zip(entry["val"], entry["test"])]

    def joint_network(self, arch: Arch) -> EarlyExitNet:
        """The arch's network after the joint fine-tune, on the CPU in eval mode (what ``eenas export`` writes).

        A cache entry written before fine-tunes kept their weights has logits only: it is fine-tuned again.
        """
        net = self._joint_net(arch)
        net.load_state_dict(self._joint(arch, weights=True)["state_dict"])
        return net.cpu().float().eval()

    def _joint_net(self, arch: Arch) -> EarlyExitNet:
        q = arch.quant
        modules = {e.after_block: self.load_head(q.backbone, e.after_block, e.head, q.exits) for e in arch.exits}
        return EarlyExitNet(copy.deepcopy(self.backbone(q.backbone)), modules, arch.ends_at_exit)  # may train heads

    def _joint(self, arch: Arch, weights: bool = False) -> dict:
        """The joint fine-tune's cache entry: validation and test logits and the fine-tuned weights."""
        q = arch.quant
        # A network that ends at its last exit fine-tunes without the classifier's loss: another entry.
        key = config_hash({"stage": "joint", "backbone": self.backbone_key(q.backbone),
                           "heads": [self.head_key(q.backbone, e.after_block, e.head, q.exits) for e in arch.exits],
                           **({"ends_at_exit": True} if arch.ends_at_exit else {})})

        def build() -> dict:
            net = self._to_device(self._joint_net(arch))  # may train: seed and fix the threads afterwards
            b = self.cfg.budget
            with training_threads():
                torch.manual_seed(_seed_from(key))
                fit(net, self._batches("train", train=True), b.joint_epochs, b.lr * FINETUNE_LR_FACTOR,
                    desc="joint", amp=self.amp)
                split_logits = {s: predict(net, self._batches(s), desc=f"joint {s}", amp=self.amp)
                                for s in ("val", "test")}
            self.trained.append("joint fine-tune")
            return {**split_logits, "state_dict": {k: v.cpu() for k, v in net.state_dict().items()}}

        def has_weights(entry: dict) -> None:
            if "state_dict" not in entry:
                raise ValueError("written before joint fine-tunes kept their weights")

        return self.cache.get_or_build("joint", key, build, has_weights if weights else None)
