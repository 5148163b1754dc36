"""eenas's per-layer cost against ZigZag itself, on the case study's three core styles.

For a few real CIFAR layers (MobileNetV2 width 0.5 on 32x32, shapes from eenas's own spec) and
each core of ``eenas/hardware/presets/cores/`` (edge_tpu_like, meta_like, eyeriss_like), this
costs the layer with eenas (``conv_cost``, all operands on chip, w8a8) and with ZigZag's API
(``get_hardware_performance_zigzag``, zigzag-dse 3.9.1, LOMA temporal search, EDP objective)
on the same core, with the spatial mapping eenas chose, and writes a CSV and a markdown table.

ZigZag runs in its own interpreter (``--zigzag-python``, default /tmp/zz/bin/python), so the
eenas environment never imports it: this file is run there again with ``--zigzag-side``,
reads the jobs as JSON on stdin and prints the results as JSON.  The eenas side converts the
case study's Stream 1.x core files to ZigZag 3.9's port format and drops their DRAM level, so
that both tools see the same on-chip hierarchy (eenas's ``dram=False`` view).

    python3 -m venv /tmp/zz && /tmp/zz/bin/pip install zigzag-dse==3.9.1 six
    python benchmarks/zigzag_compare.py --out benchmarks/results/zigzag_compare
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CORES = {"edge_tpu_like": "sys_EEEE", "meta_like": "sys_MMMM", "eyeriss_like": "sys_YYYY"}  # style: a preset of it
LAYERS = ("stem", "b2.expand", "b2.dw", "b2.project", "final.fc")
TOLERANCE = 0.15


def zigzag_side() -> None:
    """Run in ZigZag's interpreter: one ZigZag evaluation per job, results as JSON on stdout."""
    import logging

    from zigzag.api import get_hardware_performance_zigzag

    logging.disable(logging.CRITICAL)
    jobs, results = json.load(sys.stdin), []
    for job in jobs:
        with tempfile.TemporaryDirectory() as tmp:
            paths = {}
            for key in ("workload", "accelerator", "mapping"):
                paths[key] = str(Path(tmp) / f"{key}.yaml")
                Path(paths[key]).write_text(json.dumps(job[key]))  # JSON is YAML
            energy, latency, cmes = get_hardware_performance_zigzag(
                paths["workload"], paths["accelerator"], paths["mapping"], opt="EDP", dump_folder=tmp,
                loma_show_progress_bar=False)
            cme = cmes[0][1][0][0]
            results.append({
                "energy_pj": float(energy), "cycles": float(latency), "mac_pj": float(cme.mac_energy),
                "memory_pj": {str(op): [float(e) for e in levels] for op, levels in cme.mem_energy_breakdown.items()},
                "temporal": str(cme.temporal_mapping), "spatial": str(cme.spatial_mapping),
                "ideal_cycles": float(cme.ideal_temporal_cycle),
                "stall": float(cme.latency_total0 - cme.ideal_temporal_cycle),
                "onload": float(cme.data_onloading_cycle), "offload": float(cme.data_offloading_cycle),
            })
    json.dump(results, sys.stdout)


def port_format(core_file: Path) -> dict:
    """A Stream 1.x (ZigZag 2.x) core file in ZigZag 3.9's format, without its DRAM level."""
    import yaml

    data = yaml.safe_load(core_file.read_text())
    memories = {}
    for name, mem in data["memories"].items():
        if name == "dram" or mem.get("mem_type") == "dram":
            continue
        kinds = {"r_port": ("read", mem["r_bw"], mem.get("min_r_granularity", mem["r_bw"])),
                 "w_port": ("write", mem["w_bw"], mem.get("min_w_granularity", mem["w_bw"])),
                 "rw_port": ("read_write", mem["r_bw"], mem.get("min_r_granularity", mem["r_bw"]))}
        ports = {f"{prefix}_{i}": {"name": f"{prefix}_{i}", "type": kind, "bandwidth_min": low, "bandwidth_max": bw,
                                   "allocation": []}
                 for prefix, (kind, bw, low) in kinds.items() for i in range(1, mem.get(prefix, 0) + 1)}
        for operand, links in zip(mem["operands"], mem["ports"]):
            for direction, port in links.items():
                ports[port]["allocation"].append(f"{operand}, {direction}")
        memories[name] = {"size": mem["size"], "r_cost": mem["r_cost"], "w_cost": mem["w_cost"], "area": 0,
                          "latency": 1, "operands": mem["operands"],
                          "ports": [p for p in ports.values() if p["allocation"]],
                          "served_dimensions": mem["served_dimensions"]}
    array = data["operational_array"]
    return {"name": data["name"], "memories": memories, "operational_array": {
        "unit_energy": array["multiplier_energy"], "unit_area": 1, "dimensions": array["dimensions"],
        "sizes": array["sizes"]}}


def workload(name: str, layer) -> list[dict]:
    """One ZigZag layer: a convolution (FC = 1x1 on 1x1) or a depthwise convolution, 8-bit, 16-bit partial sums."""
    s, k, pad = layer.stride, layer.kernel, layer.kernel // 2
    grouped = layer.groups > 1
    dims = ["B", "G" if grouped else "K", *([] if grouped else ["C"]), "OY", "OX", "FY", "FX"]
    sizes = [1, layer.out_channels, *([] if grouped else [layer.in_channels]), layer.out_height, layer.out_width, k, k]
    channel = "[g]" if grouped else "[k]"
    equation = (f"O[b]{channel}[oy][ox]+=W{channel}{'' if grouped else '[c]'}[fy][fx]*"
                f"I[b]{'[g]' if grouped else '[c]'}[iy][ix]")
    return [{
        "id": 0, "name": name, "operator_type": "Conv", "equation": equation,
        "dimension_relations": [f"ix={s}*ox+1*fx", f"iy={s}*oy+1*fy"],
        "loop_dims": dims, "loop_sizes": sizes,
        "operand_precision": {"W": 8, "I": 8, "O": 16, "O_final": 8},
        "operand_source": {"I": 0},
        "pr_loop_dims": ["IY", "IX"], "pr_loop_sizes": [layer.height, layer.width], "padding": [[pad, pad], [pad, pad]],
    }]


def eenas_side(out: Path, zigzag_python: str) -> None:
    import pandas as pd

    from eenas.hardware import load_accelerator
    from eenas.hardware.core import as_core, loop_sizes
    from eenas.hardware.layer_cost import conv_cost, spatial_mapping
    from eenas.hardware.workload import backbone
    from eenas.io import write_text
    from eenas.precision import Precision

    layers = {n.name: n.layer for b in backbone(0.5, Precision(8, 8), 10) for n in b.nodes if n.name in LAYERS}
    rows, jobs = [], []
    for style, preset in CORES.items():
        path = ROOT / "eenas" / "hardware" / "presets" / "cores" / f"{style}.yaml"
        core = as_core(load_accelerator(preset).cores[0].design)
        accelerator = port_format(path)
        for name in LAYERS:
            layer = layers[name]
            mapping, sizes = spatial_mapping(layer, core), loop_sizes(layer)
            # Idle dimensions get B (of size 1), so that ZigZag does not fill them with loops of its choice.
            spatial = {f"D{d + 1}": [f"{loop}, {min(size, sizes[loop])}" if loop else "B, 1"]
                       for d, (loop, size) in enumerate(zip(mapping, core.sizes))}
            jobs.append({"workload": workload(name, layer), "accelerator": accelerator,
                         "mapping": [{"name": "default", "spatial_mapping": spatial,
                                      "memory_operand_links": {"O": "O", "W": "I2", "I": "I1"}}]})
            cost = conv_cost(layer, core, 8, 8, 8, None)
            bias = sum(v for k, v in cost.breakdown.items() if k.startswith("B."))
            rows.append({"layer": name, "shape": _shape(layer), "core": style,
                         "mapping": " ".join(f"{loop}{min(size, sizes[loop])}" for loop, size in
                                             zip(mapping, core.sizes) if loop is not None),
                         "eenas_cycles": cost.latency_cycles, "eenas_energy_pj": cost.energy_pj - bias,
                         "eenas_bias_pj": bias})
    done = subprocess.run([zigzag_python, __file__, "--zigzag-side"], input=json.dumps(jobs), capture_output=True,
                          text=True, check=False)
    if done.returncode:
        sys.exit(f"ZigZag failed:\n{done.stderr[-4000:]}")
    for row, result in zip(rows, json.loads(done.stdout)):
        row.update({"zigzag_cycles": result["cycles"], "zigzag_energy_pj": result["energy_pj"]})
        row["cycles_diff"] = row["eenas_cycles"] / row["zigzag_cycles"] - 1
        row["energy_diff"] = row["eenas_energy_pj"] / row["zigzag_energy_pj"] - 1
        row["zigzag_temporal"] = result["temporal"].replace("\n", " ")
        row["zigzag_memory_pj"] = json.dumps(result["memory_pj"])
    frame = pd.DataFrame(rows)
    out.mkdir(parents=True, exist_ok=True)
    write_text(out / "zigzag_compare.csv", frame.to_csv(index=False))
    shown = frame[["layer", "shape", "core", "mapping", "zigzag_cycles", "eenas_cycles", "cycles_diff",
                   "zigzag_energy_pj", "eenas_energy_pj", "energy_diff"]].copy()
    for col in ("cycles_diff", "energy_diff"):
        shown[col] = shown[col].map(lambda v: f"{100 * v:+.1f}%")
    write_text(out / "zigzag_compare.md", shown.to_markdown(index=False, floatfmt=".6g") + "\n")
    print(shown.to_markdown(index=False, floatfmt=".6g"))
    worst = frame[["cycles_diff", "energy_diff"]].abs().max()
    print(f"\nlargest differences: cycles {100 * worst['cycles_diff']:.1f}%, energy {100 * worst['energy_diff']:.1f}% "
          f"(target {100 * TOLERANCE:.0f}%)")


def _shape(layer) -> str:
    kind = "dw " if layer.groups > 1 else ""
    return (f"{kind}{layer.in_channels}->{layer.out_channels} k{layer.kernel}/s{layer.stride} "
            f"{layer.height}x{layer.width}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--zigzag-side", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--zigzag-python", default="/tmp/zz/bin/python",
                        help="an interpreter with zigzag-dse==3.9.1 (default: /tmp/zz/bin/python)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "zigzag_compare")
    args = parser.parse_args()
    if args.zigzag_side:
        zigzag_side()
    else:
        eenas_side(args.out, args.zigzag_python)


if __name__ == "__main__":
    main()
