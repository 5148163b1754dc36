"""Exit-head recipes on real cached features (issue 28): which float schedule makes every head learn.

Each head type at each chosen mount is trained from seeded initial weights under every candidate float
schedule, then fine-tuned with QAT at the exit precision (the pipeline's second stage), on the feature bank
of a real backbone.  After each stage it records what the pipeline checks (top-1 on held-back training
features in eval mode), the validation top-1, and the share of ReLU6 channels that are dead (zero on every
held-back input: how the dead heads found in the cache looked).  Schedules are compared on validation only.

    EENAS_DATA=../shared/datasets/cifar10 OMP_NUM_THREADS=1 python benchmarks/head_recipes.py \
        --out benchmarks/results/head_recipes
"""

from __future__ import annotations

import argparse
import copy
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path

import matplotlib
import pandas as pd
import torch
from scipy import stats
from torch import nn

from eenas.cli.options import parse_precisions
from eenas.io import write_text
from eenas.models.spec import HEADS
from eenas.quant import calibrate, quantize_head
from eenas.train.budget import get_budget
from eenas.train.loops import TensorBatches, fit, predict
from eenas.train.pipeline import HEAD_QAT_LR, LIVE_HEAD_CHANCE_FACTOR, Pipeline, TrainConfig, split_head_features

matplotlib.use("Agg")
log = logging.getLogger("head_recipes")

# name: (peak lr, one-cycle warm-up); "plain" is the pipeline's first schedule before this study.
SCHEDULES = {"plain": (0.05, False), "warmup": (0.05, True), "low": (0.01, False), "low-warmup": (0.01, True),
             "lower": (0.003, False)}


@dataclass(frozen=True)
class Stage:
    check: float  # top-1 on the held-back training features, eval mode
    val: float
    dead_relu: float  # share of ReLU6 channels zero on every held-back input (nan: the head has none)


def dead_relu_share(model: nn.Module, feats: torch.Tensor) -> float:
    """Share of the channels of every ReLU6 whose output is zero on all of ``feats`` (eval mode)."""
    peaks: list[torch.Tensor] = []
    hooks = [m.register_forward_hook(lambda _m, _i, out: peaks.append(out.amax(dim=[d for d in range(out.dim())
                                                                                      if d != 1])))
             for m in model.modules() if isinstance(m, nn.ReLU6)]
    if not hooks:
        return math.nan
    with torch.no_grad():
        model.eval()(feats.float())
    for h in hooks:
        h.remove()
    return torch.cat([(p <= 0).float() for p in peaks]).mean().item()


def top1(model: nn.Module, feats: torch.Tensor, labels: torch.Tensor) -> float:
    batches = TensorBatches(feats, labels, 1024, torch.device("cpu"))
    return (predict(model.eval(), batches)[0].argmax(1) == labels).float().mean().item()


def measure(model: nn.Module, check: tuple[torch.Tensor, torch.Tensor], val: tuple[torch.Tensor, torch.Tensor]
            ) -> Stage:
    return Stage(top1(model, *check), top1(model, *val), dead_relu_share(model, check[0][:1024]))


def run_one(pipeline: Pipeline, p_backbone, p_exit, mount: int, head: str, schedule: str,
            seed: int) -> dict:
    bank, budget = pipeline.feature_bank(p_backbone), pipeline.cfg.budget
    feats = bank.train[mount]
    data = split_head_features(feats, pipeline.splits.train.labels[: len(feats)], budget.batch_size, pipeline.device,
                               seed)
    train, check, val = data.train, (data.check.x, data.check.y), (bank.val[mount], pipeline.splits.val.labels)
    lr, warm_up = SCHEDULES[schedule]
    torch.manual_seed(seed)
    model = pipeline.new_head(mount, head)
    start = time.perf_counter()
    fit(model, train, budget.head_epochs, lr, one_cycle=warm_up, desc=f"{head}@{mount} {schedule}")
    float_stage = measure(model, check, val)
    qat = quantize_head(copy.deepcopy(model), p_exit)
    calibrate(qat, next(iter(train))[0])
    fit(qat, train, budget.head_qat_epochs, HEAD_QAT_LR, desc=f"{head}@{mount} QAT")
    qat_stage = measure(qat, check, val)
    row = {"mount": mount, "head": head, "schedule": schedule, "seed": seed,
           "channels": tuple(feats.shape[1:]), "seconds": round(time.perf_counter() - start, 1)}
    for name, stage in (("float", float_stage), ("qat", qat_stage)):
        row |= {f"{name}_check": stage.check, f"{name}_val": stage.val, f"{name}_dead_relu": stage.dead_relu}
    log.info("%s", row)
    return row


def summarise(rows: pd.DataFrame, chance: float) -> pd.DataFrame:
    """Per mount x head x schedule: dead heads by stage, and mean validation top-1 with a 95% t-interval (over seeds:
    the spread of the head's initialisation and batch order, on one backbone)."""
    bar = LIVE_HEAD_CHANCE_FACTOR * chance

    def one(g: pd.DataFrame) -> pd.Series:
        out = {"n": len(g), "dead_float": int((g.float_check < bar).sum()), "dead_qat": int((g.qat_check < bar).sum())}
        for stage in ("float", "qat"):
            v = g[f"{stage}_val"]
            half = stats.t.ppf(0.975, len(v) - 1) * v.std(ddof=1) / math.sqrt(len(v)) if len(v) > 1 else math.nan
            out |= {f"{stage}_val_mean": v.mean(), f"{stage}_val_ci95": half, f"{stage}_val_min": v.min()}
        out["dead_relu_mean"] = g.float_dead_relu.mean()
        return pd.Series(out)

    return rows.groupby(["mount", "head", "schedule"], sort=True).apply(one).reset_index()


def plot(rows: pd.DataFrame, chance: float, path: Path) -> Path:
    """Validation top-1 after QAT by mount, one panel per head: every seed a dot, the mean a line."""
    import matplotlib.pyplot as plt

    heads = list(dict.fromkeys(rows["head"]))
    fig, axes = plt.subplots(1, len(heads), figsize=(3.4 * len(heads), 3.4), sharey=True, squeeze=False)
    for ax, head in zip(axes[0], heads):
        part = rows[rows["head"] == head]
        for i, (schedule, g) in enumerate(part.groupby("schedule", sort=True)):
            lr, warm_up = SCHEDULES[schedule]
            label = f"{schedule} (lr {lr:g}{', warm-up' if warm_up else ''})"
            ax.scatter(g["mount"], 100 * g["qat_val"], s=14, alpha=0.6, color=f"C{i}")
            mean = g.groupby("mount")["qat_val"].mean()
            ax.plot(mean.index, 100 * mean.values, marker="_", markersize=14, color=f"C{i}", label=label)
        ax.set_title(head)
        ax.set_xlabel("mount (after block)")
        ax.set_xticks(sorted(part["mount"].unique()))
        ax.set_ylim(0, 100)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("validation top-1 after QAT (%)")
    axes[0][0].axhline(100 * LIVE_HEAD_CHANCE_FACTOR * chance, color="grey", lw=0.8, ls=":")
    axes[0][-1].legend(title="float schedule", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/head_recipes"))
    ap.add_argument("--budget", default="quick")
    ap.add_argument("--pretrained", default="auto", help="Float weights (a registry name, or auto).")
    ap.add_argument("--cache-dir", default=None)
    ap.add_argument("--mounts", default="1,2,3,7")
    ap.add_argument("--heads", default=",".join(HEADS))
    ap.add_argument("--schedules", default=",".join(SCHEDULES))
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--backbone-precision", default="w8a8")
    ap.add_argument("--exit-precision", default="w8a8")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    cfg = TrainConfig("cifar10", get_budget(args.budget), get_budget(args.budget).width_mult, cache_dir=args.cache_dir,
                      pretrained=args.pretrained)
    pipeline = Pipeline(cfg)
    (p_backbone,), (p_exit,) = parse_precisions(args.backbone_precision), parse_precisions(args.exit_precision)
    args.out.mkdir(parents=True, exist_ok=True)
    raw = args.out / "runs.csv"
    done = pd.read_csv(raw) if raw.exists() else pd.DataFrame()
    rows = done.to_dict("records")
    seen = {(r["mount"], r["head"], r["schedule"], r["seed"]) for r in rows}
    for mount in map(int, args.mounts.split(",")):
        for head in args.heads.split(","):
            for schedule in args.schedules.split(","):
                for seed in map(int, args.seeds.split(",")):
                    if (mount, head, schedule, seed) in seen:
                        continue
                    rows.append(run_one(pipeline, p_backbone, p_exit, mount, head, schedule, seed))
                    write_text(raw, pd.DataFrame(rows).to_csv(index=False))  # resumable: one row per finished run
    table = pd.DataFrame(rows)
    chance = 1 / pipeline.splits.num_classes
    summary = summarise(table, chance)
    write_text(args.out / "summary.csv", summary.to_csv(index=False))
    write_text(args.out / "summary.md", summary.to_markdown(index=False, floatfmt=".3f") + "\n")
    plot(table, chance, args.out / "head_recipes.png")
    print(summary.to_markdown(index=False, floatfmt=".3f"))


if __name__ == "__main__":
    main()
