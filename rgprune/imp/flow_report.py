"""The RG flow report of an IMP run directory (written by ``run_imp`` when a run completes)."""

from __future__ import annotations

import os
from pathlib import Path

from rgprune.imp.rundir import RunDir

__all__ = ["run_parameter_gram", "run_pruning_reference", "write_run_flow_report"]


def run_parameter_gram(run: RunDir, checkpoints: list[Path]):
    """The Gram matrix of a run's ``checkpoints`` over the tensors the run pruned (its masks' names), whatever its
    config selected them by (``prune_head``, ``exclude``): re-deriving a default set from the checkpoints would not
    match the run."""
    from rgprune.rg.checkpoints import parameter_gram

    return parameter_gram(checkpoints, include=list(run.load_masks(0).names))


def run_pruning_reference(run: RunDir, trace, gram=None):
    """The run beside pruning alone from its own round-0 weights (``rgprune.rg.reference.pruning_reference``,
    exact), or None when it cannot be had (fewer than 2 rounds, no round-0 checkpoint): the report then says why."""
    from rgprune.rg.reference import pruning_reference, round0_weights

    if len(trace) < 2 or not run.weights_path(0).is_file():
        return None
    weights, masks = round0_weights(run.path, trace)
    return pruning_reference(trace, weights=weights, masks=masks, gram=gram)


def write_run_flow_report(out_dir: str | os.PathLike) -> Path:
    """flow.json, report.md and the figures of a run directory, from its trace.json (recorded during the
    run), the Gram matrix of its per-round weight checkpoints and the flow pruning alone would produce from its
    round-0 checkpoint (``run_pruning_reference``); returns the report's path."""
    from rgprune.rg.report import MIN_ROUNDS, write_flow_report

    run = RunDir(out_dir)
    trace = run.load_trace()
    checkpoints = run.checkpoints()
    gram = run_parameter_gram(run, checkpoints) if len(checkpoints) >= MIN_ROUNDS else None
    reference = run_pruning_reference(run, trace, gram)
    return write_flow_report(trace, run.path, title=run.path.name, gram=gram, reference=reference)["report"]
