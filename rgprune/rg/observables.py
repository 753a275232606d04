"""Rescaled observables of an IMP flow, and each round's step split into pruning and training.

Everything here is computed from what the kernels' own passes already return (``FlowTrace`` records it):
the 4096-bin histogram of the trained survivors θ_n from the threshold pass (the top 12 bits of the
magnitude key: 16 bins per octave for float32, each bin linear in |w|), the round's threshold key, and
per tensor the count, Σ|w| and Σw² of the survivors kept. No extra pass over the weights.

Why rescale
-----------
An RG step is a coarse-graining followed by a rescaling that brings the system back to a reference scale;
only then can a flow stop moving (a fixed point). IMP's coarse-graining is pruning: every round removes
the lowest fraction p of the surviving magnitudes. The default ``"histogram"`` observable (fractions on
fixed absolute bins) has no rescaling, so pruning alone moves it every round: 2^20 static Gaussian
weights, never trained, pruned 20% per round, give relative steps 0.34, 0.42, 0.46, 0.43 (Laplace: 0.36,
0.45, 0.48, 0.47). Its steps measure the pruning mechanics, not what training does. Two rescaled
observables fix this:

``"excess"`` (peaks over threshold; the recommended rescaled observable). Round n's survivors S_n, the
weights kept by its prune (|w| ≥ t_n, the round's threshold), as y = (|w| − t_n) / m_n with m_n =
mean(|w| − t_n) over S_n (exact: the apply pass's Σ|w| and count), on fixed bins 0, 0.25, ..., 8 (+ one
bin for y ≥ 8). Why this one: pruning alone raises the threshold every round, and by the
Pickands–Balkema–de Haan theorem the excess over a rising threshold, in units of its mean, converges to
a generalized Pareto law, which is itself stable under raising the threshold. So this observable *has* a
fixed point under pruning alone, and an attracting one: Exp(1) for every light-tailed weight
distribution (uniform on [0, 2] for bounded uniform weights). Laplace weights sit on it exactly from the
first round (memorylessness of |w| ~ Exp); Gaussian weights approach it (their mean excess ≈ σ²/t shrinks
as t grows). Measured on 2^20 static weights, 20% per round: Laplace steps 0.004-0.013 (sampling noise of
the shrinking survivor set), Gaussian 0.028 falling to 0.014, against 0.34-0.48 on fixed bins. Whatever
keeps a real flow moving, or holds it away from Exp(1), is training. Can show: the shape of the survivors'
magnitude tail above the threshold and its flow. Cannot show: the pruned weights and anything below the
threshold, the overall scale (divided out: a uniform rescaling of all weights, such as weight decay
alone, is invisible by design), per-layer differences (one global histogram), and shape details finer
than the kernels' bins: a bin near the threshold spans t/(16 m) in units of the mean excess for float32
(≈ ln(1/d)/16 for Laplace weights at density d: 0.01 at d = 0.8, 0.29 at d = 0.01), coarser than the 0.25
grid at late rounds.

``"log-relative"``: all of θ_n's survivors as log2(|w| / t_n), on fixed bins of 1/4 octave over
[-8, 8) octaves (+ one bin below, one above): the kernels' log bins shifted by the round's threshold.
Non-degenerate fixed point under pruning alone: scale-free (Pareto) tails only, whose survivors over t
look the same in units of t every round. Light tails (Gaussian, Laplace) pile up just above 0 round after
round, towards a spike at |w| = t: pruning-only steps shrink only slowly (Gaussian: 0.67, 0.43, 0.30, ...,
0.08 by round 9) while the observable loses its resolution. Can show: the whole trained distribution
including the part the round prunes (always a fraction ≈ p below 0) and the bulk's width in octaves.
Cannot show: the absolute scale, per-layer differences, structure finer than 1/16 octave.

``"density-profile"``: each tensor's density divided by the global density (after the round's prune).
The plain ``"layer-density"`` shrinks by (1 − p) per round in every layer and never stops; its ratio to the
global density can (a stable allocation of survivors among layers). Can show: which layers IMP thins faster
or slower than the whole. Cannot show: anything about magnitudes; with identically distributed layers it
is 1 everywhere whatever happens. ``"layer-scale"`` (root-mean-square |w| per tensor) grows as small
weights go and has no fixed point under pruning either. No pruning-only prediction for the layer
observables: that needs per-layer histograms, which the kernels do not return.

Pruning vs training
-------------------
``step_split`` divides each step O_n → O_{n+1} of an observable into the part pruning alone causes and
the rest. The pruning-only prediction of O_{n+1} is computed from round n's histogram: keep the survivors
of round n's prune (exactly known counts per bin), prune again the number of weights round n+1 pruned
(threshold interpolated in the histogram), rescale, and measure the observable. Training (rewinding and
retraining, in IMP) is whatever separates the measured O_{n+1} from that prediction. Within a bin the
histogram does not say where the weights lie; the prediction assumes them spread uniformly in |w|, the
only approximation, so a pruning-only flow has a training part of exactly 0 for ``"histogram"`` and near 0
(bin quantization: at most 0.0023 over 10 rounds of 20% on 2^20 weights, 0.0038 on 20k weights) for the
rescaled kinds, while 5 Adam steps per round give 0.07-0.09 on ``"excess"``.

The registry
------------
``OBSERVABLES`` is the one list of observables: name → ``Observable`` (its computation, a one-line
description, the report's note on what it can and cannot show, its pruning-only prediction if it has one,
its options such as ``"histogram"``'s ``coarsen``, whether reports fit it, its bins for the report's heatmap).
``FlowTrace.trajectory`` and ``step_split`` compute through it, and the reports, ``rgprune flow`` /
``compare`` / ``transfer``'s ``--observable`` and docs/DESIGN.md's table of observables are drawn from it
(a test compares that table with it). The computations read a trace by shape (``TraceLike``): this module
does not import ``rgprune.rg.trace``, which imports it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Protocol

import numpy as np
import torch

from rgprune.kernels.format import KEY_BITS, MAX_HIST_BITS, RADIX_BITS, key_to_magnitude
from rgprune.schedule import prune_count

#: bin edges of the ``"log-relative"`` observable, in octaves relative to the round's threshold (4 per octave);
#: the trajectory also has one column below the first edge and one above the last
LOG_RELATIVE_EDGES = np.linspace(-8.0, 8.0, 65)
#: bin edges of the ``"excess"`` observable, in units of the mean excess; plus one column for y ≥ 8
EXCESS_EDGES = np.linspace(0.0, 8.0, 33)


class TraceLike(Protocol):
    """What the computations here read of a ``rgprune.rg.trace.FlowTrace``. Taken by shape, not imported: the
    trace module delegates its observables to this one, so this one must not import it (no cycle)."""

    tensor_sizes: list[int]
    dtype: str
    bits: int
    fraction: float | None
    rounds: list  # TraceRound: round, histogram, counts, abs_sums, sq_sums, threshold_key


def _dtype(dtype: str | torch.dtype) -> torch.dtype:
    if isinstance(dtype, torch.dtype):
        found = dtype
    else:
        found = getattr(torch, str(dtype).removeprefix("torch."), None)
    if found not in KEY_BITS:
        raise ValueError(f"dtype must be one of {[str(d) for d in KEY_BITS]}, got {dtype!r}")
    return found


@functools.lru_cache(maxsize=16)
def _edges(dtype: torch.dtype, bits: int) -> tuple[float, ...]:
    shift = KEY_BITS[dtype] - bits
    lower = [key_to_magnitude(b << shift, dtype) for b in range(1 << bits)]
    # Bins from the Inf key up hold Inf and NaN keys: no finite weight lies there.
    return tuple(x if np.isfinite(x) else np.inf for x in lower) + (np.inf,)


def magnitude_bin_edges(dtype: str | torch.dtype = "float32", bits: int = RADIX_BITS) -> np.ndarray:
    """The 2**bits + 1 edges in |w| of the kernels' magnitude histogram (bin b holds edges[b] ≤ |w| < edges[b+1]).

    Computed from the kernels' key definition (``key_to_magnitude``). Edges of the bins of Inf/NaN keys
    (and the last upper edge) are ``inf``.

    >>> magnitude_bin_edges("float32")[[2032, 2033, 2048]].tolist()  # 16 bins per octave: 1, 1 + 1/16, 2
    [1.0, 1.0625, 2.0]
    """
    dt = _dtype(dtype)
    if isinstance(bits, bool) or not isinstance(bits, int) or not 1 <= bits <= min(MAX_HIST_BITS, KEY_BITS[dt]):
        raise ValueError(f"bits must be an int in [1, {MAX_HIST_BITS}], got {bits!r}")
    return np.array(_edges(dt, bits))


class _Bins:
    """Survivor counts on disjoint magnitude intervals [lo, hi), assumed spread uniformly in |w| within each."""

    def __init__(self, lo: np.ndarray, hi: np.ndarray, counts: np.ndarray):
        self.lo, self.hi, self.counts = lo, hi, counts
        self.total = float(counts.sum())

    @classmethod
    def from_histogram(cls, histogram, edges: np.ndarray, where: str) -> _Bins:
        counts = np.asarray(histogram, dtype=np.float64)
        occupied = np.flatnonzero(counts)
        if occupied.size == 0:
            raise ValueError(f"{where}: the histogram has no survivors, so its observables are undefined")
        if not np.isfinite(edges[occupied[-1] + 1]):
            raise ValueError(
                f"{where}: {int(counts[~np.isfinite(edges[1:])].sum())} survivors are infinite; "
                f"rescaled observables need finite weights"
            )
        return cls(edges[occupied], edges[occupied + 1], counts[occupied])

    def cdf(self, x: np.ndarray) -> np.ndarray:
        """Survivors with |w| < x, for each x (piecewise linear between the bins' edges)."""
        x = np.asarray(x, dtype=np.float64)
        below = np.concatenate([[0.0], np.cumsum(self.counts)])
        j = np.searchsorted(self.hi, x, side="right")  # bins 0..j-1 lie wholly below x (bins are disjoint, sorted)
        inside = np.minimum(j, len(self.counts) - 1)
        share = np.clip((x - self.lo[inside]) / (self.hi[inside] - self.lo[inside]), 0.0, 1.0)
        return below[j] + np.where(j < len(self.counts), share * self.counts[inside], 0.0)

    def quantile(self, k: float) -> float:
        """The magnitude below which ``k`` survivors lie."""
        cum = np.concatenate([[0.0], np.cumsum(self.counts)])
        b = min(int(np.searchsorted(cum[1:], k, side="left")), len(self.counts) - 1)
        return float(self.lo[b] + (k - cum[b]) / self.counts[b] * (self.hi[b] - self.lo[b]))

    def keep_above(self, threshold: float, keep: float, where: str) -> _Bins:
        """The ``keep`` survivors at or above ``threshold``: bins above it, and ``keep`` minus their count in
        [threshold, hi) of the bin that holds it (exact counts when ``keep`` is; ValueError if inconsistent)."""
        above = self.lo > threshold
        holder = (self.lo <= threshold) & (threshold < self.hi)
        rest = keep - float(self.counts[above].sum())
        limit = float(self.counts[holder].sum())
        tolerance = 1e-9 * max(keep, 1.0)
        if rest < -tolerance or rest > limit + tolerance:
            raise ValueError(
                f"{where}: {keep:g} survivors at or above the threshold {threshold:.6g} do not fit the "
                f"histogram ({self.counts[above].sum():g} above it, {limit:g} in its bin): the threshold "
                f"key and the survivor counts must come from the same prune"
            )
        lo, hi, counts = self.lo[above], self.hi[above], self.counts[above]
        if holder.any() and rest > tolerance:
            lo = np.concatenate([[threshold], lo])
            hi = np.concatenate([self.hi[holder], hi])
            counts = np.concatenate([[min(rest, limit)], counts])
        return _Bins(lo, hi, counts)

    def mean(self) -> float:
        return float(self.counts @ (self.lo + self.hi)) / (2.0 * self.total)

    def abs_sum_below(self, x: float) -> float:
        """Σ|w| of the survivors with |w| < x."""
        top = np.minimum(self.hi, max(x, 0.0))
        share = np.clip((top - self.lo) / (self.hi - self.lo), 0.0, 1.0)
        return float((self.counts * share) @ ((self.lo + np.maximum(top, self.lo)) / 2.0))

    def sq_sum_below(self, x: float) -> float:
        """Σw² of the survivors with |w| < x (uniform in |w| within a bin: the mean of w² over [lo, top) is
        (lo² + lo·top + top²) / 3)."""
        top = np.minimum(self.hi, max(x, 0.0))
        share = np.clip((top - self.lo) / (self.hi - self.lo), 0.0, 1.0)
        upper = np.maximum(top, self.lo)
        return float((self.counts * share) @ ((self.lo**2 + self.lo * upper + upper**2) / 3.0))

    def on_bins(self, edges: np.ndarray, where: str) -> _Bins:
        """The same survivors as the kernels would bin them (on ``edges``), spread uniformly in each bin."""
        return _Bins.from_histogram(self.fractions(edges)[1:-1] * self.total, edges, where)

    def fractions(self, edges: np.ndarray) -> np.ndarray:
        """Share of the survivors below edges[0], in each [edges[i], edges[i+1]), and at or above edges[-1]."""
        cum = self.cdf(edges)
        return np.diff(np.concatenate([[0.0], cum, [self.total]])) / self.total


@dataclass(frozen=True)
class _RoundState:
    before: _Bins  # θ_n's survivors
    threshold: float  # t_n, the magnitude at which round n pruned (exact when the trace recorded its key)
    after: _Bins  # S_n, the survivors kept by round n's prune
    after_abs_sum: float  # Σ|w| over S_n (exact when the round recorded its prune)
    mean_excess: float  # m_n = mean(|w| - t_n) over S_n


def _pruned_count(trace: TraceLike, n: int) -> int:
    """How many of θ_n's survivors round n pruned: from its own record, else from round n+1's survivors (a
    trace of checkpoints), else the trace's pruning fraction; ValueError when none says."""
    r = trace.rounds[n]
    before = sum(r.histogram)
    if sum(r.counts) < before:
        return before - sum(r.counts)
    if n + 1 < len(trace.rounds) and sum(trace.rounds[n + 1].histogram) < before:
        return before - sum(trace.rounds[n + 1].histogram)
    if trace.fraction:
        k = prune_count(trace.fraction, before)
        if k > 0:
            return k
    raise ValueError(
        f"round {r.round} pruned nothing and nothing says how much it would prune: rescaled "
        f"observables need each round's threshold; give the trace its pruning fraction "
        f"(FlowTrace(..., fraction=p) or trace_from_checkpoints(..., fraction=p))"
    )


def _round_state(trace: TraceLike, n: int, edges: np.ndarray) -> _RoundState:
    r = trace.rounds[n]
    where = f"round {r.round}"
    before = _Bins.from_histogram(r.histogram, edges, where)
    k = _pruned_count(trace, n)
    if k >= before.total:
        raise ValueError(f"{where} pruned all of its {before.total:g} survivors: nothing is left to rescale")
    recorded = sum(r.counts) == before.total - k  # this round's own prune: exact key and sums
    if recorded and r.threshold_key is not None:
        threshold = key_to_magnitude(r.threshold_key, _dtype(trace.dtype))
    else:
        threshold = before.quantile(k)
    after = before.keep_above(threshold, before.total - k, where)
    abs_sum = sum(r.abs_sums) if recorded else after.mean() * after.total
    return _RoundState(before, threshold, after, abs_sum, _mean_excess(abs_sum, after.total, threshold, where))


def _mean_excess(abs_sum: float, count: float, threshold: float, where: str) -> float:
    excess = abs_sum / count - threshold
    if not excess > 0:
        raise ValueError(
            f"{where}: every survivor equals the threshold {threshold:.6g}, so the excess over it has no scale"
        )
    return excess


def round_thresholds(trace: TraceLike) -> np.ndarray:
    """The magnitude at which each round pruned: exact from the recorded key, else interpolated in its bin of
    the histogram (traces of version 1, or of checkpoints), else the would-be threshold of the trace's
    pruning fraction. ``FlowTrace.thresholds()`` calls this."""
    if not trace.rounds:
        raise ValueError("the trace has no rounds yet")
    edges = magnitude_bin_edges(trace.dtype, trace.bits)
    return np.array([_round_state(trace, n, edges).threshold for n in range(len(trace.rounds))])


# ------------------------------------------------------------------------------------------------------
# Each observable of a trace (the registry below names them), and its pruning-only prediction
# ------------------------------------------------------------------------------------------------------


def _histogram(trace: TraceLike, *, coarsen: int) -> np.ndarray:
    if isinstance(coarsen, bool) or not isinstance(coarsen, int) or coarsen < 1 or (1 << trace.bits) % coarsen:
        raise ValueError(f"coarsen must divide {1 << trace.bits}, got {coarsen}")
    counts = np.array([r.histogram for r in trace.rounds], dtype=np.float64)
    h = counts.reshape(len(trace.rounds), -1, coarsen).sum(axis=2)
    totals = h.sum(axis=1, keepdims=True)
    if np.any(totals == 0):
        raise ValueError("a round has no surviving weights: its histogram cannot be normalized")
    return h / totals


def _log_relative_of(survivors: _Bins, threshold: float) -> np.ndarray:
    return survivors.fractions(threshold * np.exp2(LOG_RELATIVE_EDGES))


def _excess_of(kept: _Bins, threshold: float, mean_excess: float) -> np.ndarray:
    return kept.fractions(threshold + mean_excess * EXCESS_EDGES)[1:]


def _per_round(trace: TraceLike, row: Callable[[_RoundState], np.ndarray]) -> np.ndarray:
    edges = magnitude_bin_edges(trace.dtype, trace.bits)
    return np.array([row(_round_state(trace, n, edges)) for n in range(len(trace.rounds))])


def _log_relative(trace: TraceLike) -> np.ndarray:
    return _per_round(trace, lambda s: _log_relative_of(s.before, s.threshold))


def _excess(trace: TraceLike) -> np.ndarray:
    return _per_round(trace, lambda s: _excess_of(s.after, s.threshold, s.mean_excess))


def _per_tensor(trace: TraceLike, field_name: str = "counts") -> np.ndarray:
    return np.array([getattr(r, field_name) for r in trace.rounds], dtype=np.float64)


def _layer_density(trace: TraceLike) -> np.ndarray:
    return _per_tensor(trace) / np.maximum(np.array(trace.tensor_sizes, dtype=np.float64), 1)


def _density_profile(trace: TraceLike) -> np.ndarray:
    counts, sizes = _per_tensor(trace), np.array(trace.tensor_sizes, dtype=np.float64)
    overall = counts.sum(axis=1, keepdims=True) / max(sizes.sum(), 1)
    if np.any(overall == 0):
        raise ValueError("a round has no surviving weights: its density profile is undefined")
    return counts / np.maximum(sizes, 1) / overall


def _layer_scale(trace: TraceLike) -> np.ndarray:
    return np.sqrt(_per_tensor(trace, "sq_sums") / np.maximum(_per_tensor(trace), 1))


@dataclass(frozen=True)
class _PrunedAgain:
    """Round n+1 as pruning alone would leave it: round n's kept survivors S_n, pruned again by the number round
    n+1 pruned, with no training in between. What a prediction needs is computed when it asks (the histogram's
    needs none of it, so it stays defined where round n+1's count is unknown)."""

    trace: TraceLike
    n: int
    previous: _RoundState  # round n
    edges: np.ndarray  # the kernels' bin edges

    @property
    def kept(self) -> _Bins:
        """S_n, exactly as round n's prune left them (its lowest bin starts at t_n)."""
        return self.previous.after

    @property
    def where(self) -> str:
        return f"round {self.trace.rounds[self.n + 1].round}"

    def pruned(self) -> int:
        return _pruned_count(self.trace, self.n + 1)

    def binned(self) -> _Bins:
        """What the kernels would report for round n+1: S_n on their bins."""
        return self.kept.on_bins(self.edges, self.where)

    def threshold(self) -> float:
        # From S_n itself, which knows that round n's threshold bin starts at t_n.
        return self.kept.quantile(self.pruned())

    def state(self) -> _RoundState:
        binned, k = self.binned(), self.pruned()
        threshold = self.kept.quantile(k)
        survivors = binned.keep_above(threshold, binned.total - k, self.where)
        abs_sum = self.previous.after_abs_sum - self.kept.abs_sum_below(threshold)
        mean_excess = _mean_excess(abs_sum, survivors.total, threshold, self.where)
        return _RoundState(binned, threshold, survivors, abs_sum, mean_excess)


def _histogram_pruned(p: _PrunedAgain, *, coarsen: int) -> np.ndarray:
    return p.kept.fractions(p.edges[::coarsen])[1:-1]


def _log_relative_pruned(p: _PrunedAgain) -> np.ndarray:
    return _log_relative_of(p.binned(), p.threshold())


def _excess_pruned(p: _PrunedAgain) -> np.ndarray:
    s = p.state()
    return _excess_of(s.after, s.threshold, s.mean_excess)


# ------------------------------------------------------------------------------------------------------
# The flow pruning alone would produce, from a trace (rgprune.rg.reference builds the trace of it)
# ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PrunedRound:
    """One round of the flow pruning alone would produce (``pruning_only_rounds``): the survivors' histogram on the
    kernels' bins before the round's prune, the threshold it pruned at, and the kept survivors' count, Σ|w|, Σw²."""

    round: int
    histogram: np.ndarray  # int64, exact
    threshold: float  # exact in round 0 (the run's key), interpolated in its bin after
    kept: int  # exact: the run's own survivor count
    abs_sum: float  # exact in round 0, then less the pruned weights' sum spread uniformly in their bins
    sq_sum: float  # likewise
    sq_sum_before: float  # Σw² of the histogram's survivors: the previous round's sq_sum (round 0: estimated)


def _kept_histogram(histogram: np.ndarray, bin_of_threshold: int, kept: int) -> np.ndarray:
    """The histogram of the ``kept`` largest survivors when the threshold lies in bin ``bin_of_threshold``."""
    out = histogram.copy()
    out[:bin_of_threshold] = 0
    out[bin_of_threshold] = kept - int(histogram[bin_of_threshold + 1 :].sum())
    return out


def pruning_only_rounds(trace: TraceLike) -> list[PrunedRound]:
    """The flow pruning alone would produce from the trace's round-0 weights on the trace's schedule: round 0 is the
    run's own; round n + 1 holds the weights round n kept, untrained, pruned by as many as the run's round n + 1
    pruned. The histograms and counts are exact: without training no weight changes bin, so every bin keeps its
    count but the one a threshold cuts, and the run's counts say how many each prune keeps. The thresholds'
    places inside their bins, and the sums after round 0, assume weights spread uniformly in |w| within a bin (the
    kept part of a cut bin starts at the threshold, which the chain remembers)."""
    if not trace.rounds:
        raise ValueError("the trace has no rounds yet")
    edges = magnitude_bin_edges(trace.dtype, trace.bits)
    first = _round_state(trace, 0, edges)
    r0 = trace.rounds[0]
    histogram = np.array(r0.histogram, dtype=np.int64)
    recorded = sum(r0.counts) == first.after.total  # round 0's own prune: exact sums
    sq_sum = float(sum(r0.sq_sums)) if recorded else first.after.sq_sum_below(np.inf)
    before = sq_sum + first.before.sq_sum_below(first.threshold)
    rounds = [
        PrunedRound(r0.round, histogram, first.threshold, int(first.after.total), first.after_abs_sum, sq_sum, before)
    ]
    kept_bins, abs_sum = first.after, first.after_abs_sum
    for n in range(1, len(trace.rounds)):
        b = int(np.searchsorted(edges, rounds[-1].threshold, side="right")) - 1
        histogram = _kept_histogram(rounds[-1].histogram, b, rounds[-1].kept)
        k = _pruned_count(trace, n)
        where = f"pruning-only round {trace.rounds[n].round}"
        if k >= kept_bins.total:
            raise ValueError(f"{where} would prune all of its {kept_bins.total:g} survivors")
        threshold, before = kept_bins.quantile(k), sq_sum
        abs_sum -= kept_bins.abs_sum_below(threshold)
        sq_sum -= kept_bins.sq_sum_below(threshold)
        kept_bins = kept_bins.keep_above(threshold, kept_bins.total - k, where)
        rounds.append(
            PrunedRound(trace.rounds[n].round, histogram, threshold, int(kept_bins.total), abs_sum, sq_sum, before)
        )
    return rounds


# ------------------------------------------------------------------------------------------------------
# The registry: the one list of observables
# ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BinAxis:
    """The fixed bins of an observable whose columns are fractions of the survivors: the report's heatmap."""

    edges: np.ndarray  # column ``first + i`` holds the share in [edges[i], edges[i+1])
    first: int  # columns before it, and after the last bin, lie outside the edges
    label: str  # what the edges measure (the heatmap's x axis)
    rows: str | None = None  # what a row is, where it is not the trained weights before the round's prune


@dataclass(frozen=True)
class Observable:
    """One observable of a flow: everything the trace, the step split, the report and the CLI know about it.

    ``compute(trace, **options)``: (rounds, columns), given the options' values (defaults filled in) and a
    trace with rounds. ``description``: one line (CLI help). ``note``: what it can and cannot show (every
    report). ``pruning_only(_PrunedAgain, **options)``: the row pruning alone would give at round n+1; None
    when the trace cannot predict it, and then ``step_split`` refuses the observable. ``options``: the
    observable's own keyword options and their defaults. ``reported``: fitted by every report (in registry
    order; the first is the main observable). ``axis``: its bins, for the report's heatmap (None: no heatmap).
    """

    name: str
    compute: Callable[..., np.ndarray]
    description: str
    note: str
    pruning_only: Callable[..., np.ndarray] | None = None
    options: Mapping[str, object] = field(default_factory=dict)
    reported: bool = False
    axis: BinAxis | None = None

    @property
    def splits(self) -> bool:
        """Whether ``step_split`` divides its steps into a pruning part and a training part."""
        return self.pruning_only is not None


_REGISTRY = {
    o.name: o
    for o in (
        Observable(
            "excess",
            _excess,
            "the survivors each round keeps as (|w| − t_n)/m_n, their excess over its threshold t_n in units of "
            "its mean m_n: has a fixed point under pruning alone",
            "the survivors kept by each round's prune as (|w| − t_n) / m_n, their excess over the round's "
            "threshold t_n in units of its mean m_n. Has a fixed point under pruning alone (Exp(1) for light "
            "tails), so what keeps it moving is training. Cannot show the pruned weights, the overall scale "
            "(divided out) or per-layer differences.",
            _excess_pruned,
            reported=True,
            axis=BinAxis(
                EXCESS_EDGES,
                0,
                "(|w| − t_n) / mean excess (survivors after the round's prune)",
                "round n (survivors after its prune)",
            ),
        ),
        Observable(
            "log-relative",
            _log_relative,
            "the trained survivors as log2(|w|/t_n), in octaves from the round's threshold",
            "the trained survivors (before the round's prune) as log2(|w| / t_n), in octaves from the "
            "round's threshold. Has a fixed point under pruning alone only for scale-free tails: light "
            "tails pile up just above the threshold round after round. Cannot show the absolute scale or "
            "per-layer differences.",
            _log_relative_pruned,
            reported=True,
            axis=BinAxis(LOG_RELATIVE_EDGES, 1, "log2(|w| / t_n)"),
        ),
        Observable(
            "histogram",
            _histogram,
            "fractions of the trained survivors on the kernels' fixed log2|w| bins: pruning alone moves it every "
            "round, so it has no fixed point",
            "fractions of the trained survivors on the kernels' fixed log2|w| bins (4 per octave). Pruning "
            "alone moves it every round, so it cannot have a fixed point and its steps mostly measure the "
            "pruning mechanics, not training.",
            _histogram_pruned,
            options={"coarsen": 4},  # adjacent bins merged: 4 per octave for float32
            reported=True,
        ),
        Observable(
            "density-profile",
            _density_profile,
            "each tensor's density over the global density (1: thinned like the whole model)",
            "each tensor's density after the round's prune divided by the global density (1: thinned "
            "like the whole model). A stable allocation of survivors among layers is a fixed point. "
            "Cannot show anything about magnitudes.",
            reported=True,
        ),
        Observable(
            "layer-density",
            _layer_density,
            "each tensor's surviving fraction after the round's prune",
            "each tensor's surviving fraction after the round's prune: shrinks by (1 − p) per round in "
            "every layer, so it has no fixed point.",
        ),
        Observable(
            "layer-scale",
            _layer_scale,
            "root-mean-square |w| of each tensor's survivors",
            "root-mean-square |w| of each tensor's survivors: grows as small weights go, no fixed point under pruning.",
        ),
    )
}
#: every observable of a flow, by name: the one list (``FlowTrace.trajectory``, ``step_split``, the reports,
#: the CLI's ``--observable`` and docs/DESIGN.md's table draw from it); adding one is adding an entry here
OBSERVABLES: Mapping[str, Observable] = MappingProxyType(_REGISTRY)  # read-only: entries go in _REGISTRY
#: the observables a report fits by default, the first being its main one (step split, figures, CLI summary)
DEFAULT_OBSERVABLES = tuple(name for name, o in OBSERVABLES.items() if o.reported)
#: the observables whose pruning-only step ``step_split`` can predict from the histogram
SPLIT_KINDS = tuple(name for name, o in OBSERVABLES.items() if o.splits)


def observable(kind: str) -> Observable:
    """The registry's entry for ``kind``; ValueError naming the observables when there is none."""
    if not isinstance(kind, str) or kind not in OBSERVABLES:
        raise ValueError(f"unknown observable kind {kind!r}; choose one of {tuple(OBSERVABLES)}")
    return OBSERVABLES[kind]


def observables_help() -> str:
    """One clause per observable, from the registry's descriptions (the CLI's ``--observable`` help)."""
    return "; ".join(f"{name}: {o.description}" for name, o in OBSERVABLES.items())


def _option_values(entry: Observable, options: Mapping[str, object]) -> dict:
    """The observable's options with defaults filled in (None = the default); ValueError for one it lacks."""
    given = {k: v for k, v in options.items() if v is not None}
    for name in given:
        if name not in entry.options:
            takers = [repr(n) for n, o in OBSERVABLES.items() if name in o.options]
            if not takers:
                raise ValueError(f"no observable takes an option {name!r}; {entry.name!r} takes {list(entry.options)}")
            raise ValueError(
                f"{name} applies to the {', '.join(takers)} observable{'s' * (len(takers) > 1)} only, not "
                f"{entry.name!r}; leave it out"
            )
    return {**entry.options, **given}


def trajectory(trace: TraceLike, kind: str, **options) -> np.ndarray:
    """(rounds, columns) of observable ``kind`` (``OBSERVABLES``) over the trace's rounds; ``FlowTrace.trajectory``
    calls this. ``options``: the observable's own (e.g. ``coarsen`` for ``"histogram"``); None: the default."""
    entry = observable(kind)
    values = _option_values(entry, options)
    if not trace.rounds:
        raise ValueError("the trace has no rounds yet")
    return entry.compute(trace, **values)


@dataclass(frozen=True)
class StepSplit:
    """Each step O_{n-1} → O_n of an observable, split into what pruning alone causes and the rest (training).

    ``rounds[i]`` is the round n that step i arrives at (the report table's row: step n = from n − 1 to n).
    ``total``, ``pruning``, ``training``: ‖O_n − O_{n-1}‖, ‖P_n − O_{n-1}‖ and ‖O_n − P_n‖, each divided by
    ‖O_{n-1}‖ (Euclidean norms, like ``step_sizes``), where P_n (row i of ``predicted``) is the pruning-only
    prediction of O_n from round n − 1. total ≤ pruning + training (triangle inequality).
    """

    kind: str
    rounds: np.ndarray
    total: np.ndarray
    pruning: np.ndarray
    training: np.ndarray
    predicted: np.ndarray


def _check_consecutive(trace: TraceLike, kept: _Bins, n: int) -> None:
    later = trace.rounds[n + 1]
    if abs(kept.total - sum(later.histogram)) > 0.5:
        raise ValueError(
            f"round {later.round} has {sum(later.histogram)} survivors but round "
            f"{trace.rounds[n].round} kept {kept.total:g}: the rounds must be consecutive rounds of "
            f"one flow"
        )


def step_split(trace: TraceLike, kind: str = "excess", **options) -> StepSplit:
    """Split each step of ``trace.trajectory(kind, **options)`` into its pruning-only part and its training part.

    Defined for the observables with a pruning-only prediction (``SPLIT_KINDS``); the layer observables would
    need per-layer histograms, which the kernels do not return. For a flow that was only pruned (no training)
    the training part is exactly 0 for ``"histogram"`` and within bin quantization of 0 for the rescaled kinds
    (the module docstring says why).
    """
    entry = OBSERVABLES.get(kind) if isinstance(kind, str) else None
    if entry is None or not entry.splits:
        raise ValueError(
            f"the pruning-only step is defined for {SPLIT_KINDS}, not {kind!r}: layer observables "
            f"would need per-layer histograms, which the trace does not record"
        )
    if len(trace.rounds) < 2:
        raise ValueError(f"the trace has {len(trace.rounds)} round(s); a step needs at least 2")
    observed = trajectory(trace, kind, **options)
    values = _option_values(entry, options)
    edges = magnitude_bin_edges(trace.dtype, trace.bits)
    states = [_round_state(trace, n, edges) for n in range(len(trace.rounds) - 1)]
    predicted = []
    for n, state in enumerate(states):
        _check_consecutive(trace, state.after, n)
        predicted.append(entry.pruning_only(_PrunedAgain(trace, n, state, edges), **values))
    predicted = np.array(predicted)
    scale = np.linalg.norm(observed[:-1], axis=1)
    return StepSplit(
        kind,
        np.array([r.round for r in trace.rounds[1:]]),
        np.linalg.norm(observed[1:] - observed[:-1], axis=1) / scale,
        np.linalg.norm(predicted - observed[:-1], axis=1) / scale,
        np.linalg.norm(observed[1:] - predicted, axis=1) / scale,
        predicted,
    )
