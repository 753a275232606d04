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

    eigenvalue_distance: Wasserstein-1 distance between the flows' DMD eigenvalue sets.
    trajectory_distance: :func:`trajectory_distance` of the trajectories.
    total: eigenvalue_distance + trajectory_weight * trajectory_distance.
    ranks: the DMD ranks of ``a`` and ``b`` (0: nothing resolved, compared as the eigenvalue set {0}).
    """

    eigenvalue_distance: float
    trajectory_distance: float
    total: float
    ranks: tuple[int, int]


def flow_distance(
    a: ArrayLike,
    b: ArrayLike,
    rank: int | None = None,
    *,
    tol: float | None = None,
    trajectory_weight: float = 1.0,
) -> FlowDistance:
    """Compare two flows by their DMD eigenvalues and by their trajectories.

    ``eigenvalue_distance`` is the Wasserstein-1 distance between the :func:`dmd` eigenvalues of
    ``a`` and ``b``; it compares the linearized dynamics regardless of where the flows are.
    ``trajectory_distance`` is the mean distance of aligned rounds; it compares where the flows are.
    ``total`` is their plain sum ``eigenvalue_distance + trajectory_weight * trajectory_distance``; the
    eigenvalue part is dimensionless while the trajectory part is in observable units, so set
    ``trajectory_weight`` to put them on a common scale (0 compares dynamics only).

    Ranks: by default each flow is fitted at the rank its own data supports (:func:`dmd`'s held-out rule),
    so each set holds only the directions resolved in that flow, and a flow with nothing resolved (or too
    short to tell) is compared as the eigenvalue set {0}: the linear part of a fit at rank 0 is A = 0, no
    memory from one round to the next. Two flows resolving different numbers of directions are still
    comparable (the sets are uniform measures of any size). ``rank`` / ``tol`` fix the truncation of both
    fits instead, as in :func:`dmd`. ``ranks`` reports the ranks used. No intervals are computed here.

    Example: two decaying flows, 0.9**n and 0.5**n, one step apart in eigenvalue.

    >>> import numpy as np
    >>> rounds = np.arange(5)[:, None]
    >>> d = flow_distance(0.9 ** rounds, 0.5 ** rounds)
    >>> round(d.eigenvalue_distance, 10), d.ranks
    (0.4, (1, 1))
    >>> round(d.total, 10) == round(d.eigenvalue_distance + d.trajectory_distance, 10)
    True
    """
    if not (math.isfinite(trajectory_weight) and trajectory_weight >= 0.0):
        raise ValueError(f"trajectory_weight must be finite and >= 0; got {trajectory_weight!r}.")
    fit_a = dmd(a, rank=rank, tol=tol, n_boot=0)
    fit_b = dmd(b, rank=rank, tol=tol, n_boot=0)
    eigen_part = eigenvalue_wasserstein(_resolved_or_zero(fit_a.eigenvalues), _resolved_or_zero(fit_b.eigenvalues))
    path_part = trajectory_distance(a, b)
    return FlowDistance(
        eigenvalue_distance=eigen_part,
        trajectory_distance=path_part,
        total=eigen_part + trajectory_weight * path_part,
        ranks=(fit_a.rank, fit_b.rank),
    )


def _resolved_or_zero(eigenvalues: np.ndarray) -> np.ndarray:
    return eigenvalues if eigenvalues.size else np.zeros(1, dtype=np.complex128)
