"""rgprune's top-level modules (``rgprune/*.py``: pruner, prune, prunable, masks, ops ...) import one another one
way only: no cycle, even through imports inside functions (``rgprune.prune`` and ``rgprune.pruner`` each used
to import the other inside a function)."""

from import_graph import find_cycle, import_graph


def test_top_level_import_graph_has_no_cycle():
    """Guards against ``rgprune.prune`` and ``rgprune.pruner`` importing each other (before: ``prune.adopt``
    imported ``pruner`` inside the function, ``GlobalMagnitudePruner.from_torch_prune`` imported ``prune``), and
    any other cycle among the top-level modules: whether such a pair loads depends on which is imported first."""
    # the package's __init__ is left out: it imports the public names of several modules, which import nothing back
    graph = import_graph("rgprune", leave_out={"__init__"})
    assert {"prunable", "masks"} <= graph["pruner"] and "pruner" in graph["prune"]  # the graph sees real imports
    cycle = find_cycle(graph)
    assert cycle is None, f"import cycle among rgprune's top-level modules: {' -> '.join(cycle)}"


def test_find_cycle_finds_cycles():
    """Guards against a cycle search that never reports one (the test above would then pass on any graph)."""
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None
    assert find_cycle({"prune": {"pruner"}, "pruner": {"prune"}}) == ["prune", "pruner", "prune"]
