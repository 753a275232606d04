"""RG quantities from eigenvalues: rescaling factor, scaling exponents, direction classes."""

from __future__ import annotations

import math

import numpy as np

from rgprune.rg.validation import ArrayLike, check_eigenvalues

__all__ = ["MARGINAL_TOL", "rescaling_factor", "scaling_exponents", "classify_directions"]

#: Default half-width of the marginal band |lambda| in [1 - tol, 1 + tol].
MARGINAL_TOL = 0.05


def rescaling_factor(p: float) -> float:
    """RG rescaling factor b = 1 / (1 - p) for a pruning fraction p per round (0 < p < 1).

    Pruning p of the survivors keeps (1 - p) of the parameters, i.e. shrinks the system by b.

    >>> rescaling_factor(0.2)
    1.25
    """
    if isinstance(p, bool) or not isinstance(p, (int, float, np.floating, np.integer)):
        raise ValueError(f"pruning fraction p must be a number; got {p!r}.")
    if not (0.0 < p < 1.0):
        raise ValueError(f"pruning fraction p must satisfy 0 < p < 1; got {p!r}.")
    return 1.0 / (1.0 - float(p))


def scaling_exponents(eigenvalues: ArrayLike, b: float) -> np.ndarray:
    """RG scaling exponents y_i = ln|lambda_i| / ln b (same order as ``eigenvalues``).

    y > 0: relevant, y < 0: irrelevant, y = 0: marginal. ``b`` is the rescaling factor per round
    (b > 0, b != 1; for IMP use :func:`rescaling_factor`). A zero eigenvalue gives y = -inf (a
    direction that dies in one step, infinitely irrelevant).

    >>> scaling_exponents([2.0, 0.5], 2.0)
    array([ 1., -1.])
    """
    values = check_eigenvalues(eigenvalues, "eigenvalues")
    try:
        b = float(b)
    except (TypeError, ValueError) as error:
        raise ValueError(f"rescaling factor b must be a number; got {b!r}.") from error
    if not (math.isfinite(b) and b > 0.0 and b != 1.0):
        raise ValueError(f"rescaling factor b must be finite, positive and != 1; got {b!r}.")
    moduli = np.abs(values)
    with np.errstate(divide="ignore"):
        return np.log(moduli) / math.log(b)


def classify_directions(eigenvalues: ArrayLike, tol: float = MARGINAL_TOL) -> np.ndarray:
    """Label each eigenvalue 'relevant', 'irrelevant' or 'marginal' (same order as input).

    relevant: |lambda| > 1 + tol (grows under the flow); irrelevant: |lambda| < 1 - tol (decays);
    marginal: otherwise. Default ``tol = MARGINAL_TOL = 0.05``, a band wide enough for DMD
    estimates from a handful of IMP rounds.

    >>> classify_directions([1.5, 1.01, 0.2]).tolist()
    ['relevant', 'marginal', 'irrelevant']
    """
    values = check_eigenvalues(eigenvalues, "eigenvalues")
    if not (0.0 <= tol < 1.0):
        raise ValueError(f"tol must be in [0, 1); got {tol!r}.")
    moduli = np.abs(values)
    labels = np.full(values.shape, "marginal", dtype="<U10")
    labels[moduli > 1.0 + tol] = "relevant"
    labels[moduli < 1.0 - tol] = "irrelevant"
    return labels
