"""rgprune.kernels.format (the Python twin of csrc/format.h) agrees with the compiled extension, and its
mask and key helpers do what the format says."""

import pytest
import torch

from rgprune.kernels import extension
from rgprune.kernels import format as fmt

pytestmark = pytest.mark.reference  # make test-reference

DTYPE_NAMES = {torch.float32: "float32", torch.float16: "float16", torch.bfloat16: "bfloat16", torch.float64: "float64"}

requires_compiled = pytest.mark.skipif(
    extension.module is None, reason=f"needs the compiled extension rgprune._C: {extension.backend()}"
)


@requires_compiled
def test_scalar_constants_equal_the_extensions():
    for name in (
        "RADIX_BITS",
        "MAX_HIST_BITS",
        "INFO_KEY",
        "INFO_N_BELOW",
        "INFO_N_TIES",
        "INFO_N_EQUAL",
        "INFO_N_SURVIVORS",
        "INFO_N_NAN",
        "INFO_N_OUTSIDE",
        "INFO_LEN",
    ):
        assert getattr(fmt, name) == getattr(extension.module, name), name


@requires_compiled
def test_per_dtype_key_constants_equal_the_extensions():
    assert set(fmt.KEY_BITS) == set(fmt.INF_KEY) == set(DTYPE_NAMES)
    for dtype, name in DTYPE_NAMES.items():
        assert fmt.KEY_BITS[dtype] == extension.module.KEY_BITS[name], name
        assert fmt.INF_KEY[dtype] == extension.module.INF_KEY[name], name


@requires_compiled
@pytest.mark.parametrize("numel", [0, 1, 31, 32, 33, 64, 1000, 2**31 + 5])
def test_mask_words_equal_the_extensions(numel):
    assert fmt.mask_words(numel) == extension.module.mask_words(numel)


@pytest.mark.parametrize("dtype", list(DTYPE_NAMES))
def test_inf_key_is_the_key_of_inf_and_keys_drop_the_sign(dtype):
    t = torch.tensor([float("inf"), -float("inf"), 0.0, -0.0, 1.5, -1.5], dtype=dtype)
    keys = fmt.magnitude_keys(t).tolist()
    assert keys[0] == keys[1] == fmt.INF_KEY[dtype]
    assert keys[2] == keys[3] == 0
    assert keys[4] == keys[5] > 0
    assert fmt.key_to_magnitude(keys[4], dtype) == 1.5
    assert fmt.magnitude_keys(torch.tensor([float("nan")], dtype=dtype)).item() > fmt.INF_KEY[dtype]
    assert max(keys) < 1 << fmt.KEY_BITS[dtype]


@pytest.mark.parametrize("numel", [1, 7, 32, 33, 100])
def test_pack_and_unpack_mask_round_trip_with_bit_j_of_word_i_at_index_32i_plus_j(numel):
    g = torch.Generator().manual_seed(numel)
    keep = torch.rand(numel, generator=g) < 0.5
    words = fmt.pack_mask(keep)
    assert words.dtype == torch.int32 and words.numel() == fmt.mask_words(numel)
    assert torch.equal(fmt.unpack_mask(words, numel), keep)
    for i in range(numel):
        assert bool((int(words[i // 32]) >> (i % 32)) & 1) == bool(keep[i]), i
    padded = fmt.unpack_mask(words, fmt.mask_words(numel) * 32)
    assert not padded[numel:].any()  # bits past numel are 0
