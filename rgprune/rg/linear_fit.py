"""The centred linear fit behind ``dmd``, ``gram_dmd`` and ``affine_fixed_point``, and its rank rule.

Model. Snapshot pairs (x_i, y_i) of one map, pooled over trajectories, are fitted by the affine map
y = A x + c. Least squares with an intercept is the same as a linear fit of the centred pairs:
y_i - y_mean ≈ A (x_i - x_mean), c = y_mean - A x_mean. Centring is what removes the artefacts of plain
DMD on uncentred data: a normalized histogram sums to 1, so its mean is a direction that maps to itself
and plain DMD reports it as a spurious |λ| ≈ 1 mode; centred, that direction is gone.

Rank-r fit. Let U_r hold the r leading left singular vectors of the centred images Y - y_mean (the
principal directions of where the map sends the data). Both sides are projected onto them,
a_i = U_r^T (x_i - x_mean), b_i = U_r^T (y_i - y_mean), and Ã = argmin sum ||b_i - Ã a_i||² (r x r) is
solved by least squares; A = U_r Ã U_r^T. The eigenvalues of Ã are the flow's eigenvalues. Projecting
onto the images rather than onto the inputs (exact DMD's choice) matters for short noisy flows: a
direction that decays within one step is already damped in the images, so fewer such transients mix
into the leading eigenvalues at a given rank.

Rank rule (default). For every candidate r = 0 .. K, the fit is refitted without one resampling unit
(a whole trajectory when there are 3 or more, else one snapshot pair; see ``rgprune.rg.snapshots``) and
predicts the held-out pairs' y from their x; rank 0 predicts the training mean of y (the mean step, no
dynamics). The held-out error is the summed squared Euclidean prediction error over all held-out pairs
(every observable weighted equally, so scale observables comparably before fitting). The rank
chosen is the smallest r whose error is within one standard error (over folds) of the smallest error
(the "one-standard-error rule"). A rank that predicts held-out pairs no better than rank 0 is thus not
chosen, and rank 0 means nothing is resolved. K is the largest rank every training set supports (see
:func:`supported_rank`), so the default can never be the exact fit of all pairs: with N pairs a held-out
fold has at most N - 2 centred pairs to fit. With fewer than 3 folds, or K = 0, the flow is too short.

Limits. A direction the data cannot resolve (below the noise, so left out of the fit) still biases the
eigenvalues of the directions kept when it overlaps them: in a histogram flow the skewness direction
overlaps the mean direction, and a fit that resolves only the mean reports a growth rate between the
two. The eigenvalue intervals (``rgprune.rg.intervals``) describe the sampling variability at the chosen
rank, not this bias. Noise in the inputs also attenuates |λ| slightly (errors in variables); the
intervals' reflection rule partly corrects for it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from rgprune.rg.linalg import by_decreasing_modulus
from rgprune.rg.snapshots import SnapshotPairs
from rgprune.rg.validation import frozen

__all__ = [
    "MIN_FOLDS",
    "CentredFit",
    "RankChoice",
    "choose_rank",
    "fit_centred",
    "supported_rank",
]

#: Fewest held-out folds the rank rule needs (a standard error from fewer is meaningless).
MIN_FOLDS = 3
# Held-out errors closer than this (relative to rank 0's) are equal: exact data gives ~1e-30 errors
# whose differences are rounding, and the rule must then still pick the smallest exact rank.
_ERROR_ROUNDING = 1e-12


def _centred(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean = matrix.mean(axis=1)
    return matrix - mean[:, None], mean


@dataclass(frozen=True, eq=False)
class CentredFit:
    """A rank-r fit y - y_mean ≈ A (x - x_mean), A = basis @ reduced @ basis.T (see the module docstring).

    basis: (m, r) orthonormal leading directions of the centred images; reduced: Ã (r, r);
    x_mean, y_mean: (m,); eigenvalues: (r,) complex, decreasing modulus; eigenvectors: (r, r) unit
    columns of Ã in the same order; image_singular_values: all singular values of Y - y_mean.
    """

    basis: np.ndarray
    reduced: np.ndarray
    x_mean: np.ndarray
    y_mean: np.ndarray
    eigenvalues: np.ndarray
    eigenvectors: np.ndarray
    image_singular_values: np.ndarray

    @property
    def rank(self) -> int:
        return self.basis.shape[1]

    def apply(self, vectors: np.ndarray) -> np.ndarray:
        """A @ vectors (the linear part only)."""
        return self.basis @ (self.reduced @ (self.basis.T @ vectors))

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Predicted images y of the columns of x."""
        return self.y_mean[:, None] + self.apply(x - self.x_mean[:, None])

    def fixed_point(self, relative: float) -> np.ndarray:
        """The fixed point g* = A g* + c nearest the mean input x_mean.

        With d = g* - x_mean and the mean step delta = y_mean - x_mean, g* = A g* + c reads (I - A) d = delta.
        In the fitted directions (basis U) d_U = (I - Ã)^+ U^T delta; outside them A is 0, so
        d_perp = delta_perp. The pseudo-inverse (cutoff ``relative``) takes the minimum-norm solution when
        Ã has an eigenvalue 1 (a marginal direction: then fixed points form a line and the one nearest
        x_mean is returned). At rank 0 this is y_mean.
        """
        step = self.y_mean - self.x_mean
        along = self.basis.T @ step
        inverse = np.linalg.pinv(np.eye(self.rank) - self.reduced, rcond=relative) if self.rank else self.reduced
        return self.x_mean + self.basis @ (inverse @ along) + (step - self.basis @ along)


def supported_rank(x: np.ndarray, y: np.ndarray, relative: float) -> int:
    """Largest r for which the rank-r fit of these pairs is determined by the data.

    Needs the r-th singular value of the centred images above ``relative`` times the largest, and the
    projected inputs U_r^T (X - x_mean) of full rank r, their smallest singular value above ``relative``
    times the largest singular value of X - x_mean (else Ã would divide by rounding noise).
    """
    xc, _ = _centred(x)
    yc, _ = _centred(y)
    u, s, _ = np.linalg.svd(yc, full_matrices=False)
    x_scale = np.linalg.norm(xc, 2) if xc.size else 0.0
    if not s.size or s[0] == 0.0 or x_scale == 0.0:
        return 0
    k = int(np.count_nonzero(s > relative * s[0]))
    projected = u[:, :k].T @ xc
    for r in range(k, 0, -1):
        if np.linalg.svd(projected[:r], compute_uv=False)[-1] > relative * x_scale:
            return r
    return 0


def fit_centred(x: np.ndarray, y: np.ndarray, rank: int) -> CentredFit:
    """The rank-``rank`` centred fit of the pairs (columns of x -> columns of y); rank 0 is the mean."""
    xc, x_mean = _centred(x)
    yc, y_mean = _centred(y)
    u, s, _ = np.linalg.svd(yc, full_matrices=False)
    basis = u[:, :rank]
    reduced = (basis.T @ yc) @ np.linalg.pinv(basis.T @ xc)
    eigenvalues, eigenvectors = np.linalg.eig(reduced)
    order = by_decreasing_modulus(eigenvalues)
    return CentredFit(
        basis=basis,
        reduced=reduced,
        x_mean=x_mean,
        y_mean=y_mean,
        eigenvalues=eigenvalues[order].astype(np.complex128),
        eigenvectors=eigenvectors[:, order].astype(np.complex128),
        image_singular_values=s,
    )


@dataclass(frozen=True, eq=False)
class RankChoice:
    """How the rank of a flow fit was chosen. Arrays are read-only.

    rank: the rank used (0: no direction resolved).
    rule: "held-out" (the default rule of the module docstring), "rank" (given by the caller) or "tol"
        (singular values of the centred images above tol times the largest).
    status: "resolved" (rank >= 1), "nothing resolved" (the held-out rule chose rank 0: no rank predicts
        held-out pairs better than their mean), "too short" (the flow has too few pairs or trajectories for
        the held-out rule to test any rank), or for a caller's rank / tol: "rank given" / "tol given".
    units: what a held-out fold and a bootstrap replicate resample: "trajectories" or "pairs".
    pairs: number of snapshot pairs.
    heldout_error: held-out error of ranks 0 .. K relative to rank 0's (empty unless rule is "held-out"
        and the flow was long enough).
    heldout_error_se: standard errors of ``heldout_error`` over the folds, same scale.
    """

    rank: int
    rule: str
    status: str
    units: str
    pairs: int
    heldout_error: np.ndarray
    heldout_error_se: np.ndarray

    @property
    def exact_fit(self) -> bool:
        """True when the fit has as many directions as centred pairs, so it reproduces any data exactly."""
        return self.rank >= self.pairs - 1


def _heldout_errors(pairs: SnapshotPairs, relative: float) -> tuple[np.ndarray, np.ndarray, int]:
    """Summed held-out squared errors per fold and rank (folds x (K+1)), pairs per fold, and K."""
    everything = np.arange(pairs.count)
    max_rank = supported_rank(pairs.x, pairs.y, relative)
    per_fold = []
    for block in pairs.blocks:
        x, y = pairs.subset(np.setdiff1d(everything, block))
        max_rank = min(max_rank, supported_rank(x, y, relative))
        per_fold.append(_fold_errors(x, y, *pairs.subset(block), max_rank))
    errors = np.array([fold[: max_rank + 1] for fold in per_fold])
    return errors, np.array([len(b) for b in pairs.blocks]), max_rank


def _fold_errors(x: np.ndarray, y: np.ndarray, x_out: np.ndarray, y_out: np.ndarray, max_rank: int) -> list[float]:
    """Squared prediction errors on the held-out pairs of the fits of ranks 0 .. max_rank to (x, y)."""
    xc, x_mean = _centred(x)
    yc, y_mean = _centred(y)
    u = np.linalg.svd(yc, full_matrices=False)[0][:, :max_rank]
    a, b, a_out = u.T @ xc, u.T @ yc, u.T @ (x_out - x_mean[:, None])
    target = y_out - y_mean[:, None]
    errors = [float(np.sum(target**2))]
    for r in range(1, max_rank + 1):
        reduced = b[:r] @ np.linalg.pinv(a[:r])
        errors.append(float(np.sum((target - u[:, :r] @ (reduced @ a_out[:r])) ** 2)))
    return errors


def choose_rank(pairs: SnapshotPairs, rank: int | None, tol: float | None, default_tol: float) -> RankChoice:
    """Apply the caller's ``rank`` / ``tol``, or else the held-out rule (module docstring).

    ``default_tol`` bounds the candidate ranks of the held-out rule: directions whose singular values are
    below it (relative) are rounding noise, never fitted. Raises ValueError for a rank out of range.
    """
    empty = frozen(np.zeros(0))
    common = {"units": pairs.units, "pairs": pairs.count}
    floor = pairs.floor
    if rank is not None:
        if not 1 <= rank <= pairs.rank_cap:
            raise ValueError(
                f"rank={rank} is out of range: it must be between 1 and min(observables, snapshot pairs - 1) "
                f"= {pairs.rank_cap} (centring the pairs uses up one pair)."
            )
        numerical = supported_rank(pairs.x, pairs.y, floor)
        if rank > numerical:
            singular_values = np.linalg.svd(_centred(pairs.y)[0], compute_uv=False)
            raise ValueError(
                f"rank={rank} exceeds the numerical rank {numerical} of the centred snapshots (singular values "
                f"{np.array2string(singular_values, precision=3)}); the extra directions are rounding noise. "
                "Use a smaller rank or the default (rank=None)."
            )
        return RankChoice(
            rank=int(rank), rule="rank", status="rank given", heldout_error=empty, heldout_error_se=empty, **common
        )
    if tol is not None:
        chosen = supported_rank(pairs.x, pairs.y, max(tol, floor))
        return RankChoice(
            rank=chosen, rule="tol", status="tol given", heldout_error=empty, heldout_error_se=empty, **common
        )
    if len(pairs.blocks) < MIN_FOLDS:
        return RankChoice(
            rank=0, rule="held-out", status="too short", heldout_error=empty, heldout_error_se=empty, **common
        )
    errors, sizes, max_rank = _heldout_errors(pairs, max(default_tol, floor))
    if max_rank == 0:
        return RankChoice(
            rank=0, rule="held-out", status="too short", heldout_error=empty, heldout_error_se=empty, **common
        )
    mean = errors.sum(axis=0) / sizes.sum()
    se = (errors / sizes[:, None]).std(axis=0, ddof=1) / math.sqrt(len(sizes))
    scale = mean[0] if mean[0] > 0 else 1.0
    best = int(np.argmin(mean))
    threshold = mean[best] + se[best] + _ERROR_ROUNDING * scale
    chosen = int(np.flatnonzero(mean <= threshold)[0])
    return RankChoice(
        rank=chosen,
        rule="held-out",
        status="resolved" if chosen else "nothing resolved",
        heldout_error=frozen(mean / scale),
        heldout_error_se=frozen(se / scale),
        **common,
    )
