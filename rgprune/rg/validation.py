"""Input checks shared by the flow analyses of ``rgprune.rg``.

Conventions (shared by every public function of the flow analyses):

* A *trajectory* is an array of shape ``(rounds, observables)``: row n is g_n. A scalar observable
  is a trajectory of shape ``(rounds, 1)``.
* Functions that analyse a flow accept one trajectory or several trajectories of the same map (a
  list/tuple of 2-D arrays, or a 3-D array ``(trajectories, rounds, observables)``). All
  consecutive pairs (g_n, g_{n+1}) of all trajectories are pooled as snapshot pairs X -> Y.
* Everything is computed in float64. Bad input (non-finite values, wrong shapes, flows too short
  to analyse) raises ``ValueError`` saying what was wrong and how to fix it; nothing returns NaN.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

ArrayLike = np.ndarray | Sequence

#: Fewest snapshot pairs any DMD-type analysis accepts: one pair is fitted exactly by any map.
MIN_SNAPSHOT_PAIRS = 2


def frozen(array: np.ndarray) -> np.ndarray:
    """Return ``array`` marked read-only, so results stored in frozen dataclasses stay frozen."""
    array = np.array(array, copy=True)
    array.flags.writeable = False
    return array


def as_float_array(data: ArrayLike, what: str) -> np.ndarray:
    if np.iscomplexobj(data):
        raise ValueError(f"{what} must be real-valued; got complex data.")
    try:
        array = np.asarray(data, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise ValueError(
            f"{what} could not be converted to a float64 array ({error}); pass a numeric array."
        ) from error
    return array


def check_trajectory(data: ArrayLike, what: str) -> np.ndarray:
    """Validate one trajectory: finite float64 of shape (rounds >= 1, observables >= 1)."""
    trajectory = as_float_array(data, what)
    if trajectory.ndim != 2:
        hint = " For a single scalar observable use trajectory.reshape(-1, 1)." if trajectory.ndim == 1 else ""
        raise ValueError(
            f"{what} must be a 2-D array of shape (rounds, observables) (several trajectories: a "
            f"list of such arrays or one 3-D array); got shape {trajectory.shape} "
            f"(ndim={trajectory.ndim}).{hint}"
        )
    rounds, observables = trajectory.shape
    if rounds < 1 or observables < 1:
        raise ValueError(f"{what} is empty (shape {trajectory.shape}); it needs at least one round and one observable.")
    if not np.all(np.isfinite(trajectory)):
        bad_round, bad_observable = np.argwhere(~np.isfinite(trajectory))[0]
        raise ValueError(
            f"{what} contains non-finite values (first at round {bad_round}, observable "
            f"{bad_observable}: {trajectory[bad_round, bad_observable]}); remove or repair "
            "those rounds before analysing the flow."
        )
    return trajectory


def is_collection(data: ArrayLike) -> bool:
    """True for several trajectories: a list/tuple holding arrays of ndim >= 2, or a 3-D array.

    A list of 1-D rows (a trajectory written as nested lists) is one trajectory; a list with any
    2-D item is meant as several, and each item is then validated on its own.
    """
    if isinstance(data, (list, tuple)):
        return any(_safe_ndim(item) >= 2 for item in data)
    return _safe_ndim(data) == 3


def _safe_ndim(data: object) -> int:
    try:
        return np.ndim(data)
    except ValueError:  # ragged nested lists: not a single array
        return -1


def as_trajectories(data: ArrayLike, what: str = "trajectory") -> list[np.ndarray]:
    """Normalize 'one trajectory or several' to a list of validated 2-D float64 arrays."""
    if isinstance(data, (list, tuple)) and len(data) == 0:
        raise ValueError(f"{what}: got an empty list; pass at least one trajectory.")
    items = list(data) if is_collection(data) else [data]
    trajectories = [
        check_trajectory(item, what if len(items) == 1 else f"{what} #{index}") for index, item in enumerate(items)
    ]
    observable_counts = sorted({t.shape[1] for t in trajectories})
    if len(observable_counts) > 1:
        raise ValueError(
            f"{what}: trajectories have mismatched observable counts {observable_counts}; all "
            "trajectories of one flow must record the same observables (same number of columns)."
        )
    return trajectories


def snapshot_pairs(trajectories: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Pool consecutive pairs of every trajectory into X, Y of shape (observables, pairs)."""
    # In a list, a 1-round trajectory contributes no pair: most likely a mistake, so say which.
    for index, trajectory in enumerate(trajectories):
        if len(trajectories) > 1 and trajectory.shape[0] < 2:
            raise ValueError(
                f"trajectory #{index} has only {trajectory.shape[0]} round; every trajectory "
                "needs at least 2 rounds to contribute a snapshot pair (drop it, or record more "
                "rounds)."
            )
    pairs = sum(t.shape[0] - 1 for t in trajectories)
    if pairs < MIN_SNAPSHOT_PAIRS:
        rounds = sum(t.shape[0] for t in trajectories)
        raise ValueError(
            f"flow too short to analyse: {rounds} round(s) give {pairs} snapshot pair(s); DMD "
            f"needs at least {MIN_SNAPSHOT_PAIRS} pairs (3 rounds of one trajectory, or several "
            "trajectories of 2+ rounds). A single pair is fitted exactly by any map and says "
            "nothing about it: record more IMP rounds or pass several trajectories."
        )
    x = np.concatenate([t[:-1] for t in trajectories], axis=0).T
    y = np.concatenate([t[1:] for t in trajectories], axis=0).T
    return x, y


def check_rank_and_tol(rank: int | None, tol: float | None) -> None:
    if rank is not None and tol is not None:
        raise ValueError("give either rank or tol, not both (rank fixes the truncation exactly).")
    if tol is not None and not (0.0 <= tol < 1.0 and math.isfinite(tol)):
        raise ValueError(f"tol must be a relative tolerance in [0, 1); got {tol!r}.")
    if rank is not None and (isinstance(rank, bool) or not isinstance(rank, (int, np.integer))):
        raise ValueError(f"rank must be a positive int or None; got {rank!r}.")


def check_eigenvalues(eigenvalues: ArrayLike, what: str, allow_empty: bool = False) -> np.ndarray:
    """Validate a 1-D set of (complex) eigenvalues (empty only with ``allow_empty``); return it as complex128."""
    try:
        values = np.asarray(eigenvalues, dtype=np.complex128)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{what} must be numeric ({error}).") from error
    if values.ndim > 1:
        raise ValueError(f"{what} must be a 1-D array of eigenvalues; got shape {values.shape}.")
    values = values.ravel()
    if values.size == 0 and not allow_empty:
        raise ValueError(f"{what} is empty; pass at least one eigenvalue.")
    if not np.all(np.isfinite(values)):
        raise ValueError(f"{what} contains non-finite values: {values[~np.isfinite(values)]}.")
    return values
