"""Flow statistics of an IMP run viewed as a renormalization-group flow.

One IMP round is one application of an RG operator R, so the observables recorded after each round,
g_0, g_1, ..., g_N, are a discrete flow. This module estimates the flow's linearized operator and
fixed point from such data (exact DMD, affine DMD), turns eigenvalues into RG scaling exponents,
classifies directions as relevant / irrelevant / marginal, and measures distances between flows.

Conventions (shared by every public function here):

* A *trajectory* is an array of shape ``(rounds, observables)``: row n is g_n. A scalar observable
  is a trajectory of shape ``(rounds, 1)``.
* Functions that analyse a flow accept one trajectory or several trajectories of the same map (a
  list/tuple of 2-D arrays, or a 3-D array ``(trajectories, rounds, observables)``). All
  consecutive pairs (g_n, g_{n+1}) of all trajectories are pooled as snapshot pairs X -> Y.
* Everything is computed in float64. Bad input (non-finite values, wrong shapes, flows too short
  to analyse) raises ``ValueError`` saying what was wrong and how to fix it; nothing returns NaN.
* Short flows: DMD-type analyses need at least 2 snapshot pairs in total (3 rounds of a single
  trajectory, or several trajectories with 2+ rounds each). With one pair, a rank-1 fit
  reproduces the data exactly whatever the map is, so its eigenvalue carries no information.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence, Union

import numpy as np
import scipy.optimize
import scipy.sparse

__all__ = [
    "DEFAULT_TOL",
    "GRAM_DEFAULT_TOL",
    "MARGINAL_TOL",
    "DMDResult",
    "AffineFixedPointResult",
    "GramDMDResult",
    "FlowDistance",
    "step_sizes",
    "dmd",
    "affine_fixed_point",
    "gram_dmd",
    "rescaling_factor",
    "scaling_exponents",
    "classify_directions",
    "eigenvalue_wasserstein",
    "trajectory_distance",
    "flow_distance",
    "density_profiles",
]

ArrayLike = Union[np.ndarray, Sequence]

#: Default relative SVD truncation: keep singular values s > DEFAULT_TOL * s_max.
DEFAULT_TOL = 1e-10
#: Default relative truncation for ``gram_dmd``. Singular values come from eigenvalues of the Gram
#: matrix, s = sqrt(eig(G)); an error e * s_max**2 in G (at least eps, more when the inner products
#: were accumulated over millions of parameters) becomes sqrt(e) * s_max in s, so s is resolved
#: only down to ~1e-8 .. 1e-7 * s_max. 1e-6 leaves a margin above that noise.
GRAM_DEFAULT_TOL = 1e-6
#: Default half-width of the marginal band |lambda| in [1 - tol, 1 + tol].
MARGINAL_TOL = 0.05

_MIN_SNAPSHOT_PAIRS = 2
# A DMD mode vector with norm below this (relative to the unit-norm eigenvector it came from) is
# numerically zero: the exact mode degenerates for lambda = 0 and the projected mode is used.
_ZERO_MODE_NORM = 1e-10


# --------------------------------------------------------------------------------------------
# Input validation
# --------------------------------------------------------------------------------------------


def _frozen(array: np.ndarray) -> np.ndarray:
    """Return ``array`` marked read-only, so results stored in frozen dataclasses stay frozen."""
    array = np.array(array, copy=True)
    array.flags.writeable = False
    return array


def _as_float_array(data: ArrayLike, what: str) -> np.ndarray:
    if np.iscomplexobj(data):
        raise ValueError(f"{what} must be real-valued; got complex data.")
    try:
        array = np.asarray(data, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise ValueError(
            f"{what} could not be converted to a float64 array ({error}); pass a numeric array."
        ) from error
    return array


def _check_trajectory(data: ArrayLike, what: str) -> np.ndarray:
    """Validate one trajectory: finite float64 of shape (rounds >= 1, observables >= 1)."""
    trajectory = _as_float_array(data, what)
    if trajectory.ndim != 2:
        hint = (
            " For a single scalar observable use trajectory.reshape(-1, 1)."
            if trajectory.ndim == 1
            else ""
        )
        raise ValueError(
            f"{what} must be a 2-D array of shape (rounds, observables) (several trajectories: a "
            f"list of such arrays or one 3-D array); got shape {trajectory.shape} "
            f"(ndim={trajectory.ndim}).{hint}"
        )
    rounds, observables = trajectory.shape
    if rounds < 1 or observables < 1:
        raise ValueError(
            f"{what} is empty (shape {trajectory.shape}); it needs at least one round and one "
            "observable."
        )
    if not np.all(np.isfinite(trajectory)):
        bad_round, bad_observable = np.argwhere(~np.isfinite(trajectory))[0]
        raise ValueError(
            f"{what} contains non-finite values (first at round {bad_round}, observable "
            f"{bad_observable}: {trajectory[bad_round, bad_observable]}); remove or repair "
            "those rounds before analysing the flow."
        )
    return trajectory


def _is_collection(data: ArrayLike) -> bool:
    """True for several trajectories: a list/tuple holding arrays of ndim >= 2, or a 3-D array.

    A list of 1-D rows (a trajectory written as nested lists) is one trajectory; a list with any
    2-D item is meant as several, and each item is then validated on its own.
    """
    if isinstance(data, (list, tuple)):
        return any(_safe_ndim(item) >= 2 for item in data)
    return _safe_ndim(data) == 3


def _safe_ndim(data: object) -> int:
    try:
        return np.ndim(data)
    except ValueError:  # ragged nested lists: not a single array
        return -1


def _as_trajectories(data: ArrayLike, what: str = "trajectory") -> list[np.ndarray]:
    """Normalize 'one trajectory or several' to a list of validated 2-D float64 arrays."""
    if isinstance(data, (list, tuple)) and len(data) == 0:
        raise ValueError(f"{what}: got an empty list; pass at least one trajectory.")
    items = list(data) if _is_collection(data) else [data]
    trajectories = [
        _check_trajectory(item, what if len(items) == 1 else f"{what} #{index}")
        for index, item in enumerate(items)
    ]
    observable_counts = sorted({t.shape[1] for t in trajectories})
    if len(observable_counts) > 1:
        raise ValueError(
            f"{what}: trajectories have mismatched observable counts {observable_counts}; all "
            "trajectories of one flow must record the same observables (same number of columns)."
        )
    return trajectories


def _snapshot_pairs(trajectories: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Pool consecutive pairs of every trajectory into X, Y of shape (observables, pairs)."""
    # In a list, a 1-round trajectory contributes no pair: most likely a mistake, so say which.
    for index, trajectory in enumerate(trajectories):
        if len(trajectories) > 1 and trajectory.shape[0] < 2:
            raise ValueError(
                f"trajectory #{index} has only {trajectory.shape[0]} round; every trajectory "
                "needs at least 2 rounds to contribute a snapshot pair (drop it, or record more "
                "rounds)."
            )
    pairs = sum(t.shape[0] - 1 for t in trajectories)
    if pairs < _MIN_SNAPSHOT_PAIRS:
        rounds = sum(t.shape[0] for t in trajectories)
        raise ValueError(
            f"flow too short to analyse: {rounds} round(s) give {pairs} snapshot pair(s); DMD "
            f"needs at least {_MIN_SNAPSHOT_PAIRS} pairs (3 rounds of one trajectory, or several "
            "trajectories of 2+ rounds). A single pair is fitted exactly by any map and says "
            "nothing about it: record more IMP rounds or pass several trajectories."
        )
    x = np.concatenate([t[:-1] for t in trajectories], axis=0).T
    y = np.concatenate([t[1:] for t in trajectories], axis=0).T
    return x, y


def _check_rank_and_tol(rank: int | None, tol: float | None) -> None:
    if rank is not None and tol is not None:
        raise ValueError("give either rank or tol, not both (rank fixes the truncation exactly).")
    if tol is not None and not (0.0 <= tol < 1.0 and math.isfinite(tol)):
        raise ValueError(f"tol must be a relative tolerance in [0, 1); got {tol!r}.")
    if rank is not None and (isinstance(rank, bool) or not isinstance(rank, (int, np.integer))):
        raise ValueError(f"rank must be a positive int or None; got {rank!r}.")


def _rounding_floor(shape: tuple[int, ...]) -> float:
    """Relative size below which singular values of a matrix are rounding noise (matrix_rank)."""
    return max(shape) * np.finfo(np.float64).eps


def _truncation_rank(
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


def _truncated_svd(
    matrix: np.ndarray, rank: int | None, tol: float | None, default_tol: float = DEFAULT_TOL
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Return (U_r, s_r, V_r, s_all) of the rank-truncated thin SVD, V_r with columns."""
    u, s, vh = np.linalg.svd(matrix, full_matrices=False)
    r = _truncation_rank(s, matrix.shape, rank, tol, default_tol, _rounding_floor(matrix.shape))
    return u[:, :r], s[:r], vh[:r].conj().T, s


def _range_basis(matrix: np.ndarray, tol: float) -> np.ndarray:
    """Orthonormal basis (columns) of the numerical column span of ``matrix``."""
    u, s, _ = np.linalg.svd(matrix, full_matrices=False)
    if not s.size or s[0] == 0.0:
        return np.zeros((matrix.shape[0], 0))
    keep = s > max(tol, _rounding_floor(matrix.shape)) * s[0]
    return u[:, keep]


def _by_decreasing_modulus(eigenvalues: np.ndarray) -> np.ndarray:
    """Stable order by decreasing |lambda|; within a conjugate pair, positive imaginary first."""
    return np.lexsort((-eigenvalues.imag, -np.abs(eigenvalues)))


def _check_eigenvalues(eigenvalues: ArrayLike, what: str) -> np.ndarray:
    """Validate a 1-D set of (complex) eigenvalues; return it as complex128."""
    try:
        values = np.asarray(eigenvalues, dtype=np.complex128)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{what} must be numeric ({error}).") from error
    if values.ndim > 1:
        raise ValueError(f"{what} must be a 1-D array of eigenvalues; got shape {values.shape}.")
    values = values.ravel()
    if values.size == 0:
        raise ValueError(f"{what} is empty; pass at least one eigenvalue.")
    if not np.all(np.isfinite(values)):
        raise ValueError(f"{what} contains non-finite values: {values[~np.isfinite(values)]}.")
    return values


# --------------------------------------------------------------------------------------------
# Step sizes
# --------------------------------------------------------------------------------------------


def step_sizes(trajectory: ArrayLike) -> np.ndarray | list[np.ndarray]:
    """Relative step sizes ||g_{n+1} - g_n|| / ||g_n|| (Euclidean norms) for n = 0 .. N-1.

    A flow approaching a fixed point has shrinking steps. Accepts one trajectory (returns a 1-D
    array of length rounds - 1) or a list of trajectories (returns a list of such arrays). Raises
    ``ValueError`` for a trajectory with fewer than 2 rounds or with some ||g_n|| = 0 (the
    relative step is undefined there).
    """
    trajectories = _as_trajectories(trajectory)
    if not _is_collection(trajectory):
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


# --------------------------------------------------------------------------------------------
# Exact DMD
# --------------------------------------------------------------------------------------------


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
    _check_rank_and_tol(rank, tol)
    trajs = _as_trajectories(trajectories)
    x, y = _snapshot_pairs(trajs)
    u, s, v, all_s = _truncated_svd(x, rank, tol)
    y_v_sinv = (y @ v) / s  # Y V S^-1, shape (observables, r)
    reduced = u.T @ y_v_sinv  # Atilde
    eigenvalues, eigenvectors = np.linalg.eig(reduced)
    order = _by_decreasing_modulus(eigenvalues)
    eigenvalues, eigenvectors = eigenvalues[order], eigenvectors[:, order]

    modes = _exact_modes(y_v_sinv @ eigenvectors, u @ eigenvectors)
    amplitudes = np.linalg.lstsq(modes, trajs[0][0].astype(np.complex128), rcond=None)[0]
    projected_y = u.T @ y
    error = _relative_error(projected_y, reduced @ (u.T @ x))
    return DMDResult(
        eigenvalues=_frozen(eigenvalues.astype(np.complex128)),
        modes=_frozen(modes),
        amplitudes=_frozen(amplitudes),
        rank=int(s.size),
        singular_values=_frozen(all_s),
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


def _relative_error(target: np.ndarray, fitted: np.ndarray) -> float:
    scale = np.linalg.norm(target)
    return float(np.linalg.norm(target - fitted) / scale) if scale > 0 else 0.0


# --------------------------------------------------------------------------------------------
# Affine DMD and the fixed point
# --------------------------------------------------------------------------------------------


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
    _check_rank_and_tol(rank, tol)
    x, y = _snapshot_pairs(_as_trajectories(trajectories))
    observables, pairs = x.shape
    augmented = np.vstack([x, np.ones((1, pairs))])
    u, s, v, _ = _truncated_svd(augmented, rank, tol)
    # [A c] = Y V S^-1 U^T; split U's rows into the part acting on g (u_x) and on the ones-row.
    y_v_sinv = (y @ v) / s
    u_x, u_one = u[:observables], u[observables]
    c = y_v_sinv @ u_one

    relative = DEFAULT_TOL if tol is None else tol
    basis = _range_basis(np.hstack([x, y]), relative)
    a_reduced = (basis.T @ y_v_sinv) @ (u_x.T @ basis)
    identity_minus_a = np.eye(basis.shape[1]) - a_reduced
    cutoff = max(relative, _rounding_floor(identity_minus_a.shape))
    fixed_point = basis @ (np.linalg.pinv(identity_minus_a, rcond=cutoff) @ (basis.T @ c))

    # The linear part acts on deviations, which span the directions between the input snapshots.
    directions = _range_basis(x - x.mean(axis=1, keepdims=True), relative)
    if directions.shape[1] == 0:
        raise ValueError(
            "all input snapshots are equal: the flow does not move, so its linear part cannot be "
            "estimated (the common value is a fixed point). Start trajectories away from it."
        )
    eigenvalues = _linear_part_eigenvalues(y_v_sinv, u_x, directions)

    residual = _relative_error(y, y_v_sinv @ (u_x.T @ x) + c[:, None])
    return AffineFixedPointResult(
        fixed_point=_frozen(fixed_point),
        eigenvalues=_frozen(eigenvalues),
        A_reduced=_frozen(a_reduced),
        basis=_frozen(basis),
        c=_frozen(c),
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
    return eigenvalues[_by_decreasing_modulus(eigenvalues)]


# --------------------------------------------------------------------------------------------
# Parameter-space DMD from a Gram matrix (method of snapshots)
# --------------------------------------------------------------------------------------------


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
    _check_rank_and_tol(rank, tol)
    g = _check_gram(gram)
    x_gram = g[:-1, :-1]  # X^T X
    xy_gram = g[:-1, 1:]  # X^T Y
    eig_x, vecs_x = np.linalg.eigh(x_gram)
    order = np.argsort(eig_x)[::-1]
    all_s = np.sqrt(np.clip(eig_x[order], 0.0, None))
    vecs_x = vecs_x[:, order]
    # eig(X^T X) is accurate to ~N eps s_max^2, so s = sqrt(eig) only to ~sqrt(N eps) s_max;
    # the factor 10 keeps explicit ranks clear of that noise.
    floor = 10.0 * math.sqrt(_rounding_floor(x_gram.shape))
    r = _truncation_rank(all_s, x_gram.shape, rank, tol, GRAM_DEFAULT_TOL, floor)
    s, v = all_s[:r], vecs_x[:, :r]

    reduced = (v.T @ xy_gram @ v) / np.outer(s, s)  # Atilde = S^-1 V^T X^T Y V S^-1
    eigenvalues, eigenvectors = np.linalg.eig(reduced)
    order = _by_decreasing_modulus(eigenvalues)
    eigenvalues, eigenvectors = eigenvalues[order], eigenvectors[:, order]

    coefficients = _gram_mode_coefficients(g, v / s, eigenvectors)
    # Error in span(U): U^T X = S V^T and U^T Y = S^-1 V^T X^T Y.
    projected_y = (v.T @ xy_gram) / s[:, None]
    error = _relative_error(projected_y, reduced @ (s[:, None] * v.T))
    return GramDMDResult(
        eigenvalues=_frozen(eigenvalues.astype(np.complex128)),
        mode_coefficients=_frozen(coefficients),
        rank=int(r),
        singular_values=_frozen(all_s),
        reconstruction_error=error,
    )


def _check_gram(gram: ArrayLike) -> np.ndarray:
    g = _as_float_array(gram, "gram")
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


# --------------------------------------------------------------------------------------------
# RG quantities: rescaling factor, scaling exponents, classification
# --------------------------------------------------------------------------------------------


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
    values = _check_eigenvalues(eigenvalues, "eigenvalues")
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
    values = _check_eigenvalues(eigenvalues, "eigenvalues")
    if not (0.0 <= tol < 1.0):
        raise ValueError(f"tol must be in [0, 1); got {tol!r}.")
    moduli = np.abs(values)
    labels = np.full(values.shape, "marginal", dtype="<U10")
    labels[moduli > 1.0 + tol] = "relevant"
    labels[moduli < 1.0 - tol] = "irrelevant"
    return labels


# --------------------------------------------------------------------------------------------
# Distances between flows
# --------------------------------------------------------------------------------------------


def eigenvalue_wasserstein(eigs_a: ArrayLike, eigs_b: ArrayLike) -> float:
    """Wasserstein-1 distance between two eigenvalue sets in the complex plane.

    Each set is a uniform probability measure on its points (sets may differ in size); the ground
    cost is |z - w|. Solved exactly: by optimal assignment when the sizes are equal (an optimal
    plan between uniform measures of equal size is a permutation), otherwise by the transport
    linear program (scipy.optimize.linprog, HiGHS).

    >>> eigenvalue_wasserstein([0.0], [1.0, -1.0])
    1.0
    """
    a = _check_eigenvalues(eigs_a, "eigs_a")
    b = _check_eigenvalues(eigs_b, "eigs_b")
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
    solution = scipy.optimize.linprog(
        cost.ravel(), A_eq=constraints, b_eq=targets, bounds=(0, None), method="highs"
    )
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
    list_a, list_b = _as_trajectories(a, "a"), _as_trajectories(b, "b")
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
    """

    eigenvalue_distance: float
    trajectory_distance: float
    total: float


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
    ``a`` and ``b`` (``rank`` / ``tol`` are passed to both fits); it compares the linearized
    dynamics regardless of where the flows are. ``trajectory_distance`` is the mean distance of
    aligned rounds; it compares where the flows are. ``total`` is their plain sum
    ``eigenvalue_distance + trajectory_weight * trajectory_distance``; the eigenvalue part is
    dimensionless while the trajectory part is in observable units, so set ``trajectory_weight``
    to put them on a common scale (0 compares dynamics only).

    Example: two decaying flows, 0.9**n and 0.5**n, one step apart in eigenvalue.

    >>> import numpy as np
    >>> rounds = np.arange(5)[:, None]
    >>> d = flow_distance(0.9 ** rounds, 0.5 ** rounds)
    >>> round(d.eigenvalue_distance, 10)
    0.4
    >>> round(d.total, 10) == round(d.eigenvalue_distance + d.trajectory_distance, 10)
    True
    """
    if not (math.isfinite(trajectory_weight) and trajectory_weight >= 0.0):
        raise ValueError(f"trajectory_weight must be finite and >= 0; got {trajectory_weight!r}.")
    eigenvalues_a = dmd(a, rank=rank, tol=tol).eigenvalues
    eigenvalues_b = dmd(b, rank=rank, tol=tol).eigenvalues
    eigen_part = eigenvalue_wasserstein(eigenvalues_a, eigenvalues_b)
    path_part = trajectory_distance(a, b)
    return FlowDistance(
        eigenvalue_distance=eigen_part,
        trajectory_distance=path_part,
        total=eigen_part + trajectory_weight * path_part,
    )


# --------------------------------------------------------------------------------------------
# Per-layer density profiles
# --------------------------------------------------------------------------------------------


def density_profiles(per_layer_counts: ArrayLike, per_layer_sizes: ArrayLike) -> np.ndarray:
    """Per-layer densities over rounds: counts[n, l] / sizes[l], shape (rounds, layers).

    ``per_layer_counts`` (rounds x layers) holds surviving weights per layer after each round;
    ``per_layer_sizes`` (layers,) the total number of (prunable) weights per layer. Counts must be
    whole numbers in [0, size]; sizes positive whole numbers.

    >>> density_profiles([[4, 10], [2, 5]], [4, 10]).tolist()
    [[1.0, 1.0], [0.5, 0.5]]
    """
    counts = _as_float_array(per_layer_counts, "per_layer_counts")
    sizes = _as_float_array(per_layer_sizes, "per_layer_sizes")
    if counts.ndim != 2 or counts.size == 0:
        raise ValueError(
            f"per_layer_counts must be a non-empty 2-D array (rounds, layers); got shape "
            f"{counts.shape}."
        )
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
