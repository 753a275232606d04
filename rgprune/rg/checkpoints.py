"""Traces and Gram matrices of checkpoints on disk, read one tensor at a time.

``trace_from_checkpoints(paths)`` computes the ``FlowTrace`` records that a run would have recorded from the
kernels' passes (docs/DESIGN.md, "Observing the flow through the kernels' passes") from a sequence of round
checkpoints: safetensors files or ``torch.save``'d state_dicts, torch.prune's ``weight_orig``/``weight_mask``
understood. ``parameter_gram(paths)`` accumulates G_ij = <θ_i, θ_j> for parameter-space DMD. Both hold one
tensor (per checkpoint) at a time, so memory does not grow with the model. Which tensors count is
``rgprune.prunable``'s checkpoint rule.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence

import numpy as np
import torch

from rgprune import prunable
from rgprune.kernels.format import pack_mask
from rgprune.rg.trace import FlowTrace

__all__ = ["parameter_gram", "trace_from_checkpoints"]


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
    """The checkpoint's tensors in ``rgprune.prunable``'s default set (or matching ``include``), less ``exclude``.
    A pattern that matches no tensor of the checkpoint is refused, naming the closest names (as the pruner does)."""
    bases = [n.removesuffix("_orig") for n in ckpt.names if not n.endswith("_mask")]
    prunable.check_patterns(bases, include, () if exclude is None else exclude)
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
