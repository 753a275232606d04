"""FlowTrace: the RG observables of an IMP run, one record per round.

The observables come out of the kernels' own passes (docs/DESIGN.md, "Observing the flow through the kernels'
passes"): the histogram that selects a round's threshold *is* the histogram of that round's trained survivors
on fixed logarithmic bins (the top 12 bits of the magnitude key: 16 bins per octave for float32), and
``apply_threshold_`` returns the per-tensor count, Σ|w| and Σw² of the survivors from the pruning pass itself.
Recording a trace therefore costs no pass over the weights. ``trace_from_checkpoints`` computes the same records
from checkpoints on disk, one tensor at a time.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from rgprune import prunable
from rgprune._io import atomic_write_json
from rgprune.kernels.format import KEY_BITS, RADIX_BITS, pack_mask
from rgprune.rg.observables import magnitude_bin_edges, rescaled_trajectory, round_thresholds

#: version 2 added ``TraceRound.threshold_key``; version 1 files still load (their rounds have no key)
TRACE_VERSION = 2
READABLE_VERSIONS = (1, 2)
OBSERVABLES = ("histogram", "log-relative", "excess", "layer-density", "density-profile", "layer-scale")


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
        return magnitude_bin_edges(self.dtype, self.bits)[:-1]

    def thresholds(self) -> np.ndarray:
        """Each round's pruning threshold |w| (``rgprune.rg.observables.round_thresholds``)."""
        return round_thresholds(self)

    def histograms(self) -> np.ndarray:
        """(rounds, bins) survivor counts."""
        return np.array([r.histogram for r in self.rounds], dtype=np.float64)

    def trajectory(self, kind: str = "histogram", coarsen: int | None = None) -> np.ndarray:
        """The flow as an array (rounds, observables), normalized so models of different sizes compare.

        ``"histogram"``: fraction of the surviving weights per magnitude bin on the kernels' fixed bins,
        ``coarsen`` adjacent bins merged (default 4 -> 4 bins per octave for float32); pruning alone moves it
        every round, so it cannot have a fixed point. ``"excess"`` and ``"log-relative"``: the survivors'
        magnitudes rescaled by the round's threshold (``rgprune.rg.observables`` says how, why, and what
        each can show). ``"layer-density"``: surviving fraction per tensor after the round's prune.
        ``"density-profile"``: that divided by the global density (1 = thinned like the whole model).
        ``"layer-scale"``: root-mean-square magnitude of each tensor's survivors.
        """
        if kind not in OBSERVABLES:
            raise ValueError(f"unknown observable kind {kind!r}; choose one of {OBSERVABLES}")
        if coarsen is not None and kind != "histogram":
            raise ValueError(f"coarsen applies to the 'histogram' observable only, not {kind!r}; leave it out")
        if not self.rounds:
            raise ValueError("the trace has no rounds yet")
        if kind == "histogram":
            coarsen = 4 if coarsen is None else coarsen
            if isinstance(coarsen, bool) or not isinstance(coarsen, int) or coarsen < 1 or (1 << self.bits) % coarsen:
                raise ValueError(f"coarsen must divide {1 << self.bits}, got {coarsen}")
            h = self.histograms().reshape(len(self.rounds), -1, coarsen).sum(axis=2)
            totals = h.sum(axis=1, keepdims=True)
            if np.any(totals == 0):
                raise ValueError("a round has no surviving weights: its histogram cannot be normalized")
            return h / totals
        if kind in ("log-relative", "excess"):
            return rescaled_trajectory(self, kind)
        counts = np.array([r.counts for r in self.rounds], dtype=np.float64)
        if kind == "layer-scale":
            sq = np.array([r.sq_sums for r in self.rounds], dtype=np.float64)
            return np.sqrt(sq / np.maximum(counts, 1))
        sizes = np.array(self.tensor_sizes, dtype=np.float64)
        layer = counts / np.maximum(sizes, 1)
        if kind == "layer-density":
            return layer
        overall = counts.sum(axis=1, keepdims=True) / max(sizes.sum(), 1)
        if np.any(overall == 0):
            raise ValueError("a round has no surviving weights: its density profile is undefined")
        return layer / overall

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


# ------------------------------------------------------------------------------------------------------
# From checkpoints on disk, one tensor at a time
# ------------------------------------------------------------------------------------------------------


class _Checkpoint:
    """Read-only view of one checkpoint: tensor names, and one tensor at a time."""

    def __init__(self, path: str | os.PathLike):
        self.path = os.fspath(path)
        if not os.path.isfile(self.path):
            raise FileNotFoundError(f"checkpoint {self.path} does not exist")
        if self.path.endswith(".safetensors"):
            self._index = _safetensors_index(self.path)
            self.names = list(self._index)
            self._get = self._read_safetensors
        else:  # torch.save'd state_dict: memory-mapped, so tensors are read only when touched
            try:
                state = torch.load(self.path, map_location="cpu", mmap=True, weights_only=True)
            except Exception as exc:
                raise ValueError(
                    f"{self.path} is neither a safetensors file nor a torch.save'd state_dict "
                    f"({type(exc).__name__}: {exc})"
                ) from None
            if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
                state = state["state_dict"]
            if not isinstance(state, dict):
                raise ValueError(f"{self.path} holds a {type(state).__name__}, not a state_dict")
            self._state = {k: v for k, v in state.items() if isinstance(v, torch.Tensor)}
            self.names = list(self._state)
            self._get = self._state.__getitem__

    def get(self, name: str) -> torch.Tensor:
        return self._get(name)

    def _read_safetensors(self, name: str) -> torch.Tensor:
        # Plain reads into a fresh buffer rather than a memory map: a mapped file's touched pages stay in
        # the process's resident set, so memory would grow with the model after all.
        dtype, shape, (start, end) = self._index[name]
        out = torch.empty(shape, dtype=dtype)
        if end > start:
            with open(self.path, "rb") as f:
                f.seek(start)
                f.readinto(out.view(-1).view(torch.uint8).numpy())
        return out


_SAFETENSORS_DTYPES = {
    "F64": torch.float64,
    "F32": torch.float32,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "I64": torch.int64,
    "I32": torch.int32,
    "I16": torch.int16,
    "I8": torch.int8,
    "U8": torch.uint8,
    "BOOL": torch.bool,
}


def _safetensors_index(path: str) -> dict:
    """name -> (dtype, shape, absolute byte range) from a safetensors header (8-byte length + JSON)."""
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) != 8:
            raise ValueError(f"{path} is not a safetensors file (too short)")
        size = int.from_bytes(head, "little")
        try:
            header = json.loads(f.read(size))
        except (ValueError, UnicodeDecodeError):
            raise ValueError(f"{path} is not a safetensors file (unreadable header)") from None
    index = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        if entry["dtype"] not in _SAFETENSORS_DTYPES:
            continue  # e.g. float8: never a prunable weight here
        start, end = entry["data_offsets"]
        index[name] = (_SAFETENSORS_DTYPES[entry["dtype"]], entry["shape"], (8 + size + start, 8 + size + end))
    return index


def _prunable_names(ckpt: _Checkpoint, include: Sequence[str] | None, exclude: Sequence[str]) -> list[str]:
    """The checkpoint's tensors in ``rgprune.prunable``'s default set (or matching ``include``), less ``exclude``."""
    chosen = []
    for name in ckpt.names:
        if name.endswith("_mask"):
            continue
        base = name[: -len("_orig")] if name.endswith("_orig") else name  # torch.prune's reparametrization
        if include is not None:
            take = prunable.matches(base, include)
        else:
            t = ckpt.get(name)
            take = prunable.is_default_prunable(base, prunable.tensor_kind(base, t.dim(), t.dtype))
        if take and not prunable.matches(base, exclude):
            chosen.append(name)
    return chosen


def _survivor_mask(ckpt: _Checkpoint, name: str, weight: torch.Tensor) -> torch.Tensor:
    """Bit-packed survivors: torch.prune's ``<name>_mask`` when the checkpoint has one, else w != 0."""
    if name.endswith("_orig"):
        mask_name = name[: -len("_orig")] + "_mask"
        if mask_name in ckpt.names:
            return pack_mask(ckpt.get(mask_name) != 0)
    return pack_mask(weight != 0)


def trace_from_checkpoints(
    paths: Sequence[str | os.PathLike],
    include: Sequence[str] | None = None,
    exclude: Sequence[str] = (),
    fraction: float | None = None,
    metrics: Sequence[dict] | None = None,
) -> FlowTrace:
    """The FlowTrace of a sequence of checkpoints (round 0, 1, ...), streamed one tensor at a time.

    Accepts safetensors files and ``torch.save``'d state_dicts (memory-mapped). Prunable tensors are
    chosen like ``GlobalMagnitudePruner``'s default (conv/linear ``weight`` tensors of dim >= 2, no
    embeddings or classifier heads) unless ``include``/``exclude`` fnmatch patterns say otherwise;
    survivors are the nonzero weights (or torch.prune's ``weight_mask`` where present). Memory: one
    tensor (plus its bit mask) at a time, whatever the model's size.
    """
    from rgprune.ops import magnitude_histogram

    if not paths:
        raise ValueError("no checkpoints given: pass at least one file")
    trace = None
    for index, path in enumerate(paths):
        ckpt = _Checkpoint(path)
        names = _prunable_names(ckpt, include, exclude)
        if not names:
            raise ValueError(f"{path}: no prunable tensors found (conv/linear weights); pass --include patterns")
        if trace is None:
            dtype = ckpt.get(names[0]).dtype
            trace = FlowTrace(
                [n.removesuffix("_orig") for n in names],
                [ckpt.get(n).numel() for n in names],
                dtype=str(dtype).removeprefix("torch."),
                fraction=fraction,
                source=", ".join(os.fspath(p) for p in paths),
            )
        elif [n.removesuffix("_orig") for n in names] != trace.tensor_names:
            raise ValueError(
                f"{path} has other prunable tensors than {paths[0]}: the checkpoints must come from one architecture"
            )
        hist = torch.zeros(1 << trace.bits, dtype=torch.int64)
        counts, abs_sums, sq_sums = [], [], []
        for name in names:
            weight = ckpt.get(name).contiguous()
            if str(weight.dtype).removeprefix("torch.") != trace.dtype:
                raise ValueError(f"{path}: {name} is {weight.dtype}, the trace is {trace.dtype}; one dtype please")
            stats = magnitude_histogram([weight], [_survivor_mask(ckpt, name, weight)], trace.bits)
            hist += stats.histogram
            counts.append(stats.counts[0])
            abs_sums.append(stats.abs_sums[0])
            sq_sums.append(stats.sq_sums[0])
            del weight, stats
        extra = dict(metrics[index]) if metrics is not None else {}
        extra.setdefault("checkpoint", os.fspath(path))
        trace.record(index, hist, torch.stack(counts), torch.stack(abs_sums), torch.stack(sq_sums), extra)
    return trace


def parameter_gram(
    paths: Sequence[str | os.PathLike], include: Sequence[str] | None = None, exclude: Sequence[str] = ()
) -> np.ndarray:
    """Gram matrix G_ij = <θ_i, θ_j> of the prunable weights of N+1 checkpoints (pruned weights count as 0),
    accumulated tensor by tensor in float64: parameter-space DMD by the method of snapshots
    (``rgprune.rg.gram_dmd``) without ever holding a whole model. Memory: one tensor per checkpoint."""
    ckpts = [_Checkpoint(p) for p in paths]
    names = _prunable_names(ckpts[0], include, exclude)
    gram = np.zeros((len(ckpts), len(ckpts)))
    for name in names:
        rows = []
        for c in ckpts:
            if name not in c.names:
                raise ValueError(f"{c.path} lacks {name}: the checkpoints must come from one architecture")
            w = c.get(name).to(torch.float64).reshape(-1)
            if name.endswith("_orig") and name[:-5] + "_mask" in c.names:
                w = w * (c.get(name[:-5] + "_mask").reshape(-1) != 0)
            rows.append(w)
        x = torch.stack(rows)
        gram += (x @ x.T).numpy()
        del rows, x
    return gram
