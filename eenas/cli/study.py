"""``eenas study``: analyses as commands (tables and figures)."""

from __future__ import annotations

from pathlib import Path

import click

from eenas.arch import DATASET_CLASSES
from eenas.cli.group import cli
from eenas.cli.options import (
    AMP_OPTION,
    ARCH_HARDWARE_OPTION,
    BACKBONE_OPTION,
    HARDWARE_OPTION,
    PRETRAINED_OPTION,
    WEIGHTS_OPTION,
    allocation_cache,
    arch_pipeline,
    backbone_config,
    int_list,
    make_pipeline,
    trained_line,
    training_options,
)
from eenas.errors import EenasError
from eenas.hardware.allocation import ALLOCATIONS, DEFAULT_ALLOCATION
from eenas.report.tables import markdown


@cli.group()
def study() -> None:
    """Analyses as commands: tables (CSV + markdown) and PNG figures (docs/studies.md)."""


@study.command("precision")
@click.option("--arch", "arch_path", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="Arch file (arch.json) whose exits, heads and thresholds every precision keeps.")
@click.option("--dataset", type=click.Choice(list(DATASET_CLASSES)), default=None, help="Default: the arch's.")
@ARCH_HARDWARE_OPTION
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Output folder (default: <arch>_precision beside the arch file).")
@PRETRAINED_OPTION
@AMP_OPTION
@training_options
@click.pass_context
def study_precision(ctx, arch_path, dataset, hardware, out, pretrained, amp, budget, data_dir, cache_dir, device,
                    seed) -> None:
    """One arch at (backbone, exits) bit-widths 32/32, 8/8, 8/4, 4/8 and 4/4: accuracy, exit ratios, ET.

    --budget, --seed, --amp and --pretrained default to the arch file's training block, when it has one.
    """
    from dataclasses import replace

    from eenas.arch import load_arch
    from eenas.study import run_precision_study, write_precision_study

    arch = load_arch(arch_path)
    arch = replace(arch, dataset=dataset or arch.dataset, hardware=hardware or arch.hardware)
    pipe, _ = arch_pipeline(ctx, arch, arch_path, data_dir, cache_dir, device, budget=budget, seed=seed, amp=amp,
                            pretrained=pretrained)
    result = run_precision_study(arch, pipe)
    out = out or arch_path.with_name(f"{arch_path.stem}_precision")
    write_precision_study(result, out)
    columns = ["config", "accuracy", "static_accuracy", "exit_ratios", "mean_exit_block", "average_et", "et_ratio"]
    click.echo(markdown(result.summary()[columns]))
    click.echo(f"{trained_line(pipe)}\nresults in {out}")


@study.command("mounts")
@click.option("--exits", "n_exits", type=int, default=4, show_default=True, help="Early exits per network.")
@click.option("--head", default="pool_fc", show_default=True, help="Exit head type of every exit.")
@click.option("--threshold", type=float, default=0.9, show_default=True, help="Confidence threshold of every exit.")
@click.option("--dataset", type=click.Choice(list(DATASET_CLASSES)), default="cifar10", show_default=True)
@click.option("--width-mult", type=float, default=None, help="Backbone width (default: the budget's).")
@click.option("--backbone-bits", type=int, default=8, show_default=True, help="Backbone bit-width (32, 8, 4, 2).")
@click.option("--exit-bits", type=int, default=8, show_default=True, help="Exit-head bit-width (32, 8, 4, 2).")
@click.option("--samples", type=int, default=None, help="Score a random sample of N placements instead of all.")
@click.option("--sample-seed", type=int, default=0, show_default=True,
              help="Seed of that sample (--seed is the training seed: changing it retrains).")
@click.option("--split", type=click.Choice(["val", "test"]), default="test", show_default=True,
              help="Split the chosen placements are reported on (ranking and choice are always on validation).")
@HARDWARE_OPTION
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Output folder (default: runs/mounts-<dataset>-<budget>-<exits>x<head>).")
@BACKBONE_OPTION
@PRETRAINED_OPTION
@AMP_OPTION
@training_options
def study_mounts(n_exits, head, threshold, dataset, width_mult, backbone_bits, exit_bits, samples, sample_seed, split,
                 hardware, out, backbone, pretrained, amp, budget, data_dir, cache_dir, device, seed) -> None:
    """Identical exits at every placement of their mount points: ET, exit ratios and MAC-array utilisation."""
    from eenas.study import MountSettings, run_mount_study, write_mount_study

    pipe = make_pipeline(dataset, budget, width_mult, data_dir, cache_dir, device, seed, amp, backbone_config(backbone),
                         pretrained=pretrained)
    settings = MountSettings(dataset, pipe.cfg.width_mult, n_exits, head, threshold, backbone_bits, exit_bits,
                             hardware, samples, sample_seed, split, backbone)
    result = run_mount_study(settings, pipe)
    out = out or Path("runs") / f"mounts-{dataset}-{budget}-{n_exits}x{head}"
    write_mount_study(result, out)
    columns = ["mounts", "accuracy", "exit_ratios", "et_ratio", "stage_utilization"]
    click.echo("lowest ET ratios (validation):\n"
               + markdown(result.placements[columns].head(5)))
    click.echo(f"\nchosen on validation, on the {split} split:\n"
               + markdown(result.chosen[["choice", "rank", *columns]]))
    click.echo(f"{trained_line(pipe)}\nresults in {out}")


@study.command("heads")
@click.option("--dataset", type=click.Choice(list(DATASET_CLASSES)), default="cifar10", show_default=True)
@click.option("--width-mult", type=float, default=None, help="Backbone width (default: the budget's).")
@click.option("--backbone-bits", default="8,4", show_default=True, help="Comma-separated backbone bit-widths.")
@click.option("--exit-bits", default="8,4", show_default=True, help="Comma-separated exit-head bit-widths.")
@click.option("--mounts", default=None, help="Comma-separated mount points (default: every mount of the backbone).")
@click.option("--heads", default=None, help="Comma-separated head types (default: every head of the family).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Output folder (default: runs/heads-<dataset>-<budget>).")
@BACKBONE_OPTION
@PRETRAINED_OPTION
@AMP_OPTION
@training_options
def study_heads(dataset, width_mult, backbone_bits, exit_bits, mounts, heads, out, backbone, pretrained, amp, budget,
                data_dir, cache_dir, device, seed) -> None:
    """Every exit head of a space, trained or loaded: validation accuracy by mount and head, checks and retries."""
    from eenas.study.heads import HeadBankSettings, run_head_bank, write_head_bank

    pipe = make_pipeline(dataset, budget, width_mult, data_dir, cache_dir, device, seed, amp, backbone_config(backbone),
                         pretrained=pretrained)
    settings = HeadBankSettings(int_list("--backbone-bits", backbone_bits), int_list("--exit-bits", exit_bits),
                                int_list("--mounts", mounts or ""),
                                tuple(h.strip() for h in (heads or "").split(",") if h.strip()))
    result = run_head_bank(pipe, settings)
    out = out or Path("runs") / f"heads-{dataset}-{budget}"
    write_head_bank(result, out, pipe)
    click.echo(markdown(result.spread()))
    click.echo(f"{trained_line(pipe)}\nresults in {out}")


@study.command("hardware")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--hardware", "hardware_list", default=None, metavar="LIST",
              help="Comma-separated accelerator presets or YAML files (default: the nine case-study presets "
                   "sys_EEEE..sys_YYYY).")
@WEIGHTS_OPTION
@click.option("--allocation", type=click.Choice(list(ALLOCATIONS)), default=DEFAULT_ALLOCATION, show_default=True,
              help="Backbone layer-to-core allocation on each accelerator.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("runs") / "hardware-study",
              show_default=True, help="Output folder.")
@click.option("--cache-dir", type=click.Path(file_okay=False), default=None,
              help="Where searched allocations are cached (default: ~/.cache/eenas).")
def study_hardware(paths, hardware_list, weights, allocation, out, cache_dir) -> None:
    """Archs (files, or folders of arch_*.json such as a run's pareto/) on several accelerators, ranked by ET.

    Average ET uses each arch's recorded exit ratios (stats_<k>.json or <arch>.eval.json beside it), else every
    sample reaches the final exit.  No training.
    """
    from eenas.study.hardware import DEFAULT_ACCELERATORS, load_study_archs, run_hardware_study, write_hardware_study

    hardware = DEFAULT_ACCELERATORS if hardware_list is None else tuple(h.strip() for h in hardware_list.split(",")
                                                                    if h.strip())
    if not hardware:
        raise EenasError("--hardware: give at least one accelerator")
    with allocation_cache(cache_dir):
        result = run_hardware_study(load_study_archs(paths), hardware, weights, allocation)
    write_hardware_study(result, out)
    click.echo(markdown(result.ranking()))
    click.echo(f"results in {out}")
