"""Typed Python entry points to rgprune's kernels.

Validates every argument with an error that says what was wrong and how to fix it, and dispatches each
call to the fastest implementation available for the tensors' device: the CUDA kernels, the C++ CPU
kernels, or the pure-PyTorch reference (``rgprune.kernels.reference``), which defines the semantics and is
used when the extension is missing. ``rgprune.kernels.extension`` loads the compiled ops; their fake
kernels (``rgprune.kernels.fake``, registered here) let ``torch.compile`` trace them.

Layouts and ties: every op takes dense tensors in any memory layout (contiguous, ``channels_last``,
``channels_last_3d``, transposed: see ``rgprune.kernels.layout``) and prunes them in place in their own
layout. Mask bits and the tie order are those of the *logical* flat index (row-major over the shape,
``t.contiguous().view(-1)``): ties at the threshold are pruned in model order -- lower tensor index first,
then lower logical flat index -- on every backend and for every layout, so a model gets the same masks in
any layout. Tensors whose elements overlap or leave gaps in memory are refused.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch

from rgprune.kernels import extension, fake, layout, reference
from rgprune.kernels.extension import backend
from rgprune.kernels.format import (
    INFO_KEY,
    INFO_N_BELOW,
    INFO_N_EQUAL,
    INFO_N_NAN,
    INFO_N_OUTSIDE,
    INFO_N_SURVIVORS,
    INFO_N_TIES,
    KEY_BITS,
    MAX_HIST_BITS,
    key_to_magnitude,
    mask_words,
)

__all__ = [
    "FLOAT_DTYPES",
    "MagnitudeStats",
    "NaNSurvivorsError",
    "PruneResult",
    "Threshold",
    "apply_masks_",
    "apply_threshold_",
    "backend",
    "count_outside_masks",
    "global_magnitude_threshold",
    "magnitude_histogram",
    "masks_where_one",
    "prune_by_scores_",
    "prune_global_",
    "radix_histogram",
    "validate",
]

FLOAT_DTYPES = (torch.float32, torch.float16, torch.bfloat16, torch.float64)

if extension.module is not None:
    fake.register()


def defers_errors(device: torch.device) -> bool:
    """Whether the ops leave their results on ``device`` unread: on a GPU, reading a count on the host waits
    for the kernels, so the ops' errors wait until the caller reads a result (or asks: ``check()``). On the CPU
    a read costs nothing and the ops raise at once."""
    return device.type != "cpu"


class NaNSurvivorsError(ValueError):
    """Surviving weights are NaN, which magnitude pruning cannot rank. ``n_nan``: how many; ``tensors``: the
    indices (in the list the op was given) of the tensors holding them; ``names``: their names when the caller
    knows them (``GlobalMagnitudePruner`` re-raises with its parameter names, ``named``)."""

    def __init__(self, n_nan: int, tensors: Sequence[int], names: Sequence[str] | None = None):
        self.n_nan, self.tensors = int(n_nan), list(tensors)
        self.names = None if names is None else list(names)
        where = f"in tensors {self.tensors}" if self.names is None else f"in {self.names}"
        super().__init__(
            f"{self.n_nan} surviving weights are NaN ({where}): magnitude pruning cannot rank NaN; fix the training "
            f"run (e.g. lower the learning rate, enable gradient clipping) or zero those weights first"
        )

    def named(self, names: Sequence[str]) -> NaNSurvivorsError:
        """The same error naming the tensors by ``names`` (one per tensor the op was given)."""
        return NaNSurvivorsError(self.n_nan, self.tensors, [names[i] for i in self.tensors])


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

    def check(self) -> MagnitudeStats:
        """Raises ValueError, naming the tensors, when a survivor is NaN; returns the statistics otherwise. Reads
        ``nan_counts`` on the host (on a GPU: waits for the kernels)."""
        counts = self.nan_counts.tolist()
        if any(counts):
            raise NaNSurvivorsError(sum(counts), [i for i, c in enumerate(counts) if c])
        return self


class Threshold:
    """Exact global magnitude threshold for pruning ``k`` weights.

    Every survivor with key < ``key`` is pruned (``n_below``), and the first ``n_ties`` of the
    ``n_equal`` survivors whose key equals ``key``, in model order. ``key == -1`` prunes nothing.
    ``n_survivors``: the survivors ranked; ``n_outside``: weights under cleared mask bits that are not 0
    (they grew back), counted by the same pass. ``info`` is the same as an int64 tensor on the tensors'
    device (what ``apply_threshold_`` reads); ``histogram`` is the survivors' histogram before pruning on the
    top 12 bits of the keys.

    On a GPU the numbers stay on the device until first read: reading ``key``, ``n_below``, ... or calling
    ``check()`` copies ``info`` to the host once (waiting for the kernels) and raises then the errors
    ``global_magnitude_threshold`` raises at once on the CPU. Until then nothing waits, and
    ``apply_threshold_`` with a threshold that would raise prunes nothing.
    """

    __slots__ = ("k", "dtype", "info", "histogram", "_values", "_tensors")

    def __init__(
        self, k, key, n_below, n_ties, n_equal, n_survivors, dtype, info, histogram, n_outside: int = 0
    ) -> None:
        """A threshold whose numbers are known on the host (the distributed select composes these)."""
        self.k, self.dtype, self.info, self.histogram = k, dtype, info, histogram
        values = [0] * len(_INFO_FIELDS)
        for name, value in zip(_INFO_FIELDS, (key, n_below, n_ties, n_equal, n_survivors, 0, n_outside)):
            values[_INFO_FIELDS[name]] = value
        self._values, self._tensors = values, None

    @classmethod
    def from_kernels(cls, k: int, tensors: Sequence[torch.Tensor], info: torch.Tensor, histogram: torch.Tensor):
        """The threshold the kernels wrote into ``info`` for ``tensors``, read on the host when first needed
        (at once on the CPU). Holds the tensors until then, to name those holding NaN in the error."""
        self = cls.__new__(cls)
        self.k, self.dtype, self.info, self.histogram = k, tensors[0].dtype, info, histogram
        self._values, self._tensors = None, list(tensors)
        if not defers_errors(info.device):
            self.check()
        return self

    def check(self) -> Threshold:
        """Reads the threshold on the host (once) and raises ValueError when it cannot prune: a surviving weight
        is NaN, or k exceeds the survivors. Returns the threshold."""
        if self._values is None:
            values = self.info.tolist()
            if values[INFO_N_NAN]:
                bad = [i for i, t in enumerate(self._tensors) if torch.isnan(t).any()]
                raise NaNSurvivorsError(values[INFO_N_NAN], bad)
            if self.k > values[INFO_N_SURVIVORS]:
                n_surv = values[INFO_N_SURVIVORS]
                raise ValueError(f"k={self.k} exceeds the {n_surv} surviving weights: pass k <= {n_surv}")
            self._values, self._tensors = values, None
        return self

    def _value(self, slot: int) -> int:
        return self.check()._values[slot]

    key = property(lambda self: self._value(INFO_KEY), doc="the threshold's magnitude key (-1: nothing pruned)")
    n_below = property(lambda self: self._value(INFO_N_BELOW), doc="survivors pruned below the key")
    n_ties = property(lambda self: self._value(INFO_N_TIES), doc="survivors at the key pruned, in model order")
    n_equal = property(lambda self: self._value(INFO_N_EQUAL), doc="survivors whose key is the key")
    n_survivors = property(lambda self: self._value(INFO_N_SURVIVORS), doc="survivors ranked (NaN excluded)")
    n_outside = property(lambda self: self._value(INFO_N_OUTSIDE), doc="nonzero weights under cleared mask bits")

    @property
    def magnitude(self) -> float:
        """The threshold as a magnitude |w| (NaN when nothing is pruned)."""
        return key_to_magnitude(self.key, self.dtype)

    def __repr__(self) -> str:
        if self._values is None:
            return f"Threshold(k={self.k}, dtype={self.dtype}, not read yet from {self.info.device})"
        fields = ", ".join(f"{name}={self._values[slot]}" for name, slot in _INFO_FIELDS.items() if name != "n_nan")
        return f"Threshold(k={self.k}, {fields}, dtype={self.dtype})"


#: Threshold's numbers and their slots in the info vector
_INFO_FIELDS = {
    "key": INFO_KEY,
    "n_below": INFO_N_BELOW,
    "n_ties": INFO_N_TIES,
    "n_equal": INFO_N_EQUAL,
    "n_survivors": INFO_N_SURVIVORS,
    "n_nan": INFO_N_NAN,
    "n_outside": INFO_N_OUTSIDE,
}


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
        raise ValueError(
            f"got {len(tensors)} tensors but {len(masks)} masks: pass one mask per tensor "
            f"(MaskSet.ones(tensors) makes all-survivor masks)"
        )
    device, dtype = None, None
    for i, (t, m) in enumerate(zip(tensors, masks)):
        if not isinstance(t, torch.Tensor) or not isinstance(m, torch.Tensor):
            raise TypeError(
                f"tensors[{i}] and masks[{i}] must be torch.Tensor, got {type(t).__name__} and {type(m).__name__}"
            )
        if t.dtype not in FLOAT_DTYPES:
            raise TypeError(
                f"tensors[{i}] has dtype {t.dtype}: magnitude pruning needs float weights; pass "
                f"float32, float16, bfloat16 or float64 tensors"
            )
        if dtype is None:
            device, dtype = t.device, t.dtype
        if same_dtype and t.dtype != dtype:
            raise TypeError(
                f"tensors[{i}] has dtype {t.dtype} but tensors[0] has {dtype}: magnitudes are "
                f"ranked within one dtype; cast the tensors to one dtype or prune the groups "
                f"separately"
            )
        if t.device != device or m.device != device:
            raise ValueError(
                f"tensors[{i}] is on {t.device} and masks[{i}] on {m.device} but tensors[0] is on "
                f"{device}: move all tensors and masks to one device"
            )
        try:
            layout.storage_permutation(t)
        except ValueError as exc:
            raise ValueError(f"tensors[{i}]: {exc}") from None
        if inplace and t.requires_grad and t.is_leaf and torch.is_grad_enabled():
            raise ValueError(
                f"tensors[{i}] is a leaf that requires grad: pass param.data or call under torch.no_grad()"
            )
        words = mask_words(t.numel())
        if m.dtype != torch.int32 or m.dim() != 1 or m.numel() != words or not m.is_contiguous():
            raise ValueError(
                f"masks[{i}] must be a contiguous 1-D int32 tensor of {words} words (1 bit per "
                f"weight) for a tensor of {t.numel()} elements, got dtype {m.dtype} and shape "
                f"{tuple(m.shape)}; build masks with rgprune.MaskSet"
            )
    return tensors, masks


def _check_bits(bits, dtype) -> int:
    if isinstance(bits, bool) or not isinstance(bits, int):
        raise TypeError(f"bits must be an int, got {type(bits).__name__}")
    limit = min(MAX_HIST_BITS, KEY_BITS[dtype])
    if not 1 <= bits <= limit:
        raise ValueError(
            f"bits must be between 1 and {limit} (histogram of the top bits of the magnitude key), got {bits}"
        )
    return bits


# --------------------------------------------------------------------------------------------------
# Layouts: the kernels walk storage; masks and ties are in logical order (rgprune.kernels.layout)
# --------------------------------------------------------------------------------------------------


def _storage_views(tensors):
    """The tensors' storage-order views (a contiguous tensor as it is) and their permutations (None =
    contiguous)."""
    perms = [layout.storage_permutation(t) for t in tensors]
    return [t if p is None else layout.storage_view(t, p) for t, p in zip(tensors, perms)], perms


def _storage_order(tensors, masks):
    """Storage views of ``tensors`` and their masks in storage order (new words for permuted tensors; the
    same lists when every tensor is contiguous), and the permutations (None = contiguous)."""
    views, perms = _storage_views(tensors)
    if all(p is None for p in perms):
        return tensors, masks, perms
    words = [layout.to_storage_order(m, t.shape, p) for t, m, p in zip(tensors, masks, perms)]
    return views, words, perms


def _equal_count(t: torch.Tensor, m: torch.Tensor, key: int) -> int:
    """Survivors of ``t`` whose magnitude key is ``key`` (one radix pass over the full key)."""
    key_bits = KEY_BITS[t.dtype]
    return int(radix_histogram([t], [m], key >> 1, key_bits - 1, 1)[key & 1])


def _tie_shares(tensors, masks, threshold) -> list[tuple[int, int]] | None:
    """Per tensor, (ties it prunes, survivors equal to the key) when the threshold prunes some but not all
    of its ties (taken in model order); None when it prunes all of them or none (then no tensor needs them
    ordered). Reads each tensor once, up to the one in which the ties run out."""
    if not 0 < threshold.n_ties < threshold.n_equal:
        return None
    shares, remaining = [], threshold.n_ties
    for t, m in zip(tensors, masks):
        equal = _equal_count(t, m, threshold.key) if remaining else 0
        shares.append((min(remaining, equal), equal))
        remaining -= shares[-1][0]
    return shares


# --------------------------------------------------------------------------------------------------
# Public ops
# --------------------------------------------------------------------------------------------------


def magnitude_histogram(
    tensors: Sequence[torch.Tensor],
    masks: Sequence[torch.Tensor],
    bits: int = 12,
    *,
    check_nan: bool | None = None,
) -> MagnitudeStats:
    """Histogram of the top ``bits`` bits of the surviving weights' magnitude keys, and per-tensor stats.

    One read of the weights. ``check_nan``: raise ValueError when a survivor is NaN (``MagnitudeStats.check``,
    which reads ``nan_counts`` on the host). Default: on the CPU, yes; on a GPU, no, so that nothing waits for
    the kernels: call ``stats.check()`` when you need it. True or False forces either.
    """
    tensors, masks = validate(tensors, masks)
    bits = _check_bits(bits, tensors[0].dtype)
    views, words, _ = _storage_order(tensors, masks)
    if extension.compiled_for(tensors[0].device):
        out = torch.ops.rgprune.magnitude_histogram(views, words, bits)
    else:
        out = reference.magnitude_histogram(views, words, bits)
    stats = MagnitudeStats(*out)
    if check_nan or (check_nan is None and not defers_errors(tensors[0].device)):
        stats.check()
    return stats


def _threshold_kernel(tensors, masks, k: int):
    if extension.compiled_for(tensors[0].device):
        return torch.ops.rgprune.global_magnitude_threshold(tensors, masks, k)
    return reference.global_magnitude_threshold(tensors, masks, k)


def global_magnitude_threshold(tensors: Sequence[torch.Tensor], masks: Sequence[torch.Tensor], k: int) -> Threshold:
    """Exact k-th smallest surviving magnitude over all ``tensors`` by radix select (the passes over the weights
    per dtype and device, and the bounded key buffer, are in docs/DESIGN.md, "The ops and their passes"). The
    same pass counts the weights outside the masks that are not 0 (``Threshold.n_outside``).

    Raises ValueError when k is negative or larger than the number of surviving weights, or when a
    surviving weight is NaN: on the CPU at once; on a GPU when the threshold is first read (see ``Threshold``),
    so that nothing waits for the kernels. Nothing is modified.
    """
    tensors, masks = validate(tensors, masks)
    if isinstance(k, bool) or not isinstance(k, int):
        raise TypeError(f"k must be an int (the number of weights to prune), got {type(k).__name__}")
    if k < 0:
        raise ValueError(f"k must be >= 0 (the number of weights to prune), got {k}")
    views, words, _ = _storage_order(tensors, masks)
    info, hist = _threshold_kernel(views, words, k)
    return Threshold.from_kernels(k, tensors, info, hist)


def radix_histogram(
    tensors: Sequence[torch.Tensor], masks: Sequence[torch.Tensor], prefix: int, prefix_bits: int, bits: int = 12
) -> torch.Tensor:
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
        raise ValueError(
            f"prefix_bits must be between 0 and {key_bits - bits} ({dtype} keys have {key_bits} "
            f"bits and bits={bits} more are binned), got {prefix_bits}"
        )
    if not 0 <= prefix < (1 << prefix_bits):
        raise ValueError(f"prefix must be in [0, 2**prefix_bits) = [0, {1 << prefix_bits}), got {prefix}")
    views, words, _ = _storage_order(tensors, masks)
    if extension.compiled_for(tensors[0].device, "rgprune::radix_histogram"):
        return torch.ops.rgprune.radix_histogram(views, words, prefix, prefix_bits, bits)
    return reference.radix_histogram(views, words, prefix, prefix_bits, bits)


def _apply_threshold_kernel(tensors, masks, info: torch.Tensor, bits: int) -> MagnitudeStats:
    """The kernel of ``apply_threshold_`` on contiguous tensors with masks in their order."""
    if extension.compiled_for(tensors[0].device):
        return MagnitudeStats(*torch.ops.rgprune.apply_threshold_(tensors, masks, info, bits))
    return MagnitudeStats(*reference.apply_threshold_(tensors, masks, info, bits))


def apply_threshold_(
    tensors: Sequence[torch.Tensor], masks: Sequence[torch.Tensor], threshold: Threshold, bits: int = 12
) -> MagnitudeStats:
    """Prune in place to ``threshold``: zero the pruned weights, clear their mask bits, and return the
    survivors' statistics (the RG trace's histogram) from the same pass. 1 read + 1 write, no host sync
    (for permuted layouts: plus the mask conversions, and when the threshold splits a group of ties inside a
    permuted tensor, one read per tensor to locate it and a temporary copy of that tensor)."""
    tensors, masks = validate(tensors, masks, inplace=True)
    if not isinstance(threshold, Threshold):
        raise TypeError(
            f"threshold must be the Threshold returned by global_magnitude_threshold, got {type(threshold).__name__}"
        )
    if threshold.dtype != tensors[0].dtype or threshold.info.device != tensors[0].device:
        raise ValueError(
            f"threshold was computed for {threshold.dtype} on {threshold.info.device} but the "
            f"tensors are {tensors[0].dtype} on {tensors[0].device}: compute it on these tensors"
        )
    bits = _check_bits(bits, tensors[0].dtype)
    kernel = lambda views, words, info: _apply_threshold_kernel(views, words, info, bits)  # noqa: E731
    stats, split, views = _in_storage_order(kernel, tensors, masks, threshold)
    if split is not None:
        tensors[split].copy_(views[split])
    _written(tensors, masks)
    return stats


def _written(*tensor_lists) -> None:
    """Tell autograd that the kernels wrote these tensors in place (their version counters, which the
    dispatcher does not bump for our ops): a backward through a graph that saved one of them then raises
    torch's "modified by an inplace operation" error instead of computing gradients from the new values."""
    torch.autograd.graph.increment_version([t for ts in tensor_lists for t in ts])


def _in_storage_order(kernel, tensors, masks, threshold: Threshold):
    """``kernel(views, words, info)`` on the tensors' storage-order views and their masks in that order; the
    masks of permuted tensors are converted back. Ties within a tensor are taken in its storage order by the
    kernels: only the one permuted tensor in which a split group of ties runs out needs them in logical order,
    and gets a contiguous copy (its index ``split``; the caller copies back what the kernel wrote into it).
    Returns ``(kernel's result, split, views)``."""
    views, words, perms = _storage_order(tensors, masks)
    if views is tensors:
        return kernel(tensors, masks, threshold.info), None, views
    shares = _tie_shares(views, words, threshold) or []
    split = next((i for i, (ties, equal) in enumerate(shares) if 0 < ties < equal and perms[i] is not None), None)
    if split is not None:
        views[split], words[split] = tensors[split].contiguous(), masks[split]
    out = kernel(views, words, threshold.info)
    for i, (t, m, p) in enumerate(zip(tensors, masks, perms)):
        if i != split and p is not None:
            m.copy_(layout.to_logical_order(words[i], t.shape, p))
    return out, split, views


def _threshold_masks_kernel(tensors, masks, info: torch.Tensor) -> None:
    if extension.compiled_for(tensors[0].device):
        torch.ops.rgprune.threshold_masks_(tensors, masks, info)
    else:
        reference.threshold_masks_(tensors, masks, info)


def apply_masks_(tensors: Sequence[torch.Tensor], masks: Sequence[torch.Tensor]) -> None:
    """Set every element whose mask bit is 0 to +0.0, in place (weights, grads or optimizer moments;
    tensors may differ in dtype). Reads the masks, writes only pruned elements."""
    tensors, masks = validate(tensors, masks, same_dtype=False, inplace=True)
    views, words, _ = _storage_order(tensors, masks)
    if extension.compiled_for(tensors[0].device):
        torch.ops.rgprune.apply_masks_(views, words)
    else:
        reference.apply_masks_(views, words)
    _written(tensors)


def masks_where_one(tensors: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """Bit masks whose bits are set where ``tensors`` hold exactly 1 (``torch.nn.utils.prune``'s float masks,
    whose ``== 1`` entries are the survivors its ``PruningContainer`` ranks), in logical order, one per
    tensor. One read of the tensors; they may differ in dtype and layout, and are not modified."""
    tensors = _as_list(tensors, "tensors")
    words = [
        torch.empty(mask_words(t.numel()), dtype=torch.int32, device=getattr(t, "device", None))
        if isinstance(t, torch.Tensor)
        else t
        for t in tensors
    ]
    tensors, words = validate(tensors, words, same_dtype=False)
    views, perms = _storage_views(tensors)
    # The kernel writes every word: the fresh words serve in storage order as they are (no conversion).
    if extension.compiled_for(tensors[0].device):
        torch.ops.rgprune.masks_where_one_(views, words)
    else:
        reference.masks_where_one_(views, words)
    return [layout.to_logical_order(w, t.shape, p) for w, t, p in zip(words, tensors, perms)]


class PruneResult(NamedTuple):
    threshold: Threshold
    stats: MagnitudeStats | None

    def check(self) -> PruneResult:
        """``threshold.check()``: raises the threshold's errors (on a GPU they wait until read); returns self."""
        self.threshold.check()
        return self


def prune_global_(
    tensors: Sequence[torch.Tensor], masks: Sequence[torch.Tensor], k: int, bits: int = 12
) -> PruneResult:
    """Prune exactly the ``k`` smallest surviving magnitudes over all ``tensors``, in place.

    ``global_magnitude_threshold`` followed by ``apply_threshold_``; returns both results. On a GPU, with
    tensors in the default (contiguous) layout, nothing waits for the kernels, so the call can be captured in a
    CUDA graph; its errors (NaN survivors, k above the survivors) then prune nothing and are raised when the
    result is read (``result.check()``).
    """
    threshold = global_magnitude_threshold(tensors, masks, k)
    return PruneResult(threshold, apply_threshold_(tensors, masks, threshold, bits))


def prune_by_scores_(
    scores: Sequence[torch.Tensor],
    masks: Sequence[torch.Tensor],
    k: int,
    weights: Sequence[torch.Tensor] | None = None,
    bits: int = 12,
    *,
    stats: bool = True,
) -> PruneResult:
    """Rank one list, prune another: clear the mask bits of the ``k`` survivors with the smallest
    ``|score|`` over all ``scores`` (ties in model order, as ``prune_global_``), and zero those entries of
    ``weights`` (tensors shaped like the scores) when given.

    The scores are never modified, copied or concatenated: ``global_magnitude_threshold`` ranks them, then
    the ``threshold_masks_`` kernel clears the bits the threshold prunes, reading the scores once (a permuted
    score tensor in which a split group of ties runs out is read from a contiguous copy, as in
    ``apply_threshold_``). Returns the threshold (of the scores) and the
    statistics of the surviving weights (of the surviving scores when ``weights`` is None); with
    ``stats=False`` the statistics are not computed (``PruneResult.stats`` is None), saving a read.
    """
    scores, masks = validate(
        [s.detach() if isinstance(s, torch.Tensor) else s for s in _as_list(scores, "scores")], masks
    )
    if weights is not None:
        weights, _ = validate(weights, masks, inplace=True)
        for i, (w, s) in enumerate(zip(weights, scores)):
            if w.shape != s.shape:
                raise ValueError(
                    f"weights[{i}] has shape {tuple(w.shape)} but scores[{i}] has {tuple(s.shape)}: "
                    f"pass one score per weight"
                )
    bits = _check_bits(bits, scores[0].dtype)
    threshold = global_magnitude_threshold(scores, masks, k)
    if threshold.key >= 0:
        _in_storage_order(_threshold_masks_kernel, scores, masks, threshold)
        _written(masks)
    if weights is not None:
        apply_masks_(weights, masks)
    if not stats:
        return PruneResult(threshold, None)
    return PruneResult(threshold, magnitude_histogram(scores if weights is None else weights, masks, bits))


def count_outside_masks(tensors: Sequence[torch.Tensor], masks: Sequence[torch.Tensor]) -> list[int]:
    """Per tensor, how many entries whose mask bit is 0 are not 0 (NaN counted; +0.0 and -0.0 not): weights
    that grew back outside their masks. One read of the tensors (a second of any tensor that has some)."""
    tensors, masks = validate(tensors, masks)
    pruned = []  # the complement masks: bit 1 = pruned (bits past numel stay 0)
    for t, m in zip(tensors, masks):
        flipped, tail = torch.bitwise_not(m), t.numel() % 32
        if tail:
            flipped[-1] &= (1 << tail) - 1
        pruned.append(flipped)
    stats = magnitude_histogram(tensors, pruned, 1, check_nan=False)
    suspects = ((stats.abs_sums > 0) | (stats.nan_counts > 0)).nonzero().flatten().tolist()
    counts, key_bits = [0] * len(tensors), KEY_BITS[tensors[0].dtype]
    for i in suspects:  # the complement's survivors, minus its zeros (key 0), plus its NaNs
        zeros = int(radix_histogram([tensors[i]], [pruned[i]], 0, key_bits - 1, 1)[0])
        counts[i] = int(stats.counts[i]) - zeros + int(stats.nan_counts[i])
    return counts
