"""The ``eenas`` command line.

Each command parses options, calls one library function and prints its tables; user errors
(:class:`~eenas.errors.EenasError`) become one line on stderr and exit code 2.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import click

from eenas import __version__
from eenas.arch import DATASET_CLASSES, BackboneConfig, Precision
from eenas.errors import EenasError
from eenas.hardware.accelerator import DEFAULT_HARDWARE, WEIGHT_MODES
from eenas.hardware.allocation import ALLOCATIONS, DEFAULT_ALLOCATION, DEFAULT_OBJECTIVE, OBJECTIVES
from eenas.train.budget import BUDGETS
from eenas.train.pipeline import AMP_MODES


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="eenas")
@click.option("-v", "--verbose", count=True, help="Debug log output.")
def cli(verbose: int) -> None:
    """Hardware-aware NAS of early-exit networks for multi-core edge accelerators."""
    level = logging.DEBUG if verbose else logging.INFO
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")


def training_options(func):
    """Options every command that trains or reads the training caches takes."""
    options = [
        click.option("--budget", type=click.Choice(list(BUDGETS)), default="quick", show_default=True,
                     help="Training budget: tiny (tests), quick (CPU demo), long (CPU, 2 h), standard (GPU)."),
        click.option("--data-dir", type=click.Path(file_okay=False), default=None,
                     help="Folder holding the dataset (default: $EENAS_DATA, then ~/.cache/eenas/data)."),
        click.option("--cache-dir", type=click.Path(file_okay=False), default=None,
                     help="Where trained weights and logits are cached (default: ~/.cache/eenas)."),
        click.option("--device", default="auto", show_default=True, help="auto, cpu or cuda[:N]."),
        click.option("--seed", type=int, default=0, show_default=True, help="Seed for splits, init and order."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _from_command_line(ctx: click.Context) -> list[str]:
    """The parameters the user gave on the command line (rather than left at their defaults)."""
    return [p for p in ctx.params if ctx.get_parameter_source(p) == click.core.ParameterSource.COMMANDLINE]


def _arch_training(ctx: click.Context, arch, arch_path: Path, **options) -> dict:
    """Training ``options`` (budget, seed, finetune, amp, pretrained) for an arch: those given on the command line,
    else its training block's, else the defaults.  ``check_training`` then warns when they differ from the block."""
    if arch.training is None:
        return options
    if arch.training.budget not in BUDGETS:
        raise EenasError(f"{arch_path}: training.budget: unknown budget '{arch.training.budget}' "
                         f"(known: {', '.join(BUDGETS)})")
    given = _from_command_line(ctx)
    recorded = {"pretrained": arch.training.pretrained_name}
    return {k: v if k in given else recorded.get(k, getattr(arch.training, k, None)) for k, v in options.items()}


def _arch_pipeline(ctx: click.Context, arch, arch_path: Path, data_dir, cache_dir, device, **options):
    """The pipeline that trains ``arch`` as its training block says (see :func:`_arch_training`), and the
    settings used; a difference from the block is logged in one line."""
    from eenas.evaluate import check_training

    settings = {"finetune": "none", **_arch_training(ctx, arch, arch_path, **options)}
    pipe = _pipeline(arch.dataset, settings["budget"], arch.backbone.width_mult, data_dir, cache_dir, device,
                     settings["seed"], settings["amp"], arch.backbone, pretrained=settings["pretrained"])
    check_training(arch, pipe.cfg, settings["finetune"], arch_path.name)
    return pipe, settings


def _pipeline(dataset: str, budget: str, width_mult: float | None, data_dir, cache_dir, device, seed, amp,
              backbone: BackboneConfig | None = None, pretrain_epochs: int | None = None, pretrained: str = "auto"):
    """The training pipeline of ``backbone`` (default: MobileNetV2), at ``width_mult`` or the budget's width, with
    the budget's pretraining epochs unless ``pretrain_epochs`` is given."""
    from dataclasses import replace

    from eenas.models.registry import check_option, get_backbone
    from eenas.train import Pipeline, TrainConfig, get_budget

    b, backbone = get_budget(budget), backbone or BackboneConfig()
    if pretrain_epochs is not None:
        if pretrain_epochs < 1:
            raise EenasError(f"--epochs {pretrain_epochs}: must be at least 1")
        b = replace(b, pretrain_epochs=pretrain_epochs)
    if "width_mult" not in get_backbone(backbone.name).options:
        if width_mult not in (None, 1.0):
            raise EenasError(f"--width-mult: backbone '{backbone.name}' has no width option")
        width_mult = 1.0
    elif width_mult is not None:  # the arch file's range: a run must write archs that evaluate accepts
        check_option(backbone.name, "width_mult", width_mult, "--width-mult")
    cfg = TrainConfig(dataset, b, b.width_mult if width_mult is None else width_mult, seed, data_dir, cache_dir,
                      device, amp, backbone.name, backbone.options, pretrained)
    return Pipeline(cfg)


def _backbone(name: str) -> BackboneConfig:
    """``--backbone NAME`` at its family's default options."""
    from eenas.models.registry import get_backbone

    return BackboneConfig(get_backbone(name, "--backbone").name)


FINETUNE_OPTION = click.option(
    "--finetune", type=click.Choice(["none", "joint"]), default="none", show_default=True,
    help="joint: fine-tune the backbone with all exits together (weighted sum of exit losses).")
BACKBONE_OPTION = click.option(
    "--backbone", default="mobilenet_v2", show_default=True,
    help="Registered backbone family (mobilenet_v2, paper_mbv2, resnet20; docs/backbones.md), at its default "
         "options but --width-mult.")


AMP_OPTION = click.option(
    "--amp", type=click.Choice(AMP_MODES), default="auto", show_default=True,
    help="Training dtype: auto (bfloat16 on GPUs and on CPUs with native bfloat16, else float32), fp32 (the "
         "reference) or bf16.")


PRETRAINED_OPTION = click.option(
    "--pretrained", default="auto", show_default=True, metavar="auto|none|NAME",
    help="Float weights to start from: auto (the shipped ones of this backbone, dataset and split, if any; "
         "`eenas weights list`), none (pretrain from scratch) or a registered name.")


WEIGHTS_OPTION = click.option(
    "--weights", type=click.Choice(list(WEIGHT_MODES)), default=None,
    help="Weight SRAMs empty at every inference (streamed) or keeping the weights that fit across inferences "
         "(resident); default: the arch file's 'weights', else the accelerator file's.")


def cluster_options(jobs: str):
    """``--workers`` and ``--scheduler``: where ``jobs`` train (default: in this process)."""
    def add(func):
        func = click.option("--scheduler", default=None, metavar="ADDRESS",
                            help="Train them on the Dask cluster of this scheduler (tcp://host:8786) instead.")(func)
        return click.option("--workers", type=int, default=None,
                            help=f"Train {jobs} on a local Dask cluster of N processes (pip install 'eenas[dask]'); "
                                 "results are those of a serial run (docs/cluster.md).")(func)
    return add


def _allocation_cache(cache_dir):
    """Searched core allocations are cached beside the trained weights."""
    from eenas.hardware import use_cache_dir
    from eenas.io import DEFAULT_CACHE_DIR

    return use_cache_dir(cache_dir or DEFAULT_CACHE_DIR)


def _parse_precisions(text: str) -> list[Precision]:
    out = []
    for item in filter(None, (t.strip() for t in text.split(","))):
        try:
            w, a = (int(v) for v in item.lower().removeprefix("w").split("a"))
        except ValueError:
            raise EenasError(f"--precisions: '{item}' is not like w8a8") from None
        out.append(Precision(w, a))
    return out


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

    pipe = _pipeline(dataset, budget, width_mult, data_dir, cache_dir, device, seed, amp, _backbone(backbone),
                     epochs, pretrained)
    targets = [FLOAT, *_parse_precisions(precisions)]
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
@click.option("--hardware", default=None, help="Accelerator preset or YAML file (default: the arch's).")
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
    pipe, settings = _arch_pipeline(ctx, arch, arch_path, data_dir, cache_dir, device, budget=budget, seed=seed,
                                    finetune=finetune, amp=amp, pretrained=pretrained)
    with _allocation_cache(cache_dir):
        result = evaluate_arch(arch, pipe, joint=settings["finetune"] == "joint", hardware=hardware, weights=weights)
    click.echo(result.exits.to_markdown(index=False, floatfmt=".4g"))
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
    pipe, settings = _arch_pipeline(ctx, arch, arch_path, data_dir, cache_dir, device, budget=budget, seed=seed,
                                    finetune=finetune, amp=amp, pretrained=pretrained)
    result = export(arch, pipe, out, settings["finetune"])
    p = result.parity
    click.echo(f"onnxruntime against PyTorch on {p.samples} test images: exit decisions agree on "
               f"{100 * p.decisions_agree:.2f}%; max logit difference per exit "
               f"{', '.join(f'{d:.3g}' for d in p.max_logit_diff)} (one step: "
               f"{', '.join(f'{s:.3g}' for s in p.logit_step)})")
    click.echo(f"{_trained_line(pipe)}\nwrote {result.files.model}, {len(result.files.stages)} stage graphs, "
               f"{result.manifest}")


@cli.command("cost")
@click.option("--arch", "arch_path", type=click.Path(dir_okay=False), default=None, help="Arch file (arch.json).")
@click.option("--onnx", "onnx_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="An ONNX network instead of an arch: its outputs are the exits, ordered by depth.")
@click.option("--hardware", default=None, help="Accelerator preset or YAML file (default: the arch's; with --onnx: "
                                              "edge_tpu_quad).")
@WEIGHTS_OPTION
@click.option("--allocation", type=click.Choice(list(ALLOCATIONS)), default=DEFAULT_ALLOCATION, show_default=True,
              help="Backbone layer-to-core allocation: the better of greedy and a genetic search, or greedy only.")
@click.option("--allocation-objective", "objective", type=click.Choice(list(OBJECTIVES)), default=DEFAULT_OBJECTIVE,
              show_default=True,
              help="What the searched allocation minimises: the static network's ET (shared by every exit "
                   "configuration), or this network's average ET at --exit-ratios (searched for it alone).")
@click.option("--exit-ratios", default=None,
              help="Fraction of samples leaving at each exit and the final classifier, e.g. 0.3,0.2,0.5.")
@click.option("--weight-bits", type=int, default=8, show_default=True,
              help="With --onnx: bits of weights without Q/DQ around them.")
@click.option("--act-bits", type=int, default=8, show_default=True,
              help="With --onnx: bits of activations (and the input) without a QuantizeLinear after them.")
@click.option("--skip-unknown", is_flag=True, help="With --onnx: cost operators the model does not know as zero.")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table", show_default=True)
@click.option("--frequency-mhz", type=float, default=None, help="Also show time at this clock frequency.")
@click.option("--explain", is_flag=True,
              help="Also each backbone convolution's cost on every core style, and the allocation against every "
                   "convolution on one style.")
@click.option("--cache-dir", type=click.Path(file_okay=False), default=None,
              help="Where searched allocations are cached (default: ~/.cache/eenas).")
def cost(arch_path, onnx_path, hardware, weights, allocation, objective, exit_ratios, weight_bits, act_bits,
         skip_unknown, fmt, frequency_mhz, explain, cache_dir) -> None:
    """Per-layer and per-exit latency, energy and ET of an arch or ONNX network on an accelerator (no training)."""
    from eenas.arch import load_arch
    from eenas.hardware import network_cost, parse_exit_ratios
    from eenas.hardware.report import render

    if (arch_path is None) == (onnx_path is None):
        raise EenasError("cost: give exactly one of --arch and --onnx")
    if onnx_path is not None:
        from eenas.hardware.network import graph_network_cost
        from eenas.hardware.onnx_workload import read_onnx

        workload = read_onnx(onnx_path, weight_bits, act_bits, skip_unknown)
        ratios = None if exit_ratios is None else parse_exit_ratios(exit_ratios, len(workload.exit_names))
        with _allocation_cache(cache_dir):
            nc = graph_network_cost(workload, hardware or DEFAULT_HARDWARE, ratios, weights, allocation, explain,
                                    objective)
    else:
        arch = load_arch(arch_path)
        ratios = None if exit_ratios is None else parse_exit_ratios(exit_ratios, arch.n_outputs)
        with _allocation_cache(cache_dir):
            nc = network_cost(arch, hardware, ratios, weights or arch.weights, allocation, explain, objective)
    click.echo(render(nc, fmt, frequency_mhz))


def _int_list(name: str, text: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise EenasError(f"{name}: '{text}' is not a comma-separated list of integers") from None


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
@click.option("--hardware", default=DEFAULT_HARDWARE, show_default=True, help="Accelerator preset or YAML file.")
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

    if hardware_space is not None and "hardware" in _from_command_line(ctx):
        raise EenasError(HARDWARE_OPTIONS_EXCLUDE)
    if resume and out is None:
        raise EenasError("--resume needs the --out of the run to continue")
    if exhaustive and strategy not in (None, "exhaustive"):
        raise EenasError(f"--exhaustive is --strategy exhaustive: it cannot go with --strategy {strategy}")
    strategy = "exhaustive" if exhaustive else strategy
    mounts = _int_list("--mounts", mounts)
    if max_exits is None:
        max_exits = min(6, len(mounts) or 6)
    cfg = SearchConfig.create(
        dataset, budget,
        overrides={"population": population, "generations": generations, "iterations": iterations,
                   "initial": initial, "per_iteration": per_iteration, "holdout": holdout},
        seed=seed, hardware=hardware, weights=weights, width_mult=width_mult, amp=amp, bits=_int_list("--bits", bits),
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
    with _allocation_cache(cache_dir):
        result = run.run()
    click.echo(result.front.to_markdown(index=False, floatfmt=".4g"))
    for static in result.statics:
        on = f" on {static['hardware']}" if "hardware" in static else ""
        click.echo(f"static backbone {static['bits']}-bit{on}: accuracy {static['accuracy']:.4f} "
                   f"(test {static['test_accuracy']:.4f}), ET {static['static_et']:.4g} pJ*cycles")
    if result.holdout is not None:
        click.echo(result.holdout.summary())
    click.echo(f"results in {result.out}")


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
        early = _from_command_line(ctx)
        if early:
            raise EenasError(f"put options after 'enos {ctx.invoked_subcommand}' "
                             f"(--{early[0].replace('_', '-')} came before it)")
        return
    from eenas.enos import run_enos

    cfg = _enos_config(model, dataset, scheme, energy_table, relaxation, weights, pretrained, energy_weight, budget,
                       data_dir, device, seed)
    out = _enos_out(out, "enos")
    result = run_enos(cfg, out, cache_dir)
    click.echo(result.table().to_markdown(index=False, floatfmt=".4g"))
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
    click.echo(sweep.summary().to_markdown(index=False, floatfmt=".4g"))
    click.echo("\n" + sweep.iso_energy().to_markdown(index=False, floatfmt=".4g"))
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
    _check_weights_name(name)
    entry = publish_float(cfg, name, cache_dir, notes=notes)
    click.echo(f"registered {entry.tag}: float val {entry.accuracy['w32a32']['val']:.4f} "
               f"test {entry.accuracy['w32a32']['test']:.4f}")


@cli.group()
def study() -> None:
    """Analyses as commands: tables (CSV + markdown) and PNG figures (docs/studies.md)."""


def _trained_line(pipe) -> str:
    return f"trained: {', '.join(pipe.trained) or 'nothing (all cached)'}"


@study.command("precision")
@click.option("--arch", "arch_path", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="Arch file (arch.json) whose exits, heads and thresholds every precision keeps.")
@click.option("--dataset", type=click.Choice(list(DATASET_CLASSES)), default=None, help="Default: the arch's.")
@click.option("--hardware", default=None, help="Accelerator preset or YAML file (default: the arch's).")
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
    pipe, _ = _arch_pipeline(ctx, arch, arch_path, data_dir, cache_dir, device, budget=budget, seed=seed, amp=amp,
                             pretrained=pretrained)
    result = run_precision_study(arch, pipe)
    out = out or arch_path.with_name(f"{arch_path.stem}_precision")
    write_precision_study(result, out)
    columns = ["config", "accuracy", "static_accuracy", "exit_ratios", "mean_exit_block", "average_et", "et_ratio"]
    click.echo(result.summary()[columns].to_markdown(index=False, floatfmt=".4g"))
    click.echo(f"{_trained_line(pipe)}\nresults in {out}")


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
@click.option("--hardware", default=DEFAULT_HARDWARE, show_default=True, help="Accelerator preset or YAML file.")
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

    pipe = _pipeline(dataset, budget, width_mult, data_dir, cache_dir, device, seed, amp, _backbone(backbone),
                     pretrained=pretrained)
    settings = MountSettings(dataset, pipe.cfg.width_mult, n_exits, head, threshold, backbone_bits, exit_bits,
                             hardware, samples, sample_seed, split, backbone)
    result = run_mount_study(settings, pipe)
    out = out or Path("runs") / f"mounts-{dataset}-{budget}-{n_exits}x{head}"
    write_mount_study(result, out)
    columns = ["mounts", "accuracy", "exit_ratios", "et_ratio", "stage_utilization"]
    click.echo("lowest ET ratios (validation):\n"
               + result.placements[columns].head(5).to_markdown(index=False, floatfmt=".4g"))
    click.echo(f"\nchosen on validation, on the {split} split:\n"
               + result.chosen[["choice", "rank", *columns]].to_markdown(index=False, floatfmt=".4g"))
    click.echo(f"{_trained_line(pipe)}\nresults in {out}")


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

    pipe = _pipeline(dataset, budget, width_mult, data_dir, cache_dir, device, seed, amp, _backbone(backbone),
                     pretrained=pretrained)
    settings = HeadBankSettings(_int_list("--backbone-bits", backbone_bits), _int_list("--exit-bits", exit_bits),
                                _int_list("--mounts", mounts or ""),
                                tuple(h.strip() for h in (heads or "").split(",") if h.strip()))
    result = run_head_bank(pipe, settings)
    out = out or Path("runs") / f"heads-{dataset}-{budget}"
    write_head_bank(result, out, pipe)
    click.echo(result.spread().to_markdown(index=False, floatfmt=".4g"))
    click.echo(f"{_trained_line(pipe)}\nresults in {out}")


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
    with _allocation_cache(cache_dir):
        result = run_hardware_study(load_study_archs(paths), hardware, weights, allocation)
    write_hardware_study(result, out)
    click.echo(result.ranking().to_markdown(index=False, floatfmt=".4g"))
    click.echo(f"results in {out}")


@cli.group()
def weights() -> None:
    """Pretrained float weights shipped with eenas (trained by its own pretrain command)."""


@weights.command("list")
def weights_list() -> None:
    """A table of the registered weights and their measured accuracies."""
    import pandas as pd

    from eenas.weights import WeightsRegistry

    registry = WeightsRegistry()
    rows = [{"name": e.name, "backbone": e.backbone, **{k: v for k, v in e.options.items()}, "dataset": e.dataset,
             "parameters": e.parameters, "epochs": e.recipe.get("pretrain_epochs"),
             **{f"{tag} val/test": f"{a['val']:.4f} / {a['test']:.4f}" for tag, a in e.accuracy.items()},
             "wall time (h)": round(e.wall_time_s / 3600, 2), "kB": round(registry.path(e).stat().st_size / 1024)
             if registry.path(e).exists() else "missing"} for e in registry.entries.values()]
    if not rows:
        click.echo(f"no weights registered in {registry.root}")
        return
    click.echo(pd.DataFrame(rows).to_markdown(index=False))


@weights.command("show")
@click.argument("name")
def weights_show(name) -> None:
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
        click.echo("\naccuracy against pretraining epochs (validation):\n"
                   + pd.DataFrame(history).to_markdown(index=False, floatfmt=".4f"))
    registry.verified_path(entry)
    click.echo(f"\nfile {registry.path(entry)}: sha256 matches")


def _check_weights_name(name: str) -> None:
    if not name.replace("_", "").replace("-", "").isalnum() or name in ("auto", "none"):
        raise EenasError(f"weights publish: '{name}' is not a usable name (letters, digits, - and _; not auto/none)")


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
@BACKBONE_OPTION
@AMP_OPTION
@training_options
def weights_publish(name, dataset, width_mult, epochs, qat_budget, precisions, threads, notes, backbone, amp, budget,
                    data_dir, cache_dir, device, seed) -> None:
    """Register the float backbone that `eenas pretrain --pretrained none` trained with these options as NAME.

    Writes NAME.pt (float16) and its entry into the registry folder ($EENAS_WEIGHTS_DIR, else the package's),
    then measures float and QAT accuracy on the shipped file.
    """
    from eenas.weights import WeightsRegistry
    from eenas.weights.publish import publish

    _check_weights_name(name)
    source = _pipeline(dataset, budget, width_mult, data_dir, cache_dir, device, seed, amp, _backbone(backbone),
                       epochs, pretrained="none")
    measure = _pipeline(dataset, qat_budget, source.cfg.width_mult, data_dir, cache_dir, device, seed, amp,
                        _backbone(backbone))
    entry = publish(name, source, measure.cfg, _parse_precisions(precisions),
                    WeightsRegistry(), threads, notes=notes)
    click.echo(f"registered {entry.tag}: " + ", ".join(
        f"{tag} val {a['val']:.4f} test {a['test']:.4f}" for tag, a in entry.accuracy.items()))


@cli.command()
@click.argument("run_dir", type=click.Path(file_okay=False, exists=True, path_type=Path))
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Output folder (default: RUN_DIR).")
def report(run_dir, out) -> None:
    """Redraw every figure of a search run and write report.md with them and its tables."""
    from eenas.study import write_report

    for path in write_report(run_dir, out):
        click.echo(f"wrote {path}")


def main() -> None:
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(130)
    except click.ClickException as exc:  # usage errors too: one line, like every other user error
        click.echo(f"eenas: error: {exc.format_message()}", err=True)
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except EenasError as exc:
        click.echo(f"eenas: error: {exc}", err=True)
        sys.exit(exc.exit_code)


if __name__ == "__main__":  # python -m eenas.cli, as python -m eenas
    main()
