"""Dependencies point one way: no import circle among the modules of lrrt_core and sweeps, and
no module of either over 500 lines (each module one job).

The graph is read from the source with :mod:`ast` — every ``import`` and ``from ... import``,
also those inside functions (a lazy import closes a circle as surely as a top-level one, it
only hides it until run time) — and checked for strongly connected components. A second
check imports every module in a fresh interpreter, so an import that only works in some
order fails here.

The export feature's ``sweeps.run`` -> ``sweeps.export`` -> ``sweeps.api`` -> ``sweeps.run``
circle is gone: the export reads the ``Reduction`` itself (``sweeps.export._reduced``).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("lrrt_core", "sweeps")
MAX_MODULE_LINES = 500


def _modules() -> dict[str, Path]:
    """Dotted module name -> file, for every module of :data:`PACKAGES` (a package by its ``__init__``)."""
    out = {}
    for pkg in PACKAGES:
        for path in sorted((REPO / pkg).rglob("*.py")):
            parts = list(path.relative_to(REPO).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            out[".".join(parts)] = path
    return out


def _imported(node: ast.AST, module: str, is_package: bool) -> list[str]:
    """The names an import statement may bind to modules: ``a.b`` and, for ``from a import b``, ``a.b``."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if not isinstance(node, ast.ImportFrom):
        return []
    if node.level:  # relative: from the module's package, one level up per extra dot
        base = module.split(".") if is_package else module.split(".")[:-1]
        base = base[: len(base) - (node.level - 1)]
        source = ".".join(base + ([node.module] if node.module else []))
    else:
        source = node.module or ""
    return [source, *(f"{source}.{alias.name}" for alias in node.names)]


def import_graph() -> dict[str, set[str]]:
    """``{module: the modules of PACKAGES it imports}``, read from the source."""
    modules = _modules()
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for module, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            for name in _imported(node, module, path.name == "__init__.py"):
                while name and name not in modules:  # a name inside a module -> that module
                    name = name.rpartition(".")[0]
                if name and name != module:
                    graph[module].add(name)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The import circles: each strongly connected component of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_cycles_finds_a_circle_and_only_a_circle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set(), "c": {"b"}}) == []


def test_the_graph_sees_lazy_and_relative_imports():
    node = ast.parse("def f():\n    from .store import SweepDir\n").body[0].body[0]
    assert _imported(node, "sweeps.run", False) == ["sweeps.store", "sweeps.store.SweepDir"]
    assert "sweeps.store" in import_graph()["sweeps.run"]  # run imports the store inside its functions


def test_no_import_circle():
    assert cycles(import_graph()) == []


def test_no_module_over_500_lines():
    long = {m: n for m, p in _modules().items() if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES}
    assert long == {}


@pytest.mark.tf  # imports TensorFlow and Ray
def test_every_module_imports_in_a_fresh_interpreter():
    names = sorted(_modules())
    code = "import importlib\nfor name in %r:\n    importlib.import_module(name)\nprint('IMPORTED')" % names
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0 and "IMPORTED" in proc.stdout, proc.stderr[-3000:]
