"""``eenas evaluate`` and the CLI end to end on synthetic data at the tiny budget."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from dataclasses import fields, replace

import pandas as pd
import pytest
import torch

from eenas.arch import TrainingRecord, arch_from_dict
from eenas.errors import EenasError
from eenas.evaluate import check_training, check_writable, eval_path, evaluate_arch, training_record
from eenas.hardware import cost_arch
from eenas.train.pipeline import TRAINING_VERSION
from tests.conftest import arch_dict, run_eenas, write_arch


def test_evaluation_matches_the_cost_model_and_routing(tiny_pipeline):
    arch = arch_from_dict(arch_dict())
    result = evaluate_arch(arch, tiny_pipeline)
    cost = cost_arch(arch)
    table = result.exits
    assert list(table["after_block"]) == [3, 7, "final"]
    assert table["exit_ratio"].sum() == pytest.approx(1.0)
    assert list(table["cum_cycles"]) == [e.cum_latency_cycles for e in cost.exits]
    assert result.average_et == pytest.approx(sum(table["exit_ratio"] * table["cum_et"]))
    assert result.et_ratio == pytest.approx(result.average_et / cost.static_et)
    correct = (table["exit_ratio"] * table["exit_accuracy"].fillna(0)).sum()
    assert result.accuracy == pytest.approx(correct)


def test_joint_finetune_returns_every_exit_and_changes_the_weights(tiny_pipeline):
    arch = arch_from_dict(arch_dict())
    result = evaluate_arch(arch, tiny_pipeline, joint=True)
    assert len(result.exits) == 3 and 0 <= result.accuracy <= 1
    joint, separate = tiny_pipeline.arch_logits(arch, joint=True), tiny_pipeline.arch_logits(arch)
    for tuned, frozen in zip(joint, separate):  # every exit's logits moved, the final classifier's included
        assert tuned.val.shape == frozen.val.shape and not torch.equal(tuned.val, frozen.val)


def test_json_goes_beside_the_arch_and_never_over_a_file_evaluate_did_not_write(tmp_path):
    assert eval_path(tmp_path / "arch_3.json") == tmp_path / "arch_3.eval.json"  # never the search's stats_3.json
    check_writable(tmp_path / "new.json")  # nothing there yet
    foreign = tmp_path / "stats_3.json"
    for text in ('{"written_by": "eenas search"}', "[1, 2]", "not json"):
        foreign.write_text(text)
        with pytest.raises(EenasError, match="stats_3.json exists and 'eenas evaluate' did not write it"):
            check_writable(foreign)
        check_writable(foreign, force=True)
    foreign.write_text('{"written_by": "eenas evaluate"}')
    check_writable(foreign)  # its own output: rewritten freely


def test_training_record_holds_the_whole_cache_identity(tiny_pipeline):
    record = training_record(tiny_pipeline.cfg)
    # Everything TrainConfig.identity() hashes is in the block (dataset and width as the arch's own fields).
    assert set(tiny_pipeline.cfg.identity()) <= {"dataset", "width", *(f.name for f in fields(TrainingRecord))}
    arch = replace(arch_from_dict(arch_dict()), training=record)
    assert arch_from_dict(arch.to_dict()) == arch
    assert (record.budget, record.seed, record.finetune, record.training_version) == ("tiny", 0, "none",
                                                                                      TRAINING_VERSION)


def test_other_training_than_the_block_records_is_one_warning_line(tiny_pipeline, caplog):
    record = training_record(tiny_pipeline.cfg)
    arch = replace(arch_from_dict(arch_dict()), training=record)
    with caplog.at_level(logging.WARNING, logger="eenas.evaluate"):
        assert check_training(arch, tiny_pipeline.cfg, "none", "arch.json") == []
        assert not caplog.records
        old = replace(arch, training=replace(record, training_version=TRAINING_VERSION - 1, seed=7))
        changed = check_training(old, tiny_pipeline.cfg, "joint", "arch.json")
    assert changed == ["seed 7 -> 0", "finetune none -> joint", f"training_version {TRAINING_VERSION - 1} -> "
                       f"{TRAINING_VERSION}"]
    assert len(caplog.records) == 1 and "numbers will differ" in caplog.records[0].getMessage()
    retuned = replace(record, recipe=tuple((k, 99 if k == "head_epochs" else v) for k, v in record.recipe))
    assert check_training(replace(arch, training=retuned), tiny_pipeline.cfg, "none", "a") == [
        f"recipe.head_epochs 99 -> {dict(record.recipe)['head_epochs']}"]


def test_cli_evaluate_end_to_end_and_second_run_trains_nothing(tmp_path, cache_dir, monkeypatch, capsys):
    arch = write_arch(tmp_path / "arch.json")
    common = ["--arch", arch, "--budget", "tiny", "--cache-dir", cache_dir, "--device", "cpu"]
    first = run_eenas(monkeypatch, capsys, "evaluate", *common, "--json")
    assert first.code == 0, first.err
    stats = json.loads((tmp_path / "arch.eval.json").read_text())
    assert stats["written_by"] == "eenas evaluate" and stats["arch"]["training"]["budget"] == "tiny"
    assert {k: v for k, v in stats["arch"].items() if k != "training"} == arch_dict() and 0 <= stats["accuracy"] <= 1
    assert len(stats["exits"]) == 3
    second = run_eenas(monkeypatch, capsys, "evaluate", *common)
    assert second.code == 0 and "trained: nothing (all cached)" in second.out
    assert f"{stats['accuracy']:.4f}" in second.out


@pytest.mark.parametrize("overrides, field", [
    ({"exits": [{"after_block": 40, "head": "pool_fc", "threshold": 0.9}]}, "exits[0].after_block"),
    ({"exits": [{"after_block": 3, "head": "pool_fc", "threshold": 0.9},
                {"after_block": 3, "head": "pool_fc", "threshold": 0.8}]}, "duplicate mount point"),
    ({"dataset": "mnist"}, "unknown dataset"),
    ({"hardware": "no_such_chip"}, "no_such_chip"),
])
def test_cli_bad_input_is_one_line_and_exit_code_2(tmp_path, cache_dir, monkeypatch, capsys, overrides, field):
    arch = write_arch(tmp_path / "arch.json", **overrides)
    res = run_eenas(monkeypatch, capsys, "evaluate", "--arch", arch, "--budget", "tiny", "--cache-dir", cache_dir,
                    "--device", "cpu")
    assert res.code == 2
    assert field in res.err and len(res.err.strip().splitlines()) == 1 and "Traceback" not in res.err


def test_cli_missing_arch_file_and_version(tmp_path, monkeypatch, capsys):
    """``python -m eenas`` in a new process, once: what a user's shell gets (the other CLI tests run ``main`` in this
    one)."""
    res = subprocess.run([sys.executable, "-m", "eenas", "evaluate", "--arch", str(tmp_path / "none.json")],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 2 and "cannot read arch file" in res.stderr
    assert run_eenas(monkeypatch, capsys, "--version").out.startswith("eenas, version")


@pytest.mark.slow
def test_real_cifar10_subset_evaluate(tmp_path, cache_dir, cifar_dir, monkeypatch, capsys):
    """The tiny budget trains on 1,024 real CIFAR-10 images and tests on 512."""
    arch = write_arch(tmp_path / "arch.json", dataset="cifar10")
    res = run_eenas(monkeypatch, capsys, "evaluate", "--arch", arch, "--budget", "tiny", "--cache-dir", cache_dir,
                    "--device", "cpu", "--data-dir", cifar_dir, "--json")
    assert res.code == 0, res.err
    stats = json.loads((tmp_path / "arch.eval.json").read_text())
    # 8 epochs on 1,024 images reach about 26% (measured); chance is 10% +- 1.3 points on 512 images.
    assert stats["static_accuracy"] > 0.18
    table = pd.DataFrame(stats["exits"])
    assert table["exit_ratio"].sum() == pytest.approx(1.0)
