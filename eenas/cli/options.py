"""Options and option groups that several commands share, and the helpers that turn them into library
objects (a training pipeline, an arch's training settings)."""

from __future__ import annotations

from pathlib import Path

import click

from eenas.arch import BackboneConfig, Precision
from eenas.errors import EenasError
from eenas.hardware.accelerator import DEFAULT_HARDWARE, WEIGHT_MODES
from eenas.train.budget import BUDGETS
from eenas.train.pipeline import AMP_MODES


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


def from_command_line(ctx: click.Context) -> list[str]:
    """The parameters the user gave on the command line (rather than left at their defaults)."""
    return [p for p in ctx.params if ctx.get_parameter_source(p) == click.core.ParameterSource.COMMANDLINE]


def arch_training(ctx: click.Context, arch, arch_path: Path, **options) -> dict:
    """Training ``options`` (budget, seed, finetune, amp, pretrained) for an arch: those given on the command line,
    else its training block's, else the defaults.  ``check_training`` then warns when they differ from the block."""
    if arch.training is None:
        return options
    if arch.training.budget not in BUDGETS:
        raise EenasError(f"{arch_path}: training.budget: unknown budget '{arch.training.budget}' "
                         f"(known: {', '.join(BUDGETS)})")
    given = from_command_line(ctx)
    recorded = {"pretrained": arch.training.pretrained_name}
    return {k: v if k in given else recorded.get(k, getattr(arch.training, k, None)) for k, v in options.items()}


def arch_pipeline(ctx: click.Context, arch, arch_path: Path, data_dir, cache_dir, device, **options):
    """The pipeline that trains ``arch`` as its training block says (see :func:`arch_training`), and the
    settings used; a difference from the block is logged in one line."""
    from eenas.evaluate import check_training

    settings = {"finetune": "none", **arch_training(ctx, arch, arch_path, **options)}
    pipe = make_pipeline(arch.dataset, settings["budget"], arch.backbone.width_mult, data_dir, cache_dir, device,
                         settings["seed"], settings["amp"], arch.backbone, pretrained=settings["pretrained"])
    check_training(arch, pipe.cfg, settings["finetune"], arch_path.name)
    return pipe, settings


def make_pipeline(dataset: str, budget: str, width_mult: float | None, data_dir, cache_dir, device, seed, amp,
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


def backbone_config(name: str) -> BackboneConfig:
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


# --hardware, in its two meanings: the accelerator a new network runs on, or another one for an arch that names its own.
HARDWARE_OPTION = click.option("--hardware", default=DEFAULT_HARDWARE, show_default=True,
                               help="Accelerator preset or YAML file.")
ARCH_HARDWARE_OPTION = click.option("--hardware", default=None,
                                    help="Accelerator preset or YAML file (default: the arch's).")
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


def allocation_cache(cache_dir):
    """Searched core allocations are cached beside the trained weights."""
    from eenas.hardware import use_cache_dir
    from eenas.io import DEFAULT_CACHE_DIR

    return use_cache_dir(cache_dir or DEFAULT_CACHE_DIR)


def parse_precisions(text: str) -> list[Precision]:
    out = []
    for item in filter(None, (t.strip() for t in text.split(","))):
        try:
            w, a = (int(v) for v in item.lower().removeprefix("w").split("a"))
        except ValueError:
            raise EenasError(f"--precisions: '{item}' is not like w8a8") from None
        out.append(Precision(w, a))
    return out


def int_list(name: str, text: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise EenasError(f"{name}: '{text}' is not a comma-separated list of integers") from None


def check_weights_name(name: str) -> None:
    if not name.replace("_", "").replace("-", "").isalnum() or name in ("auto", "none"):
        raise EenasError(f"weights publish: '{name}' is not a usable name (letters, digits, - and _; not auto/none)")


def trained_line(pipe) -> str:
    """What a command trained, for its last lines (cached entries are not listed)."""
    return f"trained: {', '.join(pipe.trained) or 'nothing (all cached)'}"
