"""Reading and writing the weight files themselves (torch; the registry's metadata stays torch-free)."""

from __future__ import annotations

from pathlib import Path

import torch

from eenas.io import atomic_write
from eenas.weights.registry import WeightsEntry, WeightsRegistry


def load_state_dict(entry: WeightsEntry, registry: WeightsRegistry | None = None) -> dict[str, torch.Tensor]:
    """The entry's float32 state dict, after its file's hash is checked (float16 storage halves the package)."""
    path = (registry or WeightsRegistry()).verified_path(entry)
    state = torch.load(path, map_location="cpu", weights_only=True)
    return {k: v.float() if v.is_floating_point() else v for k, v in state.items()}


def save_state_dict(state: dict[str, torch.Tensor], path: Path) -> Path:
    """Store a float state dict in float16 (integers, e.g. BN's batch counters, as they are)."""
    half = {k: v.detach().cpu().half() if v.is_floating_point() else v.detach().cpu() for k, v in state.items()}
    return atomic_write(path, lambda fh: torch.save(half, fh))
