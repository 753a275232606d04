"""Flow statistics of an IMP run viewed as a renormalization-group flow (re-exports).

One IMP round is one application of an RG operator R, so the observables recorded after each round,
g_0, g_1, ..., g_N, are a discrete flow. The analyses live in one module per job:

* :mod:`rgprune.rg.validation`: input conventions and checks shared by all of them;
* :mod:`rgprune.rg.steps`: step sizes and per-layer density profiles;
* :mod:`rgprune.rg.dmd`: exact DMD and parameter-space DMD from a Gram matrix;
* :mod:`rgprune.rg.fixed_point`: affine DMD and the fixed point;
* :mod:`rgprune.rg.exponents`: rescaling factor, scaling exponents, direction classes;
* :mod:`rgprune.rg.distance`: distances between flows;
* behind the estimators: :mod:`rgprune.rg.snapshots` (snapshot pairs in coordinates),
  :mod:`rgprune.rg.linear_fit` (the centred fit and its held-out rank rule), :mod:`rgprune.rg.intervals`
  (bootstrap intervals of the eigenvalues).

This module re-exports their public names so ``rgprune.rg.flow.<name>`` keeps working.

Short flows: DMD-type analyses need at least 2 snapshot pairs in total (3 rounds of a single
trajectory, or several trajectories with 2+ rounds each); by default they also need 3 held-out folds
to resolve anything (a pool worth fewer than 5 independent trajectories folds by rounds), and say "too
short" otherwise. Directions are classed only from pools worth at least 5 independent trajectories.
"""

from __future__ import annotations

from rgprune.rg.distance import FlowDistance, eigenvalue_wasserstein, flow_distance, trajectory_distance
from rgprune.rg.dmd import DMDResult, GramDMDResult, dmd, gram_dmd
from rgprune.rg.exponents import MARGINAL_TOL, classify_directions, rescaling_factor, scaling_exponents
from rgprune.rg.fixed_point import AffineFixedPointResult, affine_fixed_point
from rgprune.rg.linalg import DEFAULT_TOL, GRAM_DEFAULT_TOL
from rgprune.rg.linear_fit import RankChoice
from rgprune.rg.steps import density_profiles, step_sizes

__all__ = [
    "DEFAULT_TOL",
    "GRAM_DEFAULT_TOL",
    "MARGINAL_TOL",
    "DMDResult",
    "AffineFixedPointResult",
    "GramDMDResult",
    "FlowDistance",
    "RankChoice",
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
