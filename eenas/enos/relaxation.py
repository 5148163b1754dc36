"""The continuous relaxation: searchable layers and the architecture logits that mix them.

A :class:`MixedLayer` replaces one conv or FC layer and the BatchNorm after it.  Its candidates are the
(operator, mode) pairs of the energy table; they share the layer's float weights (as
mixed-precision searches such as EdMIPS do), or with ``weights="family"`` one float weight
per operator family (:attr:`Operator.family`: LSQ MACs, sign-based binary, shift,
multiplication-free), whose weights mean different things.  Each candidate has its own
quantizer steps and its own BatchNorm, because operators differ in output scale.  The layer's output is
``sum_i w_i * candidate_i(x)`` with mixing weights ``w`` set by the search for each step:

* ``softmax``: ``w = softmax(alpha / tau)``, every candidate runs (DARTS; annealing ``tau``
  towards 0 makes the mix approach the discretised network the search will hand over);
* ``gumbel``: ``w`` is a hard Gumbel-softmax sample at temperature ``tau`` with straight-through gradients, so
  only the sampled candidate runs (GDAS), about as cheap as training one network.

:class:`Architecture` holds the logits ``alpha[layer, candidate]``;
:class:`VariationalArchitecture` makes them a diagonal Gaussian with a learned mean and
standard deviation, sampled every step, with a KL term to a ``N(0, prior_std^2)`` prior.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from eenas.enos.cim import CimArray
from eenas.enos.energy import EnergyTable
from eenas.enos.operators import OPERATORS
from eenas.hardware import ConvLayer

RELAXATIONS = ("softmax", "gumbel")


@dataclass(frozen=True)
class Mix:
    """Mixing weights of one layer for one step, and the candidates that must run."""

    weights: torch.Tensor
    active: tuple[int, ...]


class Candidate(nn.Module):
    """One (operator, mode) pair: quantize, reduce digitally or in a CIM array, add bias, normalise."""

    def __init__(self, operator: str, mode: str, out_channels: int, bn: nn.BatchNorm2d, table: EnergyTable):
        super().__init__()
        self.operator = OPERATORS[operator](out_channels)
        self.cim = CimArray(table.cim) if mode == "cim" else None
        self.bn = bn

    def forward(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                shape: ConvLayer) -> torch.Tensor:
        x, weight = self.operator(x, weight)
        args = (x, weight, shape.stride, shape.kernel // 2, shape.groups)
        y = self.cim(self.operator.similarity, *args) if self.cim is not None else self.operator.similarity(*args)
        if bias is not None:
            y = y + bias.view(1, -1, 1, 1)
        return self.bn(y)


class MixedLayer(nn.Module):
    """A conv/FC layer whose operator and computing mode are searched.

    ``shape`` is the layer as the cost model sees it (an FC layer is a 1x1 conv on a 1x1
    input).  ``fixed`` pins one candidate (sequential search, discretised networks);
    otherwise ``mix`` must be set before each forward pass.
    """

    def __init__(self, module: nn.Conv2d | nn.Linear, bn: nn.BatchNorm2d | nn.BatchNorm1d, shape: ConvLayer,
                 table: EnergyTable, name: str, index: int, weights: str = "shared") -> None:
        super().__init__()
        self.name, self.index, self.shape = name, index, shape
        self.is_linear = isinstance(module, nn.Linear)
        weight = module.weight.detach()
        weight = weight.view(*weight.shape, 1, 1) if self.is_linear else weight
        self.families = [OPERATORS[c.operator].family if weights == "family" else "shared" for c in table.candidates]
        self.weights = nn.ParameterDict({f: nn.Parameter(weight.clone()) for f in dict.fromkeys(self.families)})
        self.bias = nn.Parameter(module.bias.detach().clone()) if module.bias is not None else None
        self.labels = table.labels
        self.candidates = nn.ModuleList(
            Candidate(c.operator, c.mode, shape.out_channels, _copy_bn(bn), table) for c in table.candidates
        )
        self.fixed: int | None = None
        self.mix: Mix | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.is_linear:
            x = x.view(*x.shape, 1, 1)
        if self.fixed is not None:
            y = self._candidate(self.fixed, x)
        elif self.mix is not None:
            y = sum(self.mix.weights[i] * self._candidate(i, x) for i in self.mix.active)
        else:
            raise RuntimeError(f"{self.name}: set a mix or fix a candidate before the forward pass")
        return y.flatten(1) if self.is_linear else y

    def _candidate(self, i: int, x: torch.Tensor) -> torch.Tensor:
        return self.candidates[i](x, self.weights[self.families[i]], self.bias, self.shape)

    def keep_only(self, index: int) -> None:
        """Discretise: drop every candidate but ``index`` (and its parameters) for good."""
        family = self.families[index]
        self.candidates = nn.ModuleList([self.candidates[index]])
        self.weights = nn.ParameterDict({family: self.weights[family]})
        self.labels, self.families = [self.labels[index]], [family]
        self.fixed, self.mix = 0, None


def _copy_bn(bn: nn.BatchNorm2d | nn.BatchNorm1d) -> nn.BatchNorm2d:
    """A candidate's own BatchNorm, from the layer's (an FC layer's 1-d one works on its 1x1 output map)."""
    copy = nn.BatchNorm2d(bn.num_features)
    copy.load_state_dict(bn.state_dict())
    return copy


class Architecture(nn.Module):
    """Deterministic logits ``alpha[layer, candidate]``, uniform (zero) at the start."""

    def __init__(self, layers: int, candidates: int) -> None:
        super().__init__()
        self.alpha = nn.Parameter(torch.zeros(layers, candidates))

    def logits(self) -> torch.Tensor:
        """The logits for this step (a fresh sample for the variational architecture)."""
        return self.alpha

    def kl(self) -> torch.Tensor:
        return self.alpha.new_zeros(())


class VariationalArchitecture(Architecture):
    """``alpha ~ N(mu, sigma^2)`` per entry: ``mu`` is :attr:`alpha`, ``sigma = softplus(rho)``."""

    def __init__(self, layers: int, candidates: int, init_std: float = 0.5, prior_std: float = 1.0) -> None:
        super().__init__(layers, candidates)
        self.prior_std = prior_std
        self.rho = nn.Parameter(torch.full((layers, candidates), math.log(math.expm1(init_std))))

    @property
    def std(self) -> torch.Tensor:
        return F.softplus(self.rho)

    def logits(self) -> torch.Tensor:
        return self.alpha + self.std * torch.randn_like(self.alpha)

    def kl(self) -> torch.Tensor:
        """``KL(N(mu, sigma^2) || N(0, prior^2))`` summed over every logit."""
        var, prior_var = self.std**2, self.prior_std**2
        return (torch.log(self.prior_std / self.std) + (var + self.alpha**2) / (2 * prior_var) - 0.5).sum()

    @torch.no_grad()
    def sample_probabilities(self, samples: int, generator: torch.Generator) -> torch.Tensor:
        """``[samples, layers, candidates]`` softmax probabilities of logits drawn from the posterior."""
        noise = torch.randn((samples, *self.alpha.shape), generator=generator).to(self.alpha.device)
        return torch.softmax(self.alpha + self.std * noise, dim=-1)


def relax(logits: torch.Tensor, relaxation: str, tau: float = 1.0) -> list[Mix]:
    """Mixing weights per layer from ``[layers, candidates]`` logits."""
    if relaxation == "softmax":
        weights = torch.softmax(logits / tau, dim=-1)
        everyone = tuple(range(logits.shape[1]))
        return [Mix(w, everyone) for w in weights]
    samples = F.gumbel_softmax(logits, tau=tau, hard=True, dim=-1)
    return [Mix(w, (int(k),)) for w, k in zip(samples, samples.detach().argmax(-1).tolist())]
