"""RG flow statistics of iterative magnitude pruning (DESIGN.md section 1).

``flow``: step sizes, exact and affine DMD (Koopman eigenvalues, fixed points), scaling exponents,
direction classes, flow distances, parameter-space DMD from a Gram matrix. ``plots``: figures.
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
from rgprune.rg.trace import FlowTrace, TraceRound, parameter_gram, trace_from_checkpoints

__all__ = [
    "AffineFixedPointResult",
    "DMDResult",
    "FlowDistance",
    "FlowTrace",
    "GramDMDResult",
    "TraceRound",
    "affine_fixed_point",
    "classify_directions",
    "density_profiles",
    "dmd",
    "eigenvalue_wasserstein",
    "flow_distance",
    "parameter_gram",
    "gram_dmd",
    "rescaling_factor",
    "scaling_exponents",
    "step_sizes",
    "trace_from_checkpoints",
    "trajectory_distance",
]
