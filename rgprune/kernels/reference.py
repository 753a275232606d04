"""Pure-PyTorch reference of rgprune's kernels: the single source of truth for their semantics.

The C++ (``csrc/cpu``) and CUDA (``csrc/cuda``) kernels must return exactly what these functions return
(integers bit for bit; the float64 sums up to summation order). The reference favours clarity over speed:
it may concatenate and sort, which the compiled kernels never do.

Conventions shared by every implementation
------------------------------------------
The key, mask and info formats are defined in ``rgprune.kernels.format``. On top of them:

* **NaN** keys are never ranked (the Python API refuses NaN weights). A pruned weight is ignored by every
  statistic and is always stored as ``+0.0``.
* **Ties.** Exactly ``k`` weights are pruned. Survivors whose key equals the threshold key are pruned in
  model order: lower tensor index first, then lower flat index.
* **Statistics** (``MagnitudeStats``): histogram of the top ``bits`` bits of the survivors' keys (the
  fixed logarithmic bins of the RG trace), and per tensor the survivor count, sum of ``|w|`` and sum of
  ``w**2`` in float64, and the NaN count.
* **Outside the masks.** The threshold also counts, over all tensors, the entries whose mask bit is 0 but
  whose key is not 0 (``info[INFO_N_OUTSIDE]``: weights that grew back after pruning; NaN counted, ``+0.0``
  and ``-0.0`` not, elements past ``numel`` never), always, whatever ``k``. The compiled kernels count them
  in the first pass, which reads every weight anyway.
* **A threshold over NaN survivors prunes nothing.** ``apply_threshold_`` given an info whose
  ``INFO_N_NAN`` is not 0 leaves every weight and mask as it is (the Python API raises before, but a
  device kernel may be handed such an info before the API raises) and returns the statistics of the
  survivors as they are.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from rgprune.kernels.format import (
    INF_KEY,
    INFO_KEY,
    INFO_N_NAN,
    INFO_N_TIES,
    KEY_BITS,
    RADIX_BITS,
    magnitude_keys,
    pack_mask,
    unpack_mask,
)


def _survivors(t: torch.Tensor, words: torch.Tensor):
    keys = magnitude_keys(t)
    alive = unpack_mask(words, t.numel())
    nan = keys > INF_KEY[t.dtype]
    return keys, alive, nan


def magnitude_histogram(tensors: Sequence[torch.Tensor], masks: Sequence[torch.Tensor], bits: int):
    """Statistics of the surviving weights: ``(histogram, counts, abs_sums, sq_sums, nan_counts)``.

    ``histogram[b]`` counts surviving non-NaN weights whose key's top ``bits`` bits equal ``b``;
    the per-tensor vectors are int64 counts, float64 sums of ``|w|`` and ``w**2`` (NaN excluded),
    and int64 counts of surviving NaN weights.
    """
    device = tensors[0].device
    dtype = tensors[0].dtype
    shift = KEY_BITS[dtype] - bits
    hist = torch.zeros(1 << bits, dtype=torch.int64, device=device)
    n = len(tensors)
    counts = torch.zeros(n, dtype=torch.int64, device=device)
    abs_sums = torch.zeros(n, dtype=torch.float64, device=device)
    sq_sums = torch.zeros(n, dtype=torch.float64, device=device)
    nan_counts = torch.zeros(n, dtype=torch.int64, device=device)
    for i, (t, m) in enumerate(zip(tensors, masks)):
        keys, alive, nan = _survivors(t, m)
        ok = alive & ~nan
        hist += torch.bincount(keys[ok] >> shift, minlength=1 << bits)
        vals = t.reshape(-1)[ok].to(torch.float64)
        counts[i] = ok.sum()
        abs_sums[i] = vals.abs().sum()
        sq_sums[i] = (vals * vals).sum()
        nan_counts[i] = (alive & nan).sum()
    return hist, counts, abs_sums, sq_sums, nan_counts


def radix_histogram(
    tensors: Sequence[torch.Tensor], masks: Sequence[torch.Tensor], prefix: int, prefix_bits: int, bits: int
) -> torch.Tensor:
    """One radix-select refinement pass: int64[2**bits] histogram of the surviving non-NaN weights whose
    key's top ``prefix_bits`` bits equal ``prefix``, binned by the next ``bits`` bits of the key.

    ``prefix_bits == 0`` filters nothing (then this is ``magnitude_histogram``'s histogram at ``bits``).
    ``global_magnitude_threshold`` is a sequence of such passes; ``rgprune.distributed`` runs them one at a
    time so that each pass's histogram can be summed over ranks.
    """
    device = tensors[0].device
    key_bits = KEY_BITS[tensors[0].dtype]
    shift = key_bits - prefix_bits - bits
    hist = torch.zeros(1 << bits, dtype=torch.int64, device=device)
    for t, m in zip(tensors, masks):
        keys, alive, nan = _survivors(t, m)
        ok = alive & ~nan
        if prefix_bits:
            ok &= (keys >> (key_bits - prefix_bits)) == prefix
        hist += torch.bincount((keys[ok] >> shift) & ((1 << bits) - 1), minlength=1 << bits)
    return hist


def global_magnitude_threshold(tensors: Sequence[torch.Tensor], masks: Sequence[torch.Tensor], k: int):
    """Exact k-th smallest surviving magnitude over all tensors: ``(info, top_histogram)``.

    ``info`` is int64 ``[key, n_below, n_ties, n_equal, n_survivors, n_nan, n_outside]``: pruning every
    survivor with key < ``key`` (``n_below`` of them) and the first ``n_ties`` of the ``n_equal`` survivors
    with key == ``key`` removes exactly ``k``. For ``k == 0`` or ``k > n_survivors`` nothing is to be pruned
    and ``key = -1`` (the Python API rejects the latter). ``n_nan`` counts the surviving NaN weights (never
    ranked). ``n_outside`` counts the entries whose mask bit is 0 but whose key is not 0 (NaN counted,
    ``±0.0`` not; elements past ``numel`` are never looked at), for every ``k``. ``top_histogram`` is the
    first radix pass: the survivors' histogram on the top ``RADIX_BITS`` bits of the keys (NaN excluded).
    """
    device = tensors[0].device
    dtype = tensors[0].dtype
    keys = []
    n_nan = n_outside = 0
    for t, m in zip(tensors, masks):
        k_t, alive, nan = _survivors(t, m)
        keys.append(k_t[alive & ~nan])
        n_nan += int((alive & nan).sum())
        n_outside += int((~alive & (k_t != 0)).sum())
    all_keys = torch.cat(keys) if keys else torch.zeros(0, dtype=torch.int64, device=device)
    top = torch.bincount(all_keys >> (KEY_BITS[dtype] - RADIX_BITS), minlength=1 << RADIX_BITS)
    n_surv = all_keys.numel()
    if k == 0 or k > n_surv:
        info = [-1, 0, 0, 0, n_surv, n_nan, n_outside]
    else:
        thr = int(torch.kthvalue(all_keys.cpu(), k).values)
        n_below = int((all_keys < thr).sum())
        n_equal = int((all_keys == thr).sum())
        info = [thr, n_below, k - n_below, n_equal, n_surv, n_nan, n_outside]
    return torch.tensor(info, dtype=torch.int64, device=device), top


def apply_threshold_(tensors: Sequence[torch.Tensor], masks: Sequence[torch.Tensor], info: torch.Tensor, bits: int):
    """Prune in place to the threshold ``info`` from ``global_magnitude_threshold``.

    Survivors with key < threshold are pruned, and the first ``n_ties`` survivors with key == threshold
    in model order. Every weight whose mask bit ends up 0 is set to ``+0.0`` and the masks are updated.
    Returns ``magnitude_histogram`` of the survivors after pruning at resolution ``bits``.

    When ``info[INFO_N_NAN] > 0`` the threshold was computed over NaN survivors, which cannot be ranked:
    nothing is pruned or written (weights and masks stay as they are, bit for bit, weights outside the
    masks included) and the statistics of the unchanged survivors are returned. The Python API raises
    before it gets here; a GPU kernel, whose info stays on the device, must refuse on its own.
    """
    values = info.tolist()
    if values[INFO_N_NAN] > 0:
        return magnitude_histogram(tensors, masks, bits)
    thr, ties_left = values[INFO_KEY], values[INFO_N_TIES]
    for t, m in zip(tensors, masks):
        keys, alive, _ = _survivors(t, m)
        at_thr = alive & (keys == thr)
        rank = torch.cumsum(at_thr.to(torch.int64), 0)  # 1-based rank of each tie within this tensor
        prune = alive & (keys < thr) | (at_thr & (rank <= ties_left))
        ties_left -= min(ties_left, int(at_thr.sum()))
        keep = alive & ~prune
        t.view(-1).masked_fill_(~keep.reshape(-1), 0)
        m.copy_(pack_mask(keep))
    return magnitude_histogram(tensors, masks, bits)


def threshold_masks_(tensors: Sequence[torch.Tensor], masks: Sequence[torch.Tensor], info: torch.Tensor) -> None:
    """``apply_threshold_``'s decisions on the masks alone: the tensors are read, never written."""
    apply_threshold_([t.clone() for t in tensors], masks, info, 1)


def apply_masks_(tensors: Sequence[torch.Tensor], masks: Sequence[torch.Tensor]) -> None:
    """Set every weight whose mask bit is 0 to ``+0.0`` (weights, grads, optimizer moments alike)."""
    for t, m in zip(tensors, masks):
        keep = unpack_mask(m, t.numel())
        t.view(-1).masked_fill_(~keep, 0)


def masks_where_one_(tensors: Sequence[torch.Tensor], masks: Sequence[torch.Tensor]) -> None:
    """Set each mask bit to whether its element equals 1 (bits past ``numel`` 0)."""
    for t, m in zip(tensors, masks):
        m.copy_(pack_mask(t.reshape(-1) == 1))
