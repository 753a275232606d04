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

``pruning_reference(run)`` is the one call for any run: a FlowTrace, an IMP run directory or a list of round
checkpoints in. It builds the pruning-only flow (exact from the run's round-0 weights when it has them: a run
directory's or the first checkpoint's) and puts beside the run's own, for the same rounds, what every estimate of a
flow reads: the step sizes, the tail-index flow ξ_n (``rgprune.rg.tail``), the DMD eigenvalues with their intervals
(``rgprune.rg.analysis.analyse_flow``; for the pruning-only flow also the parameter-space DMD of
``pruning_only_gram``), and ``training_beyond_pruning``'s verdict, whose sentence is a flow report's first line.

``training_beyond_pruning`` compares the training part of each step (``rgprune.rg.step_split``) of the run with the
pruning-only flow's (bin quantization alone, averaged over a few references), and says whether training moved the
flow beyond pruning alone, with an interval. ``pruning_only_gram`` is the Gram matrix of the pruning-only weights,
for the parameter-space DMD pure pruning gives.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.stats
import torch

from rgprune import ops
from rgprune.masks import MaskSet
from rgprune.rg.observables import SPLIT_KINDS, magnitude_bin_edges, pruning_only_rounds, step_split
from rgprune.rg.trace import FlowTrace

__all__ = [
    "REFERENCE_TENSOR",
    "PruningReference",
    "TrainingBeyondPruning",
    "pruning_reference",
    "round0_weights",
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
    masks: Sequence[torch.Tensor] | None = None,
    level: float = 0.9,
    references: int = DEFAULT_REFERENCES,
) -> TrainingBeyondPruning:
    """Compare each step's training part of ``trace`` with that of pruning alone (``pruning_only_trace``: exact with
    the run's round-0 ``weights``, and ``masks`` when round 0 was not dense; else ``references`` seeded pruning-only
    runs from the round-0 histogram, averaged), for an observable with a pruning-only prediction
    (``rgprune.rg.observables.SPLIT_KINDS``)."""
    _check_level_and_references(level, references)
    if not isinstance(trace, FlowTrace):
        raise TypeError(f"trace must be a FlowTrace, got {type(trace).__name__}")
    if len(trace.rounds) < 3:  # fewer than 2 steps: no interval, and no reference needed
        return _verdict(trace, None, kind, weights, masks, level, references, 0)
    reference = pruning_only_trace(trace, weights, masks, seed=0)
    return _verdict(trace, reference, kind, weights, masks, level, references, 0)


# ------------------------------------------------------------------------------------------------------
# One call for any run: the run's flow beside pruning alone's
# ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PruningReference:
    """A run's flow beside the flow pruning alone would produce from its round-0 weights on its schedule
    (``pruning_reference``).

    ``run`` and ``reference``: the two traces (same rounds); ``exact``: the reference was pruned from the run's own
    round-0 weights (else from weights with its round-0 histogram, ``synthetic_round0_weights``); ``kind``: the
    observable of the step sizes, the DMD and the verdict; ``beyond``: ``training_beyond_pruning``'s verdict (its
    ``sentence()`` is a report's first line); ``run_tail`` and ``reference_tail``: the two ξ flows
    (``rgprune.rg.tail.TailFlow``); ``run_flow`` and ``reference_flow``: ``analyse_flow`` of each for ``kind``
    (step sizes, DMD eigenvalues with intervals; the reference's with the parameter-space DMD of
    ``pruning_only_gram`` under "parameter_space").
    """

    run: FlowTrace
    reference: FlowTrace
    exact: bool
    kind: str
    beyond: TrainingBeyondPruning
    run_tail: object
    reference_tail: object
    run_flow: dict
    reference_flow: dict

    def sentence(self) -> str:
        """Whether training moved the flow beyond pruning alone, with the interval (``TrainingBeyondPruning``)."""
        return self.beyond.sentence()

    def to_json(self) -> dict:
        """JSON-safe numbers (no NaN or inf: None) of the comparison, as a flow report's flow.json stores them."""
        from rgprune.rg.tail import tail_flow_json

        def number(x):
            return float(x) if math.isfinite(float(x)) else None

        b = self.beyond
        return {
            "sentence": self.sentence(),
            "exact": self.exact,  # no path here: a run's flow.json is the same wherever the run lies
            "observable": self.kind,
            "verdict": b.verdict,
            "difference": number(b.difference),
            "interval": [number(b.interval[0]), number(b.interval[1])],
            "level": b.level,
            "rounds": [int(n) for n in b.rounds],
            "run_training": [number(x) for x in b.run],
            "reference_training": [number(x) for x in b.reference],
            "step_sizes": {"run": self.run_flow["step_sizes"], "pruning_only": self.reference_flow["step_sizes"]},
            "dmd": {"run": self.run_flow["analysis"], "pruning_only": self.reference_flow["analysis"]},
            "parameter_space_pruning_only": (self.reference_flow["parameter_space"] or {}).get("analysis"),
            "tail_flow": {"run": tail_flow_json(self.run_tail), "pruning_only": tail_flow_json(self.reference_tail)},
        }


def _split_kind(trace: FlowTrace, kind: str | None) -> str:
    """``kind``, or the first observable with a pruning-only step the trace can give (checkpoints without a pruning
    fraction cannot give the rescaled ones)."""
    if kind is not None:
        if kind not in SPLIT_KINDS:
            raise ValueError(f"kind must be one of {SPLIT_KINDS} (observables with a pruning-only step), got {kind!r}")
        return kind
    reasons = {}
    for candidate in SPLIT_KINDS:
        try:
            trace.trajectory(candidate)
            return candidate
        except ValueError as exc:
            reasons[candidate] = str(exc)
    raise ValueError(f"no observable with a pruning-only step is defined for this trace: {reasons}")


def round0_weights(source, trace: FlowTrace | None = None, include=None, exclude=()) -> tuple[list, list]:
    """The run's round-0 prunable tensors and bit-packed survivor masks, in the order of its trace's tensors:
    ``source`` an IMP run directory (round 0's checkpoint and masks; ``trace``: the run's, default its trace.json)
    or a list of checkpoint paths (the first is round 0; ``include``/``exclude`` as ``trace_from_checkpoints``)."""
    from rgprune.rg import checkpoints as ck

    if isinstance(source, (str, os.PathLike)) and Path(source).is_dir():
        from rgprune.imp.rundir import RunDir

        run = RunDir(source)
        names = list(trace.tensor_names) if trace is not None else list(run.load_masks(0).names)
        state, masks = run.load_weights(0), run.load_masks(0)
        by_name = dict(zip(masks.names, masks.words))
        missing = [name for name in names if name not in state or name not in by_name]
        if missing:
            raise ValueError(f"{source}: round 0's checkpoint or masks lack the trace's tensors {missing[:3]}")
        return [state[n] for n in names], [by_name[n] for n in names]
    first = ck._Checkpoint(list(source)[0])
    names = ck._prunable_names(first, include, exclude)
    weights = [first.get(n).contiguous() for n in names]
    return weights, [ck._survivor_mask(first, n, w) for n, w in zip(names, weights)]


def _run_of(source, include, exclude, fraction) -> FlowTrace:
    """The trace of a run directory (its trace.json, else its checkpoints') or of a list of checkpoints."""
    from rgprune.rg.checkpoints import trace_from_checkpoints

    if isinstance(source, (str, os.PathLike)):
        from rgprune.imp.rundir import RunDir

        run = RunDir(source)
        if run.trace_path.is_file():
            return run.load_trace()
        if not run.checkpoints():
            raise ValueError(f"{source} holds neither a trace.json nor round checkpoints: not an IMP run directory")
        return trace_from_checkpoints(run.checkpoints(), include=list(run.load_masks(0).names), fraction=fraction)
    return trace_from_checkpoints(list(source), include=include, exclude=exclude, fraction=fraction)


def pruning_reference(
    run,
    *,
    kind: str | None = None,
    weights: Sequence[torch.Tensor] | None = None,
    masks: Sequence[torch.Tensor] | None = None,
    gram: np.ndarray | None = None,
    level: float = 0.9,
    references: int = DEFAULT_REFERENCES,
    include: Sequence[str] | None = None,
    exclude: Sequence[str] = (),
    fraction: float | None = None,
    seed: int = 0,
) -> PruningReference:
    """The run's flow beside the flow pruning alone would produce from its round-0 weights on its schedule, in one
    call (``PruningReference``; the module docstring says why).

    ``run``: a ``FlowTrace`` (with ``weights``/``masks``, the run's round-0 tensors, the reference is exact; without,
    it is pruned from the round-0 histogram, ``references`` seeded draws averaged for the verdict), an IMP run
    directory (its trace, and its round-0 checkpoint for an exact reference), or a list of checkpoint paths in
    round order (``include``, ``exclude``, ``fraction`` as ``trace_from_checkpoints``; the first is round 0, exact).
    ``kind``: the observable of the steps, DMD and verdict (default: the first of ``SPLIT_KINDS`` the trace gives);
    ``gram``: the run's checkpoints' Gram matrix, for the run's parameter-space DMD; ``level``: the intervals'
    coverage.
    """
    from rgprune.rg.analysis import analyse_flow
    from rgprune.rg.tail import tail_flow

    if isinstance(run, FlowTrace):
        trace = run
    elif (isinstance(run, (str, os.PathLike)) and Path(run).is_dir()) or (
        isinstance(run, Sequence) and not isinstance(run, str) and run
    ):
        if weights is not None or masks is not None:
            raise ValueError(
                "the round-0 weights come from the run directory or the first checkpoint; pass them with a trace only"
            )
        trace = _run_of(run, include, exclude, fraction)
        weights, masks = round0_weights(run, trace, include, exclude)
    else:
        raise TypeError(
            f"run must be a FlowTrace, a run directory or a list of checkpoint paths, got {run!r:.80}"
            + (" (no such directory)" if isinstance(run, (str, os.PathLike)) else "")
        )
    _check_level_and_references(level, references)
    if len(trace) < 2:
        raise ValueError(f"the run has {len(trace)} round: a flow, and its reference, need at least 2")
    kind = _split_kind(trace, kind)
    reference = pruning_only_trace(trace, weights, masks, seed=seed)
    beyond = _verdict(trace, reference, kind, weights, masks, level, references, seed)
    pruning_gram = pruning_only_gram(reference)
    return PruningReference(
        run=trace,
        reference=reference,
        exact=weights is not None,
        kind=kind,
        beyond=beyond,
        run_tail=tail_flow(trace, level=level),
        reference_tail=tail_flow(reference, level=level),
        run_flow=analyse_flow(trace, (kind,), gram, level=level),
        reference_flow=analyse_flow(reference, (kind,), pruning_gram, level=level),
    )


def _verdict(trace, reference, kind, weights, masks, level, references, seed) -> TrainingBeyondPruning:
    """``training_beyond_pruning``, reusing the reference already pruned (and the run's round-0 masks)."""
    rounds = np.array([r.round for r in trace.rounds[1:]])
    if len(rounds) < 2:
        nothing = np.full(len(rounds), np.nan)
        return TrainingBeyondPruning(kind, rounds, nothing, nothing, math.nan, (math.nan, math.nan), level, "too short")
    run = step_split(trace, kind).training
    refs = [step_split(reference, kind).training]
    if weights is None:
        refs += [step_split(pruning_only_trace(trace, seed=seed + s), kind).training for s in range(1, references)]
    diff = run - np.mean(refs, axis=0)
    half = scipy.stats.t.ppf(0.5 + level / 2, len(diff) - 1) * diff.std(ddof=1) / math.sqrt(len(diff))
    lo, hi = float(diff.mean() - half), float(diff.mean() + half)
    verdict = "beyond pruning alone" if lo > 0 else "not beyond pruning alone"
    return TrainingBeyondPruning(
        kind, rounds, run, np.mean(refs, axis=0), float(diff.mean()), (lo, hi), float(level), verdict
    )
