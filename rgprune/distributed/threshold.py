"""The exact global magnitude threshold over the tensors of every rank (see ``rgprune.distributed``).

Steps, each a function below, with the collectives in this order on every rank:

1. ``_first_pass``: this rank's top-``RADIX_BITS`` histogram and its header row (counts and the argument
   checks' inputs), summed over ranks in one all_reduce;
2. ``_check_headers``: the same checks on every rank, so that all raise alike or none does;
3. ``_radix_select``: the select on the summed histograms; each refinement pass is a local
   ``radix_histogram`` of the boundary bin plus one all_reduce;
4. ``_local_ties``: which rank prunes which of the survivors equal to the threshold (one all_gather, only
   when those straddle ranks), in rank order or in parameter order.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch
import torch.distributed as dist

from rgprune import ops
from rgprune.distributed.comm import all_gather_ints, collective, collective_device, resolve_group
from rgprune.kernels.format import KEY_BITS, RADIX_BITS
from rgprune.ops import MagnitudeStats, Threshold

_DTYPE_CODES = {torch.float32: 1, torch.float16: 2, torch.bfloat16: 3, torch.float64: 4}
_TIE_ORDERS = {"rank": 0, "parameter": 1}
# the per-rank header of the first all_reduce: each rank writes its row, the sum is an all_gather
_H_ERROR, _H_K, _H_DTYPE, _H_NTENSORS, _H_ORDER, _H_NAN, _H_SURV, _H_LEN = range(8)


class DistributedThreshold(NamedTuple):
    """The exact global threshold over all ranks, and this rank's share of it.

    ``global_threshold`` is the ``rgprune.Threshold`` over all ranks (its counts over all ranks, its
    ``info`` the global int64 info vector, its ``histogram`` the survivors' top-12-bit histogram summed
    over ranks, on the tensors' device). ``local`` is the ``rgprune.Threshold`` this rank applies with
    ``rgprune.apply_threshold_``: the same key, and this rank's own counts (its ``k`` is the number of
    weights it prunes; the ranks' ``local.k`` sum to ``k``). ``passes``: histogram passes (all_reduces)
    the select took. The global threshold's fields read directly too (``k``, ``key``, ``histogram``, ...).
    """

    global_threshold: Threshold
    local: Threshold
    rank: int
    world_size: int
    passes: int

    @property
    def k(self) -> int:
        return self.global_threshold.k

    @property
    def key(self) -> int:
        return self.global_threshold.key

    @property
    def n_below(self) -> int:
        return self.global_threshold.n_below

    @property
    def n_ties(self) -> int:
        return self.global_threshold.n_ties

    @property
    def n_equal(self) -> int:
        return self.global_threshold.n_equal

    @property
    def n_survivors(self) -> int:
        return self.global_threshold.n_survivors

    @property
    def dtype(self) -> torch.dtype:
        return self.global_threshold.dtype

    @property
    def info(self) -> torch.Tensor:
        return self.global_threshold.info

    @property
    def histogram(self) -> torch.Tensor:
        return self.global_threshold.histogram

    @property
    def magnitude(self) -> float:
        """The threshold as a magnitude |w| (NaN when nothing is pruned)."""
        return self.global_threshold.magnitude


class DistributedPruneResult(NamedTuple):
    """``threshold``: the global threshold (with this rank's share in ``threshold.local``); ``stats``: this
    rank's survivors' statistics after pruning (``all_reduce_stats`` sums them over ranks)."""

    threshold: DistributedThreshold
    stats: MagnitudeStats


class _FirstPass(NamedTuple):
    """What the first all_reduce tells a rank."""

    device: torch.device
    local_histogram: torch.Tensor  # this rank's top histogram, on the device
    global_histogram: torch.Tensor  # summed over ranks, on the device
    host_histograms: torch.Tensor  # [local, global] on the host
    headers: torch.Tensor  # [world, _H_LEN] on the host: every rank's header row


class _Selection(NamedTuple):
    """The radix select's result: the threshold key and its counts, over all ranks and on this rank."""

    key: int
    n_below: int
    n_ties: int
    n_equal: int
    local_below: int
    local_equal: int
    passes: int


def _check_arguments(tensors, masks, k, tie_order: str):
    """This rank's own argument checks (those of the single-process op); returns the tensor and mask lists."""
    if tie_order not in _TIE_ORDERS:
        raise ValueError(f"tie_order must be 'rank' or 'parameter', got {tie_order!r}")
    tensors, masks = ops.validate(tensors, masks)
    if isinstance(k, bool) or not isinstance(k, int):
        raise TypeError(f"k must be an int (the number of weights to prune), got {type(k).__name__}")
    if k < 0:
        raise ValueError(f"k must be >= 0 (the number of weights to prune), got {k}")
    return tensors, masks


def _first_pass(tensors, masks, k: int, tie_order: str, error: Exception | None, group) -> _FirstPass:
    """Pass 1: the local top histogram and this rank's header, summed over ranks in one all_reduce. A rank
    whose arguments were rejected (``error``) still takes part, with an empty histogram and its error flag."""
    rank, world = dist.get_rank(group), dist.get_world_size(group)
    nbins = 1 << RADIX_BITS
    header = torch.zeros(_H_LEN, dtype=torch.int64)
    if error is None:
        device, dtype = tensors[0].device, tensors[0].dtype
        stats = ops.magnitude_histogram(tensors, masks, RADIX_BITS, check_nan=False)
        local_hist = stats.histogram
        header[[_H_K, _H_DTYPE, _H_NTENSORS, _H_ORDER]] = torch.tensor(
            [k, _DTYPE_CODES[dtype], len(tensors), _TIE_ORDERS[tie_order]]
        )
        header = header.to(device)
        header[_H_NAN] = stats.nan_counts.sum()
        header[_H_SURV] = local_hist.sum()
    else:
        device = collective_device(tensors, group)
        local_hist = torch.zeros(nbins, dtype=torch.int64, device=device)
        header[_H_ERROR] = 1
        header = header.to(device)
    buf = torch.zeros(nbins + world * _H_LEN, dtype=torch.int64, device=device)
    buf[:nbins] = local_hist
    buf[nbins + rank * _H_LEN : nbins + (rank + 1) * _H_LEN] = header
    collective("all_reduce of the first histogram pass", group, dist.all_reduce, buf)
    host = torch.stack(
        [torch.cat([local_hist, torch.zeros(world * _H_LEN, dtype=torch.int64, device=device)]), buf]
    ).cpu()
    return _FirstPass(device, local_hist, buf[:nbins], host[:, :nbins], host[1, nbins:].reshape(world, _H_LEN))


def _check_headers(
    headers: torch.Tensor, error: Exception | None, rank: int, k, tie_order: str, tensors
) -> tuple[int, int]:
    """The checks every rank makes alike on all ranks' headers, so that every rank raises the same error
    or none does. Returns the survivors over all ranks and on this rank."""
    bad = headers[:, _H_ERROR].nonzero().flatten().tolist()
    if error is not None:
        raise type(error)(f"{error} (rank {rank}; every rank of the process group raises)") from error
    if bad:
        raise ValueError(f"rank(s) {bad} rejected their arguments (see their error); nothing was pruned on any rank")
    _check_same_call(headers, tie_order)
    nans = headers[:, _H_NAN].tolist()
    if any(nans):
        where = [r for r, n in enumerate(nans) if n]
        mine = [i for i, t in enumerate(tensors) if torch.isnan(t).any()] if nans[rank] else []
        raise ValueError(
            f"{sum(nans)} surviving weights are NaN (on rank(s) {where}"
            + (f"; on this rank in tensors {mine}" if mine else "")
            + "): magnitude pruning cannot rank NaN; fix the training run (e.g. lower the learning "
            "rate, enable gradient clipping) or zero those weights first"
        )
    survivors = headers[:, _H_SURV].tolist()
    n_surv = sum(survivors)
    if k > n_surv:
        raise ValueError(
            f"k={k} exceeds the {n_surv} surviving weights over all {len(survivors)} ranks: pass k <= {n_surv}"
        )
    return n_surv, survivors[rank]


def _check_same_call(headers: torch.Tensor, tie_order: str) -> None:
    """Every rank passed the same dtype, tie order, k (and, for ``"parameter"``, number of tensors)."""
    dtype_codes = headers[:, _H_DTYPE].tolist()
    if len(set(dtype_codes)) > 1:
        names = {v: str(d) for d, v in _DTYPE_CODES.items()}
        raise TypeError(
            f"the ranks' tensors have different dtypes ({[names[c] for c in dtype_codes]} by rank): "
            f"magnitudes are ranked within one dtype; cast every rank's tensors to one dtype"
        )
    orders = headers[:, _H_ORDER].tolist()
    if len(set(orders)) > 1:
        raise ValueError(
            f"the ranks passed different tie_order values ({orders} by rank, 0 = 'rank', "
            f"1 = 'parameter'); pass the same on every rank"
        )
    if tie_order == "parameter" and len(set(headers[:, _H_NTENSORS].tolist())) > 1:
        raise ValueError(
            f"tie_order='parameter' needs the same number of tensors (shards of the same "
            f"parameters) on every rank, got {headers[:, _H_NTENSORS].tolist()} by rank"
        )
    ks = headers[:, _H_K].tolist()
    if len(set(ks)) > 1:
        raise ValueError(
            f"the ranks passed different k ({ks} by rank): every rank must pass the global number of weights to prune"
        )


def _select_bin(hist: torch.Tensor, remaining: int) -> tuple[int, int]:
    """Bin holding the ``remaining``-th smallest key of a host histogram, and the count below that bin."""
    cum = torch.cumsum(hist, 0)
    b = int(torch.searchsorted(cum, torch.tensor(remaining, dtype=cum.dtype)))
    return b, int(cum[b]) - int(hist[b])


def _radix_select(tensors, masks, k: int, hists: torch.Tensor, group) -> _Selection:
    """The k-th smallest key over all ranks from the summed top histograms (``hists``: [local, global] on the
    host); every further ``RADIX_BITS`` of the key take a local radix_histogram and one all_reduce."""
    key_bits = KEY_BITS[tensors[0].dtype]
    remaining, n_below, local_below, prefix, consumed, bits, passes = k, 0, 0, 0, 0, RADIX_BITS, 1
    while True:
        b, below = _select_bin(hists[1], remaining)
        n_below += below
        remaining -= below
        local_below += int(hists[0, :b].sum())
        prefix = (prefix << bits) | b
        consumed += bits
        if consumed == key_bits:
            return _Selection(prefix, n_below, remaining, int(hists[1, b]), local_below, int(hists[0, b]), passes)
        bits = min(RADIX_BITS, key_bits - consumed)
        local = ops.radix_histogram(tensors, masks, prefix, consumed, bits)
        reduced = local.clone()
        collective(f"all_reduce of histogram pass {passes + 1}", group, dist.all_reduce, reduced)
        passes += 1
        hists = torch.stack([local, reduced]).cpu()


def _local_ties(sel: _Selection, tie_order: str, tensors, masks, group, device) -> int:
    """How many of the ``sel.n_ties`` survivors equal to the key (over all ranks) this rank prunes."""
    if sel.n_ties == 0 or sel.n_ties == sel.n_equal:  # none or all of them: every rank knows its share already
        return sel.local_equal if sel.n_ties else 0
    if tie_order == "rank":
        return _ties_in_rank_order(sel, group, device)
    return _ties_in_parameter_order(sel, tensors, masks, group, device)


def _ties_in_rank_order(sel: _Selection, group, device) -> int:
    """Ties pruned rank by rank: this rank prunes what the lower ranks' ties leave of ``n_ties``."""
    counts = all_gather_ints([sel.local_equal], group, device)[:, 0]
    lower = int(counts[: dist.get_rank(group)].sum())
    return min(max(sel.n_ties - lower, 0), sel.local_equal)


def _ties_in_parameter_order(sel: _Selection, tensors, masks, group, device) -> int:
    """Ties pruned by tensor index, then rank; the ties a rank prunes are still a prefix of its own order."""
    key, key_bits, rank = sel.key, KEY_BITS[tensors[0].dtype], dist.get_rank(group)
    per_tensor = (
        torch.stack([ops.radix_histogram([t], [m], key >> 1, key_bits - 1, 1)[key & 1] for t, m in zip(tensors, masks)])
        .cpu()
        .tolist()
    )
    counts = all_gather_ints(per_tensor, group, device)  # [world, n_tensors]
    before_tensor = torch.cumsum(counts.sum(0), 0) - counts.sum(0)
    local_ties = 0
    for i, mine in enumerate(per_tensor):
        before = int(before_tensor[i]) + int(counts[:rank, i].sum())
        local_ties += min(max(sel.n_ties - before, 0), mine)
    return local_ties


def _compose(
    k: int, sel: _Selection, local_ties: int, n_surv: int, local_surv: int, first: _FirstPass, dtype: torch.dtype, group
) -> DistributedThreshold:
    """The global Threshold and this rank's, from the selection and the tie split.

    Both info vectors have the INFO_LEN slots of ``rgprune.kernels.format``. Their NaN slot is 0 (a NaN
    survivor on any rank raised before), and so is their INFO_N_OUTSIDE slot: the distributed first pass is
    ``magnitude_histogram``, which does not count the weights outside the masks, so the outside count is not
    known here (the distributed pruner keeps calling ``check`` for it)."""
    local_info = torch.tensor(
        [sel.key, sel.local_below, local_ties, sel.local_equal, local_surv, 0, 0], dtype=torch.int64
    ).to(first.device)
    local = Threshold(
        sel.local_below + local_ties,
        sel.key,
        sel.local_below,
        local_ties,
        sel.local_equal,
        local_surv,
        dtype=dtype,
        info=local_info,
        histogram=first.local_histogram,
    )
    info = torch.tensor([sel.key, sel.n_below, sel.n_ties, sel.n_equal, n_surv, 0, 0], dtype=torch.int64)
    overall = Threshold(
        k, sel.key, sel.n_below, sel.n_ties, sel.n_equal, n_surv, dtype, info.to(first.device), first.global_histogram
    )
    return DistributedThreshold(overall, local, dist.get_rank(group), dist.get_world_size(group), sel.passes)


def global_magnitude_threshold_distributed(
    tensors: Sequence[torch.Tensor], masks: Sequence[torch.Tensor], k: int, group=None, *, tie_order: str = "rank"
) -> DistributedThreshold:
    """Exact k-th smallest surviving magnitude over the tensors of every rank of ``group``.

    Every rank calls this with its own (non-empty) tensor list and masks and the same ``k``. Per radix pass:
    a local histogram and one all_reduce of ~2**12 int64 (see ``rgprune.distributed`` for the cost model
    and the tie orders). Raises on every rank alike when ``k`` is out of range or differs between ranks,
    when a survivor on any rank is NaN, or when any rank's arguments are invalid. Nothing is modified.
    """
    group = resolve_group(group)
    error = None
    try:
        tensors, masks = _check_arguments(tensors, masks, k, tie_order)
    except (TypeError, ValueError) as exc:
        error = exc
    first = _first_pass(tensors, masks, k, tie_order, error, group)
    n_surv, local_surv = _check_headers(first.headers, error, dist.get_rank(group), k, tie_order, tensors)
    if k == 0:
        sel, local_ties = _Selection(-1, 0, 0, 0, 0, 0, passes=1), 0
    else:
        sel = _radix_select(tensors, masks, k, first.host_histograms, group)
        local_ties = _local_ties(sel, tie_order, tensors, masks, group, first.device)
    return _compose(k, sel, local_ties, n_surv, local_surv, first, tensors[0].dtype, group)


def prune_global_distributed_(
    tensors: Sequence[torch.Tensor],
    masks: Sequence[torch.Tensor],
    k: int,
    group=None,
    bits: int = 12,
    *,
    tie_order: str = "rank",
) -> DistributedPruneResult:
    """Prune exactly ``k`` weights over all ranks of ``group``, in place: each rank zeroes its share of the
    ``k`` smallest surviving magnitudes and clears their mask bits.

    ``global_magnitude_threshold_distributed`` followed by ``rgprune.apply_threshold_`` with this rank's
    local threshold (no communication). Returns the global threshold and this rank's survivors' statistics
    at resolution ``bits``.
    """
    threshold = global_magnitude_threshold_distributed(tensors, masks, k, group, tie_order=tie_order)
    stats = ops.apply_threshold_(tensors, masks, threshold.local, bits)
    return DistributedPruneResult(threshold, stats)
