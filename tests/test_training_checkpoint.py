"""A killed training run continues from its last epoch to the weights an uninterrupted run reaches (the pipeline's
own checkpoints: test_pipeline)."""

from __future__ import annotations

import logging

import torch
from torch import nn

from eenas.train.loops import TensorBatches, fit

EPOCHS = 4


class Killed(Exception):
    """Stands in for the process being killed mid-epoch."""


class KilledBatches(TensorBatches):
    """Batches whose ``kill_at``-th epoch (1-based) dies after its first mini-batch."""

    def __init__(self, *args, kill_at: int, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.kill_at, self.epochs_started = kill_at, 0

    def __iter__(self):
        self.epochs_started += 1
        for i, batch in enumerate(super().__iter__()):
            if self.epochs_started == self.kill_at and i == 1:
                raise Killed
            yield batch


def _data() -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(96, 8, generator=gen)
    return x, (x[:, 0] > 0).long()


def _model(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Dropout(0.3), nn.Linear(16, 2))


def _fit(model: nn.Module, batches, checkpoint) -> float:
    torch.manual_seed(1)  # dropout draws from torch's global stream: a resume must restore it
    return fit(model, batches, EPOCHS, lr=0.1, one_cycle=True, checkpoint=checkpoint)


def _batches(cls=TensorBatches, **kwargs):
    x, y = _data()
    return cls(x, y, batch_size=16, device=torch.device("cpu"), shuffle=True, seed=3, **kwargs)


def test_resumed_training_reaches_the_uninterrupted_weights(tmp_path):
    reference = _model(seed=0)
    ref_acc = _fit(reference, _batches(), checkpoint=None)

    ckpt = tmp_path / "ckpt.pt"
    killed = _model(seed=0)
    try:
        _fit(killed, _batches(KilledBatches, kill_at=3), ckpt)
    except Killed:
        pass
    assert ckpt.exists()
    assert torch.load(ckpt, weights_only=True)["epochs_done"] == 2

    resumed = _model(seed=7)  # other initial weights: everything must come from the checkpoint
    acc = _fit(resumed, _batches(), ckpt)
    assert acc == ref_acc
    for (name, a), b in zip(reference.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), name
    assert not ckpt.exists(), "a finished run leaves no checkpoint behind"


def test_an_unreadable_checkpoint_is_replaced_not_trusted(tmp_path, caplog):
    reference = _model(seed=0)
    _fit(reference, _batches(), checkpoint=None)
    ckpt = tmp_path / "ckpt.pt"
    ckpt.write_bytes(b"half a file")
    model = _model(seed=0)
    with caplog.at_level(logging.WARNING):
        _fit(model, _batches(), ckpt)
    assert "unreadable" in caplog.text
    for a, b in zip(reference.state_dict().values(), model.state_dict().values()):
        assert torch.equal(a, b)
