"""Property tests of the public ops (whatever backend is active: the compiled kernels, or the reference under
RGPRUNE_BACKEND=reference) on random small tensor lists: all four dtypes, heavy ties, +-Inf, signed zeros,
pre-pruned masks (with NaN and stale values under the cleared bits) and every k from 0 to n.

Each example is checked against the reference (bit for bit: info, masks, weights, statistics) and against the
Python oracle of test_reference.py (the k smallest surviving keys by a plain sort, ties in model order), so a
bug shared by both implementations still fails. The example budget is fixed and derandomized: the same
examples on every run, within a few tens of seconds on a loaded 2-core machine."""

import math

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_reference import (
    DTYPES,
    KEY_BITS,
    bits_from_words,
    oracle_outside,
    oracle_prune,
    oracle_stats,
    raw_bits,
    tail_bits,
    words_from_bits,
)

import rgprune
from rgprune.kernels import extension
from rgprune.kernels import format as fmt
from rgprune.kernels import reference as ref

pytestmark = pytest.mark.reference  # make test-reference

BUDGET = settings(
    max_examples=120,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

SPECIALS = [0.0, -0.0, math.inf, -math.inf, 0.5, -0.5, 1.0, -1.0, 2.0, -2.0, 1e-30]
VALUES = st.one_of(st.sampled_from(SPECIALS), st.floats(-1e5, 1e5, allow_nan=False, width=32))
LEVELS = st.sampled_from([0.0, -0.0, 0.25, -0.25, 0.5, -0.5, 1.0, -1.0])  # few magnitudes: ties everywhere


@st.composite
def weight_sets(draw):
    """(dtype, values per tensor, keep flags per tensor); NaN and stale values only under cleared bits."""
    dtype = draw(st.sampled_from(DTYPES))
    pool = draw(st.sampled_from([VALUES, LEVELS]))
    values, keeps = [], []
    for _ in range(draw(st.integers(1, 5))):
        n = draw(st.integers(0, 70))
        vals = draw(st.lists(pool, min_size=n, max_size=n))
        keep = draw(st.lists(st.sampled_from([True, True, True, False]), min_size=n, max_size=n))
        if draw(st.booleans()):
            vals = [math.nan if not k and i % 3 == 0 else v for i, (v, k) in enumerate(zip(vals, keep))]
        values.append(vals)
        keeps.append(keep)
    return dtype, values, keeps


def build(dtype, values, keeps):
    tensors = [torch.tensor(v, dtype=torch.float64).to(dtype) for v in values]
    return tensors, [words_from_bits(k) for k in keeps]


def assert_stats_equal(got, want):
    for a, b in zip(got[:2] + (got[4],), want[:2] + (want[4],)):
        assert torch.equal(a, b)
    for a, b in zip(got[2:4], want[2:4]):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=0)


def assert_matches_oracle(stats, want):
    hist, counts, abs_sums, sq_sums, nans = stats
    assert (hist.tolist(), counts.tolist(), nans.tolist()) == (want[0], want[1], want[4])
    for got, exact in zip(abs_sums.tolist() + sq_sums.tolist(), want[2] + want[3]):
        assert got == exact or math.isclose(got, exact, rel_tol=1e-12), (got, exact)


@BUDGET
@given(case=weight_sets(), data=st.data())
def test_prune_global_equals_reference_and_oracle(case, data):
    """global_magnitude_threshold + apply_threshold_ (prune_global_) prune exactly the oracle's k weights,
    store +0.0 (bit pattern) under every cleared bit, keep the survivors' bits, leave mask tails 0, and return
    the reference's info and statistics.

    The info's count of weights outside the masks (stale values and NaN under cleared bits, not +-0.0) equals
    the oracle's too.

    Guards against: a tie order or tie count bug in either implementation, -0.0 stored for pruned negatives,
    NaN under a cleared bit counted or ranked, +-Inf mishandled, bits past numel set, the outside count of
    the compiled first pass differing from the reference's (a skipped word, -0.0 counted, a NaN missed)."""
    dtype, values, keeps = case
    n = sum(map(sum, keeps))
    k = data.draw(st.one_of(st.integers(0, n), st.sampled_from([0, min(1, n), max(n - 1, 0), n])), label="k")
    bits = data.draw(st.integers(1, min(12, KEY_BITS[dtype])), label="bits")
    tensors, masks = build(dtype, values, keeps)

    threshold = rgprune.global_magnitude_threshold(tensors, masks, k)
    info, top = ref.global_magnitude_threshold(*build(dtype, values, keeps), k)
    assert [
        threshold.key,
        threshold.n_below,
        threshold.n_ties,
        threshold.n_equal,
        threshold.n_survivors,
    ] == info.tolist()[:5]
    assert threshold.info.tolist() == info.tolist()  # all INFO_LEN slots
    assert info.tolist()[fmt.INFO_N_OUTSIDE] == oracle_outside(build(dtype, values, keeps)[0], keeps)
    assert torch.equal(threshold.histogram, top)

    result = rgprune.prune_global_(tensors, masks, k, bits)
    ref_tensors, ref_masks = build(dtype, values, keeps)
    want_stats = ref.apply_threshold_(ref_tensors, ref_masks, info, bits)
    assert_stats_equal(tuple(result.stats), tuple(want_stats))
    for got, want in zip(masks, ref_masks):
        assert torch.equal(got, want)
    for got, want in zip(tensors, ref_tensors):
        assert raw_bits(got) == raw_bits(want)

    after = [bits_from_words(m, len(v)) for m, v in zip(masks, values)]
    assert after == oracle_prune(build(dtype, values, keeps)[0], keeps, k)
    assert sum(map(sum, after)) == n - k
    for t, m, v, keep in zip(tensors, masks, values, after):
        original = raw_bits(torch.tensor(v, dtype=torch.float64).to(dtype))
        assert raw_bits(t) == [b if alive else 0 for b, alive in zip(original, keep)]
        assert not any(tail_bits(m, len(v)))
    assert_matches_oracle(result.stats, oracle_stats(tensors, after, bits))


@BUDGET
@given(case=weight_sets(), bits=st.integers(1, 12))
def test_statistics_equal_reference_and_oracle(case, bits):
    """magnitude_histogram and the first radix pass (radix_histogram with no prefix) equal the reference and the
    oracle's definition; NaN only under cleared bits is ignored.

    Guards against: a histogram bin off by one bit, sums or counts over pruned weights, a radix pass that
    filters on an empty prefix."""
    dtype, values, keeps = case
    bits = min(bits, KEY_BITS[dtype])
    tensors, masks = build(dtype, values, keeps)
    stats = rgprune.magnitude_histogram(tensors, masks, bits)
    assert_stats_equal(tuple(stats), tuple(ref.magnitude_histogram(tensors, masks, bits)))
    want = oracle_stats(tensors, keeps, bits)
    assert_matches_oracle(stats, want)
    assert rgprune.radix_histogram(tensors, masks, 0, 0, bits).tolist() == want[0]


@BUDGET
@given(case=weight_sets(), moment_dtype=st.sampled_from(DTYPES))
def test_apply_masks_stores_plus_zero_and_keeps_the_rest(case, moment_dtype):
    """apply_masks_ on the weights and on optimizer-state-like tensors of another dtype: +0.0 (bit pattern)
    under every cleared bit, every other element's bits unchanged, the masks untouched; the reference agrees.

    Guards against: zeroing by multiplication (-0.0 for negatives, NaN * 0 = NaN), touching survivors."""
    dtype, values, keeps = case
    tensors, masks = build(dtype, values, keeps)
    moments = [torch.tensor(v, dtype=torch.float64).to(moment_dtype) for v in values]
    originals = [raw_bits(t) for t in tensors + moments]
    mask_copies = [m.clone() for m in masks]
    rgprune.apply_masks_(tensors + moments, masks + masks)
    ref_out = [t.clone() for t in build(dtype, values, keeps)[0]] + [
        torch.tensor(v, dtype=torch.float64).to(moment_dtype) for v in values
    ]
    ref.apply_masks_(ref_out, masks + masks)
    for t, want, original, keep in zip(tensors + moments, ref_out, originals, keeps + keeps):
        assert raw_bits(t) == [b if alive else 0 for b, alive in zip(original, keep)]
        assert raw_bits(t) == raw_bits(want)
    assert all(torch.equal(a, b) for a, b in zip(masks, mask_copies))


@BUDGET
@given(case=weight_sets(), data=st.data())
def test_apply_threshold_with_nan_in_the_info_changes_nothing(case, data):
    """apply_threshold_ (the active backend's kernel, and the reference) given any threshold info whose NaN
    slot is > 0 prunes nothing and writes nothing: weights (stale values and NaN under cleared bits
    included) and masks stay the same bit for bit, and the statistics are the unchanged survivors'.

    Guards against: a kernel that prunes below a threshold ranked among NaN survivors (the NaN slot
    ignored: on a GPU the Python API raises only after the kernels ran), or that zeroes the weights outside
    the masks while pruning nothing."""
    dtype, values, keeps = case
    n = sum(map(sum, keeps))
    k = data.draw(st.integers(0, n), label="k")
    bits = data.draw(st.integers(1, min(12, KEY_BITS[dtype])), label="bits")
    info, _ = ref.global_magnitude_threshold(*build(dtype, values, keeps), k)
    info[fmt.INFO_N_NAN] = data.draw(st.integers(1, 3), label="n_nan")
    compiled = extension.module is not None
    for apply in [ref.apply_threshold_] + ([torch.ops.rgprune.apply_threshold_] if compiled else []):
        tensors, masks = build(dtype, values, keeps)
        stats = apply(tensors, masks, info, bits)
        for t, v in zip(tensors, values):
            assert raw_bits(t) == raw_bits(torch.tensor(v, dtype=torch.float64).to(dtype))
        assert all(torch.equal(m, w) for m, w in zip(masks, build(dtype, values, keeps)[1]))
        assert_stats_equal(tuple(stats), tuple(ref.magnitude_histogram(*build(dtype, values, keeps), bits)))
        assert_matches_oracle(stats, oracle_stats(tensors, keeps, bits))
