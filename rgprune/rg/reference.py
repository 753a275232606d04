"""Pruning alone as the reference for every estimate of a run: the flow that pruning alone would produce from the
run's own starting weights on the run's schedule, and whether training moved the run's flow beyond it.

Why. Pruning is the coarse-graining step of the RG reading of IMP, and it moves things by itself: it raises the
threshold every round, reshapes the survivors' tail (their ξ), and makes a parameter-space DMD of pure pruning
find a leading |λ| above 1 (each round keeps the same weights and drops the smallest). An eigenvalue, a step size
or a ξ measured on a run says something about training only next to the same number for the same weights pruned
on the same schedule without training.

The reference flow (``pruning_only_trace``) is a real pruning-only run: the kernels prune round-0 weights round
after round by as many weights as each of the run's rounds pruned, recorded as a run records its rounds. With
the run's round-0 weights it is exact, per tensor. From the trace alone it runs on weights drawn to have exactly
the round-0 histogram (``synthetic_round0_weights``): its histograms and counts then equal the exact reference's in
every round (no weight changes bin without training), and it has the kernels' own bin quantization, which is what
a trained run's step split is measured against.

``training_beyond_pruning`` compares the training part of each step (``rgprune.rg.step_split``) of the run with the
pruning-only flow's (bin quantization alone, averaged over a few references), and says whether training moved the
flow beyond pruning alone, with an interval. ``pruning_only_gram`` is the Gram matrix of the pruning-only weights,
for the parameter-space DMD pure pruning gives.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.stats
import torch

from rgprune import ops
from rgprune.masks import MaskSet
from rgprune.rg.observables import magnitude_bin_edges, pruning_only_rounds, step_split
from rgprune.rg.trace import FlowTrace

__all__ = [
    "REFERENCE_TENSOR",
    "TrainingBeyondPruning",
    "pruning_only_gram",
    "pruning_only_trace",
    "synthetic_round0_weights",
    "training_beyond_pruning",
]

#: the one pseudo-tensor of a reference computed from a trace alone
REFERENCE_TENSOR = "all prunable weights"
#: pruning-only references averaged for the quantization floor of ``training_beyond_pruning``
DEFAULT_REFERENCES = 4


def synthetic_round0_weights(trace: FlowTrace, seed: int = 0) -> torch.Tensor:
    """One tensor of weights with exactly the histogram of the trace's round 0: each bin's count of magnitudes drawn
    uniformly within the bin (seeded). What the trace alone can stand in for the run's round-0 weights with."""
    edges = torch.from_numpy(magnitude_bin_edges(trace.dtype, trace.bits))
    counts = torch.tensor(trace.rounds[0].histogram, dtype=torch.int64)
    occupied = counts.nonzero().flatten()
    if occupied.numel() == 0:
        raise ValueError("round 0 has no survivors: there are no weights to prune")
    if not torch.isfinite(edges[occupied[-1] + 1]):
        raise ValueError("round 0 has infinite or NaN survivors: no finite weights reproduce its histogram")
    dtype = getattr(torch, trace.dtype)
    lo = torch.repeat_interleave(edges[occupied], counts[occupied])
    hi = torch.repeat_interleave(edges[occupied + 1], counts[occupied])
    draw = torch.rand(lo.numel(), generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    weights = (lo + draw * (hi - lo)).to(dtype)
    # rounding to the dtype may land on the upper edge: keep every weight in its own bin
    below_hi = torch.nextafter(hi.to(dtype), torch.zeros((), dtype=dtype))
    return torch.minimum(torch.maximum(weights, lo.to(dtype)), below_hi)


def _check_weights(trace: FlowTrace, weights: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    if isinstance(weights, torch.Tensor) or not isinstance(weights, Sequence):
        raise TypeError("weights must be a list of the run's round-0 tensors, in the order of trace.tensor_names")
    if [int(w.numel()) for w in weights] != list(trace.tensor_sizes):
        raise ValueError(
            f"weights must be the run's round-0 tensors of sizes {list(trace.tensor_sizes)} (trace.tensor_names "
            f"order), got sizes {[int(w.numel()) for w in weights]}"
        )
    return [w.detach().to(getattr(torch, trace.dtype)).contiguous().clone() for w in weights]


def _pruned_alone(trace: FlowTrace, names, tensors, words, source: str) -> FlowTrace:
    """The trace of ``tensors`` (masked by ``words``) pruned by the kernels round after round by the run's counts."""
    sizes = [int(t.numel()) for t in tensors]
    reference = FlowTrace(list(names), sizes, trace.dtype, trace.bits, trace.fraction, source=source)
    for r in pruning_only_rounds(trace):
        k = int(r.histogram.sum()) - r.kept
        result = ops.prune_global_(tensors, words, k, trace.bits)
        key = result.threshold.key if k else None
        reference.record(r.round, result.threshold.histogram, *result.stats[1:4], threshold_key=key)
        if len(reference.rounds) == 1 and reference.rounds[0].histogram != trace.rounds[0].histogram:
            raise ValueError(
                "the weights are not the run's round-0 weights: their histogram differs from the trace's round 0; "
                "pass the prunable tensors of the run's round-0 checkpoint (and its masks, if it started pruned)"
            )
    return reference


def pruning_only_trace(
    trace: FlowTrace,
    weights: Sequence[torch.Tensor] | None = None,
    masks: Sequence[torch.Tensor] | None = None,
    *,
    seed: int = 0,
) -> FlowTrace:
    """The trace of the flow pruning alone would produce from the run's round-0 weights on its schedule: the kernels
    prune them round after round by as many weights as each of the run's rounds pruned. With ``weights`` (the run's
    round-0 prunable tensors in the order of ``trace.tensor_names``; ``masks`` when round 0 was not dense): exact,
    per tensor; ValueError when they are not the run's round-0 weights. Without: the same on
    ``synthetic_round0_weights(trace, seed)``, one pseudo-tensor (``REFERENCE_TENSOR``) whose histograms and counts
    equal the exact reference's in every round and whose sums differ only by where weights lie inside their
    bins. The module docstring says why this is every estimate's reference."""
    if not isinstance(trace, FlowTrace):
        raise TypeError(f"trace must be a FlowTrace, got {type(trace).__name__}")
    if not trace.rounds:
        raise ValueError("the trace has no rounds yet")
    if weights is None:
        tensors = [synthetic_round0_weights(trace, seed)]
        source = f"pruning alone, on weights with the round-0 histogram of {trace.source or 'the run'} (seed {seed})"
        return _pruned_alone(trace, [REFERENCE_TENSOR], tensors, MaskSet.ones(tensors).words, source)
    tensors = _check_weights(trace, weights)
    words = [m.clone() for m in masks] if masks is not None else MaskSet.ones(tensors).words
    source = f"pruning alone, from the round-0 weights of {trace.source or 'the run'}"
    return _pruned_alone(trace, trace.tensor_names, tensors, words, source)


def pruning_only_gram(trace: FlowTrace) -> np.ndarray:
    """The Gram matrix <θ_i, θ_j> of the weights of the flow pruning alone would produce from ``trace``'s round-0
    weights, from sums alone: round j ≥ i holds round i's weights with more of them zeroed, so <θ_i, θ_j> =
    ‖θ_j‖², the Σw² of round j's survivors (round j − 1's kept Σw²; round 0's: its kept Σw², exact, plus its
    pruned weights' estimated within their bins; ``rgprune.rg.observables.pruning_only_rounds``). What
    ``gram_dmd`` of pure pruning sees."""
    before = np.array([r.sq_sum_before for r in pruning_only_rounds(trace)], dtype=np.float64)
    if len(before) < 2:
        raise ValueError("a Gram matrix of a flow needs at least 2 rounds")
    index = np.arange(len(before))
    return before[np.maximum.outer(index, index)]


@dataclass(frozen=True)
class TrainingBeyondPruning:
    """Whether training moved a flow beyond what pruning alone does (``training_beyond_pruning``).

    ``rounds``: the round each step arrives at; ``run``: the training part of each of the run's steps (relative to
    the observable's size, ``rgprune.rg.step_split``); ``reference``: the same for the pruning-only flow, whose
    steps have no training, so it is the bin quantization of the split (mean over the references); ``difference``:
    the mean over steps of run − reference, with its ``level`` t-interval over the steps (steps taken as
    independent draws: a simplification, since consecutive steps share a round); ``verdict``: "beyond pruning
    alone" (the interval lies above 0), "not beyond pruning alone" (it does not) or "too short" (fewer than 2
    steps).
    """

    kind: str
    rounds: np.ndarray
    run: np.ndarray
    reference: np.ndarray
    difference: float
    interval: tuple[float, float]
    level: float
    verdict: str

    def sentence(self) -> str:
        """The report's first line."""
        if self.verdict == "too short":
            return f"Training against pruning alone: too short to tell ({len(self.rounds)} step of {self.kind!r})."
        lo, hi = self.interval
        says = "moved" if self.verdict == "beyond pruning alone" else "did not move"
        return (
            f"Training {says} the flow beyond pruning alone: the training part of the {self.kind!r} step exceeds "
            f"pruning alone's by {self.difference:.4f} [{lo:.4f}, {hi:.4f}] ({self.level:.0%} interval over "
            f"{len(self.rounds)} steps; pruning alone's, bin quantization: {float(np.mean(self.reference)):.4f})."
        )


def _check_level_and_references(level, references) -> None:
    if isinstance(level, bool) or not isinstance(level, float | int) or not 0.0 < level < 1.0:
        raise ValueError(f"level must be strictly between 0 and 1 (e.g. 0.9), got {level!r}")
    if isinstance(references, bool) or not isinstance(references, int) or references < 1:
        raise ValueError(f"references must be an int >= 1 (pruning-only runs to average), got {references!r}")


def training_beyond_pruning(
    trace: FlowTrace,
    kind: str = "excess",
    *,
    weights: Sequence[torch.Tensor] | None = None,
    level: float = 0.9,
    references: int = DEFAULT_REFERENCES,
) -> TrainingBeyondPruning:
    """Compare each step's training part of ``trace`` with that of pruning alone (``pruning_only_trace``: exact with
    the run's round-0 ``weights``, else ``references`` seeded pruning-only runs from the round-0 histogram,
    averaged), for an observable with a pruning-only prediction (``rgprune.rg.observables.SPLIT_KINDS``)."""
    _check_level_and_references(level, references)
    rounds = np.array([r.round for r in trace.rounds[1:]])
    if len(rounds) < 2:
        nothing = np.full(len(rounds), np.nan)
        return TrainingBeyondPruning(kind, rounds, nothing, nothing, math.nan, (math.nan, math.nan), level, "too short")
    run = step_split(trace, kind).training
    seeds = range(1 if weights is not None else references)
    refs = [step_split(pruning_only_trace(trace, weights, seed=s), kind).training for s in seeds]
    reference = np.mean(refs, axis=0)
    diff = run - reference
    half = scipy.stats.t.ppf(0.5 + level / 2, len(diff) - 1) * diff.std(ddof=1) / math.sqrt(len(diff))
    lo, hi = float(diff.mean() - half), float(diff.mean() + half)
    verdict = "beyond pruning alone" if lo > 0 else "not beyond pruning alone"
    return TrainingBeyondPruning(kind, rounds, run, reference, float(diff.mean()), (lo, hi), float(level), verdict)
