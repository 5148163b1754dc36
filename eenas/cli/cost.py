"""``eenas cost``: the cost model's price of an arch or an ONNX network."""

from __future__ import annotations

from pathlib import Path

import click

from eenas.cli.group import cli
from eenas.cli.options import (
    WEIGHTS_OPTION,
    allocation_cache,
)
from eenas.errors import EenasError
from eenas.hardware.accelerator import DEFAULT_HARDWARE
from eenas.hardware.allocation import ALLOCATIONS, DEFAULT_ALLOCATION, DEFAULT_OBJECTIVE, OBJECTIVES


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
        with allocation_cache(cache_dir):
            nc = graph_network_cost(workload, hardware or DEFAULT_HARDWARE, ratios, weights, allocation, explain,
                                    objective)
    else:
        arch = load_arch(arch_path)
        ratios = None if exit_ratios is None else parse_exit_ratios(exit_ratios, arch.n_outputs)
        with allocation_cache(cache_dir):
            nc = network_cost(arch, hardware, ratios, weights or arch.weights, allocation, explain, objective)
    click.echo(render(nc, fmt, frequency_mhz))
