"""Tables of a :class:`~eenas.hardware.network.NetworkCost` for ``eenas cost`` (table, csv, json)."""

from __future__ import annotations

import json

import pandas as pd

from eenas.errors import EenasError
from eenas.hardware.explain import Explanation
from eenas.hardware.network import NetworkCost

FORMATS = ("table", "csv", "json")


def _microseconds(cycles: float, frequency_mhz: float) -> float:
    return cycles / frequency_mhz


def layer_frame(nc: NetworkCost, frequency_mhz: float | None = None) -> pd.DataFrame:
    """One row per scheduled layer: where it ran, its MACs, utilisation, cycles and energy."""
    df = pd.DataFrame([{
        "layer": r.name, "stage": r.stage, "kind": r.kind, "core": r.location, "params": r.params, "macs": r.macs,
        "utilization": r.utilization, "cycles": r.cycles, "start": r.start, "end": r.end,
        "energy_pj": r.energy_pj, "transfer_pj": r.transfer_pj,
    } for r in nc.layers])
    if frequency_mhz:
        df["time_us"] = _microseconds(df["cycles"], frequency_mhz)
    return df


def exit_frame(nc: NetworkCost, frequency_mhz: float | None = None) -> pd.DataFrame:
    """One row per exit (the final classifier last): stage and cumulative costs and ET."""
    rows = []
    for i, e in enumerate(nc.cost.exits):
        row = {
            "exit": i + 1, "after_block": e.after_block if e.after_block is not None else "final",
            "head": e.head, "overlap": e.overlap,
            "stage_cycles": e.stage_latency_cycles, "stage_energy_pj": e.stage_energy_pj, "stage_macs": e.stage_macs,
            "cycles": e.cum_latency_cycles, "energy_pj": e.cum_energy_pj, "macs": e.cum_macs, "et_pj_cycles": e.cum_et,
            "wasted_pj": e.wasted_energy_pj,
        }
        if nc.exit_ratios is not None:
            row["exit_ratio"] = nc.exit_ratios[i]
        rows.append(row)
    df = pd.DataFrame(rows)
    if frequency_mhz:
        df["stage_time_us"] = _microseconds(df["stage_cycles"], frequency_mhz)
        df["time_us"] = _microseconds(df["cycles"], frequency_mhz)
    return df


def explanation_frame(ex: Explanation) -> pd.DataFrame:
    """One row per backbone convolution: where it ran, its cost on every core style, and the chosen style's EDP
    over that of the best other style (below 1: the chosen style was the cheapest for the layer itself)."""
    rows = []
    for layer in ex.layers:
        row: dict[str, object] = {"layer": layer.name, "kind": layer.kind, "core": ex.core_names[layer.chosen.core],
                                  "style": ex.styles[layer.style].label}
        for style, option in zip(ex.styles, layer.options):
            row |= {f"{style.label}_cycles": option.cycles, f"{style.label}_pj": option.energy_pj,
                    f"{style.label}_edp": option.edp}
        if (other := layer.best_other) is not None:
            row |= {"best_other": ex.styles[other].label, "vs_best_other": layer.chosen.edp / layer.options[other].edp}
        rows.append(row)
    return pd.DataFrame(rows)


def placement_frame(ex: Explanation) -> pd.DataFrame:
    """The static network with the allocation, then with every convolution on one style: convolutions per style,
    cycles, energy, ET and ET over the allocation's (above 1: the allocation is better)."""
    base = ex.placements[0].allocation.et
    return pd.DataFrame([{
        "placement": p.label,
        **{f"{s.label}_convs": n for s, n in zip(ex.styles, ex.convs_per_style(p.allocation))},
        "cycles": p.allocation.latency_cycles, "energy_pj": p.allocation.energy_pj, "et_pj_cycles": p.allocation.et,
        "vs_allocation": p.allocation.et / base,
    } for p in ex.placements])


def summary(nc: NetworkCost, frequency_mhz: float | None = None) -> dict[str, object]:
    """The static backbone's cost and, given exit ratios, average ET (and the product of averages) and the ET ratio.

    Without exit ratios (and more than one exit) there is no average: any assumed routing would print an ET ratio
    that looks like a result.  The per-exit table gives each exit's cumulative ET instead.
    """
    costs = nc.cost
    ratios = nc.exit_ratios if nc.exit_ratios is not None or len(costs.exits) > 1 else (1.0,)
    averages = {} if ratios is None else {
        "average_et_pj_cycles": costs.average_et(ratios),
        "product_of_averages_et_pj_cycles": costs.product_of_averages_et(ratios),
    }
    out: dict[str, object] = {
        "hardware": nc.hardware,
        "weights": nc.weights,
        "allocation": nc.allocation.method,
        "exit_ratios": "not given: pass --exit-ratios for average ET and the ET ratio" if ratios is None else
                       ",".join(f"{r:g}" for r in ratios),
        **averages,
        "static_cycles": costs.static_latency_cycles,
        "static_energy_pj": costs.static_energy_pj,
        "static_macs": costs.static_macs,
        "static_et_pj_cycles": costs.static_et,
        **({} if ratios is None else {"et_ratio": costs.et_ratio(ratios)}),
        "overlap_saved_cycles": nc.overlap_saved_cycles,
    }
    if nc.explanation is not None:
        out["static_conv_energy_pj"] = nc.explanation.conv_energy_pj
        out["static_pool_add_energy_pj"] = nc.explanation.fixed_energy_pj
    if frequency_mhz:
        out["frequency_mhz"] = frequency_mhz
        out["static_time_us"] = _microseconds(costs.static_latency_cycles, frequency_mhz)
    return out


def _pretty(df: pd.DataFrame) -> pd.DataFrame:
    """Readable numbers for the table format (csv and json keep the raw values)."""
    out = df.copy()
    for col in out.columns:
        if col == "utilization":
            out[col] = out[col].map(lambda v: f"{100 * v:.1f}%")
        elif col.startswith("et_") or col.endswith("_edp"):
            out[col] = out[col].map(lambda v: f"{v:.4e}")
        elif col.endswith("_us") or col == "exit_ratio" or col.startswith("vs_"):
            out[col] = out[col].map(lambda v: f"{v:.4g}")
        elif pd.api.types.is_numeric_dtype(out[col]) and not pd.api.types.is_bool_dtype(out[col]):
            out[col] = out[col].map(lambda v: f"{v:,.0f}")
    return out


def _value(v: object) -> str:
    if isinstance(v, float):
        return f"{v:.4e}" if abs(v) >= 1e7 else f"{v:.4g}"
    return str(v)


def render(nc: NetworkCost, fmt: str = "table", frequency_mhz: float | None = None) -> str:
    """The per-layer table, the per-exit table, with an explanation its two tables, and the summary in one of
    :data:`FORMATS`."""
    if fmt not in FORMATS:
        raise EenasError(f"format: '{fmt}' is not one of {', '.join(FORMATS)}")
    if frequency_mhz is not None and not frequency_mhz > 0:
        raise EenasError(f"frequency: {frequency_mhz} MHz is not a positive number")
    layers, exits, summ = layer_frame(nc, frequency_mhz), exit_frame(nc, frequency_mhz), summary(nc, frequency_mhz)
    tables = [
        ("layers", f"Layers on {nc.hardware} (layer-by-layer schedule; cycles are each layer's own latency)", layers),
        ("exits", ("Exits (stage = blocks since the previous exit + this exit's head; "
                   "cumulative columns include every earlier stage)"), exits),
    ]
    if nc.explanation is not None:
        tables += [
            ("explanation", ("Backbone convolutions on each core style, at their turn in the static schedule (pJ: "
                             "own energy, moving the input, fetching the parameters; EDP = pJ x own cycles)"),
             explanation_frame(nc.explanation)),
            ("placements", "The static network with the allocation and with every convolution on one style",
             placement_frame(nc.explanation)),
        ]
    if fmt == "json":
        return json.dumps({**{key: df.to_dict(orient="records") for key, _, df in tables}, "summary": summ}, indent=2)
    if fmt == "csv":
        summary_csv = pd.DataFrame({"metric": list(summ), "value": list(summ.values())}).to_csv(index=False)
        return "\n".join([*(df.to_csv(index=False) for _, _, df in tables), summary_csv]).rstrip("\n")
    lines = []
    for _, title, df in tables:
        lines += [title, _pretty(df).to_markdown(index=False, disable_numparse=True), ""]
    width = max(len(k) for k in summ)
    lines += [f"{k.ljust(width)}  {_value(v)}" for k, v in summ.items()]
    return "\n".join(lines)
