"""Bootstrap intervals for the moduli of a flow fit's eigenvalues, the fit they belong to, and their coverage.

Rule. A replicate draws as many resampling units as the data has, with replacement (the units of
``rgprune.rg.snapshots``: whole trajectories when the pool is worth at least 5 independent ones, else rounds
of a pool fitted as one series, or snapshot pairs of one trajectory), pools their pairs and refits them at
the point estimate's rank (:func:`rgprune.rg.linear_fit.fit_centred`). A replicate whose pairs cannot
support that rank (:func:`rgprune.rg.linear_fit.supported_rank`, e.g. one trajectory drawn three times) is
redrawn. Its r eigenvalues are matched to the r point estimates by the optimal assignment that minimizes
the summed distance |λ_i - μ_j| in the complex plane. Over the replicates, q_lo and q_hi are simultaneous
lower and upper quantiles of the matched moduli: the widest common trim k such that at least ``level`` of
the replicates lie inside every eigenvalue's [k-th smallest, k-th largest] (with one eigenvalue, the
(1 - level) / 2 and (1 + level) / 2 quantiles). With m = |λ_i|, the basic (reverse-percentile) interval is
[max(0, 2 m - q_hi), 2 m - q_lo], widened where needed to contain m. The reflection corrects the bias the
replicates show (noise biases a fit toward smaller |λ|, and a replicate holding fewer distinct units than
the data is biased further). Noise in the inputs attenuates |λ| itself (errors in variables), which no
resampling of the same fit shows: the interval is therefore joined with itself moved by d = |λ_TLS| - m,
the total-least-squares modulus of the same direction (:func:`rgprune.rg.linear_fit.tls_eigenvalues`)
minus the least-squares one: [min(lo, lo + d), max(hi, hi + d)]. Replicates come from
``numpy.random.default_rng(seed)``, so the same input and seed give the same intervals.

When fewer than ``n_boot`` replicates support the rank within 20 * n_boot draws, or ``n_boot`` is 0, the
intervals are [0, inf): no information, which classifies every direction as "unresolved".

Coverage (measured; nominal 0.9). Fraction of flows whose interval for the eigenvalue nearest a known
|λ| contains it, over 30 seeded flows per regime whose fit resolved at least one direction (200
replicates; scenarios as in ``tests/test_rg_dmd_robustness.py``; "T x N": trajectories x rounds):

* at or near nominal: a relaxation at 0.7 on 24 bins from 20k draws per histogram, 12 x 8: 0.97 (least
  squares alone: 0.30; it estimates 0.63), 5 x 8: 0.93 (before the TLS shift and the units of
  ``rgprune.rg.snapshots``: 0.68), one trajectory of 16 rounds: 1.00 (17 of 30 resolve it); the
  central-limit map on 48 bins from 20k draws, 10 x 5: 0.90 for 1.414 and 0.97 for 1; 5 x 8: 0.90 and
  0.87; a linear map (0.9, 0.5) in 10 observables with process and observation noise, 6 x 5: 0.87 and
  0.83, 12 x 5: 1.00 and 0.80; random walks (|λ| = 1) in 30 observables: 9 x 15 from spread starts 1.00,
  from one start 1.00, 3 x 7 from one start 0.93, one walk of 25 rounds 1.00. The fast suite checks at
  least 0.8 on 10 flows per regime.
* below nominal: few trajectories at few rounds, where the shift cannot undo the attenuation: the
  central-limit map at 5 x 5 from 20k draws: 0.77 for 1.414 (estimated at a median 1.27) and 0.73 for 1;
  and two directions the data cannot separate: relaxations at 0.7 and 0.4 (12 x 8, 20k draws) are fitted
  as one blended direction near 0.49 whose interval holds neither (coverage 0.03 and 0.00); at 2k draws
  (5 x 8) nothing is resolved at all. An interval describes the sampling variability of the direction
  the fit resolved, not the error of blending directions it did not.
* not measurable by resampling: the units must be independent. Copies of one path (near-duplicate seeds)
  are one unit per round, and classes are withheld below 5 effective trajectories
  (``rgprune.rg.linear_fit``): with one trajectory, or a pool counted as one series, the intervals over
  pairs or rounds assume the one-step residuals are independent from round to round, which a flow with a
  misfit that persists over rounds violates.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import scipy.optimize

from rgprune.rg.linear_fit import (
    CentredFit,
    RankChoice,
    choose_rank,
    choose_units,
    fit_centred,
    supported_rank,
    tls_eigenvalues,
)
from rgprune.rg.snapshots import SnapshotPairs

__all__ = [
    "DEFAULT_LEVEL",
    "DEFAULT_REPLICATES",
    "FlowFit",
    "check_interval_options",
    "eigenvalue_intervals",
    "fit_flow",
]

#: Default coverage of the eigenvalue intervals.
DEFAULT_LEVEL = 0.9
#: Default number of bootstrap replicates.
DEFAULT_REPLICATES = 200
_DRAWS_PER_REPLICATE = 20


def check_interval_options(level: float, n_boot: int, seed: int) -> None:
    """ValueError unless 0 < level < 1, n_boot is 0 or an int >= 20, and seed is a non-negative int."""
    if isinstance(level, bool) or not isinstance(level, (int, float)) or not (0.0 < level < 1.0):
        raise ValueError(f"level must be a coverage probability strictly between 0 and 1 (e.g. 0.9); got {level!r}.")
    if isinstance(n_boot, bool) or not isinstance(n_boot, (int, np.integer)) or not (n_boot == 0 or n_boot >= 20):
        raise ValueError(f"n_boot must be an int >= 20 (bootstrap replicates; 0 skips the intervals); got {n_boot!r}.")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative int (the intervals are seeded, deterministic); got {seed!r}.")


def _matched_moduli(reference: np.ndarray, values: np.ndarray) -> np.ndarray:
    """|values| reordered to ``reference`` by the assignment minimizing the summed |λ_i - μ_j|."""
    rows, cols = scipy.optimize.linear_sum_assignment(np.abs(reference[:, None] - values[None, :]))
    matched = np.empty(reference.size)
    matched[rows] = np.abs(values[cols])
    return matched


def _band(replicates: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray]:
    """Simultaneous lower and upper quantiles of the replicates' columns: the widest common trim k such that at
    least ``level`` of the replicates lie inside every column's [k-th smallest, k-th largest] (one column: the
    (1 - level) / 2 and (1 + level) / 2 quantiles)."""
    count = replicates.shape[0]
    ranks = replicates.argsort(axis=0).argsort(axis=0)
    depth = np.minimum(ranks, count - 1 - ranks).min(axis=1)  # trim that would first exclude each replicate
    inside = np.array([np.mean(depth >= k) for k in range(count // 2 + 1)])
    trim = int(np.flatnonzero(inside >= level)[-1])
    ordered = np.sort(replicates, axis=0)
    return ordered[trim], ordered[count - 1 - trim]


def _basic(point: np.ndarray, replicates: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray]:
    """The basic (reverse-percentile) band of each |point|, widened to contain it."""
    low_quantile, high_quantile = _band(replicates, level)
    return np.clip(2.0 * point - high_quantile, 0.0, point), np.maximum(2.0 * point - low_quantile, point)


def eigenvalue_intervals(
    pairs: SnapshotPairs, eigenvalues: np.ndarray, relative: float, level: float, n_boot: int, seed: int
) -> np.ndarray:
    """(r, 2) lower and upper modulus of each point eigenvalue (module docstring's rule)."""
    rank = eigenvalues.size
    no_information = np.tile([0.0, math.inf], (rank, 1))
    if rank == 0 or n_boot == 0:
        return no_information
    rng = np.random.default_rng(seed)
    moduli = []
    for _ in range(_DRAWS_PER_REPLICATE * n_boot):
        picks = rng.integers(len(pairs.blocks), size=len(pairs.blocks))
        x, y = pairs.subset(np.concatenate([pairs.blocks[p] for p in picks]))
        if supported_rank(x, y, relative) < rank:
            continue
        moduli.append(_matched_moduli(eigenvalues, fit_centred(x, y, rank).eigenvalues))
        if len(moduli) == n_boot:
            break
    if len(moduli) < n_boot:
        return no_information
    lower, upper = _basic(np.abs(eigenvalues), np.array(moduli), level)
    # The errors-in-variables correction: the same band moved by the TLS minus the least-squares modulus.
    shift = _matched_moduli(eigenvalues, tls_eigenvalues(pairs.x, pairs.y, rank)) - np.abs(eigenvalues)
    return np.stack([np.maximum(np.minimum(lower, lower + shift), 0.0), np.maximum(upper, upper + shift)], axis=1)


@dataclass(frozen=True, eq=False)
class FlowFit:
    """A centred fit at the chosen rank with its rank choice and eigenvalue intervals."""

    fit: CentredFit
    choice: RankChoice
    intervals: np.ndarray
    pairs: SnapshotPairs


def fit_flow(
    pairs: SnapshotPairs, rank: int | None, tol: float | None, default_tol: float, level: float, n_boot: int, seed: int
) -> FlowFit:
    """Choose the rank (:func:`rgprune.rg.linear_fit.choose_rank`), fit, and bootstrap the intervals."""
    check_interval_options(level, n_boot, seed)
    _check_flow_moves(pairs)
    pairs, replication = choose_units(pairs, default_tol)
    choice = choose_rank(pairs, rank, tol, default_tol, replication)
    fit = fit_centred(pairs.x, pairs.y, choice.rank)
    relative = max(pairs.floor, default_tol if tol is None else tol)
    if rank is not None:  # a caller's rank was checked against the rounding floor only
        relative = pairs.floor
    intervals = eigenvalue_intervals(pairs, fit.eigenvalues, relative, level, n_boot, seed)
    return FlowFit(fit=fit, choice=choice, intervals=intervals, pairs=pairs)


def _check_flow_moves(pairs: SnapshotPairs) -> None:
    scale = max(np.abs(pairs.x).max(), np.abs(pairs.y).max())
    if scale == 0.0:
        raise ValueError("all snapshots are zero; there is no flow to analyse.")
    spread = max(
        np.abs(pairs.x - pairs.x.mean(axis=1, keepdims=True)).max(),
        np.abs(pairs.y - pairs.y.mean(axis=1, keepdims=True)).max(),
    )
    if spread <= pairs.floor * scale:
        raise ValueError(
            "all input snapshots are equal: the flow does not move, so its linear part cannot be estimated (the "
            "common value is a fixed point). Start trajectories away from it."
        )
