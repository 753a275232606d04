"""DMD of a flow from its trajectories, and parameter-space DMD from a Gram matrix (method of snapshots).

Both fit the centred (affine) model of :mod:`rgprune.rg.linear_fit` with the rank from its held-out rule
and bootstrap intervals from :mod:`rgprune.rg.intervals`; they differ only in how the snapshots are given.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rgprune.rg.intervals import DEFAULT_LEVEL, DEFAULT_REPLICATES, FlowFit, fit_flow
from rgprune.rg.linalg import DEFAULT_TOL, GRAM_DEFAULT_TOL, relative_error
from rgprune.rg.linear_fit import RankChoice
from rgprune.rg.snapshots import SnapshotPairs, pairs_from_gram, pairs_from_trajectories
from rgprune.rg.validation import ArrayLike, as_float_array, check_rank_and_tol, frozen

__all__ = ["DMDResult", "GramDMDResult", "dmd", "gram_dmd"]


@dataclass(frozen=True, eq=False)
class DMDResult:
    """DMD of a flow (see :func:`dmd`). Arrays are read-only.

    eigenvalues: (rank,) complex, sorted by decreasing modulus (empty when nothing is resolved).
    modes: (observables, rank) complex unit-norm modes, column i for eigenvalue i: eigenvectors of the
        fitted linear part A (they lie in the span of the centred images).
    amplitudes: (rank,) complex, least-squares coefficients of the first snapshot of the first trajectory
        in the modes (the part of it outside their span is the flow's mean, not a mode).
    rank: number of directions of the fitted linear part A (0: nothing resolved); the same number
        :func:`affine_fixed_point` reports and both take as ``rank=``.
    singular_values: all singular values of the centred images Y - mean(Y), decreasing; the fit keeps the
        leading ``rank`` directions.
    reconstruction_error: ||Yc - A Xc||_F / ||Yc||_F over all centred pairs: the fraction of the centred
        one-step change the fit does not reproduce on its own data (1 at rank 0; 0 for exact data of a
        linear map, or for an exact fit, see ``selection.exact_fit``). Not a held-out error: see
        ``selection.heldout_error``.
    eigenvalue_intervals: (rank, 2) lower and upper |λ| per eigenvalue, at coverage ``interval_level``
        (rule in :mod:`rgprune.rg.intervals`; [0, inf) means no information).
    interval_level: coverage of the intervals (e.g. 0.9).
    selection: how the rank was chosen and what the data resolves (:class:`RankChoice`).
    """

    eigenvalues: np.ndarray
    modes: np.ndarray
    amplitudes: np.ndarray
    rank: int
    singular_values: np.ndarray
    reconstruction_error: float
    eigenvalue_intervals: np.ndarray
    interval_level: float
    selection: RankChoice

    @property
    def status(self) -> str:
        """'fitted', 'nothing resolved', 'too short', 'rank given' or 'tol given' (see RankChoice)."""
        return self.selection.status


def _reconstruction_error(pairs: SnapshotPairs, flow: FlowFit) -> float:
    xc = pairs.x - flow.fit.x_mean[:, None]
    yc = pairs.y - flow.fit.y_mean[:, None]
    return relative_error(yc, flow.fit.apply(xc)) if np.any(yc) else 0.0


def dmd(
    trajectories: ArrayLike,
    rank: int | None = None,
    tol: float | None = None,
    *,
    level: float = DEFAULT_LEVEL,
    n_boot: int = DEFAULT_REPLICATES,
    seed: int = 0,
) -> DMDResult:
    """DMD of the centred snapshot pairs of a flow g_{n+1} ≈ A g_n + c, with rank chosen from the data.

    The snapshot pairs (g_n, g_{n+1}) of one trajectory, or pooled over several trajectories of the same
    map (e.g. seeds: a list of (rounds, observables) arrays or a 3-D array), are centred, each side by
    its own mean (least squares with an intercept), and fitted at rank r in the leading directions of
    the centred images; the eigenvalues are those of the fitted linear part A. Centring removes the
    spurious |λ| ≈ 1 mode that the mean of normalized histograms gives plain DMD. Full model and rules:
    :mod:`rgprune.rg.linear_fit`; these eigenvalues equal :func:`affine_fixed_point`'s.

    Rank: by default, the held-out one-step prediction rule (the smallest rank within one standard error of
    the best held-out error; rank 0, "nothing resolved", when no rank predicts better than the mean step;
    status "fitted" otherwise). It never returns the exact fit of all pairs. What a held-out fold leaves out
    depends on how many independent trajectories the pool is worth (``selection.effective_trajectories``,
    :mod:`rgprune.rg.snapshots`): one snapshot pair of a single trajectory; one round of every trajectory
    when the pool is worth fewer than 5 (near-duplicate seeds are one series, not several); a whole
    trajectory when it is worth 5 or more. ``rank`` fixes r (1 <= r <= min(observables, pairs - 1), within the
    numerical rank); ``tol`` keeps the directions whose singular values exceed tol times the largest;
    not both. Directions below ``DEFAULT_TOL = 1e-10`` of the largest are never candidates.

    Intervals: ``eigenvalue_intervals`` holds bootstrap intervals of |λ| at nominal coverage ``level``
    from ``n_boot`` replicates over the same units as the folds, seeded by ``seed`` (rule, and the measured
    coverage, which is below nominal outside the regimes listed there: :mod:`rgprune.rg.intervals`).
    ``n_boot=0`` skips them ([0, inf) each). Classes (:func:`classify_directions`) are given only when the
    pool is worth at least 5 independent trajectories; ``selection.classes_withheld`` says why not.

    Short flows: fewer than 2 snapshot pairs raise ``ValueError``; flows too short for the held-out rule
    (fewer than 3 folds: 3 rounds of one trajectory, or any pool of 3-round trajectories counted as one
    series) return rank 0 with status "too short".

    Example: a diagonal linear map with eigenvalues 0.9 and 0.5, six rounds.

    >>> import numpy as np
    >>> rounds = np.arange(6)[:, None]
    >>> trajectory = np.hstack([0.9 ** rounds, 0.5 ** rounds])   # shape (6 rounds, 2 observables)
    >>> result = dmd(trajectory)
    >>> result.rank, result.status
    (2, 'fitted')
    >>> np.round(result.eigenvalues.real, 10)
    array([0.9, 0.5])
    >>> np.round(result.eigenvalue_intervals, 10)   # exact data: every replicate agrees
    array([[0.9, 0.9],
           [0.5, 0.5]])
    """
    check_rank_and_tol(rank, tol)
    pairs = pairs_from_trajectories(trajectories)
    flow = fit_flow(pairs, rank, tol, DEFAULT_TOL, level, n_boot, seed)
    directions = flow.fit.basis @ flow.fit.eigenvectors  # unit columns: basis orthonormal, eigenvectors unit
    amplitudes = np.linalg.lstsq(directions, pairs.first_snapshot.astype(np.complex128), rcond=None)[0]
    return DMDResult(
        eigenvalues=frozen(flow.fit.eigenvalues),
        modes=frozen(pairs.lift(directions)),
        amplitudes=frozen(amplitudes),
        rank=flow.choice.rank,
        singular_values=frozen(flow.fit.image_singular_values),
        reconstruction_error=_reconstruction_error(pairs, flow),
        eigenvalue_intervals=frozen(flow.intervals),
        interval_level=float(level),
        selection=flow.choice,
    )


@dataclass(frozen=True, eq=False)
class GramDMDResult:
    """DMD computed from the Gram matrix of the snapshots (see :func:`gram_dmd`). Read-only.

    eigenvalues: (rank,) complex, decreasing modulus; equal to ``dmd`` on the vectors.
    mode_coefficients: (N+1, rank) complex: mode i = sum_j mode_coefficients[j, i] * theta_j, unit norm
        (the modes of ``dmd`` on the vectors, up to a phase).
    rank, singular_values, reconstruction_error, eigenvalue_intervals, interval_level, selection: as in
        :class:`DMDResult`.
    fixed_point_coefficients: (N+1,) real: the affine fixed point theta* = sum_j c_j theta_j of the same
        fit (as :func:`affine_fixed_point` computes it; at rank 0, the mean of theta_1 .. theta_N).
    """

    eigenvalues: np.ndarray
    mode_coefficients: np.ndarray
    rank: int
    singular_values: np.ndarray
    reconstruction_error: float
    eigenvalue_intervals: np.ndarray
    interval_level: float
    selection: RankChoice
    fixed_point_coefficients: np.ndarray

    @property
    def status(self) -> str:
        """'fitted', 'nothing resolved', 'too short', 'rank given' or 'tol given' (see RankChoice)."""
        return self.selection.status


def gram_dmd(
    gram: ArrayLike,
    rank: int | None = None,
    tol: float | None = None,
    *,
    level: float = DEFAULT_LEVEL,
    n_boot: int = DEFAULT_REPLICATES,
    seed: int = 0,
) -> GramDMDResult:
    """Centred DMD of one trajectory theta_0 .. theta_N known only through inner products.

    ``gram[i, j] = <theta_i, theta_j>`` ((N+1) x (N+1), symmetric positive semidefinite), e.g.
    accumulated tensor by tensor from checkpoints, so models larger than memory can be analysed. The
    snapshots get coordinates from G = W diag(mu) W^T (theta_j -> column j of diag(sqrt(mu)) W^T), which
    preserve every inner product; centring the pairs there is centring the Gram matrix, H G H with
    H = I - 11^T / N on each side, and the affine fixed point comes from the same fit. Then everything
    is :func:`dmd`'s: the same model, rank rule (over single pairs: one trajectory), intervals and
    result fields, so the eigenvalues equal those :func:`dmd` would return on the full vectors.

    Rank floor: singular values obtained from eigenvalues of G are resolved only down to about
    sqrt(eps) * s_max, so candidate directions must exceed ``GRAM_DEFAULT_TOL = 1e-6`` of the largest
    (the held-out rule) and an explicit ``rank`` may not keep directions below 10 * sqrt(N * eps) * s_max.
    Needs N + 1 >= 3 snapshots.

    Example: a 2-D linear map seen through 1000 parameters; only inner products are used.

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> embed = rng.normal(size=(2, 1000))
    >>> states = np.array([[0.9 ** n, 0.5 ** n] for n in range(7)])
    >>> thetas = states @ embed                     # 7 snapshots of 1000 parameters
    >>> result = gram_dmd(thetas @ thetas.T)
    >>> np.round(result.eigenvalues.real, 8)
    array([0.9, 0.5])
    """
    check_rank_and_tol(rank, tol)
    pairs = pairs_from_gram(_check_gram(gram))
    flow = fit_flow(pairs, rank, tol, GRAM_DEFAULT_TOL, level, n_boot, seed)
    directions = flow.fit.basis @ flow.fit.eigenvectors
    weights = pairs.to_snapshot_weights
    fixed_point = flow.fit.fixed_point(max(pairs.floor, GRAM_DEFAULT_TOL if tol is None else tol))
    return GramDMDResult(
        eigenvalues=frozen(flow.fit.eigenvalues),
        mode_coefficients=frozen(weights @ directions),
        rank=flow.choice.rank,
        singular_values=frozen(flow.fit.image_singular_values),
        reconstruction_error=_reconstruction_error(pairs, flow),
        eigenvalue_intervals=frozen(flow.intervals),
        interval_level=float(level),
        selection=flow.choice,
        fixed_point_coefficients=frozen(weights @ fixed_point),
    )


def _check_gram(gram: ArrayLike) -> np.ndarray:
    g = as_float_array(gram, "gram")
    if g.ndim != 2 or g.shape[0] != g.shape[1]:
        raise ValueError(f"gram must be a square (N+1) x (N+1) matrix; got shape {g.shape}.")
    if g.shape[0] < 3:
        raise ValueError(
            f"gram is {g.shape[0]}x{g.shape[0]}: DMD needs at least 3 snapshots (2 pairs); record more rounds."
        )
    if not np.all(np.isfinite(g)):
        raise ValueError("gram contains non-finite values; recompute the inner products.")
    scale = np.max(np.abs(g))
    if not np.allclose(g, g.T, rtol=0.0, atol=1e-10 * scale):
        raise ValueError("gram is not symmetric; it must hold inner products G[i, j] = <theta_i, theta_j>.")
    min_eig = np.linalg.eigvalsh((g + g.T) / 2)[0]
    if min_eig < -1e-8 * scale:
        raise ValueError(
            f"gram is not positive semidefinite (smallest eigenvalue {min_eig:.3g}); it cannot be a matrix of "
            "inner products."
        )
    return (g + g.T) / 2
