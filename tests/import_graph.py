"""The import graph of one package's modules, read from their text, and a cycle search over it: what
``tests/test_prune_imports.py`` (rgprune's top-level modules) and ``tests/test_rg_imports.py`` (rgprune.rg) check."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def package_dir(package: str) -> Path:
    """The folder of ``package`` (dotted, e.g. "rgprune.rg") in this repository."""
    return ROOT.joinpath(*package.split("."))


def modules(package: str) -> list[str]:
    """The modules of ``package``'s folder (``__init__`` included), by name."""
    return sorted(p.stem for p in package_dir(package).glob("*.py"))


def _targets(node: ast.AST, package: str, names: set[str]) -> set[str]:
    """The package's modules an import statement reaches (``__init__`` for a name taken from the package)."""
    if isinstance(node, ast.Import):
        imported = [a.name for a in node.names]
    elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
        if node.module != package:
            imported = [node.module]
        else:  # from PACKAGE import x: a submodule, or a name the package's __init__ re-exports
            return {a.name if a.name in names else "__init__" for a in node.names}
    else:
        return set()
    depth = package.count(".") + 1
    parts = [n.split(".") for n in imported if n.startswith(package + ".")]
    return {p[depth] for p in parts if p[depth] in names}


def import_graph(package: str, leave_out: set[str] = frozenset()) -> dict[str, set[str]]:
    """module -> the package's modules it imports anywhere in its text (at the top, in functions, under
    TYPE_CHECKING), for every module but ``leave_out`` (also dropped from the edges)."""
    names = set(modules(package))
    graph = {}
    for name in names - leave_out:
        tree = ast.parse((package_dir(package) / f"{name}.py").read_text())
        graph[name] = set().union(*(_targets(node, package, names) for node in ast.walk(tree))) - {name} - leave_out
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as a path [a, b, ..., a], or None (depth-first search)."""
    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        state[node] = "done"
        stack.pop()
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None
