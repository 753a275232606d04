"""Affine DMD g_{n+1} ≈ A g_n + c and the flow's fixed point."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rgprune.rg.intervals import DEFAULT_LEVEL, DEFAULT_REPLICATES, fit_flow
from rgprune.rg.linalg import DEFAULT_TOL, relative_error
from rgprune.rg.linear_fit import RankChoice
from rgprune.rg.snapshots import pairs_from_trajectories
from rgprune.rg.validation import ArrayLike, check_rank_and_tol, frozen

__all__ = ["AffineFixedPointResult", "affine_fixed_point"]


@dataclass(frozen=True, eq=False)
class AffineFixedPointResult:
    """Affine fit g_{n+1} ≈ A g_n + c and its fixed point (see :func:`affine_fixed_point`). Read-only.

    fixed_point: (observables,) g* with g* = A g* + c (the one nearest the mean input when there are several).
    eigenvalues: complex, decreasing modulus: eigenvalues of A on the fitted directions (equal to
        :func:`dmd`'s); empty when nothing is resolved.
    A_reduced: (k, k) A in the orthonormal ``basis``: A = basis @ A_reduced @ basis.T exactly.
    basis: (observables, k) orthonormal fitted directions (leading directions of the centred images).
    c: (observables,) the constant term, c = mean(Y) - A mean(X).
    rank: k, the number of directions of the linear part A (0: nothing resolved, only the constant c, the
        mean step, was fitted): the same number as :func:`dmd`'s ``rank`` for the same data, and what
        ``rank=`` fixes in both.
    residual: ||Y - A X - c 1^T||_F / ||Y||_F over all snapshot pairs (full space).
    eigenvalue_intervals, interval_level, selection: as in :class:`rgprune.rg.dmd.DMDResult`.
    """

    fixed_point: np.ndarray
    eigenvalues: np.ndarray
    A_reduced: np.ndarray
    basis: np.ndarray
    c: np.ndarray
    rank: int
    residual: float
    eigenvalue_intervals: np.ndarray
    interval_level: float
    selection: RankChoice

    @property
    def A(self) -> np.ndarray:
        """The full (observables x observables) linear part; large for many observables."""
        return self.basis @ self.A_reduced @ self.basis.T

    @property
    def status(self) -> str:
        """'fitted', 'nothing resolved', 'too short', 'rank given' or 'tol given' (see RankChoice)."""
        return self.selection.status


def affine_fixed_point(
    trajectories: ArrayLike,
    rank: int | None = None,
    tol: float | None = None,
    *,
    level: float = DEFAULT_LEVEL,
    n_boot: int = DEFAULT_REPLICATES,
    seed: int = 0,
) -> AffineFixedPointResult:
    """Fit the affine map g_{n+1} = A g_n + c and return its fixed point g* = A g* + c.

    Least squares with an intercept: the pairs of one or several trajectories (same map) are centred,
    y - mean(Y) ≈ A (x - mean(X)), c = mean(Y) - A mean(X), with A of rank k in the leading directions
    of the centred images. ``rank`` (k, the linear part's rank, as in :func:`dmd`), ``tol``, ``level``, ``n_boot`` and
    ``seed`` mean what they mean for :func:`dmd`, whose fit this is: by default k comes from the held-out
    prediction rule, and the eigenvalues and their intervals are exactly :func:`dmd`'s.

    The fixed point: with the mean step delta = mean(Y) - mean(X), g* = mean(X) + U (I - Ã)^+ U^T delta
    + (delta - U U^T delta), U = ``basis``, Ã = ``A_reduced``. This solves g* = A g* + c exactly when I - Ã
    is invertible; with an eigenvalue 1 (a marginal direction) fixed points form a line, and the
    pseudo-inverse (cutoff ``tol`` or ``DEFAULT_TOL``) returns the one nearest mean(X). The fit never
    depends on a gauge: when every snapshot satisfies a linear constraint (normalized histograms sum to 1)
    the centred data and A live inside the constraint, so no eigenvalue is an artefact of it. At rank
    k = 0 (nothing resolved) the fixed point is mean(Y), the best constant prediction.

    Raises ``ValueError`` when all snapshots are equal (the flow does not move) and for fewer than 2
    snapshot pairs; flows too short for the held-out rule return k = 0 with status "too short".

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
    pairs = pairs_from_trajectories(trajectories)
    flow = fit_flow(pairs, rank, tol, DEFAULT_TOL, level, n_boot, seed)
    fit = flow.fit
    relative = max(pairs.floor, DEFAULT_TOL if tol is None else tol)
    c = fit.y_mean - fit.apply(fit.x_mean[:, None])[:, 0]
    residual = relative_error(pairs.y, fit.apply(pairs.x) + c[:, None])
    return AffineFixedPointResult(
        fixed_point=frozen(pairs.lift(fit.fixed_point(relative)[:, None])[:, 0]),
        eigenvalues=frozen(fit.eigenvalues),
        A_reduced=frozen(fit.reduced),
        basis=frozen(pairs.lift(fit.basis)),
        c=frozen(pairs.lift(c[:, None])[:, 0]),
        rank=fit.rank,
        residual=residual,
        eigenvalue_intervals=frozen(flow.intervals),
        interval_level=float(level),
        selection=flow.choice,
    )
