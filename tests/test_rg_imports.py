"""rgprune.rg's modules import one another one way only: no cycle, and each imports on its own."""

import subprocess
import sys

from import_graph import find_cycle, import_graph, modules, package_dir

PACKAGE = "rgprune.rg"


def test_rg_import_graph_has_no_cycle():
    """Guards against an import cycle among rgprune.rg's modules, such as ``observables`` importing ``trace`` (even
    under TYPE_CHECKING or inside a function) while ``trace`` imports ``observables``: whether such a pair loads
    depends on which module is imported first, and the dependency it records runs both ways."""
    graph = import_graph(PACKAGE)
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
    names = [m for m in modules(PACKAGE) if m != "__init__"]
    done = subprocess.run(
        [sys.executable, "-c", ISOLATED_IMPORTS, str(package_dir(PACKAGE)), *names],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, f"modules that do not import on their own:\n{done.stdout}{done.stderr[-2000:]}"
