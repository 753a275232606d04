"""Exact global magnitude pruning across ``torch.distributed`` ranks, for models sharded over processes.

Every rank holds its own local tensors (its shard of the model: an FSDP2 shard of every parameter, or
whole parameters of a pipeline stage). The threshold is the one that single-process pruning of all ranks'
tensors together would find, computed without ever moving a weight between ranks: histograms are
additive, so each pass of the radix select (``rgprune.global_magnitude_threshold``) becomes a local
histogram of the rank's survivors followed by one ``all_reduce`` (SUM) of that histogram; the select step
then runs on the reduced histogram, identically on every rank.

>>> import torch.distributed as dist, rgprune.distributed as rgd      # doctest: +SKIP
>>> dist.init_process_group("nccl")                                   # doctest: +SKIP
>>> result = rgd.prune_global_distributed_(local_weights, local_masks, k)  # doctest: +SKIP

Cost model (per threshold, independent of the model's size)
-----------------------------------------------------------
``passes x all_reduce of bins x 8 bytes`` (int64 counts): the first pass is the 2**12-bin histogram of the
top 12 key bits (32 KiB, plus a 7-int64 header per rank that carries the counts and the argument checks);
each refinement pass resolves up to 12 more bits on the bins of the boundary bin only. float32 keys (31
bits): 3 passes (12 + 12 + 7 bits: 32 + 32 + 1 KiB); float16/bfloat16 (15 bits): 2 passes (32 KiB + 64 B);
float64: 6 passes. When survivors equal to the threshold straddle ranks, one more ``all_gather`` of 8
bytes per rank (``tie_order="rank"``) or 8 bytes per tensor per rank (``tie_order="parameter"``) decides
which rank prunes which ties. Local work per pass is one read of the rank's weights (refinement passes
read fast: almost nothing matches a long prefix); applying the threshold is the usual 1 read + 1 write,
with no communication. Each pass costs one device-to-host copy of its histogram (the next pass's prefix
is a Python int).

Ties
----
Exactly ``k`` weights are pruned over all ranks. Survivors equal to the threshold are pruned in a global
order known to every rank without communication beyond the counts:

* ``tie_order="rank"`` (default): rank, then tensor index, then flat index -- the result equals
  single-process pruning of the concatenation of all ranks' tensor lists in rank order, bit for bit.
* ``tie_order="parameter"``: tensor index, then rank, then flat index; every rank passes the same number
  of tensors, tensor ``i`` of every rank being a shard of the same logical parameter, in rank order. For
  row shards (FSDP2's ``Shard(0)``) this is single-process model order: the result equals single-process
  pruning of the full (unsharded) parameters, bit for bit.

Failures
--------
Argument errors (NaN survivors, ``k`` out of range or different on different ranks, mismatched dtypes)
are decided after the first ``all_reduce``, so every rank raises the same ValueError/TypeError and none is
left waiting in a collective. A rank that crashes or never makes the call makes the others' collective
fail (at once when its connection closes, else after the process group's timeout, set by
``init_process_group(timeout=...)``); that surfaces as ``DistributedPruneError`` naming the step.
"""
from __future__ import annotations

from typing import NamedTuple, Sequence

import torch
import torch.distributed as dist

from rgprune import ops
from rgprune.kernels.format import KEY_BITS, RADIX_BITS, key_to_magnitude

__all__ = ["DistributedPruneError", "DistributedThreshold", "DistributedPruneResult", "resolve_group",
           "global_magnitude_threshold_distributed", "prune_global_distributed_", "all_reduce_stats",
           "local_shard", "check_replicated", "is_sharded"]

_DTYPE_CODES = {torch.float32: 1, torch.float16: 2, torch.bfloat16: 3, torch.float64: 4}
_TIE_ORDERS = {"rank": 0, "parameter": 1}
# the per-rank header of the first all_reduce: each rank writes its row, the sum is an all_gather
_H_ERROR, _H_K, _H_DTYPE, _H_NTENSORS, _H_ORDER, _H_NAN, _H_SURV, _H_LEN = range(8)


class DistributedPruneError(RuntimeError):
    """A collective of the distributed threshold failed: another rank crashed, was killed, timed out or
    did not make the same call."""


class DistributedThreshold(NamedTuple):
    """The exact global threshold over all ranks, and this rank's share of it.

    Global fields as in ``rgprune.Threshold`` (``k``, ``key``, ``n_below``, ``n_ties``, ``n_equal``,
    ``n_survivors``: over all ranks; ``info``: the global int64 info vector; ``histogram``: the survivors'
    top-12-bit histogram summed over ranks, on the tensors' device). ``local`` is the ``rgprune.Threshold``
    this rank applies with ``rgprune.apply_threshold_``: the same key, and this rank's own counts (its
    ``k`` is the number of weights it prunes; the ranks' ``local.k`` sum to ``k``).
    """

    k: int
    key: int
    n_below: int
    n_ties: int
    n_equal: int
    n_survivors: int
    dtype: torch.dtype
    info: torch.Tensor
    histogram: torch.Tensor
    local: ops.Threshold
    rank: int
    world_size: int
    passes: int

    @property
    def magnitude(self) -> float:
        """The threshold as a magnitude |w| (NaN when nothing is pruned)."""
        return key_to_magnitude(self.key, self.dtype)


class DistributedPruneResult(NamedTuple):
    """``threshold``: the global threshold (with this rank's share in ``threshold.local``); ``stats``: this
    rank's survivors' statistics after pruning (``all_reduce_stats`` sums them over ranks)."""

    threshold: DistributedThreshold
    stats: ops.MagnitudeStats


def resolve_group(group=None):
    """``None``, ``"default"`` or ``torch.distributed.group.WORLD`` -> the default process group; a
    ``ProcessGroup`` is returned as is. Raises when torch.distributed is not initialized."""
    if not (dist.is_available() and dist.is_initialized()):
        raise RuntimeError("torch.distributed is not initialized: call torch.distributed.init_process_group "
                           "(e.g. under torchrun) before pruning across ranks")
    if group is None or (isinstance(group, str) and group == "default"):
        return dist.group.WORLD
    if isinstance(group, dist.ProcessGroup):
        return group
    raise TypeError(f"group must be a torch.distributed ProcessGroup, 'default' or None, got {group!r}")


def _backend(group) -> str:
    try:
        return str(dist.get_backend(group))
    except Exception:  # noqa: BLE001 - only for messages
        return "unknown"


def _collective(what: str, group, fn, *args, **kwargs):
    """Runs one collective; a failure becomes a DistributedPruneError that says what was going on."""
    try:
        return fn(*args, group=group, **kwargs)
    except RuntimeError as exc:  # DistBackendError and gloo/NCCL errors are RuntimeErrors
        raise DistributedPruneError(
            f"rgprune.distributed: {what} failed on rank {dist.get_rank(group)} of {dist.get_world_size(group)} "
            f"of the process group (backend {_backend(group)}): {exc}. Another rank probably crashed, was "
            f"killed or did not make the same call; a collective waits at most the process group's timeout "
            f"(init_process_group(timeout=...)). Check the other ranks' logs.") from exc


def _fallback_device(tensors, group) -> torch.device:
    """Device for the collectives when this rank's arguments are unusable (it still has to take part)."""
    if isinstance(tensors, (list, tuple)):
        for t in tensors:
            if isinstance(t, torch.Tensor):
                return t.device
    backend = _backend(group)
    if "nccl" in backend and "cpu:" not in backend and torch.cuda.is_available():
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def _select(hist: torch.Tensor, remaining: int) -> tuple[int, int]:
    """Bin holding the ``remaining``-th smallest key of a host histogram, and the count below that bin."""
    cum = torch.cumsum(hist, 0)
    b = int(torch.searchsorted(cum, torch.tensor(remaining, dtype=cum.dtype)))
    return b, int(cum[b]) - int(hist[b])


def global_magnitude_threshold_distributed(tensors: Sequence[torch.Tensor], masks: Sequence[torch.Tensor], k: int,
                                           group=None, *, tie_order: str = "rank") -> DistributedThreshold:
    """Exact k-th smallest surviving magnitude over the tensors of every rank of ``group``.

    Every rank calls this with its own (non-empty) tensor list and masks and the same ``k``. Per radix pass:
    a local histogram and one all_reduce of ~2**12 int64 (see the module docstring for the cost model and
    the tie orders). Raises on every rank alike when ``k`` is out of range or differs between ranks, when a
    survivor on any rank is NaN, or when any rank's arguments are invalid. Nothing is modified.
    """
    group = resolve_group(group)
    rank, world = dist.get_rank(group), dist.get_world_size(group)
    error = None
    try:
        if tie_order not in _TIE_ORDERS:
            raise ValueError(f"tie_order must be 'rank' or 'parameter', got {tie_order!r}")
        tensors, masks = ops.validate(tensors, masks)
        if isinstance(k, bool) or not isinstance(k, int):
            raise TypeError(f"k must be an int (the number of weights to prune), got {type(k).__name__}")
        if k < 0:
            raise ValueError(f"k must be >= 0 (the number of weights to prune), got {k}")
    except (TypeError, ValueError) as exc:
        error = exc

    # ---- pass 1: top-12-bit histogram + per-rank header, one all_reduce -------------------------------
    nbins = 1 << RADIX_BITS
    header = torch.zeros(_H_LEN, dtype=torch.int64)
    if error is None:
        device, dtype = tensors[0].device, tensors[0].dtype
        stats = ops.magnitude_histogram(tensors, masks, RADIX_BITS, check_nan=False)
        local_hist = stats.histogram
        header[[_H_K, _H_DTYPE, _H_NTENSORS, _H_ORDER]] = torch.tensor(
            [k, _DTYPE_CODES[dtype], len(tensors), _TIE_ORDERS[tie_order]])
        header = header.to(device)
        header[_H_NAN] = stats.nan_counts.sum()
        header[_H_SURV] = local_hist.sum()
    else:
        device = _fallback_device(tensors, group)
        local_hist = torch.zeros(nbins, dtype=torch.int64, device=device)
        header[_H_ERROR] = 1
        header = header.to(device)
    buf = torch.zeros(nbins + world * _H_LEN, dtype=torch.int64, device=device)
    buf[:nbins] = local_hist
    buf[nbins + rank * _H_LEN: nbins + (rank + 1) * _H_LEN] = header
    _collective("all_reduce of the first histogram pass", group, dist.all_reduce, buf)
    host = torch.stack([torch.cat([local_hist, torch.zeros(world * _H_LEN, dtype=torch.int64, device=device)]),
                        buf]).cpu()
    headers = host[1, nbins:].reshape(world, _H_LEN)

    # ---- the same checks on every rank ---------------------------------------------------------------
    bad = headers[:, _H_ERROR].nonzero().flatten().tolist()
    if error is not None:
        raise type(error)(f"{error} (rank {rank}; every rank of the process group raises)") from error
    if bad:
        raise ValueError(f"rank(s) {bad} rejected their arguments (see their error); nothing was pruned on any "
                         f"rank")
    dtype_codes = headers[:, _H_DTYPE].tolist()
    if len(set(dtype_codes)) > 1:
        names = {v: str(d) for d, v in _DTYPE_CODES.items()}
        raise TypeError(f"the ranks' tensors have different dtypes ({[names[c] for c in dtype_codes]} by rank): "
                        f"magnitudes are ranked within one dtype; cast every rank's tensors to one dtype")
    orders = headers[:, _H_ORDER].tolist()
    if len(set(orders)) > 1:
        raise ValueError(f"the ranks passed different tie_order values ({orders} by rank, 0 = 'rank', "
                         f"1 = 'parameter'); pass the same on every rank")
    if tie_order == "parameter" and len(set(headers[:, _H_NTENSORS].tolist())) > 1:
        raise ValueError(f"tie_order='parameter' needs the same number of tensors (shards of the same "
                         f"parameters) on every rank, got {headers[:, _H_NTENSORS].tolist()} by rank")
    ks = headers[:, _H_K].tolist()
    if len(set(ks)) > 1:
        raise ValueError(f"the ranks passed different k ({ks} by rank): every rank must pass the global number "
                         f"of weights to prune")
    nans = headers[:, _H_NAN].tolist()
    if any(nans):
        where = [r for r, n in enumerate(nans) if n]
        mine = [i for i, t in enumerate(tensors) if torch.isnan(t).any()] if nans[rank] else []
        raise ValueError(f"{sum(nans)} surviving weights are NaN (on rank(s) {where}"
                         + (f"; on this rank in tensors {mine}" if mine else "")
                         + "): magnitude pruning cannot rank NaN; fix the training run (e.g. lower the learning "
                           "rate, enable gradient clipping) or zero those weights first")
    survivors = headers[:, _H_SURV].tolist()
    n_surv, local_surv = sum(survivors), survivors[rank]
    if k > n_surv:
        raise ValueError(f"k={k} exceeds the {n_surv} surviving weights over all {world} ranks: pass k <= {n_surv}")

    global_top = buf[:nbins]
    passes = 1

    def make(key, n_below, n_ties, n_equal, local_below, local_ties, local_equal):
        local_info = torch.tensor([key, local_below, local_ties, local_equal, local_surv, 0], dtype=torch.int64)
        local = ops.Threshold(local_below + local_ties, key, local_below, local_ties, local_equal, local_surv,
                               dtype=dtype, info=local_info.to(device), histogram=local_hist)
        info = torch.tensor([key, n_below, n_ties, n_equal, n_surv, 0], dtype=torch.int64).to(device)
        return DistributedThreshold(k, key, n_below, n_ties, n_equal, n_surv, dtype, info, global_top, local,
                                    rank, world, passes)

    if k == 0:
        return make(-1, 0, 0, 0, 0, 0, 0)

    # ---- radix select on the reduced histograms; refinement passes: local radix_histogram + all_reduce ----
    key_bits = KEY_BITS[dtype]
    hists = host[:, :nbins]  # [local, global] on the host
    remaining, n_below, local_below, prefix, consumed, bits = k, 0, 0, 0, 0, RADIX_BITS
    while True:
        b, below = _select(hists[1], remaining)
        n_below += below
        remaining -= below
        local_below += int(hists[0, :b].sum())
        prefix = (prefix << bits) | b
        consumed += bits
        if consumed == key_bits:
            key, n_ties, n_equal, local_equal = prefix, remaining, int(hists[1, b]), int(hists[0, b])
            break
        bits = min(RADIX_BITS, key_bits - consumed)
        local = ops.radix_histogram(tensors, masks, prefix, consumed, bits)
        reduced = local.clone()
        _collective(f"all_reduce of histogram pass {passes + 1}", group, dist.all_reduce, reduced)
        passes += 1
        hists = torch.stack([local, reduced]).cpu()

    # ---- ties: which rank prunes which of the n_ties survivors equal to the key ------------------------
    if n_ties == 0 or n_ties == n_equal:  # none or all of them: every rank knows its share already
        local_ties = local_equal if n_ties else 0
    elif tie_order == "rank":
        counts = _all_gather_ints([local_equal], group, device)[:, 0]
        lower = int(counts[:rank].sum())
        local_ties = min(max(n_ties - lower, 0), local_equal)
    else:  # "parameter": tensor index, then rank; the ties a rank prunes are still a prefix of its own order
        per_tensor = torch.stack([ops.radix_histogram([t], [m], key >> 1, key_bits - 1, 1)[key & 1]
                                  for t, m in zip(tensors, masks)]).cpu().tolist()
        counts = _all_gather_ints(per_tensor, group, device)  # [world, n_tensors]
        before_tensor = torch.cumsum(counts.sum(0), 0) - counts.sum(0)
        local_ties = 0
        for i, mine in enumerate(per_tensor):
            before = int(before_tensor[i]) + int(counts[:rank, i].sum())
            local_ties += min(max(n_ties - before, 0), mine)
    return make(key, n_below, n_ties, n_equal, local_below, local_ties, local_equal)


def _all_gather_ints(values: list, group, device, what: str = "all_gather of the tie counts") -> torch.Tensor:
    """[world, len(values)] int64 on the host."""
    mine = torch.tensor(values, dtype=torch.int64).to(device)
    out = [torch.empty_like(mine) for _ in range(dist.get_world_size(group))]
    _collective(what, group, dist.all_gather, out, mine)
    return torch.stack(out).cpu()


def prune_global_distributed_(tensors: Sequence[torch.Tensor], masks: Sequence[torch.Tensor], k: int, group=None,
                              bits: int = 12, *, tie_order: str = "rank") -> DistributedPruneResult:
    """Prune exactly ``k`` weights over all ranks of ``group``, in place: each rank zeroes its share of the
    ``k`` smallest surviving magnitudes and clears their mask bits.

    ``global_magnitude_threshold_distributed`` followed by ``rgprune.apply_threshold_`` with this rank's
    local threshold (no communication). Returns the global threshold and this rank's survivors' statistics
    at resolution ``bits``.
    """
    threshold = global_magnitude_threshold_distributed(tensors, masks, k, group, tie_order=tie_order)
    stats = ops.apply_threshold_(tensors, masks, threshold.local, bits)
    return DistributedPruneResult(threshold, stats)


def all_reduce_stats(stats: ops.MagnitudeStats, group=None) -> ops.MagnitudeStats:
    """Sum survivors' statistics over ranks (two all_reduces of O(bins + tensors) numbers). The per-tensor
    entries are summed index by index: every rank must hold shards of the same tensors, in the same order."""
    group = resolve_group(group)
    ints = torch.cat([stats.histogram, stats.counts, stats.nan_counts])
    floats = torch.cat([stats.abs_sums, stats.sq_sums])
    _collective("all_reduce of the survivors' histogram", group, dist.all_reduce, ints)
    _collective("all_reduce of the survivors' sums", group, dist.all_reduce, floats)
    nb, n = stats.histogram.numel(), stats.counts.numel()
    return ops.MagnitudeStats(ints[:nb], ints[nb:nb + n], floats[:n], floats[n:], ints[nb + n:])


def check_replicated(values: Sequence[int], what: str, group=None, device=None) -> None:
    """Raise ValueError on every rank unless every rank passed the same ``values`` (one tiny all_gather on
    ``device``, the device of the tensors the group communicates): a guard for code that assumes
    replicated (DDP) models."""
    group = resolve_group(group)
    device = torch.device(device) if device is not None else _fallback_device(None, group)
    rows = _all_gather_ints(list(values), group, device, f"all_gather of {what}")
    if not bool((rows == rows[0]).all()):
        raise ValueError(f"{what} differ between ranks ({rows.tolist()} by rank) but the model was taken to be "
                         f"replicated (DDP): every rank must hold the same parameters")


def local_shard(param: torch.Tensor) -> torch.Tensor:
    """This rank's part of a parameter: the local shard of a DTensor (FSDP2), else the tensor itself; always
    a detached tensor sharing the parameter's storage, so that in-place pruning reaches the real weights."""
    data = param.data if isinstance(param, torch.nn.Parameter) else param.detach()
    dtensor = _dtensor_type()
    if dtensor and isinstance(data, dtensor):
        data = data.to_local()
    if not data.is_contiguous():
        raise ValueError(f"the local shard of a parameter of shape {tuple(param.shape)} is not contiguous "
                         f"(strides {data.stride()}); in-place pruning needs contiguous storage (FSDP2's "
                         f"Shard(0) shards are)")
    return data


def _dtensor_type():
    try:
        from torch.distributed.tensor import DTensor
    except ImportError:  # torch without DTensor
        return ()
    return DTensor


def is_sharded(params: Sequence[torch.Tensor], group) -> bool:
    """True when ``params`` are DTensors sharded over the process group ``group`` (FSDP2's
    ``fully_shard``): each rank then prunes its local shards with the global threshold. False for ordinary
    tensors (a replicated model, e.g. under DDP: every rank prunes its full copy alike). Raises for mixes,
    for DTensors without a group (``group=None``: one process), and for placements whose shards do not
    span exactly ``group`` (for HSDP pass the shard dimension's group)."""
    dtensor = _dtensor_type()
    flags = [isinstance(p, dtensor) for p in params] if dtensor else [False] * len(params)
    if not any(flags):
        return False
    if not all(flags):
        raise ValueError("some selected parameters are DTensors (FSDP2 fully_shard) and some are not; shard all "
                         "of them or select one group with include=")
    if group is None:
        raise ValueError("the parameters are sharded DTensors (FSDP2 fully_shard): pass process_group='default' "
                         "(or the process group that spans the shards) to prune them with a global threshold")
    world = dist.get_world_size(group)
    for p in params:
        if any(pl.is_partial() for pl in p.placements):
            raise ValueError(f"a parameter has placements {p.placements}: Partial placements cannot be pruned")
        shards = 1
        for dim, pl in enumerate(p.placements):
            if pl.is_shard():
                shards *= p.device_mesh.size(dim)
        if shards != world:
            raise ValueError(f"a parameter with placements {p.placements} on a mesh of shape "
                             f"{tuple(p.device_mesh.shape)} is split into {shards} shards but the process group "
                             f"has {world} ranks: pass the group that spans the shards (for HSDP, the shard "
                             f"dimension's group, e.g. mesh.get_group('shard'))")
    return True
