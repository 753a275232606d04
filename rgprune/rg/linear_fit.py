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
(see ``rgprune.rg.snapshots``: one pair of a single trajectory, one round of every trajectory of a pool
that counts as one series, or a whole trajectory when the pool is worth at least 5 independent ones,
:func:`choose_units`) and predicts the held-out pairs' y from their x; rank 0 predicts the training mean
of y (the mean step, no dynamics). The held-out error is the summed squared Euclidean prediction error
over all held-out pairs (every observable weighted equally, so scale observables comparably before
fitting). The rank chosen is the smallest r whose error is within one standard error (over folds) of the
smallest error (the "one-standard-error rule"). A rank that predicts held-out pairs no better than rank 0
is thus not chosen, and rank 0 means nothing is resolved. K is the largest rank every training set
supports (see :func:`supported_rank`), so the default can never be the exact fit of all pairs: with N
pairs a held-out fold has at most N - 2 centred pairs to fit. With fewer than 3 folds, or K = 0, the
flow is too short.

Units (:func:`choose_units`). A pool of trajectories is first fitted as one series (units: rounds), and
the intraclass correlation of that fit's one-step residuals at aligned rounds gives the effective number
of independent trajectories n_eff (:func:`rgprune.rg.snapshots.effective_trajectories`). The residuals
are taken at the rank the held-out rule chooses, but at most L - 2 for L rounds: a fit of rank L - 1
reproduces any path the trajectories share exactly and would leave only what differs between copies.
Only when n_eff >= ``MIN_EFFECTIVE_TRAJECTORIES`` = 5 are whole trajectories the units of the folds and
of the bootstrap, and only then are directions classed (``RankChoice.classes_withheld`` says why not).
Near-duplicate trajectories (seeds of one pretrained model pruned without training: n_eff about 1.0, for
3 copies and for 9) are thus one series of their rounds, not several trajectories, and cannot vouch for
one another. Pools whose trajectories have one pair each cannot be measured: their pairs are the units
and nothing is classed. n_eff is an estimate: 5 independent trajectories reach 5 only when the estimated
shared variance is 0 (12 of 30 relaxations sampled with 20k draws, 5 x 8; 7 of 30 central-limit flows,
5 x 8), so a pool meant to be classed needs more than 5: of 6 independent noisy trajectories of a linear
map 21 of 30 pools reach 5, of 10 or 12 trajectories 29 or 30 of 30.

TLS variant (:func:`tls_eigenvalues`, used by the intervals only, see ``rgprune.rg.intervals``). Total
least squares projects X and Y onto the r leading right singular vectors of the stacked centred pairs
[Xc; Yc] before the same fit: it treats noise in the inputs like noise in the images, so it does not
attenuate |λ| under observation noise (a relaxation at 0.7 sampled by 20k draws: least squares 0.63, TLS
0.70) but inflates it under process noise (pooled random walks, true 1: the leading |λ| 1.07 by least
squares, 1.14 by TLS), and its bootstrap replicates are heavy-tailed. So the point estimates stay least
squares; the TLS minus least-squares modulus only moves the interval. Forward-backward DMD (the square
root of the forward map times the inverse backward one) removes neither bias: over 12 flows, the median
|λ| nearest the truth is 0.744 for the relaxation at 0.7 (least squares 0.636, TLS 0.704) and 1.029 for
9 x 15 random walks from one start (least squares 1.002, TLS 1.037), so it is not used.

Limits. A direction the data cannot resolve (below the noise, so left out of the fit) still biases the
eigenvalues of the directions kept when it overlaps them: in a histogram flow the skewness direction
overlaps the mean direction, and a fit that resolves only the mean reports a growth rate between the
two. The eigenvalue intervals (``rgprune.rg.intervals``) describe the sampling variability at the chosen
rank, not this bias. Noise in the inputs also attenuates |λ| (errors in variables); the intervals' TLS
shift covers it where the measured coverage says so. n_eff measures whether the residuals are shared, not
how close the paths are: copies of an exactly linear path with independent noise leave independent
residuals and count as independent (their classes are then right), and so do copies of a nonlinear path
whose misfit is smaller than their noise (their intervals then describe the noise, not the misfit).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from rgprune.rg.linalg import by_decreasing_modulus
from rgprune.rg.snapshots import MIN_EFFECTIVE_TRAJECTORIES, SnapshotPairs, effective_trajectories
from rgprune.rg.validation import frozen

__all__ = [
    "MIN_FOLDS",
    "CentredFit",
    "RankChoice",
    "Replication",
    "choose_rank",
    "choose_units",
    "fit_centred",
    "supported_rank",
    "tls_eigenvalues",
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


def tls_eigenvalues(x: np.ndarray, y: np.ndarray, rank: int) -> np.ndarray:
    """Eigenvalues of the rank-``rank`` total-least-squares fit of the centred pairs (module docstring).

    With V_r the r leading right singular vectors of [Xc; Yc], both sides are replaced by their projections
    Xc V_r V_r^T and Yc V_r V_r^T, which an r x r map relates exactly; the fit is then :func:`fit_centred`'s.
    """
    xc, _ = _centred(x)
    yc, _ = _centred(y)
    rows = np.linalg.svd(np.vstack([xc, yc]), full_matrices=False)[2][:rank]
    xp, yp = (xc @ rows.T) @ rows, (yc @ rows.T) @ rows
    basis = np.linalg.svd(yp, full_matrices=False)[0][:, :rank]
    return np.linalg.eigvals((basis.T @ yp) @ np.linalg.pinv(basis.T @ xp)).astype(np.complex128)


@dataclass(frozen=True)
class Replication:
    """How many independent trajectories the data is worth, and what that allows.

    trajectories: number given. effective: Kish's n_eff (``rgprune.rg.snapshots.effective_trajectories``).
    correlation: the intraclass correlation of the one-step residuals behind n_eff (None: not estimable).
    units: "pairs", "rounds" or "trajectories" (``rgprune.rg.snapshots``).
    classes_withheld: why no direction may be classed, or None when classes may be given.
    """

    trajectories: int
    effective: float
    correlation: float | None
    units: str
    classes_withheld: str | None


def _withheld(count: int, effective: float, correlation: float | None) -> str | None:
    """The reason classes are withheld from a fit of ``count`` trajectories worth ``effective`` ones, or None."""
    need = f"a class needs at least {MIN_EFFECTIVE_TRAJECTORIES} independent trajectories (e.g. seeds)"
    if effective >= MIN_EFFECTIVE_TRAJECTORIES:
        return None
    if count == 1:
        return (
            f"one trajectory: its intervals resample its own snapshot pairs, which vouch for one another only if "
            f"its one-step residuals are independent from round to round, and {need}"
        )
    if correlation is None:
        return (
            f"some of the {count} trajectories have a single snapshot pair, so whether they are independent cannot "
            f"be measured; their pairs are the resampling units, and {need}"
        )
    return (
        f"the {count} trajectories count as {effective:.1f} independent ones (their one-step residuals share "
        f"{correlation:.0%} of their variance round by round) and are fitted as one series; {need}"
    )


def choose_units(pairs: SnapshotPairs, default_tol: float) -> tuple[SnapshotPairs, Replication]:
    """The resampling units of a flow and its replication (module docstring, "Units").

    One trajectory: pairs. Several: fitted as one series (rounds) at the rank its held-out rule chooses; the
    residuals of that fit give n_eff, and trajectories become the units when n_eff >= 5.
    """
    count = pairs.trajectories
    if count == 1:
        series = pairs.with_units("pairs")
        return series, Replication(1, 1.0, None, "pairs", _withheld(1, 1.0, None))
    if min(len(b) for b in pairs.trajectory_blocks) < 2:  # one pair each: independence cannot be measured
        return pairs.with_units("pairs"), Replication(count, 1.0, None, "pairs", _withheld(count, 1.0, None))
    series = pairs.with_units("rounds")
    rank = choose_rank(series, None, None, default_tol).rank
    # A fit of rank L - 1 or more can reproduce a path common to every trajectory exactly, whatever its
    # shape, and leave only what differs between them; below it, a shared misfit stays in the residuals.
    rank = min(rank, max(len(series.blocks) - 2, 0))
    fit = fit_centred(series.x, series.y, rank)
    effective, correlation = effective_trajectories(series, series.y - fit.predict(series.x))
    units = "trajectories" if effective >= MIN_EFFECTIVE_TRAJECTORIES else "rounds"
    replication = Replication(count, effective, correlation, units, _withheld(count, effective, correlation))
    return series.with_units(units), replication


@dataclass(frozen=True, eq=False)
class RankChoice:
    """How the rank of a flow fit was chosen, and what the data allows. Arrays are read-only.

    rank: the rank used (0: no direction resolved).
    rule: "held-out" (the default rule of the module docstring), "rank" (given by the caller) or "tol"
        (singular values of the centred images above tol times the largest).
    status: "fitted" (the held-out rule chose rank >= 1: that many directions predict held-out pairs better
        than the mean step), "nothing resolved" (it chose rank 0), "too short" (the flow has too few
        resampling units for the held-out rule to test any rank), or for a caller's rank / tol: "rank given" /
        "tol given". A fitted direction is not yet classed: ``classes_withheld`` and the intervals decide.
    units: what a held-out fold and a bootstrap replicate resample: "pairs", "rounds" or "trajectories".
    pairs: number of snapshot pairs.
    heldout_error: held-out error of ranks 0 .. K relative to rank 0's (empty unless rule is "held-out"
        and the flow was long enough).
    heldout_error_se: standard errors of ``heldout_error`` over the folds, same scale.
    trajectories, effective_trajectories, residual_correlation, classes_withheld: the :class:`Replication`.
    """

    rank: int
    rule: str
    status: str
    units: str
    pairs: int
    heldout_error: np.ndarray
    heldout_error_se: np.ndarray
    trajectories: int = 1
    effective_trajectories: float = 1.0
    residual_correlation: float | None = None
    classes_withheld: str | None = None

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


def _replication_fields(pairs: SnapshotPairs, replication: Replication | None) -> dict:
    if replication is None:  # the caller fixed the units (choose_units' own first pass)
        return {"units": pairs.units, "pairs": pairs.count}
    return {
        "units": pairs.units,
        "pairs": pairs.count,
        "trajectories": replication.trajectories,
        "effective_trajectories": replication.effective,
        "residual_correlation": replication.correlation,
        "classes_withheld": replication.classes_withheld,
    }


def choose_rank(
    pairs: SnapshotPairs,
    rank: int | None,
    tol: float | None,
    default_tol: float,
    replication: Replication | None = None,
) -> RankChoice:
    """Apply the caller's ``rank`` / ``tol``, or else the held-out rule (module docstring) over ``pairs``' units.

    ``default_tol`` bounds the candidate ranks of the held-out rule: directions whose singular values are
    below it (relative) are rounding noise, never fitted. ``replication`` (from :func:`choose_units`) is
    recorded in the result. Raises ValueError for a rank out of range.
    """
    empty = frozen(np.zeros(0))
    common = _replication_fields(pairs, replication)
    floor = pairs.floor
    if rank is not None:
        _check_rank(pairs, rank)
        return RankChoice(
            rank=int(rank), rule="rank", status="rank given", heldout_error=empty, heldout_error_se=empty, **common
        )
    if tol is not None:
        chosen = supported_rank(pairs.x, pairs.y, max(tol, floor))
        return RankChoice(
            rank=chosen, rule="tol", status="tol given", heldout_error=empty, heldout_error_se=empty, **common
        )
    too_short = RankChoice(
        rank=0, rule="held-out", status="too short", heldout_error=empty, heldout_error_se=empty, **common
    )
    if len(pairs.blocks) < MIN_FOLDS:
        return too_short
    errors, sizes, max_rank = _heldout_errors(pairs, max(default_tol, floor))
    if max_rank == 0:
        return too_short
    mean = errors.sum(axis=0) / sizes.sum()
    se = (errors / sizes[:, None]).std(axis=0, ddof=1) / math.sqrt(len(sizes))
    scale = mean[0] if mean[0] > 0 else 1.0
    best = int(np.argmin(mean))
    threshold = mean[best] + se[best] + _ERROR_ROUNDING * scale
    chosen = int(np.flatnonzero(mean <= threshold)[0])
    return RankChoice(
        rank=chosen,
        rule="held-out",
        status="fitted" if chosen else "nothing resolved",
        heldout_error=frozen(mean / scale),
        heldout_error_se=frozen(se / scale),
        **common,
    )


def _check_rank(pairs: SnapshotPairs, rank: int) -> None:
    """ValueError unless a caller's ``rank`` is within the pairs' range and their numerical rank."""
    if not 1 <= rank <= pairs.rank_cap:
        raise ValueError(
            f"rank={rank} is out of range: it must be between 1 and min(observables, snapshot pairs - 1) "
            f"= {pairs.rank_cap} (centring the pairs uses up one pair)."
        )
    numerical = supported_rank(pairs.x, pairs.y, pairs.floor)
    if rank > numerical:
        singular_values = np.linalg.svd(_centred(pairs.y)[0], compute_uv=False)
        raise ValueError(
            f"rank={rank} exceeds the numerical rank {numerical} of the centred snapshots (singular values "
            f"{np.array2string(singular_values, precision=3)}); the extra directions are rounding noise. "
            "Use a smaller rank or the default (rank=None)."
        )
