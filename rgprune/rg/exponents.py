"""RG quantities from eigenvalues: rescaling factor, scaling exponents, direction classes."""

from __future__ import annotations

import math
import warnings

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
    values = check_eigenvalues(eigenvalues, "eigenvalues", allow_empty=True)
    try:
        b = float(b)
    except (TypeError, ValueError) as error:
        raise ValueError(f"rescaling factor b must be a number; got {b!r}.") from error
    if not (math.isfinite(b) and b > 0.0 and b != 1.0):
        raise ValueError(f"rescaling factor b must be finite, positive and != 1; got {b!r}.")
    moduli = np.abs(values)
    with np.errstate(divide="ignore"):
        return np.log(moduli) / math.log(b)


def classify_directions(eigenvalues, tol: float = MARGINAL_TOL, intervals: ArrayLike | None = None) -> np.ndarray:
    """Label each eigenvalue 'relevant', 'irrelevant', 'marginal' or 'unresolved' (same order as input).

    Bands: relevant |λ| > 1 + tol (grows under the flow), irrelevant |λ| < 1 - tol (decays), marginal
    1 - tol <= |λ| <= 1 + tol. Default ``tol = MARGINAL_TOL = 0.05``.

    Pass a result of :func:`dmd`, :func:`gram_dmd` or :func:`affine_fixed_point`: a direction then gets a
    class only when its whole interval (``eigenvalue_intervals``) lies in that class's band, and only when
    the fit rests on enough independent trajectories; every direction is 'unresolved' when
    ``result.selection.classes_withheld`` gives a reason (fewer than 5 effective trajectories, see
    :mod:`rgprune.rg.linear_fit`), when an interval straddles a band edge, or for [0, inf) (no information).

    Plain eigenvalues with ``intervals`` ((n, 2) lower and upper |λ|) are classed by the intervals alone.
    Plain eigenvalues without intervals are classed by their point values and raise a RuntimeWarning: that
    is right only for exact data (e.g. a map's own linearization), never for estimates. No eigenvalues
    (nothing resolved) give no labels.

    >>> import warnings
    >>> with warnings.catch_warnings():  # exact eigenvalues, classed knowingly without intervals
    ...     warnings.simplefilter("ignore", RuntimeWarning)
    ...     classify_directions([1.5, 1.01, 0.2]).tolist()
    ['relevant', 'marginal', 'irrelevant']
    >>> classify_directions([1.5, 1.01, 0.2], intervals=[[1.3, 1.6], [0.9, 1.1], [0.1, 0.3]]).tolist()
    ['relevant', 'unresolved', 'irrelevant']
    """
    withheld = None
    if hasattr(eigenvalues, "eigenvalue_intervals"):
        withheld = eigenvalues.selection.classes_withheld
        intervals = eigenvalues.eigenvalue_intervals if intervals is None else intervals
        eigenvalues = eigenvalues.eigenvalues
    elif intervals is None:
        warnings.warn(
            "classify_directions without intervals classes point estimates: right only for exact data. Pass a "
            "dmd / gram_dmd / affine_fixed_point result (its intervals and replication decide), or intervals=.",
            RuntimeWarning,
            stacklevel=2,
        )
    values = check_eigenvalues(eigenvalues, "eigenvalues", allow_empty=True)
    if isinstance(tol, bool) or not isinstance(tol, (int, float)) or not (0.0 <= tol < 1.0):
        raise ValueError(f"tol must be in [0, 1); got {tol!r}.")
    moduli = np.abs(values)
    if intervals is None:
        lower = upper = moduli
    else:
        lower, upper = _check_intervals(intervals, values.size)
    labels = np.full(values.shape, "unresolved", dtype="<U10")
    if withheld is not None:
        return labels
    labels[(lower >= 1.0 - tol) & (upper <= 1.0 + tol)] = "marginal"
    labels[lower > 1.0 + tol] = "relevant"
    labels[upper < 1.0 - tol] = "irrelevant"
    return labels


def _check_intervals(intervals: ArrayLike, count: int) -> tuple[np.ndarray, np.ndarray]:
    try:
        bounds = np.asarray(intervals, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise ValueError(f"intervals must be a numeric (n, 2) array of lower and upper |λ| ({error}).") from error
    if bounds.shape != (count, 2):
        raise ValueError(
            f"intervals must have shape ({count}, 2): one (lower, upper) |λ| pair per eigenvalue; got {bounds.shape}."
        )
    lower, upper = bounds[:, 0], bounds[:, 1]
    if np.any(np.isnan(bounds)) or np.any(lower < 0) or np.any(~np.isfinite(lower)) or np.any(upper < lower):
        raise ValueError(
            "intervals must hold 0 <= lower <= upper for each |λ| (upper may be inf for no information); got "
            f"{np.array2string(bounds, precision=3)}."
        )
    return lower, upper
