"""The registry of observables (rgprune.rg.observables.OBSERVABLES) is the one list: the trace, the step split, the
reports, the CLI and the documents all draw from it, and adding an observable is adding one entry."""

import argparse
import re
from pathlib import Path

import numpy as np
import pytest
import torch

import rgprune
from rgprune.cli import build_parser
from rgprune.masks import MaskSet
from rgprune.rg import observables
from rgprune.rg.analysis import analyse_flow
from rgprune.rg.observables import DEFAULT_OBSERVABLES, OBSERVABLES, SPLIT_KINDS, Observable, step_split
from rgprune.rg.report import render_flow_markdown
from rgprune.rg.trace import FlowTrace
from rgprune.schedule import prune_count
from rgprune.transfer.matrix import _check_options as check_transfer_options

ROOT = Path(__file__).resolve().parent.parent


def small_flow(rounds=4, n=1 << 12, fraction=0.2, seed=0) -> FlowTrace:
    """Laplace weights in two tensors, pruned ``fraction`` per round by the kernels, scaled a little between
    rounds (a stand-in for training)."""
    g = torch.Generator().manual_seed(seed)
    weights = [torch.distributions.Laplace(0.0, 1.0).sample((size,)) for size in (n // 2, n // 2)]
    masks = MaskSet.ones(weights)
    trace = FlowTrace(["a", "b"], [n // 2, n // 2], fraction=fraction)
    for r in range(rounds):
        weights[0].mul_(1 + 0.05 * torch.rand(n // 2, generator=g))
        result = rgprune.prune_global_(weights, masks.words, prune_count(fraction, sum(masks.survivor_counts())))
        s = result.stats
        trace.record(
            r, result.threshold.histogram, s.counts, s.abs_sums, s.sq_sums, threshold_key=int(result.threshold.key)
        )
    return trace


def _section(text: str, start: str) -> str:
    """The text from the line holding ``start`` to the next blank line after a list or table has begun."""
    lines = text[text.index(start) :].splitlines()
    body, begun = [], False
    for line in lines[1:]:
        if not line.strip() and begun:
            break
        begun = begun or line.startswith(("|", "- "))
        body.append(line)
    return "\n".join(body)


def test_design_table_lists_the_registry_in_order():
    """Guards against docs/DESIGN.md's table of observables (6.4) drifting from the registry: an observable added,
    renamed or removed in one place and not the other."""
    table = _section((ROOT / "docs" / "DESIGN.md").read_text(), "### 6.4 The observables and what each can show")
    rows = [line for line in table.splitlines() if line.startswith("| `")]
    assert [re.match(r"\| `([^`]+)`", row).group(1) for row in rows] == list(OBSERVABLES)


@pytest.mark.parametrize("doc", ["README.md", "docs/rg-statistics.md"])
def test_readme_lists_the_registry(doc):
    """Guards against the README's list of observables (or docs/rg-statistics.md's full one, moved from the README)
    naming one that does not exist, or leaving one out."""
    listed = _section((ROOT / doc).read_text(), "**Observables**")
    assert set(re.findall(r'`"([a-z-]+)"`', listed)) == set(OBSERVABLES)


def _observable_option(parser: argparse.ArgumentParser, command: str) -> argparse.Action:
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return next(a for a in subparsers.choices[command]._actions if a.dest == "observable")


@pytest.mark.parametrize("command", ["flow", "compare", "transfer"])
def test_cli_observable_choices_and_help_come_from_the_registry(command):
    """Guards against a hand-written ``--observable`` list or help in the CLI that misses an observable (the user
    could not ask for it) or describes one differently from the registry."""
    option = _observable_option(build_parser(), command)
    assert tuple(option.choices) == tuple(OBSERVABLES) and option.default == DEFAULT_OBSERVABLES[0]
    squeezed = "".join(option.help.replace("%%", "%").split())
    for name, entry in OBSERVABLES.items():
        assert "".join(f"{name}: {entry.description}".split()) in squeezed, name


def test_every_entry_computes_and_splits_as_it_declares():
    """Guards against a registry entry whose computation or pruning-only prediction does not fit what it declares:
    a trajectory of the wrong shape, a prediction whose row differs in length from the observable's, a split
    offered for an observable without a prediction, or an option the computation ignores."""
    trace = small_flow()
    for name, entry in OBSERVABLES.items():
        traj = trace.trajectory(name)
        assert traj.shape[0] == len(trace) and np.all(np.isfinite(traj)), name
        assert (name in SPLIT_KINDS) == entry.splits
        if entry.splits:
            split = step_split(trace, name)
            assert split.predicted.shape == traj[1:].shape, name
        else:
            with pytest.raises(ValueError, match="pruning-only step is defined for"):
                step_split(trace, name)
        for option in entry.options:
            with pytest.raises(ValueError, match=option):
                trace.trajectory(name, **{option: "not a value"})
    assert DEFAULT_OBSERVABLES == tuple(n for n, o in OBSERVABLES.items() if o.reported)
    assert trace.trajectory("histogram").shape[1] == (1 << trace.bits) // OBSERVABLES["histogram"].options["coarsen"]


def test_unknown_observables_are_refused_with_the_registry_names():
    """Guards against a typo'd observable name failing deep inside a computation, or the error listing another
    set of names than the registry's."""
    trace = small_flow(rounds=1)
    with pytest.raises(ValueError, match="unknown observable kind 'exces'.*'excess'"):
        trace.trajectory("exces")
    with pytest.raises(ValueError, match="observables must be distinct names from"):
        analyse_flow(trace, ("excess", "exces"))
    with pytest.raises(ValueError, match="no observable takes an option 'bins'"):
        trace.trajectory("excess", bins=3)


def test_one_registry_entry_is_all_a_new_observable_needs(monkeypatch, tmp_path):
    """Guards against a consumer that keeps its own list of observables (the trace's check of the kind, the
    analysis's notes or defaults check, the report, the CLI's choices, the transfer matrix's check): an entry
    added to the registry alone must be computable, fitted and described in a report, refused by the step
    split (it has no prediction) and offered by the CLI."""
    toy = Observable(
        "survivor-share",
        lambda trace: observables.trajectory(trace, "layer-density") * 0.5,
        "half of each tensor's surviving fraction (a test's observable)",
        "a test's observable: half of each tensor's surviving fraction.",
    )
    monkeypatch.setitem(observables._REGISTRY, toy.name, toy)
    trace = small_flow()
    np.testing.assert_array_equal(trace.trajectory(toy.name), trace.trajectory("layer-density") * 0.5)
    stats = analyse_flow(trace, ("excess", toy.name), n_boot=0)
    assert stats["by_observable"][toy.name]["note"] == toy.note and not stats["unavailable"]
    assert f"- **{toy.name}**: {toy.note}" in render_flow_markdown(trace, stats, "toy", {})
    with pytest.raises(ValueError, match="pruning-only step"):
        step_split(trace, toy.name)
    assert toy.name in _observable_option(build_parser(), "flow").choices
    assert toy.description in _observable_option(build_parser(), "compare").help
    check_transfer_options(toy.name, None)
