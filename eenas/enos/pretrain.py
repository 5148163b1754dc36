"""Float pretraining of an ENOS network: the weights that the runs of a budget start from.

The network is the float form of the searchable one (:func:`~eenas.enos.networks.float_network`:
a BatchNorm after every conv and FC layer), trained from scratch on the training part of the
fixed split (``SPLIT_SEED``) by one-cycle SGD with crop-and-flip augmentation and label smoothing
(the budget's :class:`~eenas.enos.budget.PretrainRecipe`).  It is cached under ``enos-float``
and checkpointed after every epoch, so a run of hours resumes where it was stopped; the cache
entry keeps the validation accuracy every few epochs, the wall time, the thread count and the
CPU, which ``eenas enos pretrain --publish`` turns into a weights entry.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, replace

import torch

from eenas.enos.networks import float_network
from eenas.enos.search import SPLIT_SEED, VAL_FRACTION, EnosConfig, Workspace, network_options
from eenas.machine import cpu_name
from eenas.precision import FLOAT
from eenas.scoring import top1
from eenas.train.cache import Cache, config_hash
from eenas.train.loops import ONE_CYCLE_RECIPE, fit, predict
from eenas.train.pipeline import amp_name
from eenas.weights.files import load_state_dict, save_state_dict
from eenas.weights.registry import WeightsEntry, WeightsRegistry, sha256_of

log = logging.getLogger(__name__)

PRETRAIN_VERSION = 1  # part of the key: bump it when a change alters the pretrained weights
CACHE_KIND = "enos-float"
# What the pretraining fixes besides the budget's recipe (PRETRAIN_VERSION names this version of it).
FIXED_RECIPE = {**ONE_CYCLE_RECIPE, "pretrain_version": PRETRAIN_VERSION}


def pretrain_key(ws: Workspace) -> str:
    """What determines the weights: network and size, data, the pretraining recipe and seed (not the search's)."""
    cfg, b = ws.cfg, ws.budget
    return config_hash({"stage": CACHE_KIND, "version": PRETRAIN_VERSION, "model": cfg.model,
                        "size": asdict(b.size(cfg.model)), "dataset": cfg.dataset,
                        "split": {"seed": SPLIT_SEED, "val_fraction": VAL_FRACTION},
                        "train_limit": b.train_limit, "batch_size": b.batch_size, "recipe": asdict(b.pretrain),
                        "seed": cfg.seed, "amp": str(ws.amp)})


def pretrained(ws: Workspace, cache: Cache) -> dict:
    """The cached float network of ``ws``'s model and budget, trained (or resumed) first if need be.

    Returns ``state_dict``, ``history`` (validation accuracy every few epochs with the wall seconds),
    ``val_accuracy``, ``test_accuracy``, ``threads`` and ``cpu``.
    """
    key = pretrain_key(ws)
    return cache.get_or_build(CACHE_KIND, key, lambda: _train(ws, cache, key))


def pretrain_float(cfg: EnosConfig, cache_dir: str | None = None) -> dict:
    """``eenas enos pretrain``: :func:`pretrained` for ``cfg``'s model, dataset, budget and seed."""
    return pretrained(Workspace(replace(cfg, pretrained="none")), Cache(cache_dir))


def publish_float(cfg: EnosConfig, name: str, cache_dir: str | None = None, registry: WeightsRegistry | None = None,
                  notes: str = "") -> WeightsEntry:
    """Register ``cfg``'s pretrained float network (trained first if need be) as weights entry ``name``.

    The file is stored in float16; the entry's accuracies are measured on that file.
    """
    registry = registry or WeightsRegistry()
    ws = Workspace(replace(cfg, pretrained="none"))
    trained = pretrained(ws, Cache(cache_dir))
    file = save_state_dict(trained["state_dict"], registry.root / f"{name}.pt")
    history = tuple(trained["history"])
    b = ws.budget
    net = float_network(cfg.model, ws.splits.num_classes, ws.size)
    entry = WeightsEntry(
        name=name, dataset=cfg.dataset, backbone=cfg.model, options=network_options(cfg.model, ws.size),
        file=file.name, sha256=sha256_of(file), parameters=sum(p.numel() for p in net.parameters()),
        split={"seed": SPLIT_SEED, "val_fraction": VAL_FRACTION},
        recipe={"pretrain_epochs": b.pretrain.epochs, "lr": b.pretrain.lr, "batch_size": b.batch_size,
                "label_smoothing": b.pretrain.label_smoothing, "train_limit": b.train_limit, "seed": cfg.seed,
                **FIXED_RECIPE, "amp": amp_name(ws.amp)},
        command=(f"OMP_NUM_THREADS={trained['threads']} eenas enos pretrain --model {cfg.model} "
                 f"--dataset {cfg.dataset} --budget {cfg.budget} --seed {cfg.seed}"),
        wall_time_s=history[-1]["seconds"] if history else 0.0, cpu=trained["cpu"], threads=trained["threads"],
        history=history, notes=notes,
    )
    net.load_state_dict(load_state_dict(entry, registry))
    net = net.to(ws.device, memory_format=torch.channels_last).eval()
    accuracy = {split: round(_accuracy(net, ws, split), 4) for split in ("val", "test")}
    entry = replace(entry, accuracy={FLOAT.tag: accuracy})
    registry.save(entry)
    log.info("registered %s: %s", entry.tag, entry.accuracy)
    return entry


def _accuracy(net: torch.nn.Module, ws: Workspace, split: str) -> float:
    logits = predict(net, ws.batches(split), desc=f"accuracy {split}", amp=ws.amp)[0]
    return top1(logits, getattr(ws.splits, split).labels)


def _train(ws: Workspace, cache: Cache, key: str) -> dict:
    cfg, recipe = ws.cfg, ws.budget.pretrain
    size = ws.budget.size(cfg.model)
    log.info("pretraining float %s (width %g, units %s) for %d epochs", cfg.model, size.width, size.repeats,
             recipe.epochs)
    torch.manual_seed(cfg.seed)
    net = float_network(cfg.model, ws.splits.num_classes, size).to(ws.device, memory_format=torch.channels_last)
    history: list[dict] = []
    fit(net, ws.batches("train", train=True), recipe.epochs, recipe.lr, one_cycle=True, desc="pretrain",
        label_smoothing=recipe.label_smoothing, amp=ws.amp, checkpoint=cache.checkpoint(CACHE_KIND, key),
        monitor=lambda: {"val_accuracy": _accuracy(net, ws, "val")}, monitor_every=recipe.monitor_every,
        history=history)
    result = {"state_dict": {k: v.cpu() for k, v in net.state_dict().items()}, "history": history,
              "val_accuracy": _accuracy(net, ws, "val"), "test_accuracy": _accuracy(net, ws, "test"),
              "threads": torch.get_num_threads(), "cpu": cpu_name()}
    log.info("float %s: val accuracy %.4f, test accuracy %.4f", cfg.model, result["val_accuracy"],
             result["test_accuracy"])
    return result
