"""rgprune.rg's modules import one another one way only: no cycle, and each imports on its own."""

import ast
import subprocess
import sys
from pathlib import Path

RG = Path(__file__).resolve().parent.parent / "rgprune" / "rg"
PACKAGE = "rgprune.rg"


def _modules() -> list[str]:
    return sorted(p.stem for p in RG.glob("*.py"))


def _targets(node: ast.AST, modules: set[str]) -> set[str]:
    """The rg modules an import statement reaches (``__init__`` for a name taken from the package itself)."""
    if isinstance(node, ast.Import):
        names = [a.name for a in node.names]
    elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
        if node.module != PACKAGE:
            names = [node.module]
        else:  # from rgprune.rg import x: a submodule, or a name the package's __init__ re-exports
            return {a.name if a.name in modules else "__init__" for a in node.names}
    else:
        return set()
    return {n.split(".")[2] for n in names if n.startswith(PACKAGE + ".") and n.split(".")[2] in modules}


def import_graph() -> dict[str, set[str]]:
    """module -> the rg modules it imports anywhere in its text: at the top, in functions, under TYPE_CHECKING."""
    modules = set(_modules())
    graph = {}
    for name in modules:
        tree = ast.parse((RG / f"{name}.py").read_text())
        graph[name] = set().union(*(_targets(node, modules) for node in ast.walk(tree))) - {name}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as a path [a, b, ..., a], or None (depth-first search)."""
    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph[node]):
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


def test_rg_import_graph_has_no_cycle():
    """Guards against an import cycle among rgprune.rg's modules, such as ``observables`` importing ``trace`` (even
    under TYPE_CHECKING or inside a function) while ``trace`` imports ``observables``: whether such a pair loads
    depends on which module is imported first, and the dependency it records runs both ways."""
    graph = import_graph()
    assert "observables" in graph["trace"] and "trace" in graph["checkpoints"]  # the graph sees real imports
    cycle = find_cycle(graph)
    assert cycle is None, f"import cycle among rgprune.rg's modules: {' -> '.join(cycle)}"


def test_find_cycle_finds_cycles():
    """Guards against a cycle search that never reports one (the test above would then pass on any graph)."""
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


# Imports each module in a fresh interpreter with the package's __init__ bypassed (it imports every module in one
# fixed order, which would hide a cycle that only that order avoids); between modules the rg entries of
# sys.modules are cleared, so each module loads its own imports, in its own order.
ISOLATED_IMPORTS = """
import importlib, sys, types
import rgprune
failed = []
for name in sys.argv[2:]:
    for key in [k for k in sys.modules if k == "rgprune.rg" or k.startswith("rgprune.rg.")]:
        del sys.modules[key]
    package = types.ModuleType("rgprune.rg")
    package.__path__ = [sys.argv[1]]
    sys.modules["rgprune.rg"] = package
    try:
        importlib.import_module("rgprune.rg." + name)
    except Exception as exc:
        failed.append(f"{name}: {type(exc).__name__}: {exc}")
print("\\n".join(failed))
sys.exit(1 if failed else 0)
"""


def test_each_rg_module_imports_on_its_own():
    """Guards against a module that loads only when another was imported first: a cycle taken at import time
    (``from rgprune.rg.trace import FlowTrace`` in ``observables`` while ``trace`` imports ``observables``
    fails with "partially initialized module"), or a module relying on what the package's __init__ imported."""
    modules = [m for m in _modules() if m != "__init__"]
    done = subprocess.run(
        [sys.executable, "-c", ISOLATED_IMPORTS, str(RG), *modules], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, f"modules that do not import on their own:\n{done.stdout}{done.stderr[-2000:]}"
