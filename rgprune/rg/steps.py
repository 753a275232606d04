"""Step sizes of a flow and per-layer density profiles."""

from __future__ import annotations

import numpy as np

from rgprune.rg.validation import ArrayLike, as_float_array, as_trajectories, is_collection

__all__ = ["step_sizes", "density_profiles"]


def step_sizes(trajectory: ArrayLike) -> np.ndarray | list[np.ndarray]:
    """Relative step sizes ||g_{n+1} - g_n|| / ||g_n|| (Euclidean norms) for n = 0 .. N-1.

    A flow approaching a fixed point has shrinking steps. Accepts one trajectory (returns a 1-D
    array of length rounds - 1) or a list of trajectories (returns a list of such arrays). Raises
    ``ValueError`` for a trajectory with fewer than 2 rounds or with some ||g_n|| = 0 (the
    relative step is undefined there).
    """
    trajectories = as_trajectories(trajectory)
    if not is_collection(trajectory):
        return _relative_steps(trajectories[0], "trajectory")
    return [_relative_steps(t, f"trajectory #{index}") for index, t in enumerate(trajectories)]


def _relative_steps(trajectory: np.ndarray, label: str) -> np.ndarray:
    if trajectory.shape[0] < 2:
        raise ValueError(f"{label} has {trajectory.shape[0]} round; step sizes need at least 2.")
    norms = np.linalg.norm(trajectory[:-1], axis=1)
    if np.any(norms == 0.0):
        zero_round = int(np.flatnonzero(norms == 0.0)[0])
        raise ValueError(
            f"{label}: ||g_n|| = 0 at round {zero_round}, so the relative step from "
            "it is undefined; use absolute steps (np.diff) or shift the observables."
        )
    return np.linalg.norm(np.diff(trajectory, axis=0), axis=1) / norms


def density_profiles(per_layer_counts: ArrayLike, per_layer_sizes: ArrayLike) -> np.ndarray:
    """Per-layer densities over rounds: counts[n, l] / sizes[l], shape (rounds, layers).

    ``per_layer_counts`` (rounds x layers) holds surviving weights per layer after each round;
    ``per_layer_sizes`` (layers,) the total number of (prunable) weights per layer. Counts must be
    whole numbers in [0, size]; sizes positive whole numbers.

    >>> density_profiles([[4, 10], [2, 5]], [4, 10]).tolist()
    [[1.0, 1.0], [0.5, 0.5]]
    """
    counts = as_float_array(per_layer_counts, "per_layer_counts")
    sizes = as_float_array(per_layer_sizes, "per_layer_sizes")
    if counts.ndim != 2 or counts.size == 0:
        raise ValueError(f"per_layer_counts must be a non-empty 2-D array (rounds, layers); got shape {counts.shape}.")
    if sizes.ndim != 1 or sizes.shape[0] != counts.shape[1]:
        raise ValueError(
            f"per_layer_sizes must be 1-D with one entry per layer ({counts.shape[1]} layers in "
            f"per_layer_counts); got shape {sizes.shape}."
        )
    for name, values in (("per_layer_counts", counts), ("per_layer_sizes", sizes)):
        if not np.all(np.isfinite(values)) or np.any(values != np.round(values)):
            raise ValueError(f"{name} must hold finite whole numbers (weight counts).")
    if np.any(sizes <= 0):
        raise ValueError(f"per_layer_sizes must be positive; got {sizes[sizes <= 0]}.")
    if np.any(counts < 0) or np.any(counts > sizes[None, :]):
        bad_round, bad_layer = np.argwhere((counts < 0) | (counts > sizes[None, :]))[0]
        raise ValueError(
            f"per_layer_counts[{bad_round}, {bad_layer}] = {counts[bad_round, bad_layer]:g} is "
            f"outside [0, {sizes[bad_layer]:g}] (the layer's size)."
        )
    return counts / sizes[None, :]
