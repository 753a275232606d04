"""Snapshot pairs of a flow in coordinates, the units that cross-validation and the bootstrap resample, and how
many independent trajectories a pool of trajectories is worth.

Every DMD-type estimator of ``rgprune.rg`` (``dmd``, ``gram_dmd``, ``affine_fixed_point``) works on the
pooled snapshot pairs (x_i, y_i) = (g_n, g_{n+1}) of one or several trajectories of the same map. The
estimators only need inner products and linear combinations of snapshots, so the pairs are stored as
coordinates in an orthonormal basis of the snapshots' span: at most (number of snapshots) numbers per
snapshot, however many observables (4096 histogram bins, millions of parameters) there are. Norms, inner
products and least-squares fits are the same in coordinates as in the observable space.

* From trajectories (:func:`pairs_from_trajectories`): a QR factorization of the snapshots when there are
  more observables than snapshots (exact to rounding), otherwise the observables themselves.
* From a Gram matrix G[i, j] = <theta_i, theta_j> of one trajectory (:func:`pairs_from_gram`): with
  G = W diag(mu) W^T, the coordinates of theta_j are the j-th column of diag(sqrt(mu)) W^T. Directions
  with mu below the Gram matrix's rounding level are dropped (G holds them only as noise).

Resampling units (used by the rank rule's held-out folds and by the bootstrap):

* ``"pairs"``: a unit is one snapshot pair: one trajectory, or a pool whose trajectories have one pair each
  (their independence cannot be measured, so nothing is classed).
* ``"rounds"``: several trajectories counted as ONE series; a unit is the n-th pair of every trajectory
  together (trajectories aligned by round, as IMP seeds are). Near-duplicate trajectories then leave and
  enter a fold or a replicate together, so a held-out fold is never predicted from copies of itself.
* ``"trajectories"``: a unit is a whole trajectory; only when the pool is worth at least
  ``MIN_EFFECTIVE_TRAJECTORIES`` independent trajectories (:func:`effective_trajectories`).

The effective number of independent trajectories. Held-out trajectories and resampled trajectories
measure the estimator's variability only if what the fit leaves unexplained (its one-step residuals)
varies independently from trajectory to trajectory. Part of the residual that every trajectory shares at
a round (a common path the linear model does not follow, a common disturbance) is one draw, however many
trajectories repeat it: three seeds of one pretrained model pruned without training differ by ~1e-4 per
round against steps of 3e-3 to 9e-3, and a fold that holds one of them out predicts it from near-copies
of itself. With e_{t,n} the residual of trajectory t at its n-th pair, the one-way analysis
of variance over the rounds n = 0 .. L-1 (L: the pairs every trajectory has) gives the between-round mean
square MSB = T sum_n ||ē_n - ē||² / (L - 1) and the within-round one MSW = sum_{t,n} ||e_{t,n} - ē_n||² /
(L (T - 1)); the shared variance is s² = max(0, (MSB - MSW) / T), the intraclass correlation
rho = s² / (s² + MSW), and Kish's design effect for clusters of T residuals sharing rho gives

    n_eff = T / (1 + (T - 1) rho),

1 for exact copies, T for independent residuals. The residuals are those of the fit with "rounds"
units (which copies cannot fool), at the rank its held-out rule chooses but at most L - 2 (a rank-(L - 1)
fit reproduces any path the copies share and would leave only their differences; see
``rgprune.rg.linear_fit``). When a trajectory has a single pair, or only one trajectory is given, rho
cannot be estimated and n_eff = 1; when the residuals are at rounding level (exact data), nothing is
shared and n_eff = T.

Why residuals and not the spread between trajectories against the step size: independent trajectories
from nearby starts (relaxations from starts 0.2-0.5 along one direction, central-limit flows near the
Gaussian) are closer to each other than one step, as copies are; their spread against their steps gives
1.3-2.5 "trajectories" for pools of 5 to 12, while their residuals, which are independent, give about
their number (medians over 30 pools: 4.7 of 5 and 11.0 of 12 relaxations, 10.0 of 10 central-limit flows).
What makes copies unable to vouch for one another is the misfit they share.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from dataclasses import dataclass

import numpy as np

from rgprune.rg.linalg import rounding_floor
from rgprune.rg.validation import as_trajectories, snapshot_pairs

__all__ = [
    "MIN_EFFECTIVE_TRAJECTORIES",
    "SnapshotPairs",
    "effective_trajectories",
    "pairs_from_gram",
    "pairs_from_trajectories",
]

#: Fewest effective independent trajectories for trajectory units (folds, bootstrap) and for classes; below
#: it a pool counts as one series and nothing is classed (rgprune.rg.intervals says what coverage is then).
MIN_EFFECTIVE_TRAJECTORIES = 5
# Residual energy (relative to the centred images') below which the data are exact: nothing is shared.
_EXACT_RESIDUAL = 1e-16
UNITS = ("pairs", "rounds", "trajectories")


@dataclass(frozen=True, eq=False)
class SnapshotPairs:
    """Snapshot pairs x_i -> y_i as columns of coordinates, and how to map coordinates back.

    x, y: (m, pairs) coordinates in an orthonormal basis of the snapshots' span.
    trajectory_blocks: index arrays into the pairs, one per trajectory, in round order.
    units: "pairs", "rounds" or "trajectories": what one resampling unit is (module docstring).
    rank_cap: largest rank a fit may have: min(observables, pairs - 1) (centring uses one pair's worth).
    floor: relative size (to the largest) below which singular values of the data are rounding noise.
    to_observables: (observables, m) orthonormal basis, or None when the coordinates are the observables.
    to_snapshot_weights: (snapshots, m) map from coordinates to weights over the input snapshots
        (Gram input only: a vector with coordinates z is sum_j weights[j] theta_j, weights = map @ z).
    first_snapshot: coordinates of the first snapshot of the first trajectory.
    """

    x: np.ndarray
    y: np.ndarray
    trajectory_blocks: tuple[np.ndarray, ...]
    units: str
    rank_cap: int
    floor: float
    to_observables: np.ndarray | None = None
    to_snapshot_weights: np.ndarray | None = None
    first_snapshot: np.ndarray | None = None

    @property
    def count(self) -> int:
        """Number of snapshot pairs."""
        return self.x.shape[1]

    @property
    def trajectories(self) -> int:
        return len(self.trajectory_blocks)

    @functools.cached_property
    def blocks(self) -> tuple[np.ndarray, ...]:
        """Index arrays into the pairs, one per resampling unit of ``units``."""
        if self.units == "trajectories":
            return self.trajectory_blocks
        if self.units == "pairs":
            return tuple(np.array([i]) for i in range(self.count))
        longest = max(len(b) for b in self.trajectory_blocks)
        return tuple(np.array([b[n] for b in self.trajectory_blocks if len(b) > n]) for n in range(longest))

    def with_units(self, units: str) -> SnapshotPairs:
        """The same pairs resampled by ``units`` ("pairs" and "rounds" are the same units for one trajectory)."""
        if units not in UNITS:
            raise ValueError(f"units must be one of {UNITS}; got {units!r}")
        if self.trajectories == 1 and units == "rounds":
            units = "pairs"
        return dataclasses.replace(self, units=units)

    def subset(self, index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The (x, y) columns of the pairs ``index`` (repeats allowed, as in a bootstrap replicate)."""
        return self.x[:, index], self.y[:, index]

    def lift(self, coordinates: np.ndarray) -> np.ndarray:
        """Observable-space vectors (columns) of coordinate vectors (columns); trajectories input only."""
        return coordinates if self.to_observables is None else self.to_observables @ coordinates


def _trajectory_blocks(lengths: list[int]) -> tuple[np.ndarray, ...]:
    starts = np.concatenate([[0], np.cumsum(lengths)])
    return tuple(np.arange(starts[k], starts[k + 1]) for k in range(len(lengths)))


def effective_trajectories(pairs: SnapshotPairs, residuals: np.ndarray) -> tuple[float, float | None]:
    """(n_eff, rho): Kish's effective number of independent trajectories from the intraclass correlation rho of
    the one-step ``residuals`` (m, pairs) at aligned rounds (module docstring); rho is None when not estimable."""
    count = pairs.trajectories
    aligned = min(len(b) for b in pairs.trajectory_blocks)
    if count == 1 or aligned < 2:
        return 1.0, None
    stacked = np.stack([residuals[:, b[:aligned]].T for b in pairs.trajectory_blocks])  # (T, L, m)
    round_means = stacked.mean(axis=0)
    between = count * np.sum((round_means - round_means.mean(axis=0)) ** 2) / (aligned - 1)
    within = np.sum((stacked - round_means) ** 2) / (aligned * (count - 1))
    shared = max((between - within) / count, 0.0)
    scale = np.sum((pairs.y - pairs.y.mean(axis=1, keepdims=True)) ** 2) / pairs.count
    if shared + within <= _EXACT_RESIDUAL * scale:  # exact data: the residuals are rounding, nothing is shared
        return float(count), 0.0
    rho = shared / (shared + within)
    return count / (1.0 + (count - 1) * rho), float(rho)


def pairs_from_trajectories(trajectories) -> SnapshotPairs:
    """Validated snapshot pairs of one or several trajectories (see ``rgprune.rg.validation``), resampled as one
    series ("pairs" / "rounds"); ``rgprune.rg.linear_fit.choose_units`` decides whether trajectories may be units."""
    trajs = as_trajectories(trajectories)
    x, y = snapshot_pairs(trajs)  # (observables, pairs); validates the pair count
    observables, pairs = x.shape
    snapshots = np.concatenate(trajs, axis=0).T  # every snapshot once: (observables, rounds)
    first = trajs[0][0]
    basis = None
    if observables > snapshots.shape[1]:
        basis, _ = np.linalg.qr(snapshots, mode="reduced")
        x, y, first = basis.T @ x, basis.T @ y, basis.T @ first
    return SnapshotPairs(
        x=x,
        y=y,
        trajectory_blocks=_trajectory_blocks([t.shape[0] - 1 for t in trajs]),
        units="pairs" if len(trajs) == 1 else "rounds",
        rank_cap=min(observables, pairs - 1),
        floor=rounding_floor((observables, pairs)),
        to_observables=basis,
        first_snapshot=first,
    )


def pairs_from_gram(gram: np.ndarray) -> SnapshotPairs:
    """Snapshot pairs of one trajectory theta_0 .. theta_N given its validated Gram matrix (N+1 square)."""
    mu, w = np.linalg.eigh(gram)
    order = np.argsort(mu)[::-1]
    mu, w = mu[order], w[:, order]
    # eig(G) is accurate to ~N eps mu_max, so sqrt(mu) is resolved only to ~sqrt(N eps) sqrt(mu_max); the
    # factor 10 keeps the coordinates clear of that noise (the same floor gram_dmd applies to ranks).
    floor = 10.0 * math.sqrt(rounding_floor(gram.shape))
    keep = mu > floor**2 * max(mu[0], 0.0)
    if not np.any(keep):
        raise ValueError("all snapshots are zero; there is no flow to analyse.")
    root = np.sqrt(mu[keep])
    coordinates = root[:, None] * w[:, keep].T  # column j: coordinates of theta_j
    return SnapshotPairs(
        x=coordinates[:, :-1],
        y=coordinates[:, 1:],
        trajectory_blocks=_trajectory_blocks([gram.shape[0] - 1]),
        units="pairs",
        rank_cap=gram.shape[0] - 2,
        floor=floor,
        to_snapshot_weights=w[:, keep] / root[None, :],
        first_snapshot=coordinates[:, 0],
    )
