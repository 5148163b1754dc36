"""Reading and writing the weight files themselves (torch; the registry's metadata stays torch-free)."""

from __future__ import annotations

from pathlib import Path

import torch

from eenas.io import atomic_write
from eenas.weights.registry import WeightsEntry, WeightsRegistry


def load_state_dict(entry: WeightsEntry, registry: WeightsRegistry | None = None,
                    qat: str | None = None) -> dict[str, torch.Tensor]:
    """The entry's float32 state dict (or its shipped ``qat`` fine-tune's), after its file's hash is checked.

    Float weights are stored in float16, which halves the package; QAT fine-tunes in float32, since a run uses
    them in place of the cache entry it would train, bit for bit.
    """
    path = (registry or WeightsRegistry()).verified_path(entry, qat)
    state = torch.load(path, map_location="cpu", weights_only=True)
    return {k: v.float() if v.is_floating_point() else v for k, v in state.items()}


def save_state_dict(state: dict[str, torch.Tensor], path: Path, half: bool = True) -> Path:
    """Store a state dict, its floats in float16 when ``half`` (integers, e.g. BN's batch counters, as they are)."""
    stored = {k: (v.detach().cpu().half() if half and v.is_floating_point() else v.detach().cpu())
              for k, v in state.items()}
    return atomic_write(path, lambda fh: torch.save(stored, fh))
