"""Accelerator presets and the validation of hand-written hardware files."""

from __future__ import annotations

import json
import math
import random
import re
from importlib import resources

import pytest
import yaml

from eenas.errors import EenasError
from eenas.hardware import PRESETS, load_accelerator


def preset(name: str = "edge_tpu_quad") -> dict:
    """The preset as plain data, every core its own copy (YAML aliases share one dict)."""
    text = resources.files("eenas.hardware").joinpath("presets").joinpath(f"{name}.yaml").read_text()
    return json.loads(json.dumps({k: v for k, v in yaml.safe_load(text).items() if not k.startswith("x-")}))


def test_quad_preset_has_the_reference_numbers():
    acc = load_accelerator()  # the default
    assert acc.name == "edge_tpu_quad" and len(acc.cores) == 4
    design = acc.cores[0].design
    assert all(c.design == design for c in acc.cores)
    assert design.mac_array.sizes == (8, 8, 4, 4) and design.mac_array.macs_per_cycle == 1024
    assert design.mac_array.energy_per_mac_pj == 0.04 and not design.mac_array.packs_low_precision
    assert design.weight_sram.size_bits == 32 * 1024 * 8 and design.act_sram.size_bits == 2 * 1024 * 1024 * 8
    assert (design.weight_sram.read_energy_pj, design.weight_sram.write_energy_pj) == (22.9, 52.01)
    assert (design.act_sram.read_energy_pj, design.act_sram.write_energy_pj) == (416.16, 378.4)
    assert acc.pooling_core.units == (3, 3, 8) and acc.simd_core.lanes == 64
    assert acc.dram.read_bw_bits == 64 and acc.dram.read_energy_pj == 1000
    assert acc.mesh.link_bw_bits == 32 and acc.mesh.link_energy_pj_per_bit == 0


def test_quad_mesh_routes_diagonals_over_two_hops():
    acc = load_accelerator("edge_tpu_quad")
    assert len(acc.mesh_links) == 4
    hops = {pair: len(route) for pair, route in acc.routes.items()}
    diagonal = {(0, 3), (3, 0), (1, 2), (2, 1)}
    assert all(n == (2 if pair in diagonal else 1) for pair, n in hops.items())


def test_single_preset_is_one_core():
    acc = load_accelerator("edge_tpu_single")
    assert len(acc.cores) == 1 and acc.routes == {} and acc.cores[0].design == load_accelerator().cores[0].design
    assert set(PRESETS) == {"edge_tpu_quad", "edge_tpu_single"}


def test_partial_access_rule():
    sram = load_accelerator().cores[0].design.act_sram
    assert sram.read_energy(2048) == 416.16
    assert sram.read_energy(1024) == pytest.approx(416.16 / 2)
    assert sram.read_energy(1) == pytest.approx(416.16 * 64 / 2048)  # rounds up to the 64-bit minimum
    assert sram.read_energy(4096) == pytest.approx(2 * 416.16)


def test_user_file_is_loaded_and_reloaded_when_it_changes(tmp_path):
    data = preset()
    path = tmp_path / "mine.yaml"
    path.write_text(yaml.safe_dump(data))
    assert load_accelerator(path).name == "edge_tpu_quad"
    data["name"], data["dram"]["read_energy_pj"] = "slow_dram", 2000
    path.write_text(yaml.safe_dump(data))
    acc = load_accelerator(str(path))
    assert acc.name == "slow_dram" and acc.dram.read_energy_pj == 2000


def _set(data: dict, path: str, value: object) -> None:
    *parents, last = path.split(".")
    node = data
    for key in parents:
        node = node[int(key)] if isinstance(node, list) else node[key]
    if value is _DELETE:
        del node[last]
    else:
        node[last] = value


_DELETE = object()


@pytest.mark.parametrize("path, value, message", [
    ("cores.2.mac_array.energy_per_mac_pj", -1,
     "cores[2].mac_array.energy_per_mac_pj: expected a positive number up to 1e+09"),
    ("cores.0.weight_sram.size_bits", _DELETE, "cores[0].weight_sram: missing field 'size_bits'"),
    ("cores.1.act_sram.read_energy_pj", "cheap",
     "cores[1].act_sram.read_energy_pj: expected a non-negative number up to 1e+09"),
    ("cores.1.mac_array.sizes", [8, 8, 4],
     "cores[1].mac_array.sizes: expected a list of 4 positive integers up to 2^24"),
    ("cores.3.mac_array.packs_low_precision", "yes", "cores[3].mac_array.packs_low_precision: expected true or false"),
    ("cores.0.output_rf.colour", "blue", "cores[0].output_rf: unknown field 'colour'"),
    ("cores.3.mesh_position", [0, 0], "cores[3].mesh_position: [0, 0] is taken by cores[0]"),
    ("cores.2.name", "tpu0", "cores[2].name: 'tpu0' is taken by cores[0]"),
    ("cores.1.name", " ", "cores[1].name: expected a non-empty string"),
    ("name", "", "name: expected a non-empty string"),
    ("cores.0.mac_array.psum_bits", 4,
     "cores[0].mac_array.psum_bits: 4 is narrower than native_bits (8): a partial sum cannot hold one product"),
    ("cores.0.weight_sram.min_bw_bits", 96, "cores[0].weight_sram.min_bw_bits: 96 does not divide the ports' "
     "bandwidths (512, 512): a port moves whole access words"),
    ("cores.1.weight_sram.size_bits", 256,
     "cores[1].weight_sram.size_bits: 256 cannot hold one D1 x D2 weight tile (512 bits)"),
    ("weights", "cached", "weights: 'cached' is not one of streamed, resident"),
    ("weights", ["resident"], "weights: ['resident'] is not one of streamed, resident"),
    ("dram.bw_bits", 0, "dram.bw_bits: expected a positive integer up to 2^24"),
    ("pooling_core.sram.min_bw_bits", 1024, "pooling_core.sram.min_bw_bits: 1024 exceeds a port's bandwidth"),
    ("simd_core", _DELETE, "hardware: missing field 'simd_core'"),
    ("turbo", True, "hardware: unknown field 'turbo'"),
    ("cores", [], "cores: expected a non-empty list"),
])
def test_bad_fields_are_named(tmp_path, monkeypatch, path, value, message):
    data = preset()
    _set(data, path, value)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "hw.yaml").write_text(yaml.safe_dump(data))
    with pytest.raises(EenasError) as err:
        load_accelerator("hw.yaml")
    assert str(err.value) == f"hw.yaml: {message}"


SIZE, WIDTH, ENERGY, ENERGY_0 = ("a positive integer up to 2^40", "a positive integer up to 2^24",
                                 "a positive number up to 1e+09", "a non-negative number up to 1e+09")


@pytest.mark.parametrize("path, value, expected", [
    ("cores.0.weight_sram.size_bits", 10**400, SIZE),
    ("cores.1.act_sram.size_bits", 2**40 + 1, SIZE),
    ("pooling_core.sram.size_bits", -262144, SIZE),
    ("cores.2.weight_sram.read_bw_bits", 2**30, WIDTH),
    ("dram.bw_bits", -64, WIDTH),
    ("mesh.link_bw_bits", 0, WIDTH),
    ("cores.0.mac_array.sizes", [8, 8, 4, 10**30], "a list of 4 positive integers up to 2^24"),
    ("cores.0.mesh_position", [0, 2**25], "a list of 2 non-negative integers up to 2^24"),
    ("cores.0.weight_sram.read_energy_pj", 10**400, ENERGY_0),
    ("cores.0.weight_sram.read_energy_pj", 1e300, ENERGY_0),
    ("dram.write_energy_pj", -1.0, ENERGY_0),
    ("cores.3.mac_array.energy_per_mac_pj", 0, ENERGY),
    ("mesh.link_energy_pj_per_bit", math.inf, ENERGY_0),
    ("simd_core.energy_per_op_pj", math.nan, ENERGY_0),
])
def test_absurd_sizes_bandwidths_and_energies_are_named_with_their_range(tmp_path, path, value, expected):
    """Regression (issue 32): a 10^400-bit SRAM was accepted, a 10^400 pJ energy was a traceback."""
    data = preset()
    _set(data, path, value)
    (tmp_path / "hw.yaml").write_text(yaml.safe_dump(data))
    with pytest.raises(EenasError) as err:
        load_accelerator(tmp_path / "hw.yaml")
    field = re.sub(r"\.(\d+)", r"[\1]", path)
    assert str(err.value) == f"{tmp_path / 'hw.yaml'}: {field}: expected {expected}"


def test_the_bounds_admit_the_largest_values(tmp_path):
    data = preset()
    for core in data["cores"]:
        core["act_sram"]["size_bits"] = 2**40
        core["weight_sram"]["read_energy_pj"] = 1e9
    data["dram"]["bw_bits"] = 2**24
    (tmp_path / "hw.yaml").write_text(yaml.safe_dump(data))
    acc = load_accelerator(tmp_path / "hw.yaml")
    assert acc.cores[0].design.act_sram.size_bits == 2**40 and acc.dram.read_bw_bits == 2**24


def test_disconnected_mesh_is_rejected(tmp_path):
    data = preset()
    data["cores"][3]["mesh_position"] = [5, 5]
    path = tmp_path / "hw.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(EenasError, match="not connected by the mesh"):
        load_accelerator(path)


@pytest.mark.parametrize("content, message", [
    (b"cores: [\n", "not valid YAML"),
    (b"- just\n- a list\n", "hardware: expected a mapping"),
    (b"", "hardware: expected a mapping"),
    (b"\xff\xfe\x00n\x00a\x00m\x00e\x00", "not a text file (byte 0 is not UTF-8)"),  # UTF-16
    (b"name: x\n\x89PNG\r\n\x1a\n", "not a text file (byte 8 is not UTF-8)"),
    (b"name: \x00\x01\x02\n", "not valid YAML"),  # UTF-8, but control characters
    (b"cores: !!python/object:os.system [ls]\n", "not valid YAML"),
])
def test_files_that_are_not_descriptions(tmp_path, content, message):
    path = tmp_path / "hw.yaml"
    path.write_bytes(content)
    with pytest.raises(EenasError, match=re.escape(message)) as err:
        load_accelerator(path)
    assert str(err.value).startswith(str(path)) and "\n" not in str(err.value)


def test_unknown_preset_or_missing_file():
    with pytest.raises(EenasError, match="unknown hardware 'edge_tpu_octa'.*presets: edge_tpu_quad"):
        load_accelerator("edge_tpu_octa")


def test_defaults_of_optional_fields(tmp_path):
    data = preset()
    for core in data["cores"]:
        for key in ("packs_low_precision", "depthwise_groups_on_d1", "native_bits"):
            del core["mac_array"][key]
    path = tmp_path / "hw.yaml"
    path.write_text(yaml.safe_dump(data))
    array = load_accelerator(path).cores[0].design.mac_array
    assert (array.packs_low_precision, array.depthwise_groups_on_d1, array.native_bits) == (False, True, 8)
    assert array.pack_factor(4, 4) == 1 and math.prod(array.sizes) == 1024


def test_the_weight_mode_defaults_to_streamed_and_is_part_of_the_identity(tmp_path):
    acc = load_accelerator()
    assert acc.weights == "streamed" and acc.with_weights(None) is acc and acc.with_weights("streamed") is acc
    resident = acc.with_weights("resident")
    assert resident.weights == "resident" and resident is acc.with_weights("resident") and resident != acc
    data = preset()
    del data["weights"]
    path = tmp_path / "hw.yaml"
    path.write_text(yaml.safe_dump(data))
    assert load_accelerator(path) == acc


def _mutations(rng: random.Random, text: str) -> str:
    """A hand-written file gone wrong: a value swapped for junk, a line lost, bytes flipped or cut."""
    lines = text.splitlines()
    kind = rng.randrange(4)
    if kind == 0:  # one value replaced
        i = rng.choice([i for i, line in enumerate(lines) if ":" in line and not line.lstrip().startswith("#")])
        key = lines[i].split(":")[0]
        junk = rng.choice(["-1", "0", "0.5", "1e400", ".nan", "true", "[]", "{}", "'x'", "[1, 2]", "null", "1e30",
                           "99999999999999999999", "[8, 8, 4, 4, 4]", "*tpu_core", "&a [*a]"])
        lines[i] = f"{key}: {junk}"
    elif kind == 1:  # one line lost
        del lines[rng.randrange(len(lines))]
    text = "\n".join(lines)
    data = bytearray(text.encode())
    if kind == 2:  # bytes flipped
        for _ in range(rng.randint(1, 4)):
            data[rng.randrange(len(data))] = rng.randrange(256)
    if kind == 3:  # cut short
        del data[rng.randrange(len(data)):]
    return bytes(data)


def test_malformed_files_are_one_line_errors_never_crashes(tmp_path):
    """Fuzzing the preset: loading either succeeds, and then costing succeeds too, or raises one EenasError line."""
    from eenas.arch import Arch, BackboneConfig, ExitConfig
    from eenas.hardware import cost_arch

    text = resources.files("eenas.hardware").joinpath("presets").joinpath("edge_tpu_quad.yaml").read_text()
    rng, loaded, failed = random.Random(0), 0, 0
    arch = Arch("cifar10", BackboneConfig(width_mult=0.25), exits=(ExitConfig(2, "pool_fc", 0.9, overlap=True),))
    for i in range(300):
        path = tmp_path / f"hw{i}.yaml"
        path.write_bytes(_mutations(rng, text))
        try:
            cost_arch(arch, path, allocation="greedy")
            loaded += 1
        except EenasError as exc:
            assert "\n" not in str(exc) and str(exc)
            failed += 1
    assert loaded > 20 and failed > 30  # both outcomes are exercised (27 load: the bounds refuse 1e30 and 10^20)
