"""Bootstrap intervals for the moduli of a flow fit's eigenvalues, and the fit they belong to.

Rule. A replicate draws as many resampling units as the data has, with replacement (whole trajectories
when there are 3 or more, else single snapshot pairs; see ``rgprune.rg.snapshots``), pools their pairs
and refits them at the point estimate's rank (:func:`rgprune.rg.linear_fit.fit_centred`). A replicate
whose pairs cannot support that rank (:func:`rgprune.rg.linear_fit.supported_rank`, e.g. one trajectory
drawn three times) is redrawn. Its r eigenvalues are matched to the r point estimates by the optimal
assignment that minimizes the summed distance |λ_i - μ_j| in the complex plane. With q_lo and q_hi the
(1 - level) / 2 and (1 + level) / 2 quantiles of the moduli matched to eigenvalue i over the replicates
and m = |λ_i|, its interval is the basic (reverse-percentile) bootstrap interval
[max(0, 2 m - q_hi), 2 m - q_lo], widened where needed to contain m. The reflection corrects the bias
the replicates show: noise biases a fit toward smaller |λ| (errors in the inputs attenuate the slope),
a replicate holds fewer distinct trajectories than the data and is biased further, and reflecting puts
the interval on the other side of m, where the truth is. (On noisy histogram flows with known eigenvalues
this raised the coverage of nominal 90% intervals from about 0.8 to about 0.9.) Replicates come from
``numpy.random.default_rng(seed)``, so the same input and seed give the same intervals.

When fewer than ``n_boot`` replicates support the rank within 20 * n_boot draws, or ``n_boot`` is 0, the
intervals are [0, inf): no information, which classifies every direction as "unresolved".
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import scipy.optimize

from rgprune.rg.linear_fit import CentredFit, RankChoice, choose_rank, fit_centred, supported_rank
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
        replicate = fit_centred(x, y, rank).eigenvalues
        rows, cols = scipy.optimize.linear_sum_assignment(np.abs(eigenvalues[:, None] - replicate[None, :]))
        matched = np.empty(rank)
        matched[rows] = np.abs(replicate[cols])
        moduli.append(matched)
        if len(moduli) == n_boot:
            break
    if len(moduli) < n_boot:
        return no_information
    tail = (1.0 - level) / 2.0
    low_quantile, high_quantile = np.quantile(np.array(moduli), [tail, 1.0 - tail], axis=0)
    point = np.abs(eigenvalues)
    lower = np.clip(2.0 * point - high_quantile, 0.0, point)
    upper = np.maximum(2.0 * point - low_quantile, point)
    return np.stack([lower, upper], axis=1)


@dataclass(frozen=True, eq=False)
class FlowFit:
    """A centred fit at the chosen rank with its rank choice and eigenvalue intervals."""

    fit: CentredFit
    choice: RankChoice
    intervals: np.ndarray


def fit_flow(
    pairs: SnapshotPairs, rank: int | None, tol: float | None, default_tol: float, level: float, n_boot: int, seed: int
) -> FlowFit:
    """Choose the rank (:func:`rgprune.rg.linear_fit.choose_rank`), fit, and bootstrap the intervals."""
    check_interval_options(level, n_boot, seed)
    _check_flow_moves(pairs)
    choice = choose_rank(pairs, rank, tol, default_tol)
    fit = fit_centred(pairs.x, pairs.y, choice.rank)
    relative = max(pairs.floor, default_tol if tol is None else tol)
    if rank is not None:  # a caller's rank was checked against the rounding floor only
        relative = pairs.floor
    intervals = eigenvalue_intervals(pairs, fit.eigenvalues, relative, level, n_boot, seed)
    return FlowFit(fit=fit, choice=choice, intervals=intervals)


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
