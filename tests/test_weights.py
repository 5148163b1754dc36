"""The pretrained-weights registry: publish from a pretraining, start from it, check its hash.

Everything runs at ``tiny`` on synthetic data, in a registry folder of the test's own
(``$EENAS_WEIGHTS_DIR``), on the session's training cache.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest
import torch
import yaml
from click.testing import CliRunner

from eenas.arch import load_arch
from eenas.cli import cli
from eenas.errors import EenasError
from eenas.train import Pipeline, TrainConfig, get_budget
from eenas.train.pipeline import FLOAT, Precision
from eenas.weights import WeightsRegistry, resolve_pretrained
from tests.conftest import run_eenas, write_arch

NAME = "tiny_synthetic"


def invoke(*args: str) -> str:
    result = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture(scope="module")
def registry_dir(tmp_path_factory, cache_dir, tiny_pipeline):
    """A registry holding the tiny synthetic pretraining (trained once for the session) as NAME."""
    root = tmp_path_factory.mktemp("weights")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("EENAS_WEIGHTS_DIR", str(root))
        tiny_pipeline.float_backbone()  # the pretraining the entry is published from
        invoke("weights", "publish", NAME, "--dataset", "synthetic", "--budget", "tiny", "--width-mult", "0.25",
               "--qat-budget", "tiny", "--precisions", "w8a8", "--ship-qat", "--cache-dir", cache_dir,
               "--device", "cpu")
    return root


@pytest.fixture
def registry(registry_dir, monkeypatch) -> WeightsRegistry:
    monkeypatch.setenv("EENAS_WEIGHTS_DIR", str(registry_dir))
    return WeightsRegistry()


def tiny_config(cache_dir, **kwargs) -> TrainConfig:
    return TrainConfig("synthetic", get_budget("tiny"), 0.25, cache_dir=cache_dir, device="cpu", **kwargs)


def test_publish_records_what_it_measured(registry, tiny_pipeline):
    entry = registry.get(NAME)
    assert entry.backbone == "mobilenet_v2" and dict(entry.options) == {"width_mult": 0.25}
    assert dict(entry.split) == {"seed": 0, "val_fraction": 0.1}
    assert set(entry.accuracy) == {"w32a32", "w8a8"} and all(0.5 < a["val"] <= 1 for a in entry.accuracy.values())
    # Accuracy against epochs: every 5th epoch and the last, each with the wall time so far.
    assert [h["epoch"] for h in entry.history] == [5, 8] and entry.wall_time_s == entry.history[-1]["seconds"] > 0
    assert entry.recipe["pretrain_epochs"] == 8 and "--pretrained none" in entry.command
    assert entry.parameters == sum(p.numel() for p in tiny_pipeline.float_backbone().parameters())
    assert registry.path(entry).stat().st_size < 2.5 * entry.parameters + 50_000  # float16 storage: 2 bytes each


def test_list_and_show(registry):
    table = invoke("weights", "list")
    assert NAME in table and "w8a8 val/test" in table and "width_mult=0.25" in table
    assert "w8a8 (tiny)" in table  # the shipped fine-tune and the budget whose recipe trained it
    shown = invoke("weights", "show", NAME)
    assert shown.count("sha256 matches") == 2 and "accuracy against pretraining epochs" in shown  # float and w8a8


def test_show_plots_accuracy_against_epochs(registry_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("EENAS_WEIGHTS_DIR", str(registry_dir))
    png = tmp_path / "history.png"
    assert f"wrote {png}" in invoke("weights", "show", NAME, "--plot", png)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    # An entry without a history (written by hand) is one error line, and no figure.
    bare = tmp_path / "bare"
    shutil.copytree(registry_dir, bare)
    entries = yaml.safe_load((bare / "registry.yaml").read_text())
    for entry in entries:
        entry.pop("history", None)
    (bare / "registry.yaml").write_text(yaml.safe_dump(entries, sort_keys=False))
    monkeypatch.setenv("EENAS_WEIGHTS_DIR", str(bare))
    result = run_eenas(monkeypatch, capsys, "weights", "show", NAME, "--plot", str(tmp_path / "none.png"))
    assert result.code == 2 and "records no accuracy against epochs" in result.err
    assert not (tmp_path / "none.png").exists()


def test_auto_starts_from_the_registered_weights_and_trains_no_float_backbone(registry, cache_dir, tiny_pipeline):
    pipe = Pipeline(tiny_config(cache_dir))  # pretrained auto
    entry = registry.get(NAME)
    assert pipe.cfg.weights == entry and pipe.cfg.identity()["pretrained"] == entry.tag
    logits, labels = pipe.final_logits(FLOAT), pipe.labels()
    assert pipe.trained == []
    # float16 storage moves the logits a little, but the network is the pretrained one
    assert ((logits.val.argmax(1) == labels.val).float().mean().item()
            == pytest.approx(entry.accuracy["w32a32"]["val"], abs=0.01))
    scratch = Pipeline(tiny_config(cache_dir, pretrained="none"))
    assert scratch.float_key() == tiny_pipeline.float_key() != pipe.float_key()
    w8 = Precision(8, 8)
    assert scratch.backbone_key(w8) != pipe.backbone_key(w8)  # QAT keys follow the weights they start from


def test_a_shipped_fine_tune_stands_in_for_its_training(registry, cache_dir, tmp_path):
    from eenas.train.cluster import ClusterTrainer

    w8, shipped = Precision(8, 8), registry.get(NAME).qat["w8a8"]
    publisher = Pipeline(tiny_config(cache_dir))  # the cache the publish trained it in
    assert shipped["key"] == publisher.backbone_key(w8) and shipped["budget"] == "tiny" and shipped["seconds"] > 0
    fresh = Pipeline(tiny_config(tmp_path / "empty"))
    assert fresh.has_backbone(w8) and fresh.has_backbone(FLOAT) and not fresh.has_backbone(Precision(4, 4))
    assert ClusterTrainer(fresh, cluster=None)._cached("backbone", (FLOAT,))  # no float job for a cluster either
    state = fresh.backbone(w8).state_dict()
    assert fresh.trained == []
    theirs = publisher.cache.load("backbone", shipped["key"])["state_dict"]
    assert theirs.keys() == state.keys() and all(torch.equal(state[k], v) for k, v in theirs.items())  # bit for bit


def test_a_shipped_fine_tune_of_another_recipe_is_not_used_and_a_corrupted_one_is_an_error(registry_dir, tmp_path,
                                                                                             monkeypatch):
    w8, other = Precision(8, 8), tmp_path / "weights"
    shutil.copytree(registry_dir, other)
    monkeypatch.setenv("EENAS_WEIGHTS_DIR", str(other))
    entries = yaml.safe_load((other / "registry.yaml").read_text())
    shipped = entries[0]["qat"]["w8a8"]
    key, shipped["key"] = shipped["key"], "0" * 16  # as if shipped for another budget's recipe
    (other / "registry.yaml").write_text(yaml.safe_dump(entries, sort_keys=False))
    assert not Pipeline(tiny_config(tmp_path / "a")).has_backbone(w8)  # it would be trained
    shipped["key"] = key
    (other / "registry.yaml").write_text(yaml.safe_dump(entries, sort_keys=False))
    (other / f"{NAME}.w8a8.pt").write_bytes(b"garbage")
    with pytest.raises(EenasError, match=r"weights 'tiny_synthetic' \(w8a8 fine-tune\): .* has sha256"):
        Pipeline(tiny_config(tmp_path / "b")).backbone(w8)


def test_weights_fit_only_their_split(registry, cache_dir):
    assert Pipeline(tiny_config(cache_dir, seed=1)).cfg.weights is None  # auto: from scratch
    with pytest.raises(EenasError, match="split"):
        resolve_pretrained(NAME, "synthetic", "mobilenet_v2", {"width_mult": 0.25}, 1, 0.1, registry)
    with pytest.raises(EenasError, match="options"):
        resolve_pretrained(NAME, "synthetic", "mobilenet_v2", {"width_mult": 0.5}, 0, 0.1, registry)
    with pytest.raises(EenasError, match="unknown weights 'nope'"):
        resolve_pretrained("nope", "synthetic", "mobilenet_v2", {"width_mult": 0.25}, 0, 0.1, registry)


def test_an_arch_names_its_weights_and_evaluates_again_without_training(registry, cache_dir, tmp_path):
    arch_path = write_arch(tmp_path / "arch.json")
    out = invoke("evaluate", "--arch", arch_path, "--budget", "tiny", "--cache-dir", cache_dir, "--device", "cpu",
                 "--json", tmp_path / "eval.json")
    assert "backbone w32a32" not in out
    written = json.loads((tmp_path / "eval.json").read_text())["arch"]
    assert written["training"]["pretrained"] == registry.get(NAME).tag
    (tmp_path / "again.json").write_text(json.dumps(written))
    assert load_arch(tmp_path / "again.json").training.pretrained_name == NAME
    again = invoke("evaluate", "--arch", tmp_path / "again.json", "--cache-dir", cache_dir, "--device", "cpu")
    assert "trained: nothing (all cached)" in again


def test_a_corrupted_file_is_one_error_line_and_exit_2(registry_dir, cache_dir, tmp_path, monkeypatch, capsys):
    corrupt = tmp_path / "weights"
    corrupt.mkdir()
    (corrupt / "registry.yaml").write_text((registry_dir / "registry.yaml").read_text())
    data = bytearray((registry_dir / f"{NAME}.pt").read_bytes())
    data[-100] ^= 0xFF
    (corrupt / f"{NAME}.pt").write_bytes(bytes(data))
    monkeypatch.setenv("EENAS_WEIGHTS_DIR", str(corrupt))
    for args in (["weights", "show", NAME],
                 ["pretrain", "--dataset", "synthetic", "--budget", "tiny", "--width-mult", "0.25", "--precisions", "",
                  "--cache-dir", str(cache_dir), "--device", "cpu"]):
        result = run_eenas(monkeypatch, capsys, *args)
        assert result.code == 2, result.err
        lines = result.err.strip().splitlines()
        assert len(lines) == 1 and "sha256" in lines[0]
        assert lines[0].startswith("eenas: error: weights 'tiny_synthetic'")


def test_pretrained_none_keeps_the_from_scratch_path(registry, cache_dir, tiny_pipeline):
    out = invoke("pretrain", "--dataset", "synthetic", "--budget", "tiny", "--width-mult", "0.25", "--precisions", "",
                 "--pretrained", "none", "--cache-dir", cache_dir, "--device", "cpu")
    assert tiny_pipeline.float_key() in out  # the from-scratch pretraining's own cache entry


def test_the_registry_reads_without_torch():
    """``eenas weights list`` and the metadata stay torch-free, like the cost model."""
    code = "import sys, eenas.weights; eenas.weights.WeightsRegistry(); assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_a_save_keeps_the_entries_another_process_saved_meanwhile(registry_dir, tmp_path):
    """A publish runs for hours: its save must not write back the registry as it read it at its start."""
    from dataclasses import replace

    root = tmp_path / "weights"
    shutil.copytree(registry_dir, root)
    early, late = WeightsRegistry(root), WeightsRegistry(root)  # both read the file now
    entry = early.get(NAME)
    late.save(replace(entry, name="saved_meanwhile", qat={}))
    early.save(replace(entry, name="saved_last"))
    assert set(WeightsRegistry(root).entries) == {NAME, "saved_meanwhile", "saved_last"}
    assert WeightsRegistry(root).get(NAME).qat == entry.qat  # the untouched entry keeps its fine-tunes
