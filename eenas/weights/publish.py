"""``eenas weights publish``: turn a float backbone that ``eenas pretrain`` trained into a registry entry.

The entry's accuracies are measured by the shipped code on the shipped (float16) file: the float
network, and each QAT fine-tune started from it with the QAT recipe of ``qat_budget``.
"""

from __future__ import annotations

import logging
from dataclasses import replace

from eenas.errors import EenasError
from eenas.machine import cpu_name
from eenas.precision import Precision
from eenas.scoring import top1
from eenas.train.loops import ONE_CYCLE_RECIPE
from eenas.train.pipeline import FLOAT, PRETRAIN_VERSION, Pipeline, TrainConfig
from eenas.weights.files import save_state_dict
from eenas.weights.registry import WeightsEntry, WeightsRegistry, sha256_of

log = logging.getLogger(__name__)

# What the pretraining fixes besides the budget's recipe (PRETRAIN_VERSION names this version of it).
FIXED_RECIPE = {**ONE_CYCLE_RECIPE, "pretrain_version": PRETRAIN_VERSION}


def reproduce_command(cfg: TrainConfig, threads: int) -> str:
    options = dict(cfg.backbone_config.option_items())
    width = f" --width-mult {options['width_mult']}" if "width_mult" in options else ""
    return (f"OMP_NUM_THREADS={threads} eenas pretrain --dataset {cfg.dataset} --backbone {cfg.backbone}{width} "
            f"--budget {cfg.budget.name} --epochs {cfg.budget.pretrain_epochs} --seed {cfg.seed} --precisions '' "
            "--pretrained none")


def publish(name: str, source: Pipeline, qat_budget_cfg: TrainConfig, precisions: list[Precision],
            registry: WeightsRegistry, threads: int | None = None, cpu: str | None = None,
            notes: str = "", ship_qat: bool = False) -> WeightsEntry:
    """Write ``source``'s cached float backbone as entry ``name`` of ``registry`` and measure it.

    ``qat_budget_cfg`` is the configuration the accuracies are measured with (its ``pretrained`` is
    replaced by ``name``); ``threads`` and ``cpu`` are needed only for a backbone whose cache entry does
    not record them.  ``ship_qat`` also stores the QAT fine-tunes that measured the quantized accuracies,
    so that runs on ``qat_budget_cfg``'s recipe and seed start from them instead of training them.
    """
    if source.cfg.weights is not None:
        raise EenasError("weights publish: the source must be a pretraining (--pretrained none)")
    trained = source.cache.load("backbone", source.float_key())
    if trained is None:
        raise EenasError(f"weights publish: no trained float backbone for this configuration in {source.cache.root} "
                         f"(train it first: {reproduce_command(source.cfg, threads or 1)})")
    threads = trained.get("threads", threads)
    if threads is None:
        raise EenasError("weights publish: the cached backbone does not record its thread count; pass --threads")
    history = tuple(trained.get("history", ()))
    file = registry.root / f"{name}.pt"
    save_state_dict(trained["state_dict"], file)
    model = source.float_backbone()
    options = dict(source.cfg.backbone_config.option_items())
    entry = WeightsEntry(
        name=name, dataset=source.cfg.dataset, backbone=source.cfg.backbone, options=options, file=file.name,
        sha256=sha256_of(file), parameters=sum(p.numel() for p in model.parameters()),
        split={"seed": source.cfg.seed, "val_fraction": source.cfg.identity()["val_fraction"]},
        recipe={**source.cfg.budget.pretrain_recipe(), **FIXED_RECIPE, "amp": source.cfg.identity()["amp"]},
        command=reproduce_command(source.cfg, threads), wall_time_s=history[-1]["seconds"] if history else 0.0,
        cpu=cpu or trained.get("cpu") or cpu_name(), threads=threads, history=history,
        qat_budget=qat_budget_cfg.budget.name, notes=notes,
    )
    registry.save(entry)  # the measuring pipeline resolves it by name
    measure = Pipeline(replace(qat_budget_cfg, pretrained=name))
    accuracy = {}
    for p in [FLOAT, *precisions]:
        logits, labels = measure.final_logits(p), measure.labels()
        accuracy[p.tag] = {split: round(top1(getattr(logits, split), getattr(labels, split)), 4)
                           for split in ("val", "test")}
        log.info("%s %s: %s", name, p.tag, accuracy[p.tag])
    entry = replace(entry, accuracy=accuracy, qat=ship_fine_tunes(name, measure, precisions, registry)
                    if ship_qat else {})
    registry.save(entry)
    return entry


def ship_fine_tunes(name: str, measure: Pipeline, precisions: list[Precision],
                    registry: WeightsRegistry) -> dict[str, dict]:
    """Store ``measure``'s cached QAT backbones beside entry ``name`` (float32: they stand in for cache entries
    bit for bit), each with the cache key it answers and the wall time its cache entry records."""
    shipped = {}
    for p in precisions:
        key = measure.backbone_key(p)
        cached = measure.cache.load("backbone", key)
        if cached is None or "seconds" not in cached:
            raise EenasError(f"weights publish --ship-qat: the {p.tag} fine-tune in {measure.cache.root} does not "
                             "record its wall time (an older cache entry); publish from a cache without it")
        file = registry.root / f"{name}.{p.tag}.pt"
        save_state_dict(cached["state_dict"], file, half=False)
        shipped[p.tag] = {"file": file.name, "sha256": sha256_of(file), "key": key,
                          "budget": measure.cfg.budget.name, "seconds": cached["seconds"],
                          "threads": cached["threads"], "cpu": cached["cpu"]}
    return shipped
