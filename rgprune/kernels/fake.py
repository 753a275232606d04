"""Fake (meta) kernels of the compiled ops: output shapes and dtypes only, so that ``torch.compile`` can
trace ``torch.ops.rgprune.*`` without running them. ``register()`` is called once, by ``rgprune.ops``,
when the extension has loaded (the ops must exist before fake kernels can be registered for them)."""

from __future__ import annotations

import torch

from rgprune.kernels.format import INFO_LEN, RADIX_BITS


def _stats(tensors, bits):
    """(histogram, counts, abs_sums, sq_sums, nan_counts), as every statistics pass returns them."""
    t0, n = tensors[0], len(tensors)
    return (
        t0.new_empty(1 << bits, dtype=torch.int64),
        t0.new_empty(n, dtype=torch.int64),
        t0.new_empty(n, dtype=torch.float64),
        t0.new_empty(n, dtype=torch.float64),
        t0.new_empty(n, dtype=torch.int64),
    )


def magnitude_histogram(tensors, masks, bits):
    return _stats(tensors, bits)


def global_magnitude_threshold(tensors, masks, k):
    t0 = tensors[0]
    return t0.new_empty(INFO_LEN, dtype=torch.int64), t0.new_empty(1 << RADIX_BITS, dtype=torch.int64)


def radix_histogram(tensors, masks, prefix, prefix_bits, bits):
    return tensors[0].new_empty(1 << bits, dtype=torch.int64)


def apply_threshold_(tensors, masks, info, bits):
    return _stats(tensors, bits)


def apply_masks_(tensors, masks):
    return None


def masks_where_one_(tensors, masks):
    return None


def threshold_masks_(tensors, masks, info):
    return None


_FAKES = (
    magnitude_histogram,
    global_magnitude_threshold,
    radix_histogram,
    apply_threshold_,
    apply_masks_,
    masks_where_one_,
    threshold_masks_,
)


def register() -> None:
    """Registers every fake kernel with ``torch.library`` (once per process)."""
    for fake in _FAKES:
        torch.library.register_fake(f"rgprune::{fake.__name__}")(fake)
