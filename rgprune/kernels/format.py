"""The mask and magnitude-key format every rgprune kernel shares: the Python twin of ``csrc/format.h``.

* **Magnitude keys.** The magnitude order of a weight is the unsigned order of its sign-cleared bit
  pattern: float32 -> 31-bit keys, float16/bfloat16 -> 15-bit keys, float64 -> 63-bit keys. ``+0.0`` and
  ``-0.0`` share key 0; ``±Inf`` has the largest ordinary key (``INF_KEY``); NaN keys lie above it.
* **Masks** are bit-packed: one ``int32`` word per 32 weights of a tensor (``mask_words(numel)`` words,
  1-D), bit ``j`` of word ``i`` is the weight at flat index ``32 * i + j``; 1 = surviving, 0 = pruned. Bits
  past ``numel`` are 0.
* **Threshold info**: the int64 vector ``global_magnitude_threshold`` returns, laid out by ``INFO_*``:
  ``[key, n_below, n_ties, n_equal, n_survivors, n_nan, n_outside]``. ``n_outside`` counts the entries whose
  mask bit is 0 but whose magnitude key is not 0 (weights that grew back outside the masks; NaN counted,
  ``+0.0`` and ``-0.0`` not; only elements before ``numel``), over all tensors: the threshold's first pass
  counts them, so checking the masks costs no read of its own.

``tests/test_format.py`` checks that these constants equal the compiled extension's.
"""

from __future__ import annotations

import sys

import torch

#: number of bits of a magnitude key per dtype (the sign bit is dropped)
KEY_BITS = {torch.float32: 31, torch.float16: 15, torch.bfloat16: 15, torch.float64: 63}
#: key of +Inf per dtype; keys above it are NaN
INF_KEY = {
    torch.float32: 0x7F800000,
    torch.float16: 0x7C00,
    torch.bfloat16: 0x7F80,
    torch.float64: 0x7FF0000000000000,
}
#: the signed integer type of each float dtype's width, through which its bit pattern is read
_SIGNED_VIEW = {
    torch.float32: torch.int32,
    torch.float16: torch.int16,
    torch.bfloat16: torch.int16,
    torch.float64: torch.int64,
}
#: bits resolved by each radix-select pass (the first pass is also the RG histogram at full resolution)
RADIX_BITS = 12
#: largest histogram resolution any kernel supports (4096 bins fit in GPU shared memory)
MAX_HIST_BITS = 12
#: layout of the int64 vector returned by ``global_magnitude_threshold``
INFO_KEY, INFO_N_BELOW, INFO_N_TIES, INFO_N_EQUAL, INFO_N_SURVIVORS, INFO_N_NAN, INFO_N_OUTSIDE = range(7)
INFO_LEN = 7


def magnitude_keys(t: torch.Tensor) -> torch.Tensor:
    """int64 magnitude keys of a float tensor (flattened)."""
    raw = t.reshape(-1).view(_SIGNED_VIEW[t.dtype]).to(torch.int64)
    return raw & ((1 << KEY_BITS[t.dtype]) - 1)


def key_to_magnitude(key: int, dtype: torch.dtype) -> float:
    """The non-negative float whose sign-cleared bit pattern is ``key`` (NaN for ``key < 0``: no threshold)."""
    if key < 0:
        return float("nan")
    return torch.tensor([key], dtype=torch.int64).to(_SIGNED_VIEW[dtype]).view(dtype).item()


def mask_words(numel: int) -> int:
    """Number of int32 words of the bit-packed mask of a tensor of ``numel`` elements."""
    return (numel + 31) // 32


def unpack_mask(words: torch.Tensor, numel: int) -> torch.Tensor:
    """Bit-packed int32 words -> bool tensor of ``numel`` elements (flat).

    Unpacks byte by byte: 8 shift-and passes over the mask's bytes, each writing one flag of every byte, so
    the only temporary is the 1-byte-per-weight result."""
    if sys.byteorder != "little":  # the bytes of a word are not in bit order: go through int64
        shifts = torch.arange(32, device=words.device, dtype=torch.int64)
        bits = (words.to(torch.int64).unsqueeze(-1) >> shifts) & 1
        return bits.reshape(-1)[:numel].to(torch.bool)
    octets = words.contiguous().view(torch.uint8)
    flags = torch.empty(octets.numel(), 8, dtype=torch.uint8, device=words.device)
    for j in range(8):
        torch.bitwise_and(octets >> j, 1, out=flags[:, j])
    return flags.view(-1)[:numel].view(torch.bool)


def pack_mask(keep: torch.Tensor) -> torch.Tensor:
    """bool tensor (any shape; other dtypes: nonzero = kept) -> bit-packed int32 words (bits past numel are 0).

    Packs through bytes (8 flags -> 1 byte by 8 shift-or passes; 4 little-endian bytes -> 1 word), so the
    temporaries are a few bytes per weight, not the 8-byte integers a direct shift-and-sum would need.
    """
    flat = keep.reshape(-1)
    flat = (flat if flat.dtype == torch.bool else flat != 0).view(torch.uint8)
    pad = mask_words(flat.numel()) * 32 - flat.numel()
    flags = torch.nn.functional.pad(flat, (0, pad)).reshape(-1, 8)
    packed = torch.empty(flags.shape[0], dtype=torch.uint8, device=flags.device).copy_(flags[:, 0])  # dense
    for j in range(1, 8):
        packed |= flags[:, j] << j
    if sys.byteorder == "little":
        return packed.view(torch.int32)
    quads = packed.reshape(-1, 4).to(torch.int64) << torch.tensor([0, 8, 16, 24], device=flat.device)
    words = quads.sum(dim=1)
    return (words - ((words >> 31) & 1) * (1 << 32)).to(torch.int32)
