"""FlowTrace: the RG observables of an IMP run, one record per round.

The observables come out of the kernels' own passes (docs/DESIGN.md, "Observing the flow through the kernels'
passes"): the histogram that selects a round's threshold *is* the histogram of that round's trained survivors
on fixed logarithmic bins (the top 12 bits of the magnitude key: 16 bins per octave for float32), and
``apply_threshold_`` returns the per-tensor count, Σ|w| and Σw² of the survivors from the pruning pass itself.
Recording a trace therefore costs no pass over the weights. ``rgprune.rg.checkpoints.trace_from_checkpoints``
computes the same records from checkpoints on disk, one tensor at a time. The observables of a trace are
``rgprune.rg.observables``' (``OBSERVABLES``, the registry): ``FlowTrace.trajectory`` delegates to it.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from rgprune._io import atomic_write_json
from rgprune.kernels.format import KEY_BITS, RADIX_BITS
from rgprune.rg import observables

#: version 2 added ``TraceRound.threshold_key``; version 1 files still load (their rounds have no key)
TRACE_VERSION = 2
READABLE_VERSIONS = (1, 2)


@dataclass
class TraceRound:
    """Observables of one IMP round n.

    ``histogram``: survivors of the trained weights θ_n (mask m_n) per magnitude bin, before pruning.
    ``counts``, ``abs_sums``, ``sq_sums``: per tensor, of the survivors kept for the next round (after
    pruning; equal to θ_n's survivors for a round that did not prune). ``density``: surviving fraction of
    the prunable weights after the round. ``metrics``: whatever the run measured (accuracy, ...).
    ``threshold_key``: magnitude key of the round's pruning threshold (``Threshold.key``; survivors kept have
    keys ≥ it), None for a round that did not prune or a trace recorded before version 2 (the rescaled
    observables then interpolate the threshold in the histogram).
    """

    round: int
    density: float
    histogram: list[int]
    counts: list[int]
    abs_sums: list[float]
    sq_sums: list[float]
    metrics: dict = field(default_factory=dict)
    threshold_key: int | None = None


@dataclass
class FlowTrace:
    """Per-round observables of one flow, for tensors ``tensor_names`` of ``tensor_sizes`` weights."""

    tensor_names: list[str]
    tensor_sizes: list[int]
    dtype: str = "float32"
    bits: int = RADIX_BITS
    fraction: float | None = None
    rounds: list[TraceRound] = field(default_factory=list)
    source: str = ""

    # ---- recording ----------------------------------------------------------------------------------
    def record(
        self,
        round: int,
        histogram: torch.Tensor,
        counts: torch.Tensor,
        abs_sums: torch.Tensor,
        sq_sums: torch.Tensor,
        metrics: dict | None = None,
        *,
        threshold_key: int | None = None,
    ) -> TraceRound:
        """Append a round from kernel outputs (tensors on any device; copied to the host here).

        ``threshold_key``: the round's ``Threshold.key`` when it pruned (None or -1: it did not, or unknown).
        """
        hist = [int(x) for x in histogram.tolist()]
        if len(hist) != 1 << self.bits:
            raise ValueError(f"histogram has {len(hist)} bins, this trace uses {1 << self.bits} ({self.bits} bits)")
        counts_l = [int(x) for x in counts.tolist()]
        if len(counts_l) != len(self.tensor_names):
            raise ValueError(f"got stats for {len(counts_l)} tensors, the trace has {len(self.tensor_names)}")
        if self.rounds and round <= self.rounds[-1].round:
            raise ValueError(f"round {round} recorded after round {self.rounds[-1].round}: rounds must increase")
        if sum(counts_l) > sum(hist):
            raise ValueError(
                f"round {round}: {sum(counts_l)} survivors after pruning but only {sum(hist)} in the "
                f"histogram before it; pass the histogram and stats of one prune"
            )
        key = self._check_threshold_key(round, threshold_key, hist, sum(counts_l))
        total = sum(self.tensor_sizes)
        entry = TraceRound(
            round,
            sum(counts_l) / total if total else 1.0,
            hist,
            counts_l,
            [float(x) for x in abs_sums.tolist()],
            [float(x) for x in sq_sums.tolist()],
            dict(metrics or {}),
            key,
        )
        self.rounds.append(entry)
        return entry

    def _check_threshold_key(self, round: int, key, hist: list[int], kept: int) -> int | None:
        """The key to store (None when the round did not prune); ValueError when it cannot have made ``kept``."""
        if key is None or key == -1:
            return None
        key_bits = KEY_BITS[getattr(torch, self.dtype)]
        if isinstance(key, bool) or not isinstance(key, int) or not 0 <= key < 1 << key_bits:
            raise ValueError(
                f"threshold_key must be an int in [0, 2**{key_bits}) (Threshold.key), or None; got {key!r}"
            )
        if kept == sum(hist):
            return None  # the threshold pruned nothing (k = 0)
        b = key >> (key_bits - self.bits)
        above = sum(hist[b + 1 :])
        if not above <= kept <= above + hist[b]:
            raise ValueError(
                f"round {round}: threshold_key {key} lies in bin {b}, which cannot leave {kept} "
                f"survivors ({above} above that bin, {hist[b]} in it); pass the key of the "
                f"threshold that made these counts (report.threshold.key)"
            )
        return key

    def record_prune(self, round: int, report, metrics: dict | None = None) -> TraceRound:
        """Append a round from a ``GlobalMagnitudePruner.prune`` report: the threshold pass's histogram
        (θ_n's survivors), the threshold and the apply pass's per-tensor statistics — no extra pass over the
        weights."""
        return self.record(
            round,
            report.threshold.histogram,
            report.stats.counts,
            report.stats.abs_sums,
            report.stats.sq_sums,
            metrics,
            threshold_key=int(report.threshold.key),
        )

    def record_stats(self, round: int, stats, metrics: dict | None = None) -> TraceRound:
        """Append a round from ``magnitude_histogram`` statistics (a round that did not prune)."""
        if len(stats.histogram) != 1 << self.bits:
            raise ValueError(
                f"record_stats needs a {self.bits}-bit histogram; call magnitude_histogram(..., bits={self.bits})"
            )
        return self.record(round, stats.histogram, stats.counts, stats.abs_sums, stats.sq_sums, metrics)

    # ---- observables --------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.rounds)

    def bin_lower_edges(self) -> np.ndarray:
        """Magnitude |w| at the lower edge of every histogram bin (``inf`` for the bins of Inf/NaN keys)."""
        return observables.magnitude_bin_edges(self.dtype, self.bits)[:-1]

    def thresholds(self) -> np.ndarray:
        """Each round's pruning threshold |w| (``rgprune.rg.observables.round_thresholds``)."""
        return observables.round_thresholds(self)

    def histograms(self) -> np.ndarray:
        """(rounds, bins) survivor counts."""
        return np.array([r.histogram for r in self.rounds], dtype=np.float64)

    def trajectory(self, kind: str = "histogram", **options) -> np.ndarray:
        """The flow as an array (rounds, columns) of observable ``kind``, normalized so that models of different
        sizes compare. The observables, what each can show and their options (``coarsen`` for ``"histogram"``:
        adjacent bins merged, default 4) are in the registry ``rgprune.rg.observables.OBSERVABLES``.
        ``"histogram"``, on the kernels' fixed bins, moves under pruning alone every round; ``"excess"`` can
        have a fixed point."""
        return observables.trajectory(self, kind, **options)

    # ---- persistence --------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        return {"version": TRACE_VERSION, **asdict(self)}

    @classmethod
    def from_dict(cls, data: dict) -> FlowTrace:
        if data.get("version") not in READABLE_VERSIONS:
            raise ValueError(
                f"unsupported trace version {data.get('version')!r} (this rgprune reads versions "
                f"{READABLE_VERSIONS}); upgrade rgprune to read it"
            )
        body = {k: v for k, v in data.items() if k != "version"}
        body["rounds"] = [TraceRound(**r) for r in body.get("rounds", [])]
        return cls(**body)

    def save(self, path: str | os.PathLike) -> None:
        atomic_write_json(path, self.to_dict())

    @classmethod
    def load(cls, path: str | os.PathLike) -> FlowTrace:
        with open(path) as f:
            return cls.from_dict(json.load(f))
