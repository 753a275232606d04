"""Transfer against flow distance: the normalized transfer gain, averaged to tasks, and the Mantel tests.

``transfer_statistics`` takes what a transfer matrix measured over runs (row = source ticket, column = target
task) and returns:

* ``gain[i][j]``: the normalized transfer gain (``rgprune.rg.transfer_gain``) of run i's ticket on run j's task,
  (acc(i's ticket on j) − acc(random mask on j)) / (acc(j's own ticket) − acc(random mask on j)); None where run
  j's own ticket beats its random mask by less than ``min_gap`` (no ticket effect to normalize by).
* ``task_level``: the matrices averaged to tasks: entry (a, b) is the mean over every run i of task a and run
  j of task b (seeds averaged; pairs within a task are left out).
* ``mantel``: the Mantel permutation test over task labels (``rgprune.rg.mantel_test``: each unordered pair
  of tasks once, transfer symmetrized as the mean of both directions) of the flow distance against the gain,
  one-sided in the direction fixed in advance: ``alternative="less"``, closer flows transfer better.
* ``partial_mantel``: the same, controlling for the distance between the dense models (``control``: e.g. the
  distance between the runs' round-0 observables), to ask whether the flows say more than where they start.

A test that cannot be computed (fewer than 3 tasks, 4 for the partial test; an undefined gain; a constant matrix)
has ``statistic: null`` and a ``reason``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from rgprune.rg.stats import ALTERNATIVES, METHODS, mantel_test, transfer_gain

__all__ = ["MANTEL_NOTE", "task_average", "transfer_statistics"]

MANTEL_NOTE = (
    "Mantel permutation test over task labels: Pearson correlation, over the unordered pairs of tasks, "
    "between the flow distance and the normalized transfer gain (seeds averaged, both directions of a "
    "pair averaged), one-sided in the direction fixed before seeing the data (alternative 'less': "
    "closer flows transfer better). partial_mantel controls for the distance between the dense models."
)


def task_average(matrix: np.ndarray, tasks: Sequence[str]) -> tuple[list[str], np.ndarray]:
    """The distinct tasks (in order of appearance) and M[a, b] = mean of matrix[i, j] over the runs i of task a
    and j of task b, i != j (the diagonal averages a task's pairs of distinct runs, 0 when it has one run)."""
    matrix = np.asarray(matrix, dtype=np.float64)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1] or matrix.shape[0] != len(tasks):
        raise ValueError(
            f"matrix must be (runs, runs) with one task label per run ({len(tasks)}); got shape {matrix.shape}"
        )
    names = list(dict.fromkeys(tasks))
    labels = np.array([names.index(t) for t in tasks])
    out = np.zeros((len(names), len(names)))
    off = ~np.eye(len(tasks), dtype=bool)
    for a in range(len(names)):
        for b in range(len(names)):
            cells = off & (labels[:, None] == a) & (labels[None, :] == b)
            out[a, b] = matrix[cells].mean() if cells.any() else 0.0
    return names, out


def _gains(accuracy: np.ndarray, random_mask: Sequence[float | None], min_gap: float) -> list[list[float | None]]:
    k = accuracy.shape[0]
    gains = []
    for i in range(k):
        row = []
        for j in range(k):
            row.append(
                None
                if random_mask[j] is None
                else transfer_gain(accuracy[i, j], random_mask[j], accuracy[j, j], min_gap=min_gap)
            )
        gains.append(row)
    return gains


def _mantel(distance, gain, control, options: dict) -> dict:
    try:
        result = mantel_test(distance, gain, control, **options)
    except ValueError as exc:  # e.g. a matrix constant over the pairs: the correlation is undefined
        return {"statistic": None, "p_value": None, "reason": str(exc)}
    return {**dataclasses.asdict(result), "reason": None}


def _check(accuracy, random_mask, tasks, distance, control) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    acc = np.asarray(accuracy, dtype=np.float64)
    if acc.ndim != 2 or acc.shape[0] != acc.shape[1] or not np.all(np.isfinite(acc)):
        raise ValueError(f"accuracy must be a finite square (runs, runs) matrix; got shape {acc.shape}")
    k = acc.shape[0]
    if isinstance(tasks, str) or len(tasks) != k or len(random_mask) != k:
        raise ValueError(f"tasks and random_mask_accuracy need one entry per run ({k})")
    bad = [x for x in random_mask if x is not None and not (isinstance(x, (int, float)) and np.isfinite(x))]
    if bad:
        raise ValueError(f"random_mask_accuracy holds {bad}: give an accuracy (or None where not measured)")
    matrices = []
    for what, values in (("distance", distance), ("control", control)):
        m = np.asarray(values, dtype=np.float64)
        if m.shape != (k, k) or not np.all(np.isfinite(m)) or not np.allclose(m, m.T):
            raise ValueError(f"{what} must be a finite symmetric (runs, runs) matrix of {k} runs; got shape {m.shape}")
        matrices.append(m)
    return acc, matrices[0], matrices[1]


def transfer_statistics(
    accuracy,
    random_mask_accuracy: Sequence[float | None],
    tasks: Sequence[str],
    distance,
    control,
    *,
    min_gap: float = 0.01,
    alternative: str = "less",
    method: str = "pearson",
    permutations: int = 9999,
    seed: int = 0,
) -> dict:
    """Normalized gains, task-level matrices and the (partial) Mantel tests (see the module docstring).

    ``accuracy[i, j]``: run i's ticket trained on run j's task (diagonal: each run's own ticket);
    ``random_mask_accuracy[j]``: run j's random-mask baseline at that round (None: not available);
    ``tasks[i]``: run i's task; ``distance``: flow distances between runs; ``control``: distances between the
    dense models. ``alternative``, ``method``, ``permutations``, ``seed``: as in ``rgprune.rg.mantel_test``.
    """
    if alternative not in ALTERNATIVES or method not in METHODS:
        raise ValueError(
            f"alternative must be one of {ALTERNATIVES} and method one of {METHODS}; got {alternative!r}, {method!r}"
        )
    acc, dist, ctrl = _check(accuracy, random_mask_accuracy, tasks, distance, control)
    gains = _gains(acc, random_mask_accuracy, min_gap)
    names = list(dict.fromkeys(tasks))
    undefined = sorted({tasks[j] for j in range(len(tasks)) if gains[j][j] is None})
    out = {
        "gain": gains,
        "min_gap": min_gap,
        "mantel_note": MANTEL_NOTE,
        "task_level": {
            "tasks": names,
            "gain": None,
            "flow_distance": task_average(dist, tasks)[1].tolist(),
            "dense_distance": task_average(ctrl, tasks)[1].tolist(),
        },
    }
    reason = None
    if len(names) < 3:
        reason = f"{len(names)} distinct tasks; a Mantel test needs at least 3 (3 pairs of tasks)"
    elif undefined:
        reason = (
            f"the normalized gain is undefined on target tasks {undefined}: their own ticket beats the random "
            f"mask by less than min_gap={min_gap} (or no random-mask accuracy); use a sparser round"
        )
    if reason is None:
        task_gain = task_average(np.array(gains, dtype=np.float64), tasks)[1]  # every gain is defined here
        out["task_level"]["gain"] = task_gain.tolist()
        options = {"alternative": alternative, "method": method, "permutations": permutations, "seed": seed}
        task_dist = np.array(out["task_level"]["flow_distance"])
        out["mantel"] = _mantel(task_dist, task_gain, None, options)
        if len(names) < 4:
            out["partial_mantel"] = {
                "statistic": None,
                "p_value": None,
                "reason": (
                    f"{len(names)} tasks: the partial test fits the control (slope and intercept) on the {len(names)} "
                    f"pairs of tasks, leaving residuals of one degree of freedom whose correlation is ±1 whatever the "
                    f"data; it needs at least 4 tasks"
                ),
            }
        else:
            out["partial_mantel"] = _mantel(
                task_dist, task_gain, np.array(out["task_level"]["dense_distance"]), options
            )
    else:
        out["mantel"] = out["partial_mantel"] = {"statistic": None, "p_value": None, "reason": reason}
    return out
