"""``eenas pretrain``, ``evaluate`` and ``export``: commands that train or read a network's weights."""

from __future__ import annotations

from pathlib import Path

import click

from eenas.arch import DATASET_CLASSES
from eenas.cli.group import cli
from eenas.cli.options import (
    AMP_OPTION,
    ARCH_HARDWARE_OPTION,
    BACKBONE_OPTION,
    FINETUNE_OPTION,
    PRETRAINED_OPTION,
    WEIGHTS_OPTION,
    allocation_cache,
    arch_pipeline,
    backbone_config,
    cluster_options,
    make_pipeline,
    parse_precisions,
    trained_line,
    training_options,
)
from eenas.report.tables import markdown


@cli.command()
@click.option("--dataset", type=click.Choice(list(DATASET_CLASSES)), default="cifar10", show_default=True)
@click.option("--width-mult", type=float, default=None, help="Backbone width (default: the budget's).")
@click.option("--precisions", default="w8a8", show_default=True,
              help="Comma-separated backbone precisions to QAT fine-tune as well, e.g. w8a8,w4a4 ('' for none).")
@click.option("--epochs", type=int, default=None,
              help="Float pretraining epochs (default: the budget's); the budget's other fields stay.")
@cluster_options("the float backbone and then the QAT fine-tunes in parallel")
@BACKBONE_OPTION
@PRETRAINED_OPTION
@AMP_OPTION
@training_options
def pretrain(dataset, width_mult, precisions, epochs, workers, scheduler, backbone, pretrained, amp, budget, data_dir,
             cache_dir, device, seed) -> None:
    """Pretrain the float backbone (cached) and QAT fine-tune it at the given precisions."""
    import pandas as pd

    from eenas.scoring import top1
    from eenas.train.pipeline import FLOAT

    pipe = make_pipeline(dataset, budget, width_mult, data_dir, cache_dir, device, seed, amp, backbone_config(backbone),
                         epochs, pretrained)
    targets = [FLOAT, *parse_precisions(precisions)]
    if workers is not None or scheduler is not None:
        from eenas.train.cluster import pretrain_backbones

        pretrain_backbones(pipe, targets, workers, scheduler)
    rows = []
    for p in targets:
        logits, labels = pipe.final_logits(p), pipe.labels()
        rows.append({"backbone": p.tag, "val_accuracy": top1(logits.val, labels.val),
                     "test_accuracy": top1(logits.test, labels.test),
                     "cache_key": pipe.backbone_key(p)})
    click.echo(pd.DataFrame(rows).to_markdown(index=False, floatfmt=".4f"))
    click.echo(f"trained: {', '.join(pipe.trained) or 'nothing (all cached)'}")


@cli.command()
@click.option("--arch", "arch_path", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="Arch file (arch.json) to train and evaluate.")
@FINETUNE_OPTION
@ARCH_HARDWARE_OPTION
@WEIGHTS_OPTION
@click.option("--json", "json_path", is_flag=False, flag_value="", default=None, metavar="[PATH]",
              help="Also write the results as JSON, to PATH or else to <arch>.eval.json beside the arch.")
@click.option("--force", is_flag=True, help="Let --json overwrite a file that 'eenas evaluate' did not write.")
@PRETRAINED_OPTION
@AMP_OPTION
@training_options
@click.pass_context
def evaluate(ctx, arch_path, finetune, hardware, weights, json_path, force, pretrained, amp, budget, data_dir,
             cache_dir, device, seed) -> None:
    """Train (or load from cache) what an arch needs and report it on the test split.

    --budget, --seed, --finetune, --amp and --pretrained default to the arch file's training block, when it has one.
    """
    from eenas.arch import load_arch
    from eenas.evaluate import check_writable, eval_path, evaluate_arch, save_evaluation

    arch = load_arch(arch_path)
    out = None if json_path is None else Path(json_path) if json_path else eval_path(arch_path)
    if out is not None:
        check_writable(out, force)
    pipe, settings = arch_pipeline(ctx, arch, arch_path, data_dir, cache_dir, device, budget=budget, seed=seed,
                                   finetune=finetune, amp=amp, pretrained=pretrained)
    with allocation_cache(cache_dir):
        result = evaluate_arch(arch, pipe, joint=settings["finetune"] == "joint", hardware=hardware, weights=weights)
    click.echo(markdown(result.exits))
    click.echo(
        f"\naccuracy {result.accuracy:.4f} (validation {result.val_accuracy:.4f}; "
        f"static backbone {result.static_accuracy:.4f})\n"
        f"average ET {result.average_et:.4g} pJ*cycles (product of averages {result.product_of_averages_et:.4g}); "
        f"static ET {result.static_et:.4g}; ET ratio {result.et_ratio:.3f}\n"
        f"trained: {', '.join(result.trained) or 'nothing (all cached)'}"
    )
    if out is not None:
        click.echo(f"wrote {save_evaluation(result, out)}")


@cli.command("export")
@click.option("--arch", "arch_path", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="Arch file (arch.json) to train (or load) and export.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Folder for model.onnx, stage_<i>.onnx and manifest.json.")
@FINETUNE_OPTION
@PRETRAINED_OPTION
@AMP_OPTION
@training_options
@click.pass_context
def export_cmd(ctx, arch_path, out, finetune, pretrained, amp, budget, data_dir, cache_dir, device, seed) -> None:
    """Export an arch's quantized early-exit network to ONNX and check it with onnxruntime on the test split.

    --budget, --seed, --finetune, --amp and --pretrained default to the arch file's training block, when it has one.
    """
    from eenas.arch import load_arch
    from eenas.export import export, require_onnx

    require_onnx()
    arch = load_arch(arch_path)
    pipe, settings = arch_pipeline(ctx, arch, arch_path, data_dir, cache_dir, device, budget=budget, seed=seed,
                                   finetune=finetune, amp=amp, pretrained=pretrained)
    result = export(arch, pipe, out, settings["finetune"])
    p = result.parity
    click.echo(f"onnxruntime against PyTorch on {p.samples} test images: exit decisions agree on "
               f"{100 * p.decisions_agree:.2f}%; max logit difference per exit "
               f"{', '.join(f'{d:.3g}' for d in p.max_logit_diff)} (one step: "
               f"{', '.join(f'{s:.3g}' for s in p.logit_step)})")
    click.echo(f"{trained_line(pipe)}\nwrote {result.files.model}, {len(result.files.stages)} stage graphs, "
               f"{result.manifest}")
