"""Finding 2 from its summaries: pretrained MiniLM against its two controls (design: ``F2``).

Per run: the retraining part of each step in parameter space (``checkpoint_steps``), the training part of each
step of the observable (``rgprune.rg.step_split``), accuracies; per (model, task): the DMD eigenvalues of the
seeds' flows with bootstrap intervals; per run: parameter-space DMD of the checkpoints' Gram matrix.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.stats

from rgprune.experiments.designs import F2
from rgprune.experiments.summaries import compact_trace, expand_trace, read_summary, run_summary_paths, write_summary
from rgprune.rg import dmd, gram_dmd, step_split
from rgprune.rg.reference import pruning_only_gram, pruning_only_trace

__all__ = [
    "Finding2Data",
    "eigenvalues",
    "load",
    "paired_difference",
    "per_run",
    "reference_trace",
    "seed_unit_difference",
    "task_correlation",
    "write_references",
]


@dataclass
class Finding2Data:
    """``runs[(model, task, seed)]``: the run's summary with its trace expanded (key ``"flow_trace"``)."""

    runs: dict


def load(root: str | Path, references: bool = True) -> Finding2Data:
    """Read finding 2's summaries under ``root``, and (``references``) the committed pruning-only references
    of the runs they belong to (a stored reference that does not match its run's trace is ignored)."""
    runs = {}
    for path in run_summary_paths(root, "finding2"):
        s = read_summary(path)
        task = s["task"].removeprefix("given-text:").rsplit("-", 1)[0]
        s["flow_trace"] = expand_trace(s["trace"])
        runs[(s["model"], task, s["seed"])] = s
    stored = Path(root) / REFERENCES
    if references and stored.is_file():
        saved = read_summary(stored)
        for run in runs.values():
            if saved.get("seed") == REFERENCE_SEED and run["name"] in saved["runs"]:
                reference = expand_trace(saved["runs"][run["name"]])
                if _matches(reference, run["flow_trace"]):
                    run["reference_trace"] = reference
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


#: the committed pruning-only references of finding 2's runs (``write_references``), under the summaries root
REFERENCES = Path("finding2") / "pruning-only.json.gz"
#: the seed of the synthetic round-0 weights the references are pruned from
REFERENCE_SEED = 0


def reference_trace(run: dict):
    """The flow pruning alone gives from the run's round-0 weights on its schedule (``pruning_only_trace`` from the
    trace alone: weights drawn with round 0's exact histogram, seed ``REFERENCE_SEED``, so every round's histogram
    and count equal the exact reference's), kept on the run's dict (key ``"reference_trace"``): the committed one
    that ``load`` read when it is there, else computed (about a second a run)."""
    if "reference_trace" not in run:
        run["reference_trace"] = pruning_only_trace(run["flow_trace"], seed=REFERENCE_SEED)
    return run["reference_trace"]


def _matches(reference, trace) -> bool:
    """Whether a stored pruning-only reference belongs to ``trace``: same rounds, round 0's histogram, and the
    survivors each round keeps (which pruning alone reproduces exactly)."""
    if [r.round for r in reference.rounds] != [r.round for r in trace.rounds]:
        return False
    if reference.rounds[0].histogram != trace.rounds[0].histogram:
        return False
    return all(sum(a.counts) == sum(b.counts) for a, b in zip(reference.rounds, trace.rounds))


def write_references(root: str | Path) -> Path:
    """Compute every summarized run's pruning-only reference and write them to ``root / REFERENCES`` (what
    ``python -m rgprune.experiments references finding2`` does; ``load`` then reads them instead of recomputing)."""
    data = load(root, references=False)
    out = {
        "seed": REFERENCE_SEED,
        "what": "rgprune.rg.reference.pruning_only_trace(run trace, seed) of each run, compact",
        "runs": {run["name"]: compact_trace(reference_trace(run)) for run in data.runs.values()},
    }
    path = Path(root) / REFERENCES
    write_summary(path, out)
    return path


def eigenvalues(data: Finding2Data, model: str, task: str) -> dict | None:
    """DMD of the seeds' observable flows of (model, task) pooled (bootstrap over trajectories with 3 or more),
    and per run the parameter-space DMD of its checkpoints' Gram matrix; beside each, the same for the flow pruning
    alone gives from the run's round-0 weights (``reference_dmd``, ``reference_gram``: ``rgprune.rg.reference``),
    since pruning alone already has eigenvalues (a leading |λ| above 1 in parameter space)."""
    runs = [data.runs[(model, task, s)] for s in F2.seeds if (model, task, s) in data.runs]
    if not runs:
        return None
    flows = [r["flow_trace"].trajectory(F2.observable) for r in runs]
    pooled = dmd(flows, level=F2.level) if len(flows) >= 2 else None
    grams = [gram_dmd(np.array(r["gram"]), level=F2.level) for r in runs]
    references = [reference_trace(r).trajectory(F2.observable) for r in runs]
    reference = dmd(references, level=F2.level) if len(references) >= 2 else None
    reference_grams = [gram_dmd(pruning_only_gram(r["flow_trace"]), level=F2.level) for r in runs]
    return {
        "runs": len(runs),
        "dmd": pooled,
        "gram": grams,
        "reference_dmd": reference,
        "reference_gram": reference_grams,
    }


def _seed_differences(values: dict[tuple, dict], key: str, control: str) -> np.ndarray:
    """(seeds, tasks, ...) of ``values[minilm][key]`` − ``values[control][key]`` over the complete seeds."""
    seeds = [s for s in F2.seeds if all(("minilm", t, s) in values and (control, t, s) in values for t in F2.tasks)]
    return np.array(
        [[np.subtract(values[("minilm", t, s)][key], values[(control, t, s)][key]) for t in F2.tasks] for s in seeds]
    )


def seed_unit_difference(values: dict[tuple, dict], measure: str, control: str, level: float = F2.level) -> dict | None:
    """The paired difference minilm − control with the seed as the unit (a correction of ``paired_difference``):
    the two tasks of one seed share the initial head, the shuffling and most of their words, so their differences
    are not independent; each seed's difference is the mean over its tasks, and the interval is the ``level``
    t-interval over the seeds. Also per step (``steps``: mean over seeds per step, ``step_half``: the half-widths).
    None with fewer than 2 complete seeds."""
    per_seed = _seed_differences(values, measure, control)
    if len(per_seed) < 2:
        return None
    unit = per_seed.mean(axis=1)
    t = scipy.stats.t.ppf(0.5 + level / 2, len(unit) - 1)
    half = t * unit.std(ddof=1) / np.sqrt(len(unit))
    steps = _seed_differences(values, f"{measure}_steps", control).mean(axis=1)  # (seeds, steps)
    step_half = t * steps.std(axis=0, ddof=1) / np.sqrt(len(steps))
    return {
        "seeds": unit.tolist(),
        "mean": float(unit.mean()),
        "sd": float(unit.std(ddof=1)),
        "low": float(unit.mean() - half),
        "high": float(unit.mean() + half),
        "steps": steps.mean(axis=0).tolist(),
        "step_half": step_half.tolist(),
    }


def task_correlation(values: dict[tuple, dict], measure: str, control: str) -> float:
    """Pearson r over the seeds between the two tasks' differences minilm − control: how far the tasks of one
    seed are one measurement rather than two."""
    per_seed = _seed_differences(values, measure, control)
    return float(np.corrcoef(per_seed[:, 0], per_seed[:, 1])[0, 1])
