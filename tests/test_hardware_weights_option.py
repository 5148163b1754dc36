"""``--weights`` reaches the cost model from evaluate and search, and a search records it."""

from __future__ import annotations

import json

import pytest

from eenas.arch import Arch, BackboneConfig, ExitConfig
from eenas.errors import EenasError
from eenas.hardware import cost_arch
from eenas.search import SearchConfig
from eenas.search.evaluator import Evaluator
from eenas.search.rundir import CHECKPOINT_VERSION
from tests.conftest import start_search


def _config(**kwargs) -> SearchConfig:
    return SearchConfig.create("synthetic", "tiny", **kwargs)


def test_the_search_records_the_weight_mode_and_refuses_to_resume_with_another(tmp_path):
    out, cache = tmp_path / "run", tmp_path / "cache"
    run = start_search(_config(weights="resident"), out, cache)
    assert json.loads((out / "config.json").read_text())["search"]["weights"] == "resident"
    assert run.evaluator.weights == "resident"
    # As if the run had been killed after its first checkpoint.
    checkpoint = {"version": CHECKPOINT_VERSION, "iteration": 0, "archive": [], "history": [], "population": None,
                  "rng_state": None}
    (out / "checkpoint.json").write_text(json.dumps(checkpoint))
    assert start_search(_config(weights="resident"), out, cache, resume=True).state.iteration == 0
    for other in ("streamed", None):
        with pytest.raises(EenasError, match=r"different 'weights' \(resident\)"):
            start_search(_config(weights=other), out, cache, resume=True)
    # A checkpoint of an older format (formatted strings in its archive) is refused, not misread.
    (out / "checkpoint.json").write_text(json.dumps({**checkpoint, "version": 1}))
    with pytest.raises(EenasError, match="checkpoint version 1.*start a new --out"):
        start_search(_config(weights="resident"), out, cache, resume=True)
    # A run recorded before the option existed has no 'weights': refused, naming it (not a crash).
    config = json.loads((out / "config.json").read_text())
    del config["search"]["weights"]
    (out / "config.json").write_text(json.dumps(config))
    with pytest.raises(EenasError, match=r"different 'weights' \(not recorded: the default of its version\)"):
        start_search(_config(weights="resident"), out, cache, resume=True)


def test_a_bad_weight_mode_is_refused_up_front():
    with pytest.raises(EenasError, match="--weights: 'cached' is not one of streamed, resident"):
        _config(weights="cached")


def test_the_evaluator_costs_in_the_run_s_weight_mode(tmp_path):
    arch = Arch("synthetic", BackboneConfig(width_mult=0.25), (ExitConfig(3, "pool_fc", 0.9),))
    for weights in ("streamed", "resident"):
        evaluator = Evaluator(pipeline=None, hardware="edge_tpu_quad", weights=weights)  # type: ignore[arg-type]
        assert evaluator.cost(arch) == cost_arch(arch, "edge_tpu_quad", weights)
    assert Evaluator(None, "edge_tpu_quad", "resident").cost(arch) != Evaluator(None, "edge_tpu_quad").cost(arch)


def test_evaluate_and_search_take_the_option():
    from click.testing import CliRunner

    from eenas.cli import cli

    for command in (["evaluate", "--arch", "a.json"], ["search"]):
        assert "--weights [streamed|resident]" in CliRunner().invoke(cli, [command[0], "--help"]).output
        result = CliRunner().invoke(cli, [*command, "--weights", "pinned"])
        assert result.exit_code == 2 and "'pinned' is not one of 'streamed', 'resident'" in result.output


def test_the_arch_file_s_weight_mode_is_what_evaluate_costs_and_records(tiny_pipeline):
    from dataclasses import replace

    from eenas.evaluate import evaluate_arch

    arch = Arch("synthetic", BackboneConfig(width_mult=0.25), (ExitConfig(3, "pool_fc", 0.9),), weights="resident")
    evaluation = evaluate_arch(arch, tiny_pipeline)
    assert evaluation.arch.weights == "resident"  # a search's arch_<k>.json keeps its run's mode
    resident, streamed = (cost_arch(arch, "edge_tpu_quad", mode).static_et for mode in ("resident", "streamed"))
    assert evaluation.static_et == resident != streamed
    assert evaluate_arch(replace(arch, weights=None), tiny_pipeline, weights="resident").static_et == resident
