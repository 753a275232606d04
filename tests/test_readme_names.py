"""Every ``rgprune.rg`` name the README (and docs/rg-statistics.md, which holds the README's former RG section) uses
is importable as they write it."""

import importlib
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
RG_DOC = ROOT / "docs" / "rg-statistics.md"


@pytest.mark.parametrize("path", [README, RG_DOC], ids=lambda p: p.name)
def test_readme_rg_names_exist(path):
    text = path.read_text()
    dotted = set(re.findall(r"rgprune\.rg\.([A-Za-z_]\w*)", text))
    imported = {
        name.strip() for line in re.findall(r"from rgprune\.rg import ([\w, ]+)", text) for name in line.split(",")
    }
    assert {"FlowTrace", "trace_from_checkpoints", "parameter_gram", "dmd"} <= dotted | imported
    rg = importlib.import_module("rgprune.rg")
    missing = []
    for name in sorted(dotted | imported):
        if not hasattr(rg, name):
            try:  # a submodule written as rgprune.rg.report.<function> is imported as such
                importlib.import_module(f"rgprune.rg.{name}")
            except ImportError:
                missing.append(name)
    assert not missing, f"{path.name} uses rgprune.rg names that do not exist: {missing}"
    assert {"FlowTrace", "trace_from_checkpoints", "parameter_gram"} <= set(rg.__all__)
