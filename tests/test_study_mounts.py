"""``eenas study mounts``: placements, rows against the search's scorer, ``eenas evaluate`` and ``eenas cost``,
choice on validation only, the CLI (synthetic, tiny)."""

from __future__ import annotations

import math

import pandas as pd
import pytest
import torch

from eenas.errors import EenasError
from eenas.evaluate import evaluate_arch
from eenas.hardware import cost_arch, network_cost
from eenas.hardware.report import layer_frame
from eenas.hardware.workload import exit_head, network_blocks
from eenas.scoring import route, score
from eenas.search.evaluator import Evaluator
from eenas.study import MountSettings, run_mount_study, write_mount_study
from eenas.study.mounts import _places
from eenas.train import ExitLogits
from tests.conftest import run_eenas


def settings(**kwargs) -> MountSettings:
    return MountSettings("synthetic", 0.25, **{"n_exits": 2, "samples": 5, "seed": 3, **kwargs})


def cost_table_utilization(frame: pd.DataFrame) -> float:
    """Utilisation of a group of rows of the ``eenas cost`` layer table, computed from that table."""
    array = frame[frame["macs"] > 0]
    return array["macs"].sum() / (array["macs"] / array["utilization"]).sum()


def test_placements_are_every_combination_or_a_seeded_sample():
    assert len(settings(n_exits=4, samples=None).placements()) == math.comb(17, 4) == 2380
    sample = settings(n_exits=4, samples=10).placements()
    assert len(set(sample)) == 10 and sample == sorted(sample) == settings(n_exits=4, samples=10).placements()
    assert all(len(p) == 4 and list(p) == sorted(set(p)) for p in sample)
    assert sample != settings(n_exits=4, samples=10, seed=4).placements()


@pytest.mark.parametrize("kwargs, message", [
    ({"n_exits": 18}, "--exits 18"), ({"head": "mlp"}, "--head: unknown head 'mlp'"),
    ({"threshold": 0.0}, "--threshold"), ({"exit_bits": 3}, "--exit-bits 3"), ({"samples": 0}, "--samples"),
    ({"hardware": "tpu_v9"}, "unknown hardware"), ({"split": "train"}, "--split train"),
])
def test_bad_settings_are_clear_errors(kwargs, message):
    with pytest.raises(EenasError, match=message):
        settings(**kwargs)


@pytest.mark.parametrize("family, head", [("mobilenet_v2", "pool_fc"), ("paper_mbv2", "pool4_fc"),
                                          ("resnet20", "pool_fc")])
def test_layer_places_come_from_the_workload_and_agree_with_the_stages(family, head):
    """A layer's block and part (backbone or head) come from the workload's blocks and heads; the cost model's own
    stage of every scheduled layer must follow from them: stage i is the blocks after exit i-1 up to exit i, and
    head i."""
    s = settings(backbone=family, head=head)
    spec = s.spec
    mounts = spec.mounts[1::3][:3]
    classes = s.arch(mounts).num_classes
    blocks = network_blocks(spec, s.quant.backbone)
    heads = {m: exit_head(blocks[m + spec.mount_offset], s.head, s.quant.exits, classes) for m in mounts}
    places = _places(blocks, heads, spec.mount_offset)
    records = network_cost(s.arch(mounts)).layers
    assert {r.name for r in records} == set(places)
    for r in records:
        place = places[r.name]
        before = sum(m < place.block for m in mounts)
        assert r.stage == (mounts.index(place.block) + 1 if place.part == "head" else before + 1), r.name
    parts = pd.Series([places[r.name].part for r in records])
    assert (parts == "head").sum() == sum(len(h) for h in heads.values()) > 0
    first, final = spec.mounts[0] - 1, spec.final_block  # the stem's block and the final exit's
    assert {places[r.name].block for r in records} == set(range(first, final + 1))


def test_rows_agree_with_evaluate_and_the_cost_table(tiny_pipeline, tmp_path):
    s = settings()
    study = run_mount_study(s, tiny_pipeline)
    table = study.placements
    assert len(table) == 5 and table["et_ratio"].is_monotonic_increasing
    scorer = Evaluator(tiny_pipeline, s.hardware)  # the search's: validation split
    for row in table.itertuples():
        arch = s.arch(tuple(int(m) for m in row.mounts.split("-")))
        # the placement as placed (the search would prune exits no sample leaves at; the study keeps them)
        val = score(route(scorer.stats(arch), [e.threshold for e in arch.exits]), scorer.cost(arch))
        assert [float(v) for v in row.exit_ratios.split(";")] == pytest.approx(val.exit_ratios, abs=1e-6)
        assert row.accuracy == val.accuracy == evaluate_arch(arch, tiny_pipeline).val_accuracy
        assert row.average_et == pytest.approx(val.average_et) and row.et_ratio == pytest.approx(val.et_ratio)
        cost = cost_arch(arch)
        assert row.cum_cycles == ";".join(str(e.cum_latency_cycles) for e in cost.exits)
        layers = layer_frame(network_cost(arch))  # the per-layer table 'eenas cost' prints
        expected = [cost_table_utilization(g) for _, g in layers.groupby("stage")]
        assert [float(v) for v in row.stage_utilization.split(";")] == pytest.approx(expected, rel=1e-5)

    points = study.mount_points.set_index("block")
    mounts = sorted({int(m) for p in table["mounts"] for m in p.split("-")})
    assert list(points.index) == mounts
    everything = layer_frame(network_cost(s.arch(tuple(mounts))))
    for m in mounts:
        own = everything[everything["layer"].str.startswith(f"b{m}.")]
        head = own["layer"].str.contains(".exit.", regex=False)
        assert points.loc[m, "block_utilization"] == pytest.approx(cost_table_utilization(own[~head]))
        assert points.loc[m, "head_utilization"] == pytest.approx(cost_table_utilization(own[head]))
        assert 0 < points.loc[m, "head_utilization"] <= 1
    assert set(study.layers["layer"]) == set(everything["layer"])
    assert study.layers["shape"].str.contains("@").all()

    chosen = study.chosen
    assert chosen["choice"].tolist() == ["lowest ET ratio", "median ET ratio", "highest ET ratio"]
    assert chosen["rank"].tolist() == [1, 3, 5]
    assert chosen["mounts"].tolist() == table["mounts"].iloc[[0, 2, 4]].tolist()
    for row in chosen.itertuples():  # on the test split, as eenas evaluate reports
        ev = evaluate_arch(s.arch(tuple(int(m) for m in row.mounts.split("-"))), tiny_pipeline)
        assert row.accuracy == ev.accuracy and row.et_ratio == pytest.approx(ev.et_ratio)
        assert [float(v) for v in row.exit_ratios.split(";")] == pytest.approx(list(ev.exits["exit_ratio"]), abs=1e-6)

    names = {p.name for p in write_mount_study(study, tmp_path)}
    assert names == {"mounts.csv", "mounts_chosen.csv", "mount_points.csv", "mount_layers.csv", "mounts.md",
                     "mounts.png", "mounts.json"}
    assert pd.read_csv(tmp_path / "mounts.csv")["mounts"].tolist() == table["mounts"].tolist()


def test_choice_is_made_on_validation_whatever_the_test_labels(tiny_pipeline, monkeypatch):
    s = settings(samples=8)
    before = run_mount_study(s, tiny_pipeline)
    labels = tiny_pipeline.labels()
    shuffled = labels.test[torch.randperm(len(labels.test), generator=torch.Generator().manual_seed(0))]
    monkeypatch.setattr(tiny_pipeline, "labels", lambda: ExitLogits(labels.val, shuffled))
    after = run_mount_study(s, tiny_pipeline)
    pd.testing.assert_frame_equal(after.placements, before.placements)  # ranking: validation only
    pd.testing.assert_frame_equal(after.mount_points, before.mount_points)
    assert after.chosen["mounts"].tolist() == before.chosen["mounts"].tolist()
    assert after.chosen["accuracy"].tolist() != before.chosen["accuracy"].tolist()  # the test split is what changed
    assert (after.chosen["accuracy"] < 0.5).all()  # shuffled labels: about chance on 10 classes
    val_only = run_mount_study(settings(samples=8, split="val"), tiny_pipeline).chosen
    assert val_only.drop(columns=["choice", "rank"]).to_dict("records") == \
        before.placements.iloc[val_only["rank"] - 1].to_dict("records")


def test_cli_writes_every_file_and_the_same_rows(tmp_path, cache_dir, tiny_pipeline, monkeypatch, capsys):
    out = tmp_path / "mounts"
    result = run_eenas(monkeypatch, capsys, "study", "mounts", "--dataset", "synthetic", "--budget", "tiny",
                       "--exits", "2", "--samples", "5", "--sample-seed", "3", "--cache-dir", cache_dir, "--device",
                       "cpu", "--out", out)
    assert result.code == 0, result.err
    assert "results in" in result.out
    for name in ("mounts.csv", "mounts_chosen.csv", "mount_points.csv", "mount_layers.csv", "mounts.md", "mounts.png"):
        assert (out / name).stat().st_size > 0
    cli_rows = pd.read_csv(out / "mounts.csv")
    library = run_mount_study(settings(), tiny_pipeline).placements
    assert cli_rows["mounts"].tolist() == library["mounts"].tolist()
    assert cli_rows["average_et"].tolist() == pytest.approx(library["average_et"].tolist())
