"""Training and inference loops shared by every stage of the pipeline."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterable, Iterator, Sized
from pathlib import Path

import torch
from torch import nn
from tqdm.auto import tqdm

from eenas.data import batch_indices
from eenas.errors import EenasError
from eenas.io import atomic_write

log = logging.getLogger(__name__)

Outputs = torch.Tensor | list[torch.Tensor]
LONG_EPOCH_BATCHES = 100
# What fit(one_cycle=True) on augmented training batches fixes, for the records of the weights it trains.
ONE_CYCLE_RECIPE = {"optimizer": "SGD, Nesterov momentum 0.9", "schedule": "one-cycle, 25% warm-up",
                    "weight_decay": "5e-4 on conv and linear weights", "augmentation": "4-pixel pad random crop, flip"}


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the search records such a candidate as failed."""


class TensorBatches:
    """Mini-batches of pre-computed tensors (cached features) with seeded shuffling."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, batch_size: int, device: torch.device,
                 shuffle: bool = False, seed: int = 0) -> None:
        self.x, self.y, self.batch_size, self.device, self.shuffle = x, y, batch_size, device, shuffle
        self.gen = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return (len(self.y) + self.batch_size - 1) // self.batch_size

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for idx in batch_indices(len(self.y), self.batch_size, self.gen if self.shuffle else None):
            yield self.x[idx].to(self.device).float(), self.y[idx].to(self.device)


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Decay conv/linear weights only: not BN affine parameters, biases or quantizer steps."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (decay if p.dim() > 1 and not name.endswith("step") else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def _exit_losses(outputs: Outputs, y: torch.Tensor, label_smoothing: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Sum of cross-entropies over exits (a plain model has one), and the last exit's logits."""
    outs = outputs if isinstance(outputs, list) else [outputs]
    loss = sum(nn.functional.cross_entropy(o.float(), y, label_smoothing=label_smoothing) for o in outs)
    return loss, outs[-1]


def autocast(device: torch.device, dtype: torch.dtype | None) -> torch.autocast:
    """Mixed precision in ``dtype`` on ``device``, or a disabled context for ``None`` (float32)."""
    return torch.autocast(device.type, dtype=dtype or torch.bfloat16, enabled=dtype is not None)


def fit(
    model: nn.Module,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]] | Sized,
    epochs: int,
    lr: float,
    weight_decay: float = 5e-4,
    one_cycle: bool = False,
    desc: str = "train",
    forward: Callable[[torch.Tensor], Outputs] | None = None,
    label_smoothing: float = 0.0,
    amp: torch.dtype | None = None,
    checkpoint: Path | None = None,
    monitor: Callable[[], dict] | None = None,
    monitor_every: int = 1,
    history: list[dict] | None = None,
) -> float:
    """SGD with Nesterov momentum; one-cycle for training from scratch, cosine for fine-tunes.

    ``amp`` runs forward passes in that dtype (bfloat16 on a GPU); ``None`` is plain float32.
    With ``checkpoint``, the state after every epoch is saved there and a killed run continues
    from it, to the same weights as an uninterrupted run; the file is removed at the end.
    ``monitor`` (a measurement in eval mode, e.g. validation accuracy) runs after every ``monitor_every``-th and
    the last epoch; its records go to ``history`` (kept in the checkpoint, so a resumed run has them all).
    Returns the last epoch's training accuracy.  Raises :class:`TrainingDiverged` on NaN.
    """
    history = [] if history is None else history
    forward = forward or model
    params = param_groups(model, weight_decay)
    opt = torch.optim.SGD(params, lr=lr, momentum=0.9, nesterov=True)
    total = max(1, epochs * len(batches))
    if one_cycle and total > 1:
        # A warm-up of at least 1.5 steps: torch's schedule divides by zero when it would end at step 0.
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=total,
                                                    pct_start=min(1.0, max(0.25, 1.5 / total)))
    else:
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total)
    start, acc, seconds = _resume(checkpoint, model, opt, sched, batches, history) if checkpoint else (0, 0.0, 0.0)
    clock = time.perf_counter() - seconds  # wall time of this training, resumed segments included
    model.train()
    for epoch in range(start, epochs):
        seen = correct = 0
        running = 0.0
        bar = tqdm(batches, desc=f"{desc} {epoch + 1}/{epochs}", leave=False, dynamic_ncols=True, disable=None)
        for x, y in bar:
            with autocast(x.device, amp):
                outputs = forward(x)
            loss, logits = _exit_losses(outputs, y, label_smoothing)
            if not math.isfinite(loss.item()):
                raise TrainingDiverged(f"{desc}: loss is {loss.item()} in epoch {epoch + 1}")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            seen += len(y)
            correct += (logits.argmax(1) == y).sum().item()
            running = 0.9 * running + 0.1 * loss.item() if seen > len(y) else loss.item()
            bar.set_postfix(loss=f"{running:.3f}", acc=f"{correct / seen:.3f}")
        acc = correct / max(1, seen)
        # Long epochs get a log line too, for logs where the progress bar is off (not a terminal).
        level = logging.INFO if len(batches) >= LONG_EPOCH_BATCHES else logging.DEBUG
        log.log(level, "%s epoch %d/%d: loss %.4f, train acc %.4f", desc, epoch + 1, epochs, running, acc)
        if monitor and ((epoch + 1) % monitor_every == 0 or epoch + 1 == epochs):
            model.eval()
            record = {"epoch": epoch + 1, "train_accuracy": acc, **monitor()}
            history.append({**record, "seconds": round(time.perf_counter() - clock, 1)})
            model.train()
            log.info("%s epoch %d/%d: %s", desc, epoch + 1, epochs, history[-1])
        if checkpoint and epoch + 1 < epochs:
            _save_checkpoint(checkpoint, epoch + 1, acc, model, opt, sched, batches, history,
                             time.perf_counter() - clock)
    if checkpoint:
        checkpoint.unlink(missing_ok=True)
    model.eval()
    return acc


def _rng_states(batches: object) -> dict[str, torch.Tensor]:
    """Every random stream an epoch draws from: torch's global one and the batches' shuffling/augmentation."""
    states = {"torch": torch.get_rng_state()}
    if isinstance(getattr(batches, "gen", None), torch.Generator):
        states["batches"] = batches.gen.get_state()
    return states


def _save_checkpoint(path: Path, epochs_done: int, acc: float, model: nn.Module, opt: torch.optim.Optimizer,
                     sched: torch.optim.lr_scheduler.LRScheduler, batches: object, history: list[dict],
                     seconds: float) -> None:
    state = {"epochs_done": epochs_done, "acc": acc, "model": model.state_dict(), "optimizer": opt.state_dict(),
             "scheduler": sched.state_dict(), "rng": _rng_states(batches), "history": history, "seconds": seconds}
    atomic_write(path, lambda fh: torch.save(state, fh))


def _resume(path: Path, model: nn.Module, opt: torch.optim.Optimizer, sched: torch.optim.lr_scheduler.LRScheduler,
            batches: object, history: list[dict]) -> tuple[int, float, float]:
    """Restore a checkpoint written by :func:`_save_checkpoint`: (epochs done, their last training accuracy, the
    wall seconds they took), or zeros when there is none or it is unusable."""
    if not path.exists():
        return 0, 0.0, 0.0
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated or foreign: start over rather than trust it
        log.warning("training checkpoint %s is unreadable (%s); starting from epoch 1", path, type(exc).__name__)
        path.unlink(missing_ok=True)
        return 0, 0.0, 0.0
    try:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["rng"]["torch"])
        if "batches" in state["rng"]:
            batches.gen.set_state(state["rng"]["batches"])
        history[:] = state.get("history", [])
    except Exception as exc:  # the model is half restored now: only a person can decide
        raise EenasError(f"training checkpoint {path} does not fit this training job ({exc}); delete it") from None
    log.info("resuming from %s after epoch %d", path, state["epochs_done"])
    return state["epochs_done"], state["acc"], state.get("seconds", 0.0)


@torch.no_grad()
def predict(forward: Callable[[torch.Tensor], Outputs], batches: Iterable, desc: str = "predict",
            amp: torch.dtype | None = None) -> list[torch.Tensor]:
    """Logits of every exit over all batches, on the CPU as float32 (one tensor per exit)."""
    chunks: list[list[torch.Tensor]] = []
    for x, _ in tqdm(batches, desc=desc, leave=False, dynamic_ncols=True, disable=None):
        with autocast(x.device, amp):
            outs = forward(x)
        outs = outs if isinstance(outs, list) else [outs]
        chunks.append([o.float().cpu() for o in outs])
    return [torch.cat(parts) for parts in zip(*chunks)]
