"""RG flow statistics of iterative magnitude pruning (DESIGN.md section 1).

``flow``: step sizes, exact and affine DMD (Koopman eigenvalues, fixed points), scaling exponents,
direction classes, flow distances, parameter-space DMD from a Gram matrix. ``observables``: rescaled
histogram observables and the pruning/training split of each step. ``stats``: transfer gain, Mantel and
PERMANOVA permutation tests. ``plots``: figures.
"""
from rgprune.rg.flow import (
    AffineFixedPointResult,
    DMDResult,
    FlowDistance,
    GramDMDResult,
    affine_fixed_point,
    classify_directions,
    density_profiles,
    dmd,
    eigenvalue_wasserstein,
    flow_distance,
    gram_dmd,
    rescaling_factor,
    scaling_exponents,
    step_sizes,
    trajectory_distance,
)
# Observables with a fixed point, the pruning/training split of each step, statistics of transfer vs flows
from rgprune.rg.observables import StepSplit, magnitude_bin_edges, step_split
from rgprune.rg.stats import (
    MantelResult,
    PermanovaResult,
    mantel_test,
    permanova,
    transfer_gain,
    transfer_gain_matrix,
)

__all__ = [
    "AffineFixedPointResult",
    "DMDResult",
    "FlowDistance",
    "GramDMDResult",
    "affine_fixed_point",
    "classify_directions",
    "density_profiles",
    "dmd",
    "eigenvalue_wasserstein",
    "flow_distance",
    "gram_dmd",
    "rescaling_factor",
    "scaling_exponents",
    "step_sizes",
    "trajectory_distance",
    # observables and statistics
    "StepSplit",
    "magnitude_bin_edges",
    "step_split",
    "MantelResult",
    "PermanovaResult",
    "mantel_test",
    "permanova",
    "transfer_gain",
    "transfer_gain_matrix",
]
