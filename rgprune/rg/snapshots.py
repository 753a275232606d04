"""Snapshot pairs of a flow in coordinates, with the units that cross-validation and the bootstrap resample.

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

Resampling units (used by the rank rule's held-out folds and by the bootstrap): with at least
``MIN_TRAJECTORIES_FOR_BLOCKS`` = 3 trajectories, the unit is a whole trajectory (its pairs share noise
and history, so they are held out and resampled together); with fewer, the unit is one snapshot pair.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from rgprune.rg.linalg import rounding_floor
from rgprune.rg.validation import as_trajectories, snapshot_pairs

__all__ = [
    "MIN_TRAJECTORIES_FOR_BLOCKS",
    "SnapshotPairs",
    "pairs_from_gram",
    "pairs_from_trajectories",
]

#: Fewest trajectories for which held-out folds and bootstrap replicates are whole trajectories.
MIN_TRAJECTORIES_FOR_BLOCKS = 3


@dataclass(frozen=True, eq=False)
class SnapshotPairs:
    """Snapshot pairs x_i -> y_i as columns of coordinates, and how to map coordinates back.

    x, y: (m, pairs) coordinates in an orthonormal basis of the snapshots' span.
    blocks: index arrays into the pairs, one per resampling unit (a trajectory or a single pair).
    units: "trajectories" or "pairs", what one block is.
    rank_cap: largest rank a fit may have: min(observables, pairs - 1) (centring uses one pair's worth).
    floor: relative size (to the largest) below which singular values of the data are rounding noise.
    to_observables: (observables, m) orthonormal basis, or None when the coordinates are the observables.
    to_snapshot_weights: (snapshots, m) map from coordinates to weights over the input snapshots
        (Gram input only: a vector with coordinates z is sum_j weights[j] theta_j, weights = map @ z).
    first_snapshot: coordinates of the first snapshot of the first trajectory.
    """

    x: np.ndarray
    y: np.ndarray
    blocks: tuple[np.ndarray, ...]
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

    def subset(self, index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The (x, y) columns of the pairs ``index`` (repeats allowed, as in a bootstrap replicate)."""
        return self.x[:, index], self.y[:, index]

    def lift(self, coordinates: np.ndarray) -> np.ndarray:
        """Observable-space vectors (columns) of coordinate vectors (columns); trajectories input only."""
        return coordinates if self.to_observables is None else self.to_observables @ coordinates


def _blocks(lengths: list[int]) -> tuple[tuple[np.ndarray, ...], str]:
    """Resampling units for trajectories contributing ``lengths`` pairs each."""
    starts = np.concatenate([[0], np.cumsum(lengths)])
    if len(lengths) >= MIN_TRAJECTORIES_FOR_BLOCKS:
        return tuple(np.arange(starts[k], starts[k + 1]) for k in range(len(lengths))), "trajectories"
    return tuple(np.array([i]) for i in range(int(starts[-1]))), "pairs"


def pairs_from_trajectories(trajectories) -> SnapshotPairs:
    """Validated snapshot pairs of one or several trajectories (see ``rgprune.rg.validation``)."""
    trajs = as_trajectories(trajectories)
    x, y = snapshot_pairs(trajs)  # (observables, pairs); validates the pair count
    observables, pairs = x.shape
    snapshots = np.concatenate(trajs, axis=0).T  # every snapshot once: (observables, rounds)
    first = trajs[0][0]
    basis = None
    if observables > snapshots.shape[1]:
        basis, _ = np.linalg.qr(snapshots, mode="reduced")
        x, y, first = basis.T @ x, basis.T @ y, basis.T @ first
    blocks, units = _blocks([t.shape[0] - 1 for t in trajs])
    return SnapshotPairs(
        x=x,
        y=y,
        blocks=blocks,
        units=units,
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
    blocks, units = _blocks([gram.shape[0] - 1])
    return SnapshotPairs(
        x=coordinates[:, :-1],
        y=coordinates[:, 1:],
        blocks=blocks,
        units=units,
        rank_cap=gram.shape[0] - 2,
        floor=floor,
        to_snapshot_weights=w[:, keep] / root[None, :],
        first_snapshot=coordinates[:, 0],
    )
