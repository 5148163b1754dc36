"""``eenas weights``: the pretrained float weights shipped with eenas."""

from __future__ import annotations

from pathlib import Path

import click

from eenas.arch import DATASET_CLASSES
from eenas.cli.group import cli
from eenas.cli.options import (
    AMP_OPTION,
    BACKBONE_OPTION,
    backbone_config,
    check_weights_name,
    make_pipeline,
    parse_precisions,
    training_options,
)
from eenas.train.budget import BUDGETS


@cli.group()
def weights() -> None:
    """Pretrained float weights shipped with eenas (trained by its own pretrain command)."""


@weights.command("list")
def weights_list() -> None:
    """A table of the registered weights and their measured accuracies."""
    import pandas as pd

    from eenas.weights import WeightsRegistry

    registry = WeightsRegistry()
    rows = [{"name": e.name, "backbone": e.backbone, "options": " ".join(f"{k}={v:g}" if isinstance(v, float)
                                                                      else f"{k}={v}" for k, v in e.options.items()),
             "dataset": e.dataset,
             "parameters": e.parameters, "epochs": e.recipe.get("pretrain_epochs"),
             **{f"{tag} val/test": f"{a['val']:.4f} / {a['test']:.4f}" for tag, a in e.accuracy.items()},
             "QAT shipped": " ".join(f"{tag} ({q['budget']})" for tag, q in e.qat.items()) or "–",
             "wall time (h)": round(e.wall_time_s / 3600, 2), "kB": round(registry.path(e).stat().st_size / 1024)
             if registry.path(e).exists() else "missing"} for e in registry.entries.values()]
    if not rows:
        click.echo(f"no weights registered in {registry.root}")
        return
    click.echo(pd.DataFrame(rows).fillna("–").to_markdown(index=False, floatfmt="g"))  # – : not measured


@weights.command("show")
@click.argument("name")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also draw its accuracy against pretraining epochs as this PNG.")
def weights_show(name, plot_path) -> None:
    """One entry whole: recipe, command, wall time, CPU and accuracy against epochs; checks its file's hash."""
    import pandas as pd
    import yaml

    from eenas.weights import WeightsRegistry

    registry = WeightsRegistry()
    entry = registry.get(name, "weights show")
    data = entry.to_dict()
    history = data.pop("history")
    click.echo(yaml.safe_dump(data, sort_keys=False, width=120).rstrip())
    if history:
        table = pd.DataFrame(history)
        table["minutes"] = table.pop("seconds") / 60  # cumulative training time, resumed runs included
        click.echo("\naccuracy against pretraining epochs:\n"
                   + table.to_markdown(index=False, floatfmt=[{"epoch": "g", "minutes": ".0f"}.get(c, ".4f")
                                                              for c in table.columns]))
    click.echo()
    for qat in (None, *entry.qat):  # the float file, then each shipped fine-tune
        click.echo(f"file {registry.verified_path(entry, qat)}: sha256 matches")
    if plot_path is not None:
        from eenas.weights.plot import plot_history

        click.echo(f"wrote {plot_history(entry, plot_path)}")


@weights.command("publish")
@click.argument("name")
@click.option("--dataset", type=click.Choice(list(DATASET_CLASSES)), default="cifar10", show_default=True)
@click.option("--width-mult", type=float, default=None, help="Backbone width (default: the budget's).")
@click.option("--epochs", type=int, default=None, help="The pretraining's epochs (default: the budget's).")
@click.option("--qat-budget", type=click.Choice(list(BUDGETS)), default="quick", show_default=True,
              help="Budget whose QAT recipe measures the quantized accuracies.")
@click.option("--precisions", default="w8a8,w4a4", show_default=True, help="Quantized accuracies to measure.")
@click.option("--threads", type=int, default=None,
              help="Threads the pretraining ran with (only for a cache entry that does not record them).")
@click.option("--notes", default="", help="A sentence kept with the entry.")
@click.option("--ship-qat", is_flag=True,
              help="Also store the QAT fine-tunes that measured the quantized accuracies (float32), so that runs "
                   "on --qat-budget's recipe and seed start from them.")
@BACKBONE_OPTION
@AMP_OPTION
@training_options
def weights_publish(name, dataset, width_mult, epochs, qat_budget, precisions, threads, notes, ship_qat, backbone, amp,
                    budget, data_dir, cache_dir, device, seed) -> None:
    """Register the float backbone that `eenas pretrain --pretrained none` trained with these options as NAME.

    Writes NAME.pt (float16) and its entry into the registry folder ($EENAS_WEIGHTS_DIR, else the package's),
    then measures float and QAT accuracy on the shipped file.
    """
    from eenas.weights import WeightsRegistry
    from eenas.weights.publish import publish

    check_weights_name(name)
    source = make_pipeline(dataset, budget, width_mult, data_dir, cache_dir, device, seed, amp,
                           backbone_config(backbone), epochs, pretrained="none")
    measure = make_pipeline(dataset, qat_budget, source.cfg.width_mult, data_dir, cache_dir, device, seed, amp,
                            backbone_config(backbone))
    entry = publish(name, source, measure.cfg, parse_precisions(precisions),
                    WeightsRegistry(), threads, notes=notes, ship_qat=ship_qat)
    click.echo(f"registered {entry.tag}: " + ", ".join(
        f"{tag} val {a['val']:.4f} test {a['test']:.4f}" for tag, a in entry.accuracy.items()))
