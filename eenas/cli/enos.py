"""``eenas enos``: the operator search, its sweep and its networks' float pretraining."""

from __future__ import annotations

from pathlib import Path

import click

from eenas.arch import DATASET_CLASSES
from eenas.cli.group import cli
from eenas.cli.options import (
    PRETRAINED_OPTION,
    check_weights_name,
    cluster_options,
    from_command_line,
    training_options,
)
from eenas.errors import EenasError
from eenas.precision import FLOAT
from eenas.report.tables import markdown


def enos_options(func):
    """Options of ``eenas enos`` and ``eenas enos sweep`` (names are checked by eenas.enos)."""
    options = [
        click.option("--model", default="shufflenet_v2", show_default=True, help="shufflenet_v2 or squeezenet."),
        click.option("--dataset", type=click.Choice(list(DATASET_CLASSES)), default="cifar10", show_default=True),
        click.option("--scheme", default="single", show_default=True,
                     help="single, bilevel, sequential, progressive or variational."),
        click.option("--energy-table", default="enos_hybrid", show_default=True,
                     help="Operator energy preset or YAML file (docs/enos.md)."),
        click.option("--relaxation", default=None, help="softmax or gumbel (default: the budget's)."),
        click.option("--weights", default=None,
                     help="A layer's float weights in the search: shared or family (default: the budget's)."),
        click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
                     help="Output folder (default: runs/enos-<timestamp>)."),
        PRETRAINED_OPTION,
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _enos_config(model, dataset, scheme, energy_table, relaxation, weights, pretrained, energy_weight, budget,
                 data_dir, device, seed):
    from eenas.enos import EnosConfig

    return EnosConfig(model, dataset, scheme, energy_weight, budget, energy_table, relaxation, seed, data_dir, device,
                      weights, pretrained)


def _enos_out(out: Path | None, kind: str) -> Path:
    import time

    return out or Path("runs") / time.strftime(f"{kind}-%Y%m%d-%H%M%S")


@cli.group(invoke_without_command=True)
@enos_options
@click.option("--energy-weight", type=float, default=0.0, show_default=True,
              help="λ: weight of the expected energy (relative to the all-mac8/digital network) in the loss.")
@training_options
@click.pass_context
def enos(ctx, model, dataset, scheme, energy_table, relaxation, weights, out, pretrained, energy_weight, budget,
         data_dir, cache_dir, device, seed) -> None:
    """ENOS: search each layer's operator and computing mode (digital or CIM) for accuracy and energy."""
    if ctx.invoked_subcommand is not None:
        early = from_command_line(ctx)
        if early:
            raise EenasError(f"put options after 'enos {ctx.invoked_subcommand}' "
                             f"(--{early[0].replace('_', '-')} came before it)")
        return
    from eenas.enos import run_enos

    cfg = _enos_config(model, dataset, scheme, energy_table, relaxation, weights, pretrained, energy_weight, budget,
                       data_dir, device, seed)
    out = _enos_out(out, "enos")
    result = run_enos(cfg, out, cache_dir)
    click.echo(markdown(result.table()))
    click.echo(f"\nvalidation accuracy {result.val_accuracy:.4f}, test accuracy {result.test_accuracy:.4f}, "
               f"energy {result.energy_pj:.4g} pJ per image\nresults in {out}")


@enos.command("sweep")
@enos_options
@click.option("--energy-weights", default="0,0.1,1,10", show_default=True, help="Comma-separated λ values.")
@click.option("--seeds", default=None, help="Comma-separated seeds, each a full sweep (default: --seed's).")
@click.option("--bisection-steps", type=click.IntRange(0, 20), default=3, show_default=True,
              help="Extra searches per single-operator network to match its energy.")
@cluster_options("the runs that depend on no other (each λ's search, each single-operator network)")
@training_options
def enos_sweep(model, dataset, scheme, energy_table, relaxation, weights, out, pretrained, energy_weights, seeds,
               bisection_steps, workers, scheduler, budget, data_dir, cache_dir, device, seed) -> None:
    """Accuracy against energy: ENOS at each λ, every single-operator network, and ENOS at their energies."""
    from eenas.enos import parse_energy_weights, parse_seeds, run_sweep

    grid = parse_energy_weights(energy_weights)
    seed_list = parse_seeds(seeds) if seeds is not None else (seed,)
    cfg = _enos_config(model, dataset, scheme, energy_table, relaxation, weights, pretrained, grid[0], budget,
                       data_dir, device, seed_list[0])
    out = _enos_out(out, "enos-sweep")
    sweep = run_sweep(cfg, grid, seed_list, out, cache_dir, bisection_steps, workers, scheduler)
    click.echo(markdown(sweep.summary()))
    click.echo("\n" + markdown(sweep.iso_energy()))
    click.echo(f"results in {out}")


@enos.command("pretrain")
@click.option("--model", default="shufflenet_v2", show_default=True, help="shufflenet_v2 or squeezenet.")
@click.option("--dataset", type=click.Choice(list(DATASET_CLASSES)), default="cifar10", show_default=True)
@click.option("--publish", "name", default=None,
              help="Then register the weights as NAME (float16 file and entry in the registry folder: "
                   "$EENAS_WEIGHTS_DIR, else the package's).")
@click.option("--notes", default="", help="A sentence kept with the published entry.")
@training_options
def enos_pretrain(model, dataset, name, notes, budget, data_dir, cache_dir, device, seed) -> None:
    """Pretrain the float network (at the budget's size) that ENOS runs start from; a stopped run resumes."""
    from eenas.enos import EnosConfig, pretrain_float, publish_float

    cfg = EnosConfig(model, dataset, budget=budget, seed=seed, data_dir=data_dir, device=device)
    if name is None:
        trained = pretrain_float(cfg, cache_dir)
        click.echo(f"float {model}: validation accuracy {trained['val_accuracy']:.4f}, "
                   f"test accuracy {trained['test_accuracy']:.4f}")
        return
    check_weights_name(name)
    entry = publish_float(cfg, name, cache_dir, notes=notes)
    float_accuracy = entry.accuracy[FLOAT.tag]
    click.echo(f"registered {entry.tag}: float val {float_accuracy['val']:.4f} test {float_accuracy['test']:.4f}")
