"""The package's modules import each other without cycles.

Every ``cardiobench/**/*.py`` file is parsed with :mod:`ast` (nothing is
imported), and every ``import`` / ``from ... import`` statement in it counts,
wherever it stands: at module level, inside a function or method, under
``if TYPE_CHECKING:`` or in a ``try:``. An import placed inside a function is
still a dependency; it only postpones the failure a cycle would cause, so it
cannot be how a cycle is made to work.

Resolution:

* ``pkg/__init__.py`` is module ``pkg``.
* Relative imports are resolved against the importing module's package.
* ``from X import name`` is an edge to ``X.name`` when that is a module
  (``X/name.py`` or ``X/name/__init__.py`` exists), else an edge to ``X``.
* ``import X.Y.Z`` is an edge to ``X.Y.Z`` (the deepest name that is one of
  our modules).
* Imports of anything outside ``cardiobench`` are ignored.
* Imports by name count too: in a module that calls ``importlib.import_module``
  (or ``__import__``), every string literal that names one of our modules is an
  edge to it. That is how the format and task registries load their built-ins
  lazily (``BUILTIN = {"ct_rate": "cardiobench.tasks.ctrate.format", ...}``); a
  built-in that imports its registry back is a cycle like any other.

Package ``__init__`` edges: importing ``cardiobench.data.x`` runs
``cardiobench/__init__.py`` and ``cardiobench/data/__init__.py`` first, but
the graph does *not* add an edge from a module to its parent packages.
Those implicit edges would make every package that re-exports its own
submodules (``evaluation/__init__`` importing ``evaluation.metrics``, which
sits inside ``evaluation``) a "cycle". That is how Python packages are
meant to work and is harmless: Python runs the parent's ``__init__`` before
the submodule, and the submodule can only meet a half-initialised parent by
importing from it explicitly. So the graph keeps the explicit edges only, and
an ``__init__`` that imports a submodule which imports from the package
(``from cardiobench.evaluation import x``, or ``from . import register`` in
a builder that ``models/__init__`` imports) is still caught.

A cycle is a strongly connected component of more than one module, or a
module that imports itself.
"""

from __future__ import annotations

import ast
from pathlib import Path

import networkx as nx

PACKAGE = "cardiobench"
ROOT = Path(__file__).resolve().parents[1] / PACKAGE


def _modules() -> dict[str, Path]:
    found = {}
    for path in sorted(ROOT.rglob("*.py")):
        parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def _is_package(path: Path) -> bool:
    return path.name == "__init__.py"


def _called(call: ast.Call) -> str:
    func = call.func
    return func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = name if _is_package(path) else name.rpartition(".")[0]
    targets: set[str] = set()

    def deepest_module(dotted: str) -> str | None:
        parts = dotted.split(".")
        while parts:
            candidate = ".".join(parts)
            if candidate in modules:
                return candidate
            parts.pop()
        return None

    by_name = any(isinstance(node, ast.Call) and _called(node) in ("import_module", "__import__")
                  for node in ast.walk(tree))
    for node in ast.walk(tree):
        if by_name and isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in modules:
            targets.add(node.value)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                target = deepest_module(alias.name)
                if target:
                    targets.add(target)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base_parts = package.split(".")
                if node.level > 1:
                    base_parts = base_parts[: len(base_parts) - (node.level - 1)]
                base = ".".join(base_parts)
                source = f"{base}.{node.module}" if node.module else base
            else:
                source = node.module or ""
            if source != PACKAGE and not source.startswith(PACKAGE + "."):
                continue
            for alias in node.names:
                submodule = f"{source}.{alias.name}"
                if submodule in modules:
                    targets.add(submodule)
                else:
                    target = deepest_module(source)
                    if target:
                        targets.add(target)
    return targets


def import_graph() -> nx.DiGraph:
    modules = _modules()
    graph = nx.DiGraph()
    graph.add_nodes_from(modules)
    for name, path in modules.items():
        for target in _imports(name, path, modules):
            graph.add_edge(name, target)
    return graph


def find_cycles(graph: nx.DiGraph) -> list[list[str]]:
    cycles = []
    for component in nx.strongly_connected_components(graph):
        if len(component) > 1:
            cycles.append(sorted(component))
    for node in graph.nodes:
        if graph.has_edge(node, node):
            cycles.append([node])
    return sorted(cycles)


def _describe(graph: nx.DiGraph, component: list[str]) -> str:
    sub = graph.subgraph(component)
    edges = sorted(f"    {a} -> {b}" for a, b in sub.edges)
    return f"  {{{', '.join(component)}}}\n" + "\n".join(edges)


class _Source:
    """Stands in for a module's Path in the resolution tests: its text and its file name."""

    def __init__(self, text: str, name: str = "c.py"):
        self._text, self.name = text, name

    def read_text(self, encoding: str = "utf-8") -> str:
        return self._text

    def __str__(self) -> str:
        return self.name


MODULES = {PACKAGE: Path("__init__.py"), f"{PACKAGE}.a": Path("a/__init__.py"), f"{PACKAGE}.a.b": Path("a/b.py")}


def _edges(text: str, module: str = f"{PACKAGE}.a.c", name: str = "c.py") -> set[str]:
    return _imports(module, _Source(text, name), MODULES)


def test_graph_sees_the_package():
    graph = import_graph()
    assert {f"{PACKAGE}.evaluation", f"{PACKAGE}.evaluation.metrics", f"{PACKAGE}.data"} <= set(graph)
    assert graph.has_edge(f"{PACKAGE}.evaluation", f"{PACKAGE}.evaluation.metrics")


def test_relative_imports_resolve_to_submodules_or_packages():
    assert _edges("from . import b, helper\nfrom .. import x\nimport os\n") == {f"{PACKAGE}.a.b", f"{PACKAGE}.a",
                                                                                   PACKAGE}
    assert _edges("from .b import y\n") == {f"{PACKAGE}.a.b"}
    # in a package's __init__, "." is the package itself
    assert _edges("from . import b\n", f"{PACKAGE}.a", "__init__.py") == {f"{PACKAGE}.a.b"}
    assert _edges("from cardiobench.a import b, helper\nimport cardiobench.a.b.thing\n") == {f"{PACKAGE}.a.b",
                                                                                             f"{PACKAGE}.a"}


def test_imports_inside_functions_and_by_name_count():
    assert _edges("def f():\n    from .b import y\n") == {f"{PACKAGE}.a.b"}
    assert _edges("class K:\n    def f(self):\n        import cardiobench.a\n") == {f"{PACKAGE}.a"}
    lazy = "import importlib\nB = {'x': 'cardiobench.a.b', 'y': 'os'}\ndef f(n):\n    importlib.import_module(B[n])\n"
    assert _edges(lazy) == {f"{PACKAGE}.a.b"}
    # a string naming a module is no import where nothing imports by name
    assert _edges("WHERE = 'cardiobench.a.b'\n") == set()


def test_a_cycle_is_found():
    graph = nx.DiGraph([("m.a", "m.b"), ("m.b", "m.c"), ("m.c", "m.a"), ("m.c", "m.d"), ("m.e", "m.e")])
    assert find_cycles(graph) == [["m.a", "m.b", "m.c"], ["m.e"]]


def test_no_import_cycles():
    graph = import_graph()
    cycles = find_cycles(graph)
    assert not cycles, "import cycles in cardiobench:\n" + "\n".join(_describe(graph, c) for c in cycles)
