"""Every ``rgprune.rg`` name the README uses is importable as the README writes it."""

import importlib
import re
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def test_readme_rg_names_exist():
    text = README.read_text()
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
    assert not missing, f"README uses rgprune.rg names that do not exist: {missing}"
    assert {"FlowTrace", "trace_from_checkpoints", "parameter_gram"} <= set(rg.__all__)
