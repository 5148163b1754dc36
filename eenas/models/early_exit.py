"""A backbone with exit heads mounted after some of its blocks."""

from __future__ import annotations

import torch
from torch import nn

from eenas.models.backbone import TappedBackbone


class EarlyExitNet(nn.Module):
    """Returns the logits of every exit, earliest first, the backbone's classifier last.

    With ``ends`` the network ends at its last exit (``ExitConfig.final``): the backbone's later
    blocks and its classifier never run, and the last head's logits are the last output.
    """

    def __init__(self, backbone: TappedBackbone, heads: dict[int, nn.Module], ends: bool = False) -> None:
        super().__init__()
        self.backbone = backbone
        self.mounts = sorted(heads)
        self.heads = nn.ModuleDict({str(b): heads[b] for b in self.mounts})
        self.ends = ends

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        taps, final = self.backbone.taps(x, self.mounts, classify=not self.ends)
        return [self.heads[str(b)](taps[b]) for b in self.mounts] + ([] if self.ends else [final])
