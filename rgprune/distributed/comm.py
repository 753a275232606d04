"""The collectives of ``rgprune.distributed``: process-group resolution, collectives whose failures say
what was going on, and the small exchanges the pruner makes (integer all_gather, statistics all_reduce,
the replication check)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.distributed as dist

from rgprune.ops import MagnitudeStats


class DistributedPruneError(RuntimeError):
    """A collective of the distributed threshold failed: another rank crashed, was killed, timed out or
    did not make the same call."""


def resolve_group(group=None):
    """``None``, ``"default"`` or ``torch.distributed.group.WORLD`` -> the default process group; a
    ``ProcessGroup`` is returned as is. Raises when torch.distributed is not initialized."""
    if not (dist.is_available() and dist.is_initialized()):
        raise RuntimeError(
            "torch.distributed is not initialized: call torch.distributed.init_process_group "
            "(e.g. under torchrun) before pruning across ranks"
        )
    if group is None or (isinstance(group, str) and group == "default"):
        return dist.group.WORLD
    if isinstance(group, dist.ProcessGroup):
        return group
    raise TypeError(f"group must be a torch.distributed ProcessGroup, 'default' or None, got {group!r}")


def _backend_name(group) -> str:
    try:
        return str(dist.get_backend(group))
    except Exception:  # noqa: BLE001 - only for messages
        return "unknown"


def collective(what: str, group, fn, *args, **kwargs):
    """Runs the collective ``fn(*args, group=group, **kwargs)``; a failure becomes a DistributedPruneError
    that says what was going on (``what``)."""
    try:
        return fn(*args, group=group, **kwargs)
    except RuntimeError as exc:  # DistBackendError and gloo/NCCL errors are RuntimeErrors
        raise DistributedPruneError(
            f"rgprune.distributed: {what} failed on rank {dist.get_rank(group)} of {dist.get_world_size(group)} "
            f"of the process group (backend {_backend_name(group)}): {exc}. Another rank probably crashed, was "
            f"killed or did not make the same call; a collective waits at most the process group's timeout "
            f"(init_process_group(timeout=...)). Check the other ranks' logs."
        ) from exc


def collective_device(tensors, group) -> torch.device:
    """Device for the collectives of a rank: its tensors' device, or when it has no usable tensors (it still
    has to take part) the device the group's backend communicates on."""
    if isinstance(tensors, (list, tuple)):
        for t in tensors:
            if isinstance(t, torch.Tensor):
                return t.device
    backend = _backend_name(group)
    if "nccl" in backend and "cpu:" not in backend and torch.cuda.is_available():
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def all_gather_ints(values: list, group, device, what: str = "all_gather of the tie counts") -> torch.Tensor:
    """Every rank's ``values`` (the same number of ints on each): [world, len(values)] int64 on the host."""
    mine = torch.tensor(values, dtype=torch.int64).to(device)
    out = [torch.empty_like(mine) for _ in range(dist.get_world_size(group))]
    collective(what, group, dist.all_gather, out, mine)
    return torch.stack(out).cpu()


def all_reduce_stats(stats: MagnitudeStats, group=None) -> MagnitudeStats:
    """Sum survivors' statistics over ranks (two all_reduces of O(bins + tensors) numbers). The per-tensor
    entries are summed index by index: every rank must hold shards of the same tensors, in the same order."""
    group = resolve_group(group)
    ints = torch.cat([stats.histogram, stats.counts, stats.nan_counts])
    floats = torch.cat([stats.abs_sums, stats.sq_sums])
    collective("all_reduce of the survivors' histogram", group, dist.all_reduce, ints)
    collective("all_reduce of the survivors' sums", group, dist.all_reduce, floats)
    nb, n = stats.histogram.numel(), stats.counts.numel()
    return MagnitudeStats(ints[:nb], ints[nb : nb + n], floats[:n], floats[n:], ints[nb + n :])


def check_replicated(values: Sequence[int], what: str, group=None, device=None) -> None:
    """Raise ValueError on every rank unless every rank passed the same ``values`` (one tiny all_gather on
    ``device``, the device of the tensors the group communicates): a guard for code that assumes
    replicated (DDP) models."""
    group = resolve_group(group)
    device = torch.device(device) if device is not None else collective_device(None, group)
    rows = all_gather_ints(list(values), group, device, f"all_gather of {what}")
    if not bool((rows == rows[0]).all()):
        raise ValueError(
            f"{what} differ between ranks ({rows.tolist()} by rank) but the model was taken to be "
            f"replicated (DDP): every rank must hold the same parameters"
        )
