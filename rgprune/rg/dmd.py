"""Exact DMD of a flow, and parameter-space DMD from a Gram matrix (method of snapshots)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from rgprune.rg.linalg import (
    GRAM_DEFAULT_TOL,
    by_decreasing_modulus,
    relative_error,
    rounding_floor,
    truncated_svd,
    truncation_rank,
)
from rgprune.rg.validation import (
    ArrayLike,
    as_float_array,
    as_trajectories,
    check_rank_and_tol,
    frozen,
    snapshot_pairs,
)

__all__ = ["DMDResult", "GramDMDResult", "dmd", "gram_dmd"]

# A DMD mode vector with norm below this (relative to the unit-norm eigenvector it came from) is
# numerically zero: the exact mode degenerates for lambda = 0 and the projected mode is used.
_ZERO_MODE_NORM = 1e-10


@dataclass(frozen=True, eq=False)
class DMDResult:
    """Exact DMD of a flow (see :func:`dmd`). Arrays are read-only.

    eigenvalues: (rank,) complex, sorted by decreasing modulus.
    modes: (observables, rank) complex, unit-norm exact DMD modes, column i for eigenvalue i.
    amplitudes: (rank,) complex, least-squares coefficients of the first snapshot of the first
        trajectory in the modes: g_0 ~ modes @ amplitudes.
    rank: number of singular values kept.
    singular_values: all singular values of X (decreasing), kept or not, to judge the truncation.
    reconstruction_error: ||U*Y - Atilde U*X||_F / ||U*Y||_F, the relative error of the fitted
        operator on the data projected onto the kept subspace span(U). It is 0 (to rounding) when
        there are no more snapshots than rank, because the fit then interpolates.
    """

    eigenvalues: np.ndarray
    modes: np.ndarray
    amplitudes: np.ndarray
    rank: int
    singular_values: np.ndarray
    reconstruction_error: float


def dmd(trajectories: ArrayLike, rank: int | None = None, tol: float | None = None) -> DMDResult:
    """Exact dynamic mode decomposition (Tu et al. 2014) of a flow g_{n+1} ~ A g_n.

    Snapshot matrices X = [g_0 .. g_{N-1}] and Y = [g_1 .. g_N] (columns; pairs of all
    trajectories pooled). With the thin SVD X = U S V* truncated to rank r, the reduced operator is
    Atilde = U* Y V S^-1 (r x r); its eigenvalues are the DMD eigenvalues and the exact modes are
    Y V S^-1 w / lambda (Tu et al., eq. 3.8; the projected mode U w is used where lambda is 0).

    Rank rule: by default keep singular values s > tol * s_max with ``tol = DEFAULT_TOL = 1e-10``
    (relative), never above min(observables, snapshots) and never below the rounding floor
    max(X.shape) * eps * s_max. This keeps every direction the data supports (exact data of a
    d-dimensional linear map gives exactly d eigenvalues) and drops duplicate observables and
    noise directions far below the signal. Give ``rank`` to fix r (it may not exceed the numerical
    rank), or ``tol`` to change the threshold, not both.

    Short flows (N < 3 rounds): a single trajectory needs at least 3 rounds (2 snapshot pairs);
    with fewer, ``ValueError`` is raised rather than returning the meaningless exact fit of one
    pair. Several trajectories of the same map may each be short (2+ rounds each).

    Example: a diagonal linear map with eigenvalues 0.9 and 0.5.

    >>> import numpy as np
    >>> rounds = np.arange(4)[:, None]
    >>> trajectory = np.hstack([0.9 ** rounds, 0.5 ** rounds])   # shape (4 rounds, 2 observables)
    >>> result = dmd(trajectory)
    >>> result.rank
    2
    >>> np.round(result.eigenvalues.real, 10)
    array([0.9, 0.5])
    >>> bool(result.reconstruction_error < 1e-12)
    True
    """
    check_rank_and_tol(rank, tol)
    trajs = as_trajectories(trajectories)
    x, y = snapshot_pairs(trajs)
    u, s, v, all_s = truncated_svd(x, rank, tol)
    y_v_sinv = (y @ v) / s  # Y V S^-1, shape (observables, r)
    reduced = u.T @ y_v_sinv  # Atilde
    eigenvalues, eigenvectors = np.linalg.eig(reduced)
    order = by_decreasing_modulus(eigenvalues)
    eigenvalues, eigenvectors = eigenvalues[order], eigenvectors[:, order]

    modes = _exact_modes(y_v_sinv @ eigenvectors, u @ eigenvectors)
    amplitudes = np.linalg.lstsq(modes, trajs[0][0].astype(np.complex128), rcond=None)[0]
    projected_y = u.T @ y
    error = relative_error(projected_y, reduced @ (u.T @ x))
    return DMDResult(
        eigenvalues=frozen(eigenvalues.astype(np.complex128)),
        modes=frozen(modes),
        amplitudes=frozen(amplitudes),
        rank=int(s.size),
        singular_values=frozen(all_s),
        reconstruction_error=error,
    )


def _exact_modes(exact: np.ndarray, projected: np.ndarray) -> np.ndarray:
    """Unit-norm exact modes; fall back to projected modes where the exact one vanishes.

    Scaling by 1/lambda (Tu et al.) does not change a mode's direction, so normalizing the columns
    of Y V S^-1 W is equivalent and avoids dividing by small eigenvalues.
    """
    exact = exact.astype(np.complex128)
    norms = np.linalg.norm(exact, axis=0)
    vanished = norms <= _ZERO_MODE_NORM
    exact[:, vanished] = projected[:, vanished]
    return exact / np.linalg.norm(exact, axis=0)


@dataclass(frozen=True, eq=False)
class GramDMDResult:
    """DMD computed from the Gram matrix of the snapshots (see :func:`gram_dmd`). Read-only.

    eigenvalues: (rank,) complex, decreasing modulus; equal to ``dmd`` on the vectors.
    mode_coefficients: (N+1, rank) complex: mode i = sum_j mode_coefficients[j, i] * theta_j,
        normalized so that each mode has unit norm (same modes as ``dmd`` up to a phase).
    rank, singular_values, reconstruction_error: as in :class:`DMDResult`.
    """

    eigenvalues: np.ndarray
    mode_coefficients: np.ndarray
    rank: int
    singular_values: np.ndarray
    reconstruction_error: float


def gram_dmd(gram: ArrayLike, rank: int | None = None, tol: float | None = None) -> GramDMDResult:
    """Exact DMD of one trajectory theta_0 .. theta_N known only through inner products.

    ``gram[i, j] = <theta_i, theta_j>`` ((N+1) x (N+1), symmetric positive semidefinite), e.g.
    accumulated tensor by tensor from checkpoints, so models larger than memory can be analysed.
    With X = [theta_0 .. theta_{N-1}], Y = [theta_1 .. theta_N]: X^T X = V S^2 V^T gives S and V,
    U = X V S^-1, and Atilde = U^T Y V S^-1 = S^-1 V^T (X^T Y) V S^-1, which needs only the Gram
    blocks. The eigenvalues are those :func:`dmd` would return on the full vectors.

    Rank rule: as in :func:`dmd` but with default ``tol = GRAM_DEFAULT_TOL = 1e-6`` relative,
    because singular values obtained as sqrt(eig(X^T X)) are resolved only down to about
    sqrt(eps) * s_max; an explicit ``rank`` may not keep singular values below
    10 * sqrt(N * eps) * s_max. So directions between 1e-10 and 1e-6 of s_max, which :func:`dmd`
    keeps, are dropped here. Needs N + 1 >= 3 snapshots (one trajectory).

    Example: a 2-D linear map seen through 1000 parameters; only inner products are used.

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> embed = rng.normal(size=(2, 1000))
    >>> states = np.array([[0.9 ** n, 0.5 ** n] for n in range(5)])
    >>> thetas = states @ embed                     # 5 snapshots of 1000 parameters
    >>> result = gram_dmd(thetas @ thetas.T)
    >>> np.round(result.eigenvalues.real, 8)
    array([0.9, 0.5])
    """
    check_rank_and_tol(rank, tol)
    g = _check_gram(gram)
    x_gram = g[:-1, :-1]  # X^T X
    xy_gram = g[:-1, 1:]  # X^T Y
    eig_x, vecs_x = np.linalg.eigh(x_gram)
    order = np.argsort(eig_x)[::-1]
    all_s = np.sqrt(np.clip(eig_x[order], 0.0, None))
    vecs_x = vecs_x[:, order]
    # eig(X^T X) is accurate to ~N eps s_max^2, so s = sqrt(eig) only to ~sqrt(N eps) s_max;
    # the factor 10 keeps explicit ranks clear of that noise.
    floor = 10.0 * math.sqrt(rounding_floor(x_gram.shape))
    r = truncation_rank(all_s, x_gram.shape, rank, tol, GRAM_DEFAULT_TOL, floor)
    s, v = all_s[:r], vecs_x[:, :r]

    reduced = (v.T @ xy_gram @ v) / np.outer(s, s)  # Atilde = S^-1 V^T X^T Y V S^-1
    eigenvalues, eigenvectors = np.linalg.eig(reduced)
    order = by_decreasing_modulus(eigenvalues)
    eigenvalues, eigenvectors = eigenvalues[order], eigenvectors[:, order]

    coefficients = _gram_mode_coefficients(g, v / s, eigenvectors)
    # Error in span(U): U^T X = S V^T and U^T Y = S^-1 V^T X^T Y.
    projected_y = (v.T @ xy_gram) / s[:, None]
    error = relative_error(projected_y, reduced @ (s[:, None] * v.T))
    return GramDMDResult(
        eigenvalues=frozen(eigenvalues.astype(np.complex128)),
        mode_coefficients=frozen(coefficients),
        rank=int(r),
        singular_values=frozen(all_s),
        reconstruction_error=error,
    )


def _check_gram(gram: ArrayLike) -> np.ndarray:
    g = as_float_array(gram, "gram")
    if g.ndim != 2 or g.shape[0] != g.shape[1]:
        raise ValueError(f"gram must be a square (N+1) x (N+1) matrix; got shape {g.shape}.")
    if g.shape[0] < 3:
        raise ValueError(
            f"gram is {g.shape[0]}x{g.shape[0]}: DMD needs at least 3 snapshots (2 pairs); record "
            "more rounds."
        )
    if not np.all(np.isfinite(g)):
        raise ValueError("gram contains non-finite values; recompute the inner products.")
    scale = np.max(np.abs(g))
    if not np.allclose(g, g.T, rtol=0.0, atol=1e-10 * scale):
        raise ValueError(
            "gram is not symmetric; it must hold inner products G[i, j] = <theta_i, theta_j>."
        )
    min_eig = np.linalg.eigvalsh((g + g.T) / 2)[0]
    if min_eig < -1e-8 * scale:
        raise ValueError(
            f"gram is not positive semidefinite (smallest eigenvalue {min_eig:.3g}); it cannot be "
            "a matrix of inner products."
        )
    return (g + g.T) / 2


def _gram_mode_coefficients(
    g: np.ndarray, v_sinv: np.ndarray, eigenvectors: np.ndarray
) -> np.ndarray:
    """Coefficients over theta_0..theta_N of the unit-norm modes (exact, else projected)."""
    n_plus_1 = g.shape[0]
    rank = eigenvectors.shape[1]
    on_y = np.zeros((n_plus_1, rank), dtype=np.complex128)
    on_y[1:] = v_sinv @ eigenvectors  # exact modes Y V S^-1 w
    on_x = np.zeros((n_plus_1, rank), dtype=np.complex128)
    on_x[:-1] = v_sinv @ eigenvectors  # projected modes U w = X V S^-1 w
    norms_y = _gram_norms(g, on_y)
    vanished = norms_y <= _ZERO_MODE_NORM
    coefficients = np.where(vanished[None, :], on_x, on_y)
    return coefficients / _gram_norms(g, coefficients)


def _gram_norms(g: np.ndarray, coefficients: np.ndarray) -> np.ndarray:
    squared = np.einsum("ik,ij,jk->k", coefficients.conj(), g, coefficients).real
    return np.sqrt(np.clip(squared, 0.0, None))
