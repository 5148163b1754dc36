"""Tables of a :class:`~eenas.hardware.network.NetworkCost` for ``eenas cost`` (table, csv, json)."""

from __future__ import annotations

import json

import pandas as pd

from eenas.errors import EenasError
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
        elif col.startswith("et_"):
            out[col] = out[col].map(lambda v: f"{v:.4e}")
        elif col.endswith("_us") or col == "exit_ratio":
            out[col] = out[col].map(lambda v: f"{v:.4g}")
        elif pd.api.types.is_numeric_dtype(out[col]) and not pd.api.types.is_bool_dtype(out[col]):
            out[col] = out[col].map(lambda v: f"{v:,.0f}")
    return out


def _value(v: object) -> str:
    if isinstance(v, float):
        return f"{v:.4e}" if abs(v) >= 1e7 else f"{v:.4g}"
    return str(v)


def render(nc: NetworkCost, fmt: str = "table", frequency_mhz: float | None = None) -> str:
    """The per-layer table, the per-exit table and the summary in one of :data:`FORMATS`."""
    if fmt not in FORMATS:
        raise EenasError(f"format: '{fmt}' is not one of {', '.join(FORMATS)}")
    if frequency_mhz is not None and not frequency_mhz > 0:
        raise EenasError(f"frequency: {frequency_mhz} MHz is not a positive number")
    layers, exits, summ = layer_frame(nc, frequency_mhz), exit_frame(nc, frequency_mhz), summary(nc, frequency_mhz)
    if fmt == "json":
        return json.dumps({
            "layers": layers.to_dict(orient="records"), "exits": exits.to_dict(orient="records"), "summary": summ,
        }, indent=2)
    if fmt == "csv":
        summary_csv = pd.DataFrame({"metric": list(summ), "value": list(summ.values())}).to_csv(index=False)
        return "\n".join([layers.to_csv(index=False), exits.to_csv(index=False), summary_csv]).rstrip("\n")
    lines = [
        f"Layers on {nc.hardware} (layer-by-layer schedule; cycles are each layer's own latency)",
        _pretty(layers).to_markdown(index=False, disable_numparse=True), "",
        ("Exits (stage = blocks since the previous exit + this exit's head; "
         "cumulative columns include every earlier stage)"),
        _pretty(exits).to_markdown(index=False, disable_numparse=True), "",
    ]
    width = max(len(k) for k in summ)
    lines += [f"{k.ljust(width)}  {_value(v)}" for k, v in summ.items()]
    return "\n".join(lines)
