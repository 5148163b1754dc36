"""The ENOS objective and one optimisation step on it, which every training scheme drives.

``loss = CE + energy_weight * E[energy] / E_ref + kl_weight * KL``, where
``E[energy] = sum_l sum_i softmax(alpha)[l, i] * E[l, i]`` from the energy table and
``E_ref`` the energy of the all-``mac8/digital`` network (the dearest network if the table
has no such candidate): so ``energy_weight`` is unitless, and 1 makes saving the reference
network's whole energy worth one nat of cross-entropy.
Weights train by SGD with Nesterov momentum and a cosine schedule (weight decay on conv
and FC weights only); the logits by Adam, as in DARTS.  For the first ``warmup_steps``
weight steps the logits do not learn (a cross-entropy gradient from untrained weights
favours whichever candidate trains fastest, not the one that ends best), and the relaxation
temperature falls geometrically from ``tau[0]`` to ``tau[1]`` over the search.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch.nn import functional as F

from eenas.enos.energy import expected_energy
from eenas.enos.networks import SearchableNetwork
from eenas.enos.relaxation import Architecture, relax
from eenas.train.loops import TrainingDiverged, param_groups

WEIGHT_DECAY = 5e-4
REFERENCE_CANDIDATE = "mac8/digital"


@dataclass(frozen=True)
class SearchSettings:
    energy_weight: float
    relaxation: str
    lr: float
    arch_lr: float
    total_steps: int
    kl_weight: float = 0.0
    tau: tuple[float, float] = (1.0, 1.0)  # temperature at the first and the last step
    warmup_steps: int = 0  # weight steps before the logits start learning


@dataclass(frozen=True)
class StepStats:
    loss: float
    accuracy: float


class Searcher:
    """Owns the network, its architecture logits and both optimisers during a search."""

    def __init__(self, net: SearchableNetwork, arch: Architecture, energy_pj: torch.Tensor, settings: SearchSettings):
        self.net, self.arch, self.settings = net, arch, settings
        self.layers = net.layers
        self.energy = (energy_pj / reference_energy(energy_pj, self.layers[0].labels)).float()
        self.weight_opt = torch.optim.SGD(param_groups(net, WEIGHT_DECAY), lr=settings.lr, momentum=0.9, nesterov=True)
        self.schedule = torch.optim.lr_scheduler.CosineAnnealingLR(self.weight_opt, T_max=max(1, settings.total_steps))
        self.arch_opt = torch.optim.Adam(arch.parameters(), lr=settings.arch_lr, betas=(0.5, 0.999))
        self.pinned: dict[int, torch.Tensor] = {}  # layer -> its probabilities when it was pinned, in pin order
        self.weight_steps = 0

    @property
    def warming_up(self) -> bool:
        return self.weight_steps < self.settings.warmup_steps

    @property
    def tau(self) -> float:
        start, end = self.settings.tau
        progress = min(1.0, self.weight_steps / max(1, self.settings.total_steps - 1))
        return start * (end / start) ** progress

    def fixed_mask(self) -> torch.Tensor:
        return torch.tensor([layer.fixed is not None for layer in self.layers])

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        """softmax(logits) per layer, with the rows of fixed layers one-hot on their candidate."""
        probs = torch.softmax(logits, dim=-1)
        fixed = [(i, layer.fixed) for i, layer in enumerate(self.layers) if layer.fixed is not None]
        if fixed:
            rows, cols = (list(v) for v in zip(*fixed))
            onehot = torch.zeros_like(probs)
            onehot[rows, cols] = 1.0
            probs = torch.where(self.fixed_mask().view(-1, 1), onehot, probs)
        return probs

    def objective(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The loss for one batch, and the logits (a fresh relaxation sample is drawn)."""
        logits = self.arch.logits()
        for layer, mix in zip(self.layers, relax(logits, self.settings.relaxation, self.tau)):
            layer.mix = mix
        out = self.net(x)
        loss = F.cross_entropy(out, y)
        if self.settings.energy_weight:
            loss = loss + self.settings.energy_weight * expected_energy(self.probabilities(logits), self.energy)
        if self.settings.kl_weight:
            loss = loss + self.settings.kl_weight * self.arch.kl()
        return loss, out

    def step(self, x: torch.Tensor, y: torch.Tensor, weights: bool = True, arch: bool = True,
             rows: list[int] | None = None) -> StepStats:
        """One gradient step on the weights, the logits or both, on one batch.

        The logits do not step while warming up; ``rows`` limits their step to those layers.
        """
        arch = arch and not self.warming_up
        self.net.train()
        loss, out = self.objective(x, y)
        if not math.isfinite(loss.item()):
            raise TrainingDiverged(f"search loss is {loss.item()}")
        self.weight_opt.zero_grad(set_to_none=True)
        self.arch_opt.zero_grad(set_to_none=True)
        loss.backward()
        if weights:
            self.weight_opt.step()
            self.schedule.step()
            self.weight_steps += 1
        if arch:
            kept = [p.detach().clone() for p in self.arch.parameters()] if rows is not None else []
            self.arch_opt.step()
            if rows is not None:  # Adam's momentum would move the other rows too: put them back
                with torch.no_grad():
                    for p, old in zip(self.arch.parameters(), kept):
                        others = torch.ones(p.shape[0], dtype=torch.bool, device=p.device)
                        others[rows] = False
                        p[others] = old[others]
        return StepStats(loss.item(), (out.argmax(1) == y).float().mean().item())

    def mean_probabilities(self) -> torch.Tensor:
        """Probabilities at the logits' mean (no sampling), fixed layers one-hot."""
        with torch.no_grad():
            return self.probabilities(self.arch.alpha)

    def fix(self, layer_index: int) -> int:
        """Pin a layer to its most probable candidate; returns that candidate."""
        row = self.mean_probabilities()[layer_index].cpu()
        choice = int(row.argmax())
        self.layers[layer_index].fixed = choice
        self.pinned[layer_index] = row
        return choice

    def reported_probabilities(self) -> torch.Tensor:
        """Mean probabilities on the CPU, with pinned layers as they were when pinned."""
        probs = self.mean_probabilities().cpu()
        for i, row in self.pinned.items():
            probs[i] = row
        return probs


def reference_energy(energy_pj: torch.Tensor, labels: list[str]) -> float:
    """``E_ref``: the all-``mac8/digital`` network's energy, else the dearest network's (pJ)."""
    if REFERENCE_CANDIDATE in labels:
        return float(energy_pj[:, labels.index(REFERENCE_CANDIDATE)].sum())
    return float(energy_pj.max(dim=1).values.sum())
