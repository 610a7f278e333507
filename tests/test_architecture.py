"""The shape of the house, checked from the source: no import cycles, no private names across modules, a quiet library.

The import graph is built with ``ast`` from every module under ``cs_features/`` and ``cli/``: absolute and
relative imports, imports inside functions included (they run when the function does), imports under
``if TYPE_CHECKING:`` left out (they never run). An edge ``a -> b`` means module ``a`` imports module ``b``.
Importing ``pkg.sub`` also runs ``pkg/__init__.py``, but that implicit parent import is not an edge: otherwise
every package that imports its own submodules would sit in a cycle with them. An explicit import of the
parent (``import pkg``, ``from pkg import name`` where ``name`` is not a submodule) is an edge, and with
``pkg -> pkg.sub`` it makes the circular import Python trips over.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("cs_features", "cli")
LIBRARY = "cs_features"
FORBIDDEN_IN_LIBRARY = ("cli", "typer", "rich", "click", "tqdm")  # the CLI layer and progress-bar libraries
EXIT_CALLS = {("sys", "exit"), ("os", "_exit")}
# The one exit a library module may make, and why: end_with_parent runs inside a pool worker process that
# the library itself started, and ends that worker when its parent is gone; it never ends the caller.
ALLOWED_EXITS = {("cs_features.runtime", "os._exit")}


@dataclass(frozen=True)
class ImportRef:
    """One import statement's target, resolved: ``module`` imported, ``names`` taken from it, at ``line``."""

    module: str
    names: tuple[str, ...]
    line: int


def module_files(root: Path = ROOT, packages: tuple[str, ...] = PACKAGES) -> dict[str, Path]:
    """Dotted module name -> file, for every ``.py`` file of the packages (``pkg/__init__.py`` is ``pkg``)."""
    modules = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            modules[".".join(parts)] = path
    return modules


def _is_type_checking_block(node: ast.AST) -> bool:
    if not isinstance(node, ast.If):
        return False
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _runtime_nodes(tree: ast.AST):
    """Every node of the tree except those under ``if TYPE_CHECKING:`` (its ``else`` branch does run)."""
    stack = [tree]
    while stack:
        node = stack.pop()
        yield node
        if _is_type_checking_block(node):
            stack.extend(node.orelse)
            continue
        stack.extend(ast.iter_child_nodes(node))


def _resolve_relative(importer: str, is_package: bool, level: int, module: str | None) -> str:
    """The absolute name of ``from <level dots><module> import ...`` written in ``importer``."""
    parts = importer.split(".") if is_package else importer.split(".")[:-1]
    if level > 1:
        if level - 1 > len(parts):
            raise ValueError(f"{importer}: relative import beyond the top-level package (level {level})")
        parts = parts[: len(parts) - (level - 1)]
    return ".".join([*parts, module] if module else parts)


def import_refs(importer: str, source: str, is_package: bool = False) -> list[ImportRef]:
    """Every import in ``source`` (the text of module ``importer``), relative ones made absolute."""
    refs = []
    for node in _runtime_nodes(ast.parse(source)):
        if isinstance(node, ast.Import):
            refs.extend(ImportRef(alias.name, (), node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = _resolve_relative(importer, is_package, node.level, node.module) if node.level else node.module
            refs.append(ImportRef(base, tuple(alias.name for alias in node.names), node.lineno))
    return sorted(refs, key=lambda ref: ref.line)


def import_edges(importer: str, refs: list[ImportRef], known: set[str]) -> set[str]:
    """The project modules ``importer`` imports, given its resolved imports and the names of all project modules.

    ``from pkg import sub`` (a submodule) is an edge to ``pkg.sub`` only; ``from pkg import name`` (anything
    else) is an edge to ``pkg``; ``import a.b.c`` is an edge to the longest project module it names.
    """
    edges = set()
    for ref in refs:
        if ref.names:
            submodules = {f"{ref.module}.{name}" for name in ref.names if f"{ref.module}.{name}" in known}
            edges |= submodules
            if len(submodules) < len(ref.names) and ref.module in known:
                edges.add(ref.module)
        else:
            parts = ref.module.split(".")
            for stop in range(len(parts), 0, -1):
                if ".".join(parts[:stop]) in known:
                    edges.add(".".join(parts[:stop]))
                    break
    edges.discard(importer)  # `from . import name` in a package's own __init__
    return edges


def import_graph(modules: dict[str, Path]) -> dict[str, set[str]]:
    """Module -> the project modules it imports."""
    known = set(modules)
    graph = {}
    for name, path in modules.items():
        refs = import_refs(name, path.read_text(), is_package=path.name == "__init__.py")
        graph[name] = import_edges(name, refs, known)
    return graph


def strongly_connected_components(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iterative (no recursion limit on deep graphs); components in sorted order."""
    index, low, on_stack, stack, components = {}, {}, set(), [], []
    counter = 0
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph.get(start, ()))))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                components.append(sorted(component))
    return sorted(components)


def shortest_cycle(graph: dict[str, set[str]], members: list[str]) -> list[str]:
    """One shortest cycle through the first member of a strongly connected component, as a closed path."""
    inside = set(members)
    start = members[0]
    previous = {start: None}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for child in sorted(graph.get(node, ())):
                if child == start:
                    path = [node]
                    while previous[path[-1]] is not None:
                        path.append(previous[path[-1]])
                    return [start, *reversed(path[:-1]), start] if len(path) > 1 else [start, start]
                if child in inside and child not in previous:
                    previous[child] = node
                    following.append(child)
        frontier = following
    raise AssertionError(f"{members} is not a cycle")


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One named cycle per strongly connected component that has one (a self-import counts)."""
    cycles = []
    for component in strongly_connected_components(graph):
        if len(component) > 1 or component[0] in graph.get(component[0], ()):
            cycles.append(shortest_cycle(graph, component))
    return cycles


def private_imports(importer: str, refs: list[ImportRef], packages: tuple[str, ...] = PACKAGES) -> list[str]:
    """``from <project module> import _name`` in ``importer``, as readable lines (dunder names are public)."""
    found = []
    for ref in refs:
        if ref.module.split(".")[0] not in packages:
            continue
        for name in ref.names:
            if name.startswith("_") and not (name.startswith("__") and name.endswith("__")):
                found.append(f"{importer}:{ref.line}: from {ref.module} import {name}")
        hidden = [part for part in ref.module.split(".") if part.startswith("_") and not part.startswith("__")]
        if hidden:
            found.append(f"{importer}:{ref.line}: imports the private module {ref.module}")
    return found


def cli_concerns(module: str, source: str) -> list[str]:
    """What a library module must not do: import cli, typer, rich, click or tqdm; print; exit; read sys.argv."""
    found = []
    for ref in import_refs(module, source):
        top = ref.module.split(".")[0]
        if top in FORBIDDEN_IN_LIBRARY:
            found.append(f"{module}:{ref.line}: imports {ref.module}")
    for node in _runtime_nodes(ast.parse(source)):
        if isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Name) and func.id in ("print", "exit", "quit"):
                found.append(f"{module}:{node.lineno}: calls {func.id}()")
            elif isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) \
                    and (func.value.id, func.attr) in EXIT_CALLS \
                    and (module, f"{func.value.id}.{func.attr}") not in ALLOWED_EXITS:
                found.append(f"{module}:{node.lineno}: calls {func.value.id}.{func.attr}()")
        elif isinstance(node, ast.Raise) and node.exc is not None:
            exc = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
            if isinstance(exc, ast.Name) and exc.id == "SystemExit":
                found.append(f"{module}:{node.lineno}: raises SystemExit")
        elif isinstance(node, ast.Attribute) and node.attr == "argv" \
                and isinstance(node.value, ast.Name) and node.value.id == "sys":
            found.append(f"{module}:{node.lineno}: reads sys.argv")
    return sorted(found, key=lambda line: int(line.split(":")[1]))


@pytest.fixture(scope="module")
def modules() -> dict[str, Path]:
    found = module_files()
    assert {"cs_features", "cli", "cs_features.store", "cli.main"} <= set(found), sorted(found)[:10]
    return found


# ---- the checks on the project ------------------------------------------------------------------

def test_no_import_cycles(modules):
    graph = import_graph(modules)
    assert sum(len(targets) for targets in graph.values()) > len(modules)  # the parser saw the imports
    cycles = find_cycles(graph)
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(cycle) for cycle in cycles)


def test_no_private_names_imported_across_modules(modules):
    found = []
    for name, path in modules.items():
        found += private_imports(name, import_refs(name, path.read_text(), is_package=path.name == "__init__.py"))
    assert not found, "private names imported from another module:\n" + "\n".join(found)


def test_library_has_no_cli_concerns(modules):
    library = {name: path for name, path in modules.items() if name.split(".")[0] == LIBRARY}
    assert len(library) > 20
    found = []
    for name, path in library.items():
        found += cli_concerns(name, path.read_text())
    assert not found, "the library must raise and log, never print, exit or import the CLI layer:\n" + "\n".join(found)


# ---- the checkers themselves can fail -----------------------------------------------------------

def test_cycle_finder_reports_a_synthetic_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set(), "e": {"e"}, "f": {"a"}}
    assert find_cycles(graph) == [["a", "b", "c", "a"], ["e", "e"]]
    assert find_cycles({"a": {"b"}, "b": {"c"}, "c": set()}) == []


def test_parent_importing_children_is_not_a_cycle_but_child_importing_parent_is():
    known = {"pkg", "pkg.a", "pkg.b"}
    parent = import_edges("pkg", import_refs("pkg", "from .a import thing\nfrom . import b\n", is_package=True), known)
    assert parent == {"pkg.a", "pkg.b"}
    sibling = import_edges("pkg.a", import_refs("pkg.a", "from pkg.b import helper\n"), known)
    assert sibling == {"pkg.b"}  # running pkg/__init__ first is implicit, not an edge
    assert find_cycles({"pkg": parent, "pkg.a": sibling, "pkg.b": set()}) == []

    def lazy(source):
        return import_edges("pkg.b", import_refs("pkg.b", source), known)

    back = lazy("def load():\n    from . import thing\n")
    assert back == {"pkg"}
    assert find_cycles({"pkg": parent, "pkg.a": sibling, "pkg.b": back}) == [["pkg", "pkg.b", "pkg"]]
    assert lazy("import pkg.a as alias\n") == {"pkg.a"}
    assert lazy("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg import a\n") == set()


def test_relative_imports_resolve_against_the_right_package():
    refs = import_refs("cs_features.store.db", "from ..ids import short_hash\nfrom .schemas import x\n")
    assert [ref.module for ref in refs] == ["cs_features.ids", "cs_features.store.schemas"]
    refs = import_refs("cs_features.store", "from .db import FeatureStore\n", is_package=True)
    assert refs[0].module == "cs_features.store.db"


def test_private_import_finder_reports_underscored_names():
    refs = import_refs("cs_features.search.query", "from ..store.db import _open, FeatureStore, __version__\n"
                                                    "from numpy import _core\nfrom cs_features._hidden import x\n")
    assert private_imports("cs_features.search.query", refs) == [
        "cs_features.search.query:1: from cs_features.store.db import _open",
        "cs_features.search.query:3: imports the private module cs_features._hidden",
    ]


def test_cli_concern_finder_reports_prints_exits_and_cli_imports():
    source = ("import sys\nfrom rich.progress import track\n\ndef run():\n    import typer\n    print('done')\n"
              "    sys.exit(1)\n    raise SystemExit(2)\n\nlogger_print = 'print('\n")
    assert cli_concerns("cs_features.x", source) == [
        "cs_features.x:2: imports rich.progress",
        "cs_features.x:5: imports typer",
        "cs_features.x:6: calls print()",
        "cs_features.x:7: calls sys.exit()",
        "cs_features.x:8: raises SystemExit",
    ]
    assert cli_concerns("cs_features.x", "import logging\nlogging.getLogger(__name__).info('done')\n") == []
