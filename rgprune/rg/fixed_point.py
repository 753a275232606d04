"""Affine DMD g_{n+1} ~ A g_n + c and the flow's fixed point."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rgprune.rg.linalg import (
    DEFAULT_TOL,
    by_decreasing_modulus,
    range_basis,
    relative_error,
    rounding_floor,
    truncated_svd,
)
from rgprune.rg.validation import ArrayLike, as_trajectories, check_rank_and_tol, frozen, snapshot_pairs

__all__ = ["AffineFixedPointResult", "affine_fixed_point"]


@dataclass(frozen=True, eq=False)
class AffineFixedPointResult:
    """Affine DMD fit g_{n+1} ~ A g_n + c and its fixed point (see :func:`affine_fixed_point`).

    fixed_point: (observables,) g* = (I - A)^+ c.
    eigenvalues: complex, decreasing modulus: eigenvalues of A on the directions between the input
        snapshots (where deviations from g* live; the analogue of exact DMD's Atilde). Directions
        the data never explores are not reported.
    A_reduced: (k, k) A in the orthonormal ``basis``: A = basis @ A_reduced @ basis.T exactly.
    basis: (observables, k) orthonormal basis of the span of all snapshots.
    c: (observables,) the constant term.
    rank: rank kept in the SVD of the augmented snapshot matrix [X; 1] (the constant direction
        counts: a scalar flow has rank 2).
    residual: ||Y - A X - c 1^T||_F / ||Y||_F over all snapshot pairs (full space).
    """

    fixed_point: np.ndarray
    eigenvalues: np.ndarray
    A_reduced: np.ndarray
    basis: np.ndarray
    c: np.ndarray
    rank: int
    residual: float

    @property
    def A(self) -> np.ndarray:
        """The full (observables x observables) linear part; large for many observables."""
        return self.basis @ self.A_reduced @ self.basis.T


def affine_fixed_point(
    trajectories: ArrayLike, rank: int | None = None, tol: float | None = None
) -> AffineFixedPointResult:
    """Fit the affine map g_{n+1} = A g_n + c by DMD and return its fixed point g* = (I - A)^+ c.

    The fit is the minimum-norm least-squares solution [A c] = Y [X; 1]^+ with the pseudo-inverse
    truncated by the same rank rule as :func:`dmd` (default: keep singular values of the augmented
    matrix [X; 1] above ``DEFAULT_TOL = 1e-10`` times the largest). A is never formed in the
    observable space: its range lies in span(Y) and its row space in span(X), so it is represented
    exactly as ``basis @ A_reduced @ basis.T`` with ``basis`` spanning all snapshots, and the fixed
    point is solved there: g* = basis (I - A_reduced)^+ basis^T c. This equals (I - A)^+ c whenever
    I - A is invertible; when A has an eigenvalue 1 (a marginal direction), the fixed point is not
    unique and the minimum-norm one within the data span is returned (pinv cutoff: the same
    relative tolerance).

    The eigenvalues are those of A restricted to the span of differences between input snapshots,
    the space in which deviations g_n - g* move; this makes them independent of the fit's gauge
    freedom when all snapshots satisfy a linear constraint (normalized histograms sum to 1).

    Needs at least 2 snapshot pairs in total (see :func:`dmd`) and inputs that are not all
    equal. With fewer pairs than observables + 1 the fit is the minimum-norm one and determines
    the map only on the data's span, as in DMD.

    Example: g_{n+1} = 0.5 g_n + 1 has the fixed point g* = 2 and eigenvalue 0.5.

    >>> import numpy as np
    >>> trajectory = np.array([[0.0], [1.0], [1.5], [1.75]])
    >>> result = affine_fixed_point(trajectory)
    >>> np.round(result.fixed_point, 10)
    array([2.])
    >>> np.round(result.eigenvalues.real, 10)
    array([0.5])
    """
    check_rank_and_tol(rank, tol)
    x, y = snapshot_pairs(as_trajectories(trajectories))
    observables, pairs = x.shape
    augmented = np.vstack([x, np.ones((1, pairs))])
    u, s, v, _ = truncated_svd(augmented, rank, tol)
    # [A c] = Y V S^-1 U^T; split U's rows into the part acting on g (u_x) and on the ones-row.
    y_v_sinv = (y @ v) / s
    u_x, u_one = u[:observables], u[observables]
    c = y_v_sinv @ u_one

    relative = DEFAULT_TOL if tol is None else tol
    basis = range_basis(np.hstack([x, y]), relative)
    a_reduced = (basis.T @ y_v_sinv) @ (u_x.T @ basis)
    identity_minus_a = np.eye(basis.shape[1]) - a_reduced
    cutoff = max(relative, rounding_floor(identity_minus_a.shape))
    fixed_point = basis @ (np.linalg.pinv(identity_minus_a, rcond=cutoff) @ (basis.T @ c))

    # The linear part acts on deviations, which span the directions between the input snapshots.
    directions = range_basis(x - x.mean(axis=1, keepdims=True), relative)
    if directions.shape[1] == 0:
        raise ValueError(
            "all input snapshots are equal: the flow does not move, so its linear part cannot be "
            "estimated (the common value is a fixed point). Start trajectories away from it."
        )
    eigenvalues = _linear_part_eigenvalues(y_v_sinv, u_x, directions)

    residual = relative_error(y, y_v_sinv @ (u_x.T @ x) + c[:, None])
    return AffineFixedPointResult(
        fixed_point=frozen(fixed_point),
        eigenvalues=frozen(eigenvalues),
        A_reduced=frozen(a_reduced),
        basis=frozen(basis),
        c=frozen(c),
        rank=int(s.size),
        residual=residual,
    )


def _linear_part_eigenvalues(
    y_v_sinv: np.ndarray, u_x: np.ndarray, directions: np.ndarray
) -> np.ndarray:
    """Eigenvalues of A = (Y V S^-1) u_x^T compressed to the span D of input differences.

    Deviations from the fixed point live in D = span{x_i - x_j}, and only A's action on D is
    pinned down by the data: when every snapshot satisfies a linear constraint l^T g = const
    (e.g. normalized histograms, l = 1), A + u l^T with c - u fits equally well, and A's
    eigenvalue normal to the constraint is an arbitrary artefact of the minimum-norm choice. The
    compression Q^T A Q (Q orthonormal basis of D) does not depend on that choice (l^T Q = 0).
    Its nonzero eigenvalues are also those of the r x r product (u_x^T Q)(Q^T Y V S^-1); the
    smaller product is used, giving min(dim D, rank) eigenvalues.
    """
    left, right = directions.T @ y_v_sinv, u_x.T @ directions
    compressed = left @ right if left.shape[0] <= right.shape[0] else right @ left
    eigenvalues = np.linalg.eigvals(compressed).astype(np.complex128)
    return eigenvalues[by_decreasing_modulus(eigenvalues)]
