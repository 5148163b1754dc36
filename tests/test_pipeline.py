"""The cached training pipeline on the synthetic dataset at the tiny budget."""

from dataclasses import replace

import pytest
import torch

from eenas.arch import Precision
from eenas.scoring import top1
from eenas.train import Pipeline, get_budget, loops
from eenas.train.pipeline import FLOAT

P8 = Precision(8, 8)


def test_backbones_learn_and_quantized_stays_close(tiny_pipeline):
    labels = tiny_pipeline.labels()
    float_acc = top1(tiny_pipeline.final_logits(FLOAT).test, labels.test)
    int8_acc = top1(tiny_pipeline.final_logits(P8).test, labels.test)
    assert float_acc > 0.5  # 10 classes: chance is 0.1
    assert int8_acc > float_acc - 0.15


def test_exit_logits_cover_validation_and_test(tiny_pipeline):
    logits = tiny_pipeline.exit_logits(P8, 5, "pool_fc", P8)
    splits = tiny_pipeline.splits
    assert logits.val.shape == (len(splits.val), 10) and logits.test.shape == (len(splits.test), 10)
    assert top1(logits.test, splits.test.labels) > 0.3


def test_a_second_pipeline_trains_nothing(tiny_pipeline):
    tiny_pipeline.exit_logits(P8, 5, "gap_fc", P8)
    again = Pipeline(tiny_pipeline.cfg)
    first = tiny_pipeline.exit_logits(P8, 5, "gap_fc", P8)
    second = again.exit_logits(P8, 5, "gap_fc", P8)
    again.final_logits(P8)
    assert again.trained == [] and torch.equal(first.test, second.test)


def test_final_logits_without_a_feature_bank_are_those_of_the_bank(tmp_path, tiny_pipeline):
    """A client whose heads train elsewhere gets the classifier's logits from the evaluation splits alone."""
    from_bank = tiny_pipeline.feature_bank(P8).final
    alone = Pipeline(replace(tiny_pipeline.cfg, cache_dir=tmp_path))  # holds only the backbone: no "final" entry
    key = tiny_pipeline.backbone_key(P8)
    alone.cache.path("backbone", key).parent.mkdir(parents=True)
    alone.cache.path("backbone", key).write_bytes(tiny_pipeline.cache.path("backbone", key).read_bytes())
    logits = alone.final_logits(P8)
    assert P8 not in alone._banks and alone.trained == []
    assert torch.equal(logits.val, from_bank.val) and torch.equal(logits.test, from_bank.test)


def test_corrupt_cache_is_rebuilt_not_trusted(tiny_pipeline):
    tiny_pipeline.exit_logits(P8, 2, "gap_fc", P8)
    path = tiny_pipeline.cache.path("head", tiny_pipeline.head_key(P8, 2, "gap_fc", P8))
    path.write_bytes(b"\x00garbage")
    again = Pipeline(tiny_pipeline.cfg)
    logits = again.exit_logits(P8, 2, "gap_fc", P8)
    assert again.trained == ["head gap_fc@2 w8a8"] and logits.test.shape[1] == 10
    assert torch.load(path, weights_only=True)["test"].shape == logits.test.shape


def test_head_keys_depend_on_every_part_of_the_mount(tiny_pipeline):
    keys = {tiny_pipeline.head_key(P8, m, h, p) for m in (2, 3) for h in ("gap_fc", "pool_fc")
            for p in (P8, Precision(4, 4))}
    assert len(keys) == 8


@pytest.fixture(scope="module")
def stepwise(tmp_path_factory, tiny_pipeline) -> tuple[Pipeline, list[str]]:
    """The session's pipeline trained again from scratch in a cache of its own, one stage per call (float backbone,
    QAT at w8a8, a head), and the folder of every training checkpoint its backbones saved: the one second training
    of the suite's pipeline serves both tests that need one."""
    saved: list[str] = []
    real_save = loops._save_checkpoint

    def save(path, *args) -> None:
        saved.append(path.parent.name)
        real_save(path, *args)

    pipe = Pipeline(replace(tiny_pipeline.cfg, cache_dir=tmp_path_factory.mktemp("stepwise")))
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setattr(loops, "_save_checkpoint", save)
        pipe.float_backbone()
        pipe.backbone(P8)
    pipe.exit_logits(P8, 5, "gap_fc", P8)
    return pipe, saved


def test_weights_do_not_depend_on_job_order(tiny_pipeline, stepwise):
    """A head trained in one chained call (float, QAT, head: the session's pipeline, whichever test asked first, in
    whatever order) equals one trained step by step."""
    stepwise, _ = stepwise
    a = tiny_pipeline.exit_logits(P8, 5, "gap_fc", P8)
    b = stepwise.exit_logits(P8, 5, "gap_fc", P8)
    qa, qb = tiny_pipeline.backbone(P8).state_dict(), stepwise.backbone(P8).state_dict()
    assert all(torch.equal(qa[k], qb[k]) for k in qa)
    assert torch.equal(a.test, b.test)


def test_backbone_training_checkpoints_every_epoch_and_cleans_up(stepwise):
    pipe, saved = stepwise
    # The QAT fine-tune has 1 epoch (nothing to save before the end); pretraining saves after all but the last.
    assert saved == ["backbone"] * (get_budget("tiny").pretrain_epochs - 1)
    assert not list((pipe.cache.root / "checkpoints").rglob("*.pt"))


def _recording_fit(monkeypatch, dead_calls: set[int]) -> list[tuple[float, bool]]:
    """Record every fit's (lr, one_cycle); the calls numbered in ``dead_calls`` leave a dead head (its last layer
    zeroed: constant outputs, as a collapsed head's), for the pipeline's own check to find."""
    import eenas.train.pipeline as pipeline

    calls: list[tuple[float, bool]] = []
    real_fit = pipeline.fit

    def fit(model, batches, epochs, lr, one_cycle=False, **kwargs):
        calls.append((lr, one_cycle))
        acc = real_fit(model, batches, epochs, lr, one_cycle=one_cycle, **kwargs)
        if len(calls) - 1 in dead_calls:
            last = [m for m in model.modules() if isinstance(m, torch.nn.Linear)][-1]
            with torch.no_grad():
                last.weight.zero_()
                last.bias.zero_()
        return acc

    monkeypatch.setattr(pipeline, "fit", fit)
    return calls


def _fresh_heads(tmp_path, tiny_pipeline, name: str) -> Pipeline:
    """A pipeline with the session's trained backbones but none of its heads."""
    import shutil

    tiny_pipeline.feature_bank(P8)  # trains the backbones if no test has yet
    cache = tmp_path / name
    shutil.copytree(tiny_pipeline.cache.path("backbone", tiny_pipeline.backbone_key(P8)).parent, cache / "backbone")
    return Pipeline(replace(tiny_pipeline.cfg, cache_dir=cache))


def _training(pipe: Pipeline, mount: int, head: str) -> dict:
    return pipe.cache.load("head", pipe.head_key(P8, mount, head, P8))["training"]


def test_a_live_head_trains_once_and_its_entry_records_both_checks(tmp_path, monkeypatch, tiny_pipeline):
    from eenas.train.pipeline import HEAD_QAT_LR, LINEAR_HEAD_LR

    fresh = _fresh_heads(tmp_path, tiny_pipeline, "live")
    calls = _recording_fit(monkeypatch, dead_calls=set())
    fresh.exit_logits(P8, 5, "pool_fc", P8)
    assert calls == [(LINEAR_HEAD_LR, False), (HEAD_QAT_LR, False)]  # float training, then QAT
    record = _training(fresh, 5, "pool_fc")
    assert record["schedule"] == 0 and record["qat_retries"] == 0
    assert record["float_accuracy"] > 0.5 and record["qat_accuracy"] > 0.5  # 10 classes: chance is 0.1


def test_a_dead_head_retrains_with_a_warm_up(tmp_path, monkeypatch, caplog, tiny_pipeline):
    """The retrained head is exactly the head the warm-up schedule trains on its own."""
    import eenas.train.pipeline as pipeline

    retrained = _fresh_heads(tmp_path, tiny_pipeline, "retrained")
    calls = _recording_fit(monkeypatch, dead_calls={0})
    a = retrained.exit_logits(P8, 5, "pool_fc", P8)
    lr = pipeline.LINEAR_HEAD_LR
    assert calls == [(lr, False), (lr, True), (pipeline.HEAD_QAT_LR, False)]
    assert "dead after float training" in caplog.text and "retraining" in caplog.text
    assert _training(retrained, 5, "pool_fc")["schedule"] == 1

    monkeypatch.setattr(pipeline, "head_schedules", lambda head: ((lr, True),))
    direct = _fresh_heads(tmp_path, tiny_pipeline, "direct")
    b = direct.exit_logits(P8, 5, "pool_fc", P8)
    assert torch.equal(a.val, b.val) and torch.equal(a.test, b.test)


def test_a_head_dead_under_every_schedule_raises_and_is_not_cached(tmp_path, monkeypatch, tiny_pipeline):
    from eenas.train.loops import TrainingDiverged
    from eenas.train.pipeline import HeadDead, head_schedules

    fresh = _fresh_heads(tmp_path, tiny_pipeline, "dead")
    calls = _recording_fit(monkeypatch, dead_calls=set(range(len(head_schedules("pool_fc")))))
    with pytest.raises(HeadDead, match="dead after float training under every schedule") as error:
        fresh.exit_logits(P8, 5, "pool_fc", P8)
    assert isinstance(error.value, TrainingDiverged)  # the search records the candidate as failed
    assert calls == list(head_schedules("pool_fc"))  # no QAT fine-tune of a dead head
    assert not fresh.cache.path("head", fresh.head_key(P8, 5, "pool_fc", P8)).exists()


def test_heads_with_a_bn_block_train_at_the_conv_rate():
    """conv_pool_fc and dsconv_pool_fc (BN + ReLU6) warm up to CONV_HEAD_LR, linear heads start at LINEAR_HEAD_LR;
    each then retries with a warm-up where it had none, and at a tenth of its rate."""
    from eenas.train.pipeline import CONV_HEAD_LR, LINEAR_HEAD_LR, head_schedules

    for head in ("conv_pool_fc", "dsconv_pool_fc"):
        assert head_schedules(head) == ((CONV_HEAD_LR, True), (CONV_HEAD_LR / 10, True))
    for head in ("gap_fc", "pool_fc", "pool4_fc", "pool4_fc_fc"):
        assert head_schedules(head)[0] == (LINEAR_HEAD_LR, False)
    assert CONV_HEAD_LR < LINEAR_HEAD_LR


def test_a_head_killed_by_its_qat_fine_tune_retries_once_at_a_lower_rate(tmp_path, monkeypatch, caplog,
                                                                         tiny_pipeline):
    from eenas.train.pipeline import HEAD_QAT_LR, HEAD_QAT_RETRY_LR, LINEAR_HEAD_LR

    fresh = _fresh_heads(tmp_path, tiny_pipeline, "qat-retry")
    calls = _recording_fit(monkeypatch, dead_calls={1})
    logits = fresh.exit_logits(P8, 5, "pool_fc", P8)
    assert calls == [(LINEAR_HEAD_LR, False), (HEAD_QAT_LR, False), (HEAD_QAT_RETRY_LR, False)]
    assert "retrying at a lower rate" in caplog.text
    record = _training(fresh, 5, "pool_fc")
    assert record["qat_retries"] == 1 and record["qat_accuracy"] > 0.5
    assert top1(logits.val, fresh.splits.val.labels) > 0.5


def test_a_head_dead_after_both_qat_fine_tunes_raises(tmp_path, monkeypatch, tiny_pipeline):
    from eenas.train.pipeline import HeadDead

    fresh = _fresh_heads(tmp_path, tiny_pipeline, "qat-dead")
    calls = _recording_fit(monkeypatch, dead_calls={1, 2})
    with pytest.raises(HeadDead, match="dead after the QAT fine-tune"):
        fresh.exit_logits(P8, 5, "pool_fc", P8)
    assert len(calls) == 3 and not fresh.cache.path("head", fresh.head_key(P8, 5, "pool_fc", P8)).exists()


def test_a_head_trains_to_the_same_bytes_whatever_threads_the_caller_uses(tiny_pipeline):
    """Training jobs run with TRAINING_THREADS torch threads (on a CPU, weights follow the thread count: unpinned,
    this head's logits differed by up to 0.26 between 1 and 2 threads), and give the caller's count back."""
    tiny_pipeline.feature_bank(P8)  # the backbones, trained once and cached for the pipelines below
    head = (P8, 3, "conv_pool_fc", Precision(4, 4))
    entries, before = {}, torch.get_num_threads()
    try:
        for threads in (2, 1):
            torch.set_num_threads(threads)
            fresh = Pipeline(tiny_pipeline.cfg)  # extracts its own feature bank, with these threads
            entries[threads] = fresh.train_entry("head", head)  # trains without storing
            assert torch.get_num_threads() == threads
    finally:
        torch.set_num_threads(before)
    assert torch.equal(entries[1]["val"], entries[2]["val"]) and torch.equal(entries[1]["test"], entries[2]["test"])
    weights = entries[1]["state_dict"]
    assert all(torch.equal(weights[k], entries[2]["state_dict"][k]) for k in weights)
