"""Layering: the data loaders and the quantizers sit below the arch-file format, presentation below what it shows,
and no import cycle anywhere."""

from __future__ import annotations

import ast
import subprocess
import sys
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


def test_presentation_sits_below_what_it_presents():
    """eenas.report draws plain tables: the search, the studies, ENOS and the training write through it."""
    above = ("eenas.search", "eenas.study", "eenas.enos", "eenas.train", "eenas.arch", "eenas.hardware")
    assert not [m for m in reachable("eenas.report") if m.startswith(above)]
    assert "eenas.report.pareto" in reachable("eenas.search") and "eenas.report.page" in reachable("eenas.study")


def test_the_import_walk_finds_the_arch_where_it_is_imported():
    """The walk is not blind: the search and the training pipeline do read arch files, lazily or not."""
    assert {"eenas.arch", "eenas.precision"} <= reachable("eenas.search")
    assert {"eenas.arch", "eenas.data", "eenas.quant.convert"} <= reachable("eenas.train")
    assert "eenas.precision" in reachable("eenas.quant") and "eenas.datasets" in reachable("eenas.data")


def _runtime_imports(module: str) -> set[str]:
    """The eenas modules ``module`` runs when imported or called: named imports at any depth (lazy ones too, but
    not those under ``if TYPE_CHECKING``), plus the ``__init__`` of every other package they pass through."""
    tree = ast.parse(_file(module).read_text())
    typing_only = {id(n) for node in ast.walk(tree)
                   if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
                   for statement in node.body for n in ast.walk(statement)}
    found = set()
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            subs = [f"{node.module}.{a.name}" for a in node.names]
            names = [s for s in subs if _file(s)] + ([node.module] if any(not _file(s) for s in subs) else [])
        else:
            continue
        for name in (n for n in names if n.startswith("eenas.") and _file(n)):
            parts = name.split(".")
            found.add(name)
            found |= {p for p in (".".join(parts[:i]) for i in range(2, len(parts)))
                      if not module.startswith(p + ".") and p != module}
    return found - {module}


def _modules() -> list[str]:
    out = []
    for path in (ROOT / "eenas").rglob("*.py"):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        out.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return sorted(out)


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of ``graph`` (a path that returns to its start), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        state[node] = 2
        path.pop()
        return None

    return next((c for m in sorted(graph) if m not in state and (c := visit(m))), None)


def test_no_import_cycle_anywhere_in_the_package():
    graph = {m: _runtime_imports(m) for m in _modules()}
    cycle = _cycle(graph)
    assert cycle is None, " -> ".join(cycle)


def test_the_cycle_check_finds_a_cycle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    # the hardware package's __init__ runs the cost model: importing from it outside the package counts it
    assert "eenas.hardware" in _runtime_imports("eenas.evaluate")


def test_the_search_and_enos_draw_figures_without_importing_matplotlib_at_start_up():
    """matplotlib is imported when a figure is drawn: a search, a cluster worker or an ENOS run starts without it."""
    code = "import sys, eenas.search, eenas.enos; print('matplotlib.pyplot' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
