"""Rounding floors, truncation defaults and small linear-algebra helpers shared by the flow estimators."""

from __future__ import annotations

import numpy as np

#: Relative size (to the largest) below which singular values of trajectory data are never fitted.
DEFAULT_TOL = 1e-10
#: The same floor for ``gram_dmd``. Singular values come from eigenvalues of the Gram
#: matrix, s = sqrt(eig(G)); an error e * s_max**2 in G (at least eps, more when the inner products
#: were accumulated over millions of parameters) becomes sqrt(e) * s_max in s, so s is resolved
#: only down to ~1e-8 .. 1e-7 * s_max. 1e-6 leaves a margin above that noise.
GRAM_DEFAULT_TOL = 1e-6


def rounding_floor(shape: tuple[int, ...]) -> float:
    """Relative size below which singular values of a matrix are rounding noise (matrix_rank)."""
    return max(shape) * np.finfo(np.float64).eps


def by_decreasing_modulus(eigenvalues: np.ndarray) -> np.ndarray:
    """Stable order by decreasing |lambda|; within a conjugate pair, positive imaginary first."""
    return np.lexsort((-eigenvalues.imag, -np.abs(eigenvalues)))


def relative_error(target: np.ndarray, fitted: np.ndarray) -> float:
    scale = np.linalg.norm(target)
    return float(np.linalg.norm(target - fitted) / scale) if scale > 0 else 0.0
