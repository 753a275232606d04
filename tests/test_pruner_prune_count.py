"""k = round(fraction × survivors) has one definition, ``rgprune.schedule.prune_count``, and it is torch.prune's."""

import ast
from pathlib import Path

import numpy as np
import pytest
from torch.nn.utils.prune import _compute_nparams_toprune

from rgprune.schedule import prune_count

PACKAGE = Path(__file__).resolve().parent.parent / "rgprune"
#: names whose product, rounded, is a prune count: the fraction (``amount`` in torch.prune's API) and the survivors
COUNT_FACTORS = ("fraction", "amount", "survivor")


def test_prune_count_rounds_half_to_even_as_torch_prune_does():
    """Guards against a count rounded half up (or truncated): on fraction × survivors = x.5 rgprune would prune one
    weight more (or fewer) than torch.nn.utils.prune with the same amount, and the masks would differ."""
    assert prune_count(0.5, 5) == 2  # 2.5: half to even, down
    assert prune_count(0.5, 7) == 4  # 3.5: half to even, up
    assert prune_count(0.5, 9) == 4 and prune_count(0.25, 10) == 2  # 4.5, 2.5
    assert prune_count(0.0, 10) == 0 and prune_count(1.0, 10) == 10 and prune_count(0.3, 0) == 0
    fractions = [0.0, 0.1, 0.2, 0.25, 0.3, 0.5, 0.75, 0.9, 1.0, np.float32(0.2), np.float64(0.35)]
    for fraction in fractions:
        for survivors in (1, 2, 3, 5, 7, 10, 13, 999, 267408, 2**31 + 1):
            k = prune_count(fraction, survivors)
            assert k == _compute_nparams_toprune(fraction, survivors), (fraction, survivors)
            assert type(k) is int


@pytest.mark.parametrize(
    "fraction, survivors, message",
    [
        (True, 10, "fraction must be a number in"),
        (-0.1, 10, "fraction must be a number in"),
        (1.5, 10, "fraction must be a number in"),
        (float("nan"), 10, "fraction must be a number in"),
        ("0.2", 10, "fraction must be a number in"),
        (None, 10, "fraction must be a number in"),
        (0.2, -1, "survivors must be an int"),
        (0.2, 10.0, "survivors must be an int"),
        (0.2, True, "survivors must be an int"),
    ],
)
def test_prune_count_refuses_what_is_not_a_fraction_of_survivors(fraction, survivors, message):
    """Guards against a count computed from a bad fraction or survivor count: round(1.5 * n) or round(-0.1 * n)
    would ask a kernel for more weights than survive, or a negative number, far from where the mistake was."""
    with pytest.raises(ValueError, match=message):
        prune_count(fraction, survivors)


def _is_count_factor(node: ast.AST) -> bool:
    name = node.id if isinstance(node, ast.Name) else node.attr if isinstance(node, ast.Attribute) else ""
    return any(word in name.lower() for word in COUNT_FACTORS)


def _computes_a_count(call: ast.Call) -> bool:
    """round(...), int(...), math.floor/ceil(...) of a product of a fraction or a survivor count."""
    func = call.func
    name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
    if name not in ("round", "int", "floor", "ceil") or not call.args:
        return False
    products = [n for n in ast.walk(call.args[0]) if isinstance(n, ast.BinOp) and isinstance(n.op, ast.Mult)]
    return any(_is_count_factor(side) for p in products for side in (p.left, p.right))


def test_no_module_but_schedule_computes_the_prune_count():
    """Guards against a second copy of the rule (``round(fraction * survivors)`` written out again in the pruner,
    the benchmark, the demo or the observables, as it was in seven places): a copy can drift from torch's
    rounding unseen. Every module must call ``rgprune.schedule.prune_count``; docstrings may quote the formula."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path == PACKAGE / "schedule.py":
            continue
        tree = ast.parse(path.read_text(), filename=str(path))
        found += [
            f"{path.relative_to(PACKAGE.parent)}:{node.lineno}"
            for node in ast.walk(tree)
            if isinstance(node, ast.Call) and _computes_a_count(node)
        ]
    assert not found, f"these compute k = round(fraction * survivors) themselves; call prune_count: {found}"


def test_the_scan_finds_the_forms_it_forbids():
    """Guards against a scan that finds nothing whatever the code says (then the test above passes vacuously)."""
    forbidden = [
        "k = round(fraction * survivors)",
        "self.k = round(self.fraction * self.survivors)",
        "k = round(trace.fraction * before)",
        "return round(amount * survivors)",
        "k = int(fraction * n_survivors)",
        "k = math.floor(0.5 + survivors * p)",
    ]
    allowed = ["keep = round(target_density * self.num_weights)", "level = round(100 * fit['interval_level'])"]
    for line in forbidden:
        assert _computes_a_count(ast.parse(line).body[0].value), line
    for line in allowed:
        assert not _computes_a_count(ast.parse(line).body[0].value), line
