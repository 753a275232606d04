"""Truncated SVDs and small linear-algebra helpers shared by the DMD-type estimators."""

from __future__ import annotations

import numpy as np

#: Default relative SVD truncation: keep singular values s > DEFAULT_TOL * s_max.
DEFAULT_TOL = 1e-10
#: Default relative truncation for ``gram_dmd``. Singular values come from eigenvalues of the Gram
#: matrix, s = sqrt(eig(G)); an error e * s_max**2 in G (at least eps, more when the inner products
#: were accumulated over millions of parameters) becomes sqrt(e) * s_max in s, so s is resolved
#: only down to ~1e-8 .. 1e-7 * s_max. 1e-6 leaves a margin above that noise.
GRAM_DEFAULT_TOL = 1e-6


def rounding_floor(shape: tuple[int, ...]) -> float:
    """Relative size below which singular values of a matrix are rounding noise (matrix_rank)."""
    return max(shape) * np.finfo(np.float64).eps


def truncation_rank(
    singular_values: np.ndarray, shape: tuple[int, int], rank: int | None, tol: float | None,
    default_tol: float, floor: float,
) -> int:
    """Number of singular values to keep.

    ``floor`` (relative to s_max) separates data from rounding noise; nothing below it is ever
    kept, because inverting such a singular value would amplify noise into garbage.
    """
    s_max = singular_values[0] if singular_values.size else 0.0
    if s_max == 0.0:
        raise ValueError("all snapshots are zero; there is no flow to analyse.")
    numerical_rank = int(np.count_nonzero(singular_values > floor * s_max))
    if rank is not None:
        cap = min(shape)
        if not 1 <= rank <= cap:
            raise ValueError(
                f"rank={rank} is out of range: it must be between 1 and min(observables, "
                f"snapshots) = {cap}."
            )
        if rank > numerical_rank:
            raise ValueError(
                f"rank={rank} exceeds the numerical rank {numerical_rank} of the snapshot matrix "
                f"(singular values {np.array2string(singular_values, precision=3)}); the extra "
                "directions are rounding noise. Use a smaller rank or the default (rank=None)."
            )
        return int(rank)
    relative = default_tol if tol is None else tol
    return int(np.count_nonzero(singular_values > max(relative, floor) * s_max))


def truncated_svd(
    matrix: np.ndarray, rank: int | None, tol: float | None, default_tol: float = DEFAULT_TOL
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Return (U_r, s_r, V_r, s_all) of the rank-truncated thin SVD, V_r with columns."""
    u, s, vh = np.linalg.svd(matrix, full_matrices=False)
    r = truncation_rank(s, matrix.shape, rank, tol, default_tol, rounding_floor(matrix.shape))
    return u[:, :r], s[:r], vh[:r].conj().T, s


def range_basis(matrix: np.ndarray, tol: float) -> np.ndarray:
    """Orthonormal basis (columns) of the numerical column span of ``matrix``."""
    u, s, _ = np.linalg.svd(matrix, full_matrices=False)
    if not s.size or s[0] == 0.0:
        return np.zeros((matrix.shape[0], 0))
    keep = s > max(tol, rounding_floor(matrix.shape)) * s[0]
    return u[:, keep]


def by_decreasing_modulus(eigenvalues: np.ndarray) -> np.ndarray:
    """Stable order by decreasing |lambda|; within a conjugate pair, positive imaginary first."""
    return np.lexsort((-eigenvalues.imag, -np.abs(eigenvalues)))


def relative_error(target: np.ndarray, fitted: np.ndarray) -> float:
    scale = np.linalg.norm(target)
    return float(np.linalg.norm(target - fitted) / scale) if scale > 0 else 0.0
