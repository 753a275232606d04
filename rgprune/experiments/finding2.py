"""Finding 2 from its summaries: pretrained MiniLM against its two controls (design: ``F2``).

Per run: the retraining part of each step in parameter space (``checkpoint_steps``), the training part of each
step of the observable (``rgprune.rg.step_split``), accuracies; per (model, task): the DMD eigenvalues of the
seeds' flows with bootstrap intervals; per run: parameter-space DMD of the checkpoints' Gram matrix.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rgprune.experiments.designs import F2
from rgprune.experiments.summaries import expand_trace, read_summary, run_summary_paths
from rgprune.rg import dmd, gram_dmd, step_split

__all__ = ["Finding2Data", "eigenvalues", "load", "paired_difference", "per_run"]


@dataclass
class Finding2Data:
    """``runs[(model, task, seed)]``: the run's summary with its trace expanded (key ``"flow_trace"``)."""

    runs: dict


def load(root: str | Path) -> Finding2Data:
    runs = {}
    for path in run_summary_paths(root, "finding2"):
        s = read_summary(path)
        task = s["task"].removeprefix("given-text:").rsplit("-", 1)[0]
        s["flow_trace"] = expand_trace(s["trace"])
        runs[(s["model"], task, s["seed"])] = s
    return Finding2Data(runs)


def per_run(data: Finding2Data) -> dict[tuple, dict]:
    """Per run: ``retraining`` (mean over the steps of ‖θ_{n+1} − m_{n+1}⊙θ_n‖ / ‖m_{n+1}⊙θ_n‖), ``rewound`` (mean
    of ‖θ_{n+1} − m_{n+1}⊙θ_k‖ / ‖m_{n+1}⊙θ_k‖: how far training takes the rewound ticket), ``training``
    (mean training part of the observable's steps), ``pruning`` (mean pruning-only part), the per-step lists, and
    ``accuracy`` / ``train_loss`` per round."""
    out = {}
    for key, s in data.runs.items():
        split = step_split(s["flow_trace"], F2.observable)
        retraining = [step["retraining"] for step in s["checkpoint_steps"]]
        rewound = [step["rewound"] for step in s["checkpoint_steps"]]
        out[key] = {
            "retraining": float(np.mean(retraining)),
            "retraining_steps": retraining,
            "rewound": float(np.mean(rewound)),
            "training": float(np.mean(split.training)),
            "training_steps": split.training.tolist(),
            "pruning": float(np.mean(split.pruning)),
            "accuracy": [r["accuracy"] for r in s["rounds"]],
            "train_loss": [r["train_loss"] for r in s["rounds"]],
        }
    return out


def paired_difference(
    values: dict[tuple, dict],
    measure: str,
    control: str,
    n_boot: int = F2.n_boot,
    level: float = F2.level,
    seed: int = 0,
) -> dict | None:
    """Mean over the (task, seed) pairs of ``measure``(minilm) − ``measure``(control), and its percentile
    bootstrap interval over the pairs; ``keys``: the pairs, ``differences``: each pair's. None when no pair is
    complete."""
    pairs = [(t, s) for t in F2.tasks for s in F2.seeds if ("minilm", t, s) in values and (control, t, s) in values]
    if not pairs:
        return None
    diffs = np.array([values[("minilm", t, s)][measure] - values[(control, t, s)][measure] for t, s in pairs])
    rng = np.random.default_rng(seed)
    boot = diffs[rng.integers(0, len(diffs), (n_boot, len(diffs)))].mean(axis=1)
    low, high = np.quantile(boot, [(1 - level) / 2, (1 + level) / 2])
    return {
        "mean": float(diffs.mean()),
        "low": float(low),
        "high": float(high),
        "pairs": len(pairs),
        "keys": pairs,
        "differences": diffs.tolist(),
    }


def eigenvalues(data: Finding2Data, model: str, task: str) -> dict | None:
    """DMD of the seeds' observable flows of (model, task) pooled (bootstrap over trajectories with 3 or more),
    and per run the parameter-space DMD of its checkpoints' Gram matrix."""
    runs = [data.runs[(model, task, s)] for s in F2.seeds if (model, task, s) in data.runs]
    if not runs:
        return None
    flows = [r["flow_trace"].trajectory(F2.observable) for r in runs]
    pooled = dmd(flows, level=F2.level) if len(flows) >= 2 else None
    grams = [gram_dmd(np.array(r["gram"]), level=F2.level) for r in runs]
    return {"runs": len(runs), "dmd": pooled, "gram": grams}
