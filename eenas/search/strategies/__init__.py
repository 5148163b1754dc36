"""How a search proposes candidates (``--strategy``): one module per strategy, found by name.

Every module of this package but :mod:`~eenas.search.strategies.base` defines one subclass of
:class:`~eenas.search.strategies.base.Strategy` with a ``name``; subclassing registers it, so a new strategy is one
new file here, which ``eenas search --strategy NAME`` then accepts.
"""

from __future__ import annotations

import importlib
import pkgutil

from eenas.errors import EenasError
from eenas.search.strategies.base import REGISTRY, Proposal, Strategy


def strategy_names() -> list[str]:
    """Every strategy's name, after importing each module of this package once."""
    for module in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{module.name}")
    return sorted(REGISTRY)


def get_strategy(name: str) -> type[Strategy]:
    """The strategy named ``name`` (``--strategy``)."""
    names = strategy_names()
    if name not in REGISTRY:
        raise EenasError(f"--strategy: unknown strategy '{name}' (known: {', '.join(names)})")
    return REGISTRY[name]


__all__ = ["Proposal", "Strategy", "get_strategy", "strategy_names"]
