"""Collect each finding's summaries from its run directories into the committed data folder.

``collect(finding, runs_root, data_root)`` writes ``<data_root>/<finding>/run-summaries/<run>.json.gz`` for every
complete run of the design (a run whose summary is already there is skipped: summaries of a complete run never change)
and, for finding 1, ``transfers.json.gz`` (dense-model distances, random-mask baselines, transfers). Incomplete
runs are left out and counted, so a partial collection is a valid, smaller data set.
"""

from __future__ import annotations

import itertools
import json
import os
from pathlib import Path

from rgprune.experiments.designs import F1, F2, F3
from rgprune.experiments.pieces import (
    f1_baseline_path,
    f1_transfer_items,
    f1_transfer_path,
    f3_specs,
    run_is_complete,
)
from rgprune.experiments.summaries import (
    checkpoint_steps,
    compact_trace,
    dense_distance,
    run_summary,
    subsampled_trace,
    summary_path,
    write_summary,
)

__all__ = ["collect"]


def _collect_runs(finding: str, specs, runs_root: Path, data_root: Path, extra=None) -> dict:
    written, skipped, missing = 0, 0, []
    for spec in specs:
        path = summary_path(data_root, finding, spec.name)
        if path.is_file():
            skipped += 1
            continue
        run = runs_root / spec.name
        if not run_is_complete(run):
            missing.append(spec.name)
            continue
        summary = run_summary(run, model=spec.model, task=spec.task, seed=spec.seed)
        if extra is not None:
            summary.update(extra(spec, run))
        write_summary(path, summary)
        written += 1
    return {"written": written, "already there": skipped, "incomplete": len(missing), "first incomplete": missing[:3]}


def _finding1_extra(runs_root: Path) -> dict:
    """Dense-model distances per seed (when a seed's runs are all complete), baselines and transfers done."""
    dense = {}
    for seed in F1.seeds:
        names = [F1.run_name(t, seed) for t in F1.all_tasks]
        if not all(run_is_complete(runs_root / n) for n in names):
            continue
        k = len(names)
        matrix = [[0.0] * k for _ in range(k)]
        for i, j in itertools.combinations(range(k), 2):
            matrix[i][j] = matrix[j][i] = dense_distance(runs_root / names[i], runs_root / names[j])
        dense[str(seed)] = matrix
    task_of = {F1.run_name(t, s): (t, s) for t in F1.all_tasks for s in F1.seeds}
    random_mask = []
    for name, (task, seed) in task_of.items():
        for n in F1.transfer_rounds:
            path = f1_baseline_path(runs_root, name, n)
            if path.is_file():
                record = json.loads(path.read_text())
                random_mask.append(
                    {
                        "task": task,
                        "seed": seed,
                        "round": n,
                        "accuracy": record["accuracy"],
                        "density": record["density"],
                    }
                )
    transfer = []
    for source, target, n in f1_transfer_items():
        path = f1_transfer_path(runs_root, source, target, n)
        if path.is_file():
            record = json.loads(path.read_text())
            transfer.append(
                {
                    "source_task": task_of[source][0],
                    "target_task": task_of[target][0],
                    "seed": task_of[source][1],
                    "round": n,
                    "accuracy": record["accuracy"],
                    "target_accuracy": record["target_accuracy"],
                    "density": record["density"],
                }
            )
    return {"tasks": list(F1.all_tasks), "dense": dense, "random_mask": random_mask, "transfer": transfer}


def _finding3_extra(spec, run: Path) -> dict:
    """The window's subsampled traces (both subsample seeds) of a finding-3 run."""
    from rgprune.imp import RunDir

    prunable = RunDir(run).read_round_metrics(0)["weights"]
    first, last = F3.rounds_for(prunable)
    rounds = list(range(first, last + 1))
    return {
        "window": [first, last],
        "subsamples": {
            str(seed): compact_trace(subsampled_trace(run, rounds, F3.subsample, seed)) for seed in F3.subsample_seeds
        },
    }


def _finding2_extra(spec, run: Path) -> dict:
    """A finding-2 run's steps in parameter space and the Gram matrix of its checkpoints (pruned tensors)."""
    from rgprune.imp import RunDir
    from rgprune.imp.flow_report import run_parameter_gram

    run_dir = RunDir(run)
    gram = run_parameter_gram(run_dir, [run_dir.weights_path(n) for n in range(F2.rounds + 1)])
    return {"checkpoint_steps": checkpoint_steps(run), "gram": gram.tolist()}


def collect(finding: str, runs_root: str | os.PathLike, data_root: str | os.PathLike) -> dict:
    """Write the summaries of ``finding``'s complete runs (module docstring); returns what was done."""
    runs_root, data_root = Path(runs_root), Path(data_root)
    if finding == "finding1":
        report = _collect_runs(finding, F1.runs(), runs_root, data_root)
        extra = _finding1_extra(runs_root)
        write_summary(data_root / finding / "transfers.json.gz", extra)
        report.update(
            {
                "dense seeds": len(extra["dense"]),
                "random masks": len(extra["random_mask"]),
                "transfers": len(extra["transfer"]),
            }
        )
        return report
    if finding == "finding3":
        return _collect_runs(finding, f3_specs(shared=True), runs_root, data_root, _finding3_extra)
    if finding == "finding2":
        return _collect_runs(finding, F2.runs(), runs_root, data_root, _finding2_extra)
    raise ValueError(f"unknown finding {finding!r}; choose finding1, finding2 or finding3")
