"""Distances between flows: eigenvalue sets, trajectories, and both together."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import scipy.optimize
import scipy.sparse

from rgprune.rg.dmd import dmd
from rgprune.rg.validation import ArrayLike, as_trajectories, check_eigenvalues

__all__ = ["FlowDistance", "eigenvalue_wasserstein", "trajectory_distance", "flow_distance"]


def eigenvalue_wasserstein(eigs_a: ArrayLike, eigs_b: ArrayLike) -> float:
    """Wasserstein-1 distance between two eigenvalue sets in the complex plane.

    Each set is a uniform probability measure on its points (sets may differ in size); the ground
    cost is |z - w|. Solved exactly: by optimal assignment when the sizes are equal (an optimal
    plan between uniform measures of equal size is a permutation), otherwise by the transport
    linear program (scipy.optimize.linprog, HiGHS).

    >>> eigenvalue_wasserstein([0.0], [1.0, -1.0])
    1.0
    """
    a = check_eigenvalues(eigs_a, "eigs_a")
    b = check_eigenvalues(eigs_b, "eigs_b")
    cost = np.abs(a[:, None] - b[None, :])
    if a.size == b.size:
        rows, cols = scipy.optimize.linear_sum_assignment(cost)
        return float(cost[rows, cols].mean())
    return _transport_cost(cost)


def _transport_cost(cost: np.ndarray) -> float:
    m, n = cost.shape
    # Plan P (m x n) flattened row-major: row sums 1/m, column sums 1/n.
    row_sums = scipy.sparse.kron(scipy.sparse.eye(m), np.ones((1, n)))
    col_sums = scipy.sparse.kron(np.ones((1, m)), scipy.sparse.eye(n))
    constraints = scipy.sparse.vstack([row_sums, col_sums]).tocsr()
    targets = np.concatenate([np.full(m, 1.0 / m), np.full(n, 1.0 / n)])
    solution = scipy.optimize.linprog(cost.ravel(), A_eq=constraints, b_eq=targets, bounds=(0, None), method="highs")
    if solution.status != 0:
        raise RuntimeError(f"transport linear program failed: {solution.message}")
    return float(max(solution.fun, 0.0))


def trajectory_distance(a: ArrayLike, b: ArrayLike) -> float:
    """Mean Euclidean distance between aligned rounds of two trajectories.

    d(a, b) = (1/L) sum_{n<L} ||a_n - b_n|| over the common length L = min(rounds_a, rounds_b).
    For lists of trajectories, the i-th of ``a`` is paired with the i-th of ``b`` (equal counts
    required) and the mean runs over all aligned rounds of all pairs. Both must have the same
    number of observables.
    """
    list_a, list_b = as_trajectories(a, "a"), as_trajectories(b, "b")
    if len(list_a) != len(list_b):
        raise ValueError(
            f"a has {len(list_a)} trajectories and b has {len(list_b)}; trajectory_distance pairs "
            "them in order, so pass the same number of each."
        )
    if list_a[0].shape[1] != list_b[0].shape[1]:
        raise ValueError(
            f"a has {list_a[0].shape[1]} observables and b has {list_b[0].shape[1]}; trajectories "
            "can only be compared on the same observables."
        )
    distances = []
    for ta, tb in zip(list_a, list_b):
        common = min(ta.shape[0], tb.shape[0])
        distances.append(np.linalg.norm(ta[:common] - tb[:common], axis=1))
    return float(np.concatenate(distances).mean())


@dataclass(frozen=True)
class FlowDistance:
    """Distance between two flows (see :func:`flow_distance`).

    eigenvalue_distance: Wasserstein-1 distance between the flows' DMD eigenvalue sets (dimensionless), or
        None when either fit resolved no direction (rank 0: there is no eigenvalue to compare).
    trajectory_distance: :func:`trajectory_distance` of the trajectories (observable units).
    total: eigenvalue_distance + trajectory_weight * trajectory_distance, or None when no
        ``trajectory_weight`` was given (the two parts have different units) or eigenvalue_distance is None.
    ranks: the DMD ranks of ``a`` and ``b`` (0: nothing resolved).
    """

    eigenvalue_distance: float | None
    trajectory_distance: float
    total: float | None
    ranks: tuple[int, int]


def flow_distance(
    a: ArrayLike,
    b: ArrayLike,
    rank: int | None = None,
    *,
    tol: float | None = None,
    trajectory_weight: float | None = None,
) -> FlowDistance:
    """Compare two flows by their DMD eigenvalues and by their trajectories.

    ``eigenvalue_distance`` is the Wasserstein-1 distance between the :func:`dmd` eigenvalues of
    ``a`` and ``b``; it compares the linearized dynamics regardless of where the flows are, and is
    dimensionless. ``trajectory_distance`` is the mean distance of aligned rounds; it compares where the
    flows are, in the observables' units. The two are not added by default: ``total`` is None unless
    ``trajectory_weight`` (in inverse observable units; 0 compares dynamics only) puts them on one scale,
    ``total = eigenvalue_distance + trajectory_weight * trajectory_distance``.

    Ranks: by default each flow is fitted at the rank its own data supports (:func:`dmd`'s held-out rule),
    so each set holds only the directions resolved in that flow; two flows resolving different numbers of
    directions are still comparable (the sets are uniform measures of any size). A flow with nothing
    resolved (rank 0, or too short to tell) has no eigenvalues: its data does not say that A = 0 (no
    memory), only that no direction could be told from noise, so ``eigenvalue_distance`` (and ``total``)
    is None then. ``rank`` / ``tol`` fix the truncation of both fits instead, as in :func:`dmd`. ``ranks``
    reports the ranks used. No intervals are computed here.

    Example: two decaying flows, 0.9**n and 0.5**n, one step apart in eigenvalue.

    >>> import numpy as np
    >>> rounds = np.arange(5)[:, None]
    >>> d = flow_distance(0.9 ** rounds, 0.5 ** rounds)
    >>> round(d.eigenvalue_distance, 10), d.ranks, d.total
    (0.4, (1, 1), None)
    >>> weighted = flow_distance(0.9 ** rounds, 0.5 ** rounds, trajectory_weight=2.0)
    >>> round(weighted.total, 10) == round(d.eigenvalue_distance + 2.0 * d.trajectory_distance, 10)
    True
    """
    if trajectory_weight is not None and (
        isinstance(trajectory_weight, bool)
        or not isinstance(trajectory_weight, (int, float, np.integer, np.floating))
        or not (math.isfinite(trajectory_weight) and trajectory_weight >= 0.0)
    ):
        raise ValueError(f"trajectory_weight must be None or a finite number >= 0; got {trajectory_weight!r}.")
    fit_a = dmd(a, rank=rank, tol=tol, n_boot=0)
    fit_b = dmd(b, rank=rank, tol=tol, n_boot=0)
    eigen_part = None
    if fit_a.rank and fit_b.rank:
        eigen_part = eigenvalue_wasserstein(fit_a.eigenvalues, fit_b.eigenvalues)
    path_part = trajectory_distance(a, b)
    total = None
    if trajectory_weight is not None and eigen_part is not None:
        total = eigen_part + float(trajectory_weight) * path_part
    return FlowDistance(
        eigenvalue_distance=eigen_part,
        trajectory_distance=path_part,
        total=total,
        ranks=(fit_a.rank, fit_b.rank),
    )
