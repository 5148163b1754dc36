"""``eenas cost``, ``search`` and ``evaluate`` on every registered family (synthetic data, temporary caches).

Training ``paper_mbv2`` at the real ``tiny`` budget takes hours on 2 CPU cores (its 195M MACs per
image against 6M for MobileNetV2 at width 0.25), so the search tests cut ``tiny`` down to one
epoch on 64 images: the code path is the same, only the counts are smaller.
"""

from __future__ import annotations

import json
from dataclasses import replace

import pandas as pd
import pytest
from click.testing import CliRunner

from eenas.arch import Arch, BackboneConfig, ExitConfig, load_arch, save_arch
from eenas.cli import cli
from eenas.train import budget

COST_ARCHS = {
    "mobilenet_v2": Arch("cifar10", BackboneConfig("mobilenet_v2", 0.5), (ExitConfig(3, "pool_fc", 0.9),)),
    "paper_mbv2": Arch("cifar10", BackboneConfig("paper_mbv2", 1.0, (("final_head", "pool4_fc_fc"),)),
                       (ExitConfig(1, "pool4_fc", 0.9), ExitConfig(6, "pool4_fc_fc", 0.9))),
    "resnet20": Arch("cifar10", BackboneConfig("resnet20"), (ExitConfig(2, "gap_fc", 0.9),)),
}


@pytest.fixture(autouse=True)
def _cache_dir(tmp_path, monkeypatch):
    monkeypatch.setattr("eenas.io.DEFAULT_CACHE_DIR", tmp_path / "cache")


def invoke(*args: str) -> str:
    result = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


@pytest.mark.parametrize("name", sorted(COST_ARCHS))
def test_cost_of_every_family(tmp_path, name):
    path = tmp_path / "arch.json"
    save_arch(COST_ARCHS[name], path)
    out = json.loads(invoke("cost", "--arch", path, "--allocation", "greedy", "--exit-ratios",
                            ",".join(["0"] * len(COST_ARCHS[name].exits) + ["1"]), "--format", "json"))
    arch, exits, summary = COST_ARCHS[name], out["exits"], out["summary"]
    assert len(exits) == len(arch.exits) + 1 and summary["et_ratio"] > 1  # every sample pays for the heads
    assert summary["static_macs"] == sum(layer.macs for layer in arch.backbone.spec(10).layers())


@pytest.fixture
def cut_tiny(monkeypatch):
    cut = replace(budget.BUDGETS["tiny"], pretrain_epochs=1, qat_epochs=1, head_epochs=1, batch_size=32,
                  train_limit=64, eval_limit=64, head_train_limit=64, synthetic_size=160)
    monkeypatch.setitem(budget.BUDGETS, "tiny", cut)


@pytest.mark.parametrize("name", ["paper_mbv2", "resnet20"])
def test_search_then_evaluate_a_pareto_arch(tmp_path, cut_tiny, name):
    cache, out = tmp_path / "cache", tmp_path / "run"
    common = ["--budget", "tiny", "--cache-dir", cache, "--device", "cpu", "--amp", "fp32"]
    invoke("search", "--dataset", "synthetic", "--backbone", name, "--bits", "8", "--max-exits", "2",
           "--initial", "2", "--iterations", "1", "--per-iteration", "1", "--population", "4", "--generations", "1",
           "--holdout", "0", "--max-accuracy-drop", "100", "--out", out, *common)
    config = json.loads((out / "config.json").read_text())["search"]
    assert config["backbone"] == name and config["width_mult"] is None
    arch_path = sorted((out / "pareto").glob("arch_*.json"))[0]
    arch = load_arch(arch_path)
    assert arch.backbone.name == name
    assert all(e.after_block in arch.backbone.spec(10).mounts for e in arch.exits)
    shown = invoke("evaluate", "--arch", arch_path, *common)
    assert "trained: nothing (all cached)" in shown


def test_studies_on_another_family(tmp_path, cut_tiny):
    """Both studies run on a family other than MobileNetV2 and place exits on its own mount points."""
    common = ["--budget", "tiny", "--cache-dir", tmp_path / "cache", "--device", "cpu", "--amp", "fp32"]
    mounts_out = tmp_path / "mounts"
    invoke("study", "mounts", "--dataset", "synthetic", "--backbone", "resnet20", "--exits", "2", "--samples", "3",
           "--head", "gap_fc", "--out", mounts_out, *common)
    placements = pd.read_csv(mounts_out / "mounts.csv")
    assert len(placements) == 3 and placements["et_ratio"].is_monotonic_increasing
    used = sorted({int(m) for p in placements["mounts"] for m in p.split("-")})
    points = pd.read_csv(mounts_out / "mount_points.csv")
    assert points["block"].tolist() == used and set(used) <= set(BackboneConfig("resnet20").spec(10).mounts)

    arch_path = tmp_path / "resnet.json"
    save_arch(Arch("synthetic", BackboneConfig("resnet20"), (ExitConfig(3, "pool_fc", 0.9),)), arch_path)
    precision_out = tmp_path / "precision"
    invoke("study", "precision", "--arch", arch_path, "--out", precision_out, *common)
    summary = pd.read_csv(precision_out / "precision.csv")
    assert len(summary) == 5 and summary["et_ratio"].gt(0).all()
