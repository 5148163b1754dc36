"""Co-search (``eenas search --hardware-space``): hardware spaces, the accelerator gene, and a tiny run end to end."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import eenas.hardware
from eenas.arch import arch_from_dict, load_arch
from eenas.cli import main
from eenas.errors import EenasError
from eenas.hardware import cost_arch, load_accelerator
from eenas.hardware.accelerator import CASE_STUDY_PRESETS
from eenas.hardware.space import load_hardware_space, macs_per_cycle, on_chip_bits
from eenas.search import SearchSpace
from eenas.search.evaluator import Evaluator
from eenas.search.operators import ExitRepair, ExitSampling, ResetMutation
from eenas.search.space import HardwareChoice
from tests.conftest import SMALL_SEARCH

CORES = Path(eenas.hardware.__file__).parent / "presets" / "cores"
QUAD_AND_SINGLE = (HardwareChoice("quad", "edge_tpu_quad", 4), HardwareChoice("single", "edge_tpu_single", 1))


def _space_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "space.yaml"
    path.write_text(text)
    return path


def _styles(*keys: str) -> str:
    files = {"E": "edge_tpu_like", "M": "meta_like", "Y": "eyeriss_like"}
    return "{" + ", ".join(f"{k}: {CORES / files[k]}.yaml" for k in keys) + "}"


def test_composition_gives_each_multiset_once_and_the_case_study_systems_exactly():
    space = load_hardware_space("case_study")
    names = [m.name for m in space.members]
    assert len(names) == 15 == math.comb(4 + 3 - 1, 4)  # 4 slots, 3 styles: multisets, not orderings
    assert names[:3] == ["sys_EEEE", "sys_EEEM", "sys_EEEY"] and "sys_EEMY" in names and "sys_EMEY" not in names
    composed = {m.name: m.accelerator for m in space.members}
    assert all(composed[name] == load_accelerator(name) for name in CASE_STUDY_PRESETS)  # the nine, exactly
    assert space.excluded == () and macs_per_cycle(composed["sys_EEEE"]) == 4096
    assert on_chip_bits(composed["sys_MMMM"]) == 4 * 17_572_352  # the core file's own figure


def test_a_budget_leaves_the_members_over_it_out_of_the_space(tmp_path):
    path = _space_file(tmp_path, f"compose: {{slots: [2, 4], styles: {_styles('E', 'M', 'Y')}}}\n"
                                 "budget: {max_on_chip_bits: 69000000}\n")
    space = load_hardware_space(path)
    assert len(space.members) + len(space.excluded) == 6 + 15
    assert space.excluded == ("sys_EEMM", "sys_EMMM", "sys_EMMY", "sys_MMMM", "sys_MMMY", "sys_MMYY")
    assert all(on_chip_bits(m.accelerator) <= 69_000_000 for m in space.members)
    assert {len(m.accelerator.cores) for m in space.members} == {2, 4}


def test_genome_round_trip_with_the_hardware_gene():
    space = SearchSpace("synthetic", 0.25, choices=QUAD_AND_SINGLE)
    plain = SearchSpace("synthetic", 0.25)
    assert space.n_var == plain.n_var + 1 and space.upper[-1] == 1 and space.cores == 4
    rng = np.random.default_rng(0)
    X = ExitSampling(space, expected_exits=4).do(None, 200, random_state=rng).get("X")
    X = ExitRepair(space)._do(None, ResetMutation(space)._do(None, X, random_state=rng), random_state=rng)
    assert set(X[:, -1]) == {0, 1}
    for x in X:
        arch = space.decode(x)
        assert np.array_equal(space.encode(arch), x)
        assert arch_from_dict(arch.to_dict()) == arch
        assert arch.hardware == space.choice(x).hardware
        assert all(e.core < space.choice(x).cores for e in arch.exits)
        other = x.copy()
        other[-1] = 1 - other[-1]  # the same network on the other accelerator: the same heads, the same predictor input
        assert Evaluator.heads(space.decode(other)) == Evaluator.heads(arch)
        assert np.array_equal(space.features(other), space.features(x))


def test_mapping_genes_are_repaired_to_the_chosen_accelerators_cores():
    space = SearchSpace("synthetic", 0.25, choices=(*QUAD_AND_SINGLE, HardwareChoice("pair", "sys_EEEE", 2)))
    m = space.n_mounts
    x = np.zeros(space.n_var, dtype=int)
    x[[0, 1]] = 1
    x[2 * m : 2 * m + 2] = [7, 4]  # core 3 with overlap, core 2
    for choice, mapping in [(0, [7, 4]), (1, [1, 0]), (2, [3, 0])]:
        x[-1] = choice
        assert list(space.canonical(x)[2 * m : 2 * m + 2]) == mapping
        assert [(e.core, e.overlap) for e in space.decode(x).exits] == [(g // 2, bool(g % 2)) for g in mapping]
    assert list(SearchSpace("synthetic", 0.25).canonical(x[:-1])[2 * m : 2 * m + 2]) == [7, 4]  # no gene: no repair


@pytest.mark.parametrize("text, message", [
    ("accelerators: []", "accelerators: expected a non-empty list"),
    ("accelerators: [sys_EEEE]\ncolour: red", "hardware space: unknown field 'colour'"),
    ("accelerators: [no_such_chip]", "accelerators[0]: unknown hardware"),
    ("compose: {slots: 4, styles: {}}", "compose.styles: expected a non-empty mapping"),
    ("compose: {slots: 4, styles: {E: missing.yaml}}", "compose.styles.E: file 'missing.yaml' not found"),
    ("compose: {slots: 4}", "compose: missing field 'styles'"),
    ("compose: {slots: 0, styles: {E: x.yaml}}", "compose.slots: expected a core count"),
    (f"compose: {{slots: 2, template: edge_tpu_quad, styles: {_styles('E')}}}", "compose.template: 'edge_tpu_quad' is"),
    (f"compose: {{slots: 2, styles: {_styles('E')}, rows: 1}}", "compose: unknown field 'rows'"),
    ("accelerators: [sys_EEEE]\nbudget: {max_macs: 100}", "budget: no accelerator of the space is within it"),
    ("accelerators: [sys_EEEE]\nbudget: {max_area: 100}", "budget: unknown field 'max_area'"),
    ("accelerators: [sys_EEEE, sys_EEEE]", "accelerator 'sys_EEEE' is in the space twice"),
    ("name: nothing", "expected 'accelerators', 'compose' or both"),
])
def test_a_bad_space_file_is_one_line_and_exit_2(tmp_path, monkeypatch, capsys, text, message):
    path = _space_file(tmp_path, text)
    monkeypatch.setattr(sys, "argv", ["eenas", "search", "--dataset", "synthetic", "--hardware-space", str(path),
                                      "--out", str(tmp_path / "run")])
    with pytest.raises(SystemExit) as exited:
        main()
    err = capsys.readouterr().err
    assert exited.value.code == 2 and err.startswith(f"eenas: error: {path}: ") and err.count("\n") == 1
    assert message in err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("args, message", [
    (["--hardware-space", "case_study", "--hardware", "edge_tpu_quad"], "--hardware and --hardware-space exclude"),
    (["--hardware-space", "no_such_space.yaml"], "--hardware-space: no file 'no_such_space.yaml'"),
])
def test_hardware_options_are_checked_before_anything_runs(monkeypatch, capsys, args, message):
    monkeypatch.setattr(sys, "argv", ["eenas", "search", "--dataset", "synthetic", *args])
    with pytest.raises(SystemExit) as exited:
        main()
    err = capsys.readouterr().err
    assert exited.value.code == 2 and err.startswith("eenas: error: ") and message in err and err.count("\n") == 1


def _cosearch(tmp_path: Path, cache_dir: Path, space: Path, out: str, monkeypatch) -> str:
    sizes = [f"--{k.replace('_', '-')}={v}" for k, v in SMALL_SEARCH.items()]
    monkeypatch.setattr(sys, "argv", ["eenas", "search", "--dataset", "synthetic", "--budget", "tiny",
                                      "--hardware-space", str(space), "--out", str(tmp_path / out),
                                      "--cache-dir", str(cache_dir), "--device", "cpu", "--holdout", "0", *sizes])
    main()
    return out


def test_a_tiny_cosearch_returns_a_front_naming_its_accelerators(tmp_path, cache_dir, monkeypatch, capsys):
    space = _space_file(tmp_path, "accelerators: [edge_tpu_quad]\n"
                                  f"compose: {{slots: 1, styles: {_styles('E', 'Y')}}}\n")
    run = tmp_path / _cosearch(tmp_path, cache_dir, space, "run", monkeypatch)
    printed = capsys.readouterr().out
    names = ["edge_tpu_quad", "sys_E", "sys_Y"]
    front, archive = pd.read_csv(run / "pareto.csv"), pd.read_csv(run / "archive.csv")
    assert len(front) >= 1 and set(front["hardware"]) <= set(names) and set(archive["hardware"]) <= set(names)
    assert list(archive.columns[4:7]) == ["exits", "hardware", "n_exits"]
    assert (run / "pareto.png").stat().st_size > 0
    for name in names:  # the static references, per accelerator
        assert f"static backbone 8-bit on {name}: " in printed
    for row in front.itertuples():
        path = run / "pareto" / f"arch_{row.k}.json"
        written = json.loads(path.read_text())["hardware"]  # a preset, or the run's own file beside it
        assert written == row.hardware or written == f"../hardware/{row.hardware}.yaml"
        stats = json.loads((run / "pareto" / f"stats_{row.k}.json").read_text())
        assert stats["arch"]["hardware"] == written  # the stats beside it name it alike: the folder can move
        arch = load_arch(path)
        assert load_accelerator(arch.hardware).name == row.hardware
        cost = cost_arch(arch)
        assert cost.static_et == pytest.approx(row.static_et)  # its ET ratio is against its own accelerator
    config = json.loads((run / "config.json").read_text())["search"]
    assert config["hardware_space"] == str(space) and "hardware" not in config
    assert sorted(p.name for p in (run / "hardware").glob("*.yaml")) == ["sys_E.yaml", "sys_Y.yaml"]
    again = tmp_path / _cosearch(tmp_path, cache_dir, space, "again", monkeypatch)
    assert (again / "pareto.csv").read_text() == (run / "pareto.csv").read_text()  # same seed, same front


def test_an_arch_on_an_accelerator_outside_the_space_has_no_genome():
    with pytest.raises(EenasError, match="lies outside the search space"):
        SearchSpace("synthetic", 0.25, choices=QUAD_AND_SINGLE).encode(
            SearchSpace("synthetic", 0.25, hardware="sys_EEMY").static_arch(8))
