"""Layering: the data loaders and the quantizers sit below the arch-file format and must not import it."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import eenas

ROOT = Path(eenas.__file__).parent.parent


def _file(module: str) -> Path | None:
    base = ROOT / module.replace(".", "/")
    return next((p for p in (base.with_suffix(".py"), base / "__init__.py") if p.exists()), None)


def _imports(module: str) -> set[str]:
    """Every eenas module ``module`` imports, at any depth of its code (lazy imports too), with the packages
    above each one (importing ``a.b.c`` runs ``a`` and ``a.b`` first)."""
    found = set()
    for node in ast.walk(ast.parse(_file(module).read_text())):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
        else:
            continue
        for name in names:
            parts = name.split(".")
            found |= {".".join(parts[:i]) for i in range(1, len(parts) + 1) if parts[0] == "eenas"}
    return {m for m in found if _file(m) is not None}


def reachable(start: str) -> set[str]:
    """``start``, its submodules, and every eenas module they import, transitively."""
    package = _file(start)
    todo = [start] + ([f"{start}.{p.stem}" for p in package.parent.glob("*.py") if p.stem != "__init__"]
                      if package.name == "__init__.py" else [])
    seen: set[str] = set()
    while todo:
        module = todo.pop()
        if module not in seen:
            seen.add(module)
            todo += _imports(module)
    return seen


@pytest.mark.parametrize("package", ["eenas.data", "eenas.quant"])
def test_lower_layers_do_not_import_the_arch_file_format(package):
    assert "eenas.arch" not in reachable(package)


def test_the_import_walk_finds_the_arch_where_it_is_imported():
    """The walk is not blind: the search and the training pipeline do read arch files, lazily or not."""
    assert {"eenas.arch", "eenas.precision"} <= reachable("eenas.search")
    assert {"eenas.arch", "eenas.data", "eenas.quant.convert"} <= reachable("eenas.train")
    assert "eenas.precision" in reachable("eenas.quant") and "eenas.datasets" in reachable("eenas.data")
