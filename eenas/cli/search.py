"""``eenas search`` and ``eenas report`` (a search run's figures and tables)."""

from __future__ import annotations

from pathlib import Path

import click

from eenas.arch import DATASET_CLASSES
from eenas.cli.group import cli
from eenas.cli.options import (
    AMP_OPTION,
    BACKBONE_OPTION,
    HARDWARE_OPTION,
    PRETRAINED_OPTION,
    WEIGHTS_OPTION,
    allocation_cache,
    cluster_options,
    from_command_line,
    int_list,
    training_options,
)
from eenas.errors import EenasError
from eenas.report.tables import markdown


def _search_config_defaults(ctx: click.Context, _param: click.Parameter, path: Path | None) -> Path | None:
    """``--config FILE``: a saved run's settings become this command's defaults (options given here win)."""
    if path is not None:
        from eenas.io import read_json
        from eenas.search.config import options_from_settings

        data = read_json(path, "config file")
        run_file = isinstance(data, dict) and "dataset" not in data and "search" in data  # else the block alone
        settings = data["search"] if run_file else data
        ctx.default_map = {**(ctx.default_map or {}), **options_from_settings(settings, f"--config {path}")}
    return path


@cli.command()
@click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              is_eager=True, expose_value=False, callback=_search_config_defaults, metavar="FILE",
              help="Start from a saved run's settings (its config.json); options given here override them.")
@click.option("--dataset", type=click.Choice(list(DATASET_CLASSES)), default="cifar10", show_default=True)
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Run directory (default: runs/search-<timestamp>).")
@click.option("--resume", is_flag=True, help="Continue the run in --out from its last checkpoint.")
@click.option("--force", is_flag=True, help="Overwrite a non-empty --out.")
@HARDWARE_OPTION
@click.option("--hardware-space", default=None, metavar="FILE",
              help="Co-search: the accelerator becomes a gene, chosen from this space file (or a packaged space: "
                   "case_study); not with --hardware.")
@WEIGHTS_OPTION
@click.option("--width-mult", type=float, default=None, help="Backbone width (default: the budget's).")
@click.option("--bits", default="8,4", show_default=True, help="Bit-widths for backbone and exits (32, 8, 4, 2).")
@click.option("--max-exits", type=int, default=None,
              help="Most early exits per network (default: 6, or fewer when --mounts offers fewer).")
@click.option("--mounts", default="", metavar="LIST",
              help="Mount points the exits may use, e.g. 1,3,5 (default: every one of the backbone's).")
@click.option("--max-accuracy-drop", type=float, default=1.0, show_default=True,
              help="Most accuracy lost against the static backbone at the same precision (points).")
@click.option("--max-latency", type=float, default=None, help="Bound on the average latency (cycles).")
@click.option("--max-energy", type=float, default=None, help="Bound on the average energy (pJ).")
@click.option("--population", type=int, default=None, help="NSGA-II population (default: the budget's).")
@click.option("--generations", type=int, default=None, help="NSGA-II generations per iteration.")
@click.option("--iterations", type=int, default=None, help="Predictor refits after the initial sample.")
@click.option("--initial", type=int, default=None, help="True evaluations in the initial sample.")
@click.option("--per-iteration", type=int, default=None, help="Candidates trained per iteration.")
@click.option("--thresholds", default="0.10:0.99:0.01", show_default=True,
              help="Exit-threshold grid START:STOP:STEP (STOP included).")
@click.option("--holdout", type=int, default=None,
              help="Random archs evaluated after the search to measure the predictor (default: the budget's; 0: none).")
@click.option("--tensorboard", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Also log each iteration's values to this TensorBoard directory (pip install eenas[tensorboard]).")
@click.option("--strategy", default=None, metavar="NAME",
              help="How candidates are proposed, a module of eenas/search/strategies: 'progressive' (default; NSGA-II "
                   "on predictions, training the most promising), 'exhaustive' (train the whole head bank, then exact "
                   "scores only) or 'random'.")
@click.option("--exhaustive", is_flag=True, help="Same as --strategy exhaustive.")
@click.option("--objectives", default="accuracy,average_et", show_default=True, metavar="NAME,NAME[,NAME]",
              help="Objectives, two or more of: accuracy, average_et, energy, latency, p95_latency, p99_latency.")
@click.option("--max-p99-latency-cycles", "max_p99_latency", type=float, default=None,
              help="Bound on the 99th-percentile latency over inputs (cycles).")
@click.option("--predictor", default=None, metavar="NAME",
              help="Surrogate for candidates with untrained heads: 'trees' (default; a tree ensemble on the genome) or "
                   "'structured' (stand-ins from the nearest trained heads, scored by the exact routing).")
@cluster_options("the jobs of each iteration")
@BACKBONE_OPTION
@PRETRAINED_OPTION
@AMP_OPTION
@training_options
@click.pass_context
def search(ctx, dataset, out, resume, force, hardware, hardware_space, weights, width_mult, bits, max_exits, mounts,
           max_accuracy_drop, max_latency, max_energy, population, generations, iterations, initial, per_iteration,
           thresholds, holdout, tensorboard, strategy, exhaustive, objectives, max_p99_latency, predictor, workers,
           scheduler, backbone, pretrained, amp, budget, data_dir, cache_dir, device, seed) -> None:
    """NSGA-II search for early-exit networks: accuracy against average energy-delay product (--objectives)."""
    import time

    from eenas.search import SearchConfig, ThresholdGrid, build_run
    from eenas.search.config import HARDWARE_OPTIONS_EXCLUDE

    if hardware_space is not None and "hardware" in from_command_line(ctx):
        raise EenasError(HARDWARE_OPTIONS_EXCLUDE)
    if resume and out is None:
        raise EenasError("--resume needs the --out of the run to continue")
    if exhaustive and strategy not in (None, "exhaustive"):
        raise EenasError(f"--exhaustive is --strategy exhaustive: it cannot go with --strategy {strategy}")
    strategy = "exhaustive" if exhaustive else strategy
    mounts = int_list("--mounts", mounts)
    if max_exits is None:
        max_exits = min(6, len(mounts) or 6)
    cfg = SearchConfig.create(
        dataset, budget,
        overrides={"population": population, "generations": generations, "iterations": iterations,
                   "initial": initial, "per_iteration": per_iteration, "holdout": holdout},
        seed=seed, hardware=hardware, weights=weights, width_mult=width_mult, amp=amp, bits=int_list("--bits", bits),
        max_exits=max_exits, max_accuracy_drop=max_accuracy_drop, max_latency=max_latency, max_energy=max_energy,
        thresholds=ThresholdGrid.parse(thresholds), backbone=backbone, mounts=mounts, pretrained=pretrained,
        objectives=tuple(name.strip() for name in objectives.split(",") if name.strip()),
        max_p99_latency=max_p99_latency, hardware_space=hardware_space,
        **({} if predictor is None else {"predictor": predictor}),
        **({} if strategy is None else {"strategy": strategy}),
    )
    out = out or Path("runs") / time.strftime("search-%Y%m%d-%H%M%S")
    run = build_run(cfg, out, resume=resume, force=force, data_dir=data_dir, cache_dir=cache_dir, device=device,
                    tensorboard=tensorboard, workers=workers, scheduler=scheduler)
    with allocation_cache(cache_dir):
        result = run.run()
    click.echo(markdown(result.front))
    for static in result.statics:
        on = f" on {static['hardware']}" if "hardware" in static else ""
        click.echo(f"static backbone {static['bits']}-bit{on}: accuracy {static['accuracy']:.4f} "
                   f"(test {static['test_accuracy']:.4f}), ET {static['static_et']:.4g} pJ*cycles")
    if result.holdout is not None:
        click.echo(result.holdout.summary())
    click.echo(f"results in {result.out}")


@cli.command()
@click.argument("run_dir", type=click.Path(file_okay=False, exists=True, path_type=Path))
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Output folder (default: RUN_DIR).")
def report(run_dir, out) -> None:
    """Redraw every figure of a search run and write report.md with them and its tables."""
    from eenas.study import write_report

    for path in write_report(run_dir, out):
        click.echo(f"wrote {path}")
