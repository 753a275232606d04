"""rgprune's top-level modules (``rgprune/*.py``: pruner, prune, prunable, masks, ops ...) import one another one
way only: no cycle, even through imports inside functions (``rgprune.prune`` and ``rgprune.pruner`` each used
to import the other inside a function)."""

import ast
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent.parent / "rgprune"
PACKAGE = "rgprune"


def _modules() -> list[str]:
    return sorted(p.stem for p in PACKAGE_DIR.glob("*.py"))


def _targets(node: ast.AST, modules: set[str]) -> set[str]:
    """The top-level modules an import statement reaches (``__init__`` for a name taken from the package)."""
    if isinstance(node, ast.Import):
        names = [a.name for a in node.names]
    elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
        if node.module != PACKAGE:
            names = [node.module]
        else:  # from rgprune import x: a submodule, or a name the package's __init__ re-exports
            return {a.name if a.name in modules else "__init__" for a in node.names}
    else:
        return set()
    return {n.split(".")[1] for n in names if n.startswith(PACKAGE + ".") and n.split(".")[1] in modules}


def import_graph() -> dict[str, set[str]]:
    """module -> the top-level modules it imports anywhere in its text (at the top, in functions, under
    TYPE_CHECKING). The package's ``__init__`` is left out: it imports the public names of several modules,
    which import nothing back from it."""
    modules = set(_modules())
    graph = {}
    for name in modules - {"__init__"}:
        tree = ast.parse((PACKAGE_DIR / f"{name}.py").read_text())
        graph[name] = set().union(*(_targets(node, modules) for node in ast.walk(tree))) - {name, "__init__"}
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


def test_top_level_import_graph_has_no_cycle():
    """Guards against ``rgprune.prune`` and ``rgprune.pruner`` importing each other (before: ``prune.adopt``
    imported ``pruner`` inside the function, ``GlobalMagnitudePruner.from_torch_prune`` imported ``prune``), and
    any other cycle among the top-level modules: whether such a pair loads depends on which is imported first."""
    graph = import_graph()
    assert {"prunable", "masks"} <= graph["pruner"] and "pruner" in graph["prune"]  # the graph sees real imports
    cycle = find_cycle(graph)
    assert cycle is None, f"import cycle among rgprune's top-level modules: {' -> '.join(cycle)}"


def test_find_cycle_finds_cycles():
    """Guards against a cycle search that never reports one (the test above would then pass on any graph)."""
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None
    assert find_cycle({"prune": {"pruner"}, "pruner": {"prune"}}) == ["prune", "pruner", "prune"]
