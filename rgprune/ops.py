"""Typed Python entry points to rgprune's kernels.

Validates every argument with an error that says what was wrong and how to fix it, and dispatches each
call to the fastest implementation available for the tensors' device: the CUDA kernels, the C++ CPU
kernels, or the pure-PyTorch reference (``rgprune.kernels.reference``), which defines the semantics and is
used when the extension is missing. ``rgprune.kernels.extension`` loads the compiled ops; their fake
kernels (``rgprune.kernels.fake``, registered here) let ``torch.compile`` trace them.
"""
from __future__ import annotations

from typing import NamedTuple, Sequence

import torch

from rgprune.kernels import extension, fake, reference
from rgprune.kernels.extension import backend
from rgprune.kernels.format import (
    INFO_N_NAN,
    INFO_N_SURVIVORS,
    KEY_BITS,
    MAX_HIST_BITS,
    key_to_magnitude,
    mask_words,
)

__all__ = ["FLOAT_DTYPES", "MagnitudeStats", "PruneResult", "Threshold", "apply_masks_", "apply_threshold_",
           "backend", "global_magnitude_threshold", "magnitude_histogram", "prune_global_", "radix_histogram",
           "validate"]

FLOAT_DTYPES = (torch.float32, torch.float16, torch.bfloat16, torch.float64)

if extension.module is not None:
    fake.register()


class MagnitudeStats(NamedTuple):
    """Statistics of the surviving weights, as returned by the kernels.

    histogram: int64[2**bits], survivors per bin of the top ``bits`` bits of their magnitude key
    (fixed logarithmic bins). counts, abs_sums, sq_sums, nan_counts: per tensor (int64, float64,
    float64, int64): surviving weights, their sum of |w| and of w**2, and surviving NaN weights.
    """

    histogram: torch.Tensor
    counts: torch.Tensor
    abs_sums: torch.Tensor
    sq_sums: torch.Tensor
    nan_counts: torch.Tensor


class Threshold(NamedTuple):
    """Exact global magnitude threshold for pruning ``k`` weights.

    Every survivor with key < ``key`` is pruned (``n_below``), and the first ``n_ties`` of the
    ``n_equal`` survivors whose key equals ``key``, in model order. ``key == -1`` prunes nothing.
    ``info`` is the same as an int64 tensor on the tensors' device (what ``apply_threshold_`` reads);
    ``histogram`` is the survivors' histogram before pruning on the top 12 bits of the keys.
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

    @property
    def magnitude(self) -> float:
        """The threshold as a magnitude |w| (NaN when nothing is pruned)."""
        return key_to_magnitude(self.key, self.dtype)


# --------------------------------------------------------------------------------------------------
# Validation (shared by every backend; raises before anything is changed)
# --------------------------------------------------------------------------------------------------

def _as_list(tensors, what: str) -> list:
    if isinstance(tensors, torch.Tensor):
        raise TypeError(f"{what} must be a list of tensors, got a single tensor; wrap it: [{what[:-1]}]")
    if not isinstance(tensors, (list, tuple)):
        raise TypeError(f"{what} must be a list or tuple of tensors, got {type(tensors).__name__}")
    return list(tensors)


def validate(tensors, masks, *, same_dtype: bool = True, inplace: bool = False):
    """Checks a tensor list and its masks; returns them as lists. Raises TypeError/ValueError."""
    tensors = _as_list(tensors, "tensors")
    masks = _as_list(masks, "masks")
    if not tensors:
        raise ValueError("tensors is empty: pass at least one weight tensor")
    if len(masks) != len(tensors):
        raise ValueError(f"got {len(tensors)} tensors but {len(masks)} masks: pass one mask per tensor "
                         f"(MaskSet.ones(tensors) makes all-survivor masks)")
    device, dtype = None, None
    for i, (t, m) in enumerate(zip(tensors, masks)):
        if not isinstance(t, torch.Tensor) or not isinstance(m, torch.Tensor):
            raise TypeError(f"tensors[{i}] and masks[{i}] must be torch.Tensor, got "
                            f"{type(t).__name__} and {type(m).__name__}")
        if t.dtype not in FLOAT_DTYPES:
            raise TypeError(f"tensors[{i}] has dtype {t.dtype}: magnitude pruning needs float weights; pass "
                            f"float32, float16, bfloat16 or float64 tensors")
        if dtype is None:
            device, dtype = t.device, t.dtype
        if same_dtype and t.dtype != dtype:
            raise TypeError(f"tensors[{i}] has dtype {t.dtype} but tensors[0] has {dtype}: magnitudes are "
                            f"ranked within one dtype; cast the tensors to one dtype or prune the groups "
                            f"separately")
        if t.device != device or m.device != device:
            raise ValueError(f"tensors[{i}] is on {t.device} and masks[{i}] on {m.device} but tensors[0] is on "
                             f"{device}: move all tensors and masks to one device")
        if not t.is_contiguous():
            raise ValueError(f"tensors[{i}] is not contiguous (shape {tuple(t.shape)}, strides {t.stride()}): "
                             f"pass contiguous tensors (module parameters are; call .contiguous() on views "
                             f"and copy results back)")
        if inplace and t.requires_grad and t.is_leaf and torch.is_grad_enabled():
            raise ValueError(f"tensors[{i}] is a leaf that requires grad: pass param.data or call under "
                             f"torch.no_grad()")
        words = mask_words(t.numel())
        if m.dtype != torch.int32 or m.dim() != 1 or m.numel() != words or not m.is_contiguous():
            raise ValueError(f"masks[{i}] must be a contiguous 1-D int32 tensor of {words} words (1 bit per "
                             f"weight) for a tensor of {t.numel()} elements, got dtype {m.dtype} and shape "
                             f"{tuple(m.shape)}; build masks with rgprune.MaskSet")
    return tensors, masks


def _check_bits(bits, dtype) -> int:
    if isinstance(bits, bool) or not isinstance(bits, int):
        raise TypeError(f"bits must be an int, got {type(bits).__name__}")
    limit = min(MAX_HIST_BITS, KEY_BITS[dtype])
    if not 1 <= bits <= limit:
        raise ValueError(f"bits must be between 1 and {limit} (histogram of the top bits of the magnitude key), "
                         f"got {bits}")
    return bits


def _raise_on_nan(tensors, masks, n_nan: int):
    bad = [i for i, t in enumerate(tensors) if torch.isnan(t).any()]
    raise ValueError(f"{n_nan} surviving weights are NaN (in tensors {bad}): magnitude pruning cannot rank NaN; "
                     f"fix the training run (e.g. lower the learning rate, enable gradient clipping) or zero "
                     f"those weights first")


# --------------------------------------------------------------------------------------------------
# Public ops
# --------------------------------------------------------------------------------------------------

def magnitude_histogram(tensors: Sequence[torch.Tensor], masks: Sequence[torch.Tensor], bits: int = 12, *,
                        check_nan: bool = True) -> MagnitudeStats:
    """Histogram of the top ``bits`` bits of the surviving weights' magnitude keys, and per-tensor stats.

    One read of the weights. With ``check_nan`` (default) a NaN survivor raises ValueError, which costs one
    device-to-host synchronization; pass ``check_nan=False`` to stay asynchronous and read ``nan_counts``.
    """
    tensors, masks = validate(tensors, masks)
    bits = _check_bits(bits, tensors[0].dtype)
    if extension.compiled_for(tensors[0].device):
        out = torch.ops.rgprune.magnitude_histogram(tensors, masks, bits)
    else:
        out = reference.magnitude_histogram(tensors, masks, bits)
    stats = MagnitudeStats(*out)
    if check_nan:
        n_nan = int(stats.nan_counts.sum())
        if n_nan:
            _raise_on_nan(tensors, masks, n_nan)
    return stats


def _threshold_info(tensors, masks, k: int):
    if extension.compiled_for(tensors[0].device):
        return torch.ops.rgprune.global_magnitude_threshold(tensors, masks, k)
    return reference.global_magnitude_threshold(tensors, masks, k)


def global_magnitude_threshold(tensors: Sequence[torch.Tensor], masks: Sequence[torch.Tensor],
                               k: int) -> Threshold:
    """Exact k-th smallest surviving magnitude over all ``tensors`` (radix select, 2-6 reads, O(bins) memory).

    Raises ValueError when k is negative or larger than the number of surviving weights, or when a
    surviving weight is NaN. Nothing is modified.
    """
    tensors, masks = validate(tensors, masks)
    if isinstance(k, bool) or not isinstance(k, int):
        raise TypeError(f"k must be an int (the number of weights to prune), got {type(k).__name__}")
    if k < 0:
        raise ValueError(f"k must be >= 0 (the number of weights to prune), got {k}")
    info, hist = _threshold_info(tensors, masks, k)
    values = info.tolist()
    if values[INFO_N_NAN]:
        _raise_on_nan(tensors, masks, values[INFO_N_NAN])
    n_surv = values[INFO_N_SURVIVORS]
    if k > n_surv:
        raise ValueError(f"k={k} exceeds the {n_surv} surviving weights: pass k <= {n_surv}")
    return Threshold(k, *values[:5], dtype=tensors[0].dtype, info=info, histogram=hist)


def radix_histogram(tensors: Sequence[torch.Tensor], masks: Sequence[torch.Tensor], prefix: int, prefix_bits: int,
                    bits: int = 12) -> torch.Tensor:
    """One refinement pass of the radix select: int64[2**bits] histogram of the surviving non-NaN weights
    whose magnitude key's top ``prefix_bits`` bits equal ``prefix``, binned by the next ``bits`` bits.

    ``prefix_bits=0`` filters nothing. 1 read of the weights (a fast one: almost nothing matches a long
    prefix), no host sync. ``rgprune.distributed`` sums these over ranks to find a global threshold.
    """
    tensors, masks = validate(tensors, masks)
    dtype = tensors[0].dtype
    bits = _check_bits(bits, dtype)
    key_bits = KEY_BITS[dtype]
    for name, value in (("prefix", prefix), ("prefix_bits", prefix_bits)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if not 0 <= prefix_bits <= key_bits - bits:
        raise ValueError(f"prefix_bits must be between 0 and {key_bits - bits} ({dtype} keys have {key_bits} "
                         f"bits and bits={bits} more are binned), got {prefix_bits}")
    if not 0 <= prefix < (1 << prefix_bits):
        raise ValueError(f"prefix must be in [0, 2**prefix_bits) = [0, {1 << prefix_bits}), got {prefix}")
    if extension.compiled_for(tensors[0].device, "rgprune::radix_histogram"):
        return torch.ops.rgprune.radix_histogram(tensors, masks, prefix, prefix_bits, bits)
    return reference.radix_histogram(tensors, masks, prefix, prefix_bits, bits)


def apply_threshold_(tensors: Sequence[torch.Tensor], masks: Sequence[torch.Tensor], threshold: Threshold,
                     bits: int = 12) -> MagnitudeStats:
    """Prune in place to ``threshold``: zero the pruned weights, clear their mask bits, and return the
    survivors' statistics (the RG trace's histogram) from the same pass. 1 read + 1 write, no host sync."""
    tensors, masks = validate(tensors, masks, inplace=True)
    if not isinstance(threshold, Threshold):
        raise TypeError(f"threshold must be the Threshold returned by global_magnitude_threshold, got "
                        f"{type(threshold).__name__}")
    if threshold.dtype != tensors[0].dtype or threshold.info.device != tensors[0].device:
        raise ValueError(f"threshold was computed for {threshold.dtype} on {threshold.info.device} but the "
                         f"tensors are {tensors[0].dtype} on {tensors[0].device}: compute it on these tensors")
    bits = _check_bits(bits, tensors[0].dtype)
    if extension.compiled_for(tensors[0].device):
        out = torch.ops.rgprune.apply_threshold_(tensors, masks, threshold.info, bits)
    else:
        out = reference.apply_threshold_(tensors, masks, threshold.info, bits)
    return MagnitudeStats(*out)


def apply_masks_(tensors: Sequence[torch.Tensor], masks: Sequence[torch.Tensor]) -> None:
    """Set every element whose mask bit is 0 to +0.0, in place (weights, grads or optimizer moments;
    tensors may differ in dtype). Reads the masks, writes only pruned elements."""
    tensors, masks = validate(tensors, masks, same_dtype=False, inplace=True)
    if extension.compiled_for(tensors[0].device):
        torch.ops.rgprune.apply_masks_(tensors, masks)
    else:
        reference.apply_masks_(tensors, masks)


class PruneResult(NamedTuple):
    threshold: Threshold
    stats: MagnitudeStats


def prune_global_(tensors: Sequence[torch.Tensor], masks: Sequence[torch.Tensor], k: int,
                  bits: int = 12) -> PruneResult:
    """Prune exactly the ``k`` smallest surviving magnitudes over all ``tensors``, in place.

    ``global_magnitude_threshold`` followed by ``apply_threshold_``; returns both results.
    """
    threshold = global_magnitude_threshold(tensors, masks, k)
    return PruneResult(threshold, apply_threshold_(tensors, masks, threshold, bits))
