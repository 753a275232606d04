"""RG flow statistics of iterative magnitude pruning (docs/DESIGN.md, "The science").

One module per job: ``steps`` (step sizes, density profiles), ``dmd`` (DMD, parameter-space DMD from a
Gram matrix), ``fixed_point`` (affine DMD and the fixed point), ``exponents`` (scaling exponents,
direction classes), ``distance`` (flow distances); ``flow`` re-exports them. Behind the estimators:
``snapshots`` (pairs in coordinates), ``linear_fit`` (the centred fit and its held-out rank rule),
``intervals`` (bootstrap intervals). ``observables``: the registry of observables (``OBSERVABLES``), the
rescaled histogram observables and the pruning/training split of each step. ``stats``: transfer gain,
Mantel, PERMANOVA and PERMDISP permutation tests. ``tail``: the tail-index flow ξ_n (the generalized-Pareto shape of the
survivors' excess, whose domain is the universality class). ``reference``: pruning alone as every estimate's
reference (the flow pruning alone would produce from a run's round-0 weights, and whether training moved the run
beyond it). ``trace``: the per-round record (FlowTrace); ``checkpoints``: the
same records, and the Gram matrix, from checkpoints on disk. ``plots``: figures; ``report``: the flow report.
"""

from rgprune.rg.checkpoints import parameter_gram, trace_from_checkpoints
from rgprune.rg.distance import FlowDistance, eigenvalue_wasserstein, flow_distance, trajectory_distance
from rgprune.rg.dmd import DMDResult, GramDMDResult, dmd, gram_dmd
from rgprune.rg.exponents import classify_directions, rescaling_factor, scaling_exponents
from rgprune.rg.fixed_point import AffineFixedPointResult, affine_fixed_point
from rgprune.rg.linear_fit import RankChoice

# Observables with a fixed point, the pruning/training split of each step, statistics of transfer vs flows
from rgprune.rg.observables import OBSERVABLES, Observable, StepSplit, magnitude_bin_edges, step_split
from rgprune.rg.reference import PruningReference, TrainingBeyondPruning, pruning_reference, training_beyond_pruning
from rgprune.rg.stats import (
    MantelResult,
    PermanovaResult,
    PermdispResult,
    centroid_distances,
    mantel_test,
    permanova,
    permdisp,
    transfer_gain,
    transfer_gain_matrix,
)
from rgprune.rg.steps import density_profiles, step_sizes
from rgprune.rg.tail import TailFlow, describe_tail_flow, tail_flow, tail_flow_json
from rgprune.rg.trace import FlowTrace, TraceRound

__all__ = [
    "AffineFixedPointResult",
    "DMDResult",
    "FlowDistance",
    "FlowTrace",
    "GramDMDResult",
    "RankChoice",
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
    # observables and statistics
    "OBSERVABLES",
    "Observable",
    "StepSplit",
    "magnitude_bin_edges",
    "step_split",
    "MantelResult",
    "PermanovaResult",
    "PermdispResult",
    "mantel_test",
    "permanova",
    "permdisp",
    "centroid_distances",
    "transfer_gain",
    "transfer_gain_matrix",
    # the tail-index flow and pruning alone as the reference
    "TailFlow",
    "describe_tail_flow",
    "tail_flow",
    "tail_flow_json",
    "PruningReference",
    "TrainingBeyondPruning",
    "pruning_reference",
    "training_beyond_pruning",
]
