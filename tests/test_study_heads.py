"""The head-bank report (eenas study heads) at tiny on synthetic data: 2 mounts x 2 heads."""

from __future__ import annotations

import pandas as pd
import pytest

from eenas.arch import Precision
from eenas.errors import EenasError
from eenas.scoring import top1
from eenas.study.heads import HeadBankSettings, run_head_bank
from eenas.train import HeadDead
from tests.conftest import run_eenas

P8 = Precision(8, 8)
MOUNTS, HEADS = (2, 3), ("gap_fc", "pool_fc")


def test_cli_writes_the_table_the_spread_and_the_figure(tmp_path, cache_dir, tiny_pipeline, monkeypatch, capsys):
    out = tmp_path / "heads"
    result = run_eenas(monkeypatch, capsys, "study", "heads", "--dataset", "synthetic", "--budget", "tiny",
                       "--backbone-bits", "8", "--exit-bits", "8", "--mounts", ",".join(map(str, MOUNTS)),
                       "--heads", ",".join(HEADS), "--cache-dir", cache_dir, "--device", "cpu", "--out", out)
    assert result.code == 0, result.err
    assert {p.name for p in out.iterdir()} == {"heads.csv", "heads_spread.csv", "heads.md", "heads.png"}
    assert (out / "heads.png").read_bytes()[:4] == b"\x89PNG"

    heads = pd.read_csv(out / "heads.csv")
    assert sorted(zip(heads["mount"], heads["head"])) == sorted((m, h) for m in MOUNTS for h in HEADS)
    assert (heads["backbone_bits"] == 8).all() and (heads["exit_bits"] == 8).all()
    assert (heads["status"] == "ok").all() and (heads["schedule"] == "lr 0.05").all() and (heads["retries"] == 0).all()
    assert (heads[["float_accuracy", "qat_accuracy"]] >= 0.2).all().all()  # the pipeline's live bar
    for row in heads.itertuples():  # the validation accuracy of the cached logits
        logits = tiny_pipeline.exit_logits(P8, row.mount, row.head, P8)
        assert row.val_accuracy == pytest.approx(top1(logits.val, tiny_pipeline.splits.val.labels))
        assert row.float_accuracy == pytest.approx(tiny_pipeline.head_training(P8, row.mount, row.head,
                                                                                P8).float_accuracy)

    spread = pd.read_csv(out / "heads_spread.csv")
    assert list(spread["mount"]) == list(MOUNTS) and (spread["heads"] == 2).all() and (spread["live"] == 2).all()
    for row in spread.itertuples():
        accs = heads.loc[heads["mount"] == row.mount, "val_accuracy"]
        assert (row.val_min, row.val_median, row.val_max) == pytest.approx((accs.min(), accs.median(), accs.max()))
    page = (out / "heads.md").read_text()
    assert "## Spread within each mount" in page and "![head bank](heads.png)" in page


def test_a_dead_head_is_a_row_with_its_reason(monkeypatch, tiny_pipeline):
    def dead(*args):
        raise HeadDead("head pool_fc@3: dead after the QAT fine-tune")

    real = tiny_pipeline.exit_logits
    monkeypatch.setattr(tiny_pipeline, "exit_logits", lambda p, m, h, e: dead() if (m, h) == (3, "pool_fc")
                        else real(p, m, h, e))
    bank = run_head_bank(tiny_pipeline, HeadBankSettings((8,), (8,), MOUNTS, HEADS))
    row = bank.heads.set_index(["mount", "head"]).loc[(3, "pool_fc")]
    assert row["status"].startswith("dead: head pool_fc@3") and pd.isna(row["val_accuracy"])
    spread = bank.spread().set_index("mount")
    assert spread.loc[3, "heads"] == 2 and spread.loc[3, "live"] == 1


@pytest.mark.parametrize("settings, message", [
    (HeadBankSettings(mounts=(99,)), "--mounts 99"),
    (HeadBankSettings(heads=("no_head",)), "--heads no_head"),
    (HeadBankSettings(backbone_bits=(5,)), "--backbone-bits 5"),
    (HeadBankSettings(exit_bits=()), "at least one"),
])
def test_bad_settings_are_clear_errors(tiny_pipeline, settings, message):
    with pytest.raises(EenasError, match=message):
        settings.resolve(tiny_pipeline)
