"""The pure-PyTorch reference (rgprune.kernels.reference) does what its docstring says, tested directly: every
test here calls the reference functions themselves (or the public ops with dispatch forced to the reference),
never the compiled kernels, and compares them with an independent oracle that works on Python floats one
weight at a time (keys from ``struct``, masks bit by bit, the k smallest by a plain sort).

The compiled kernels are checked against the reference in test_kernels.py; that comparison says nothing when
both are wrong the same way, nor in a reference-only install (``RGPRUNE_BACKEND=reference``), hence these."""

import math
import struct

import pytest
import torch

import rgprune
from rgprune.kernels import extension
from rgprune.kernels import format as fmt
from rgprune.kernels import reference as ref

pytestmark = pytest.mark.reference  # make test-reference

DTYPES = [torch.float32, torch.float16, torch.bfloat16, torch.float64]
KEY_BITS = {torch.float32: 31, torch.float16: 15, torch.bfloat16: 15, torch.float64: 63}


# ------------------------------------------------------------------------------------------------------
# the oracle: one Python float at a time
# ------------------------------------------------------------------------------------------------------


def oracle_key(x: float, dtype: torch.dtype) -> int:
    """The magnitude key of ``x`` (a value of ``dtype``) from its IEEE bit pattern, sign bit cleared."""
    if dtype == torch.float64:
        return struct.unpack("<Q", struct.pack("<d", x))[0] & ((1 << 63) - 1)
    if dtype == torch.float32:
        return struct.unpack("<I", struct.pack("<f", x))[0] & 0x7FFFFFFF
    if dtype == torch.float16:
        return struct.unpack("<H", struct.pack("<e", x))[0] & 0x7FFF
    return (struct.unpack("<I", struct.pack("<f", x))[0] >> 16) & 0x7FFF  # bfloat16: the top half of float32


def raw_bits(t: torch.Tensor) -> list[int]:
    """The bit patterns of a tensor's elements (so +0.0 and -0.0 differ)."""
    view = {
        torch.float32: torch.int32,
        torch.float16: torch.int16,
        torch.bfloat16: torch.int16,
        torch.float64: torch.int64,
    }[t.dtype]
    return t.contiguous().view(view).reshape(-1).tolist()


def words_from_bits(keep: list[bool]) -> torch.Tensor:
    """Bit-packed int32 words written bit by bit: bit j of word i is element 32 i + j."""
    words = [0] * ((len(keep) + 31) // 32)
    for i, alive in enumerate(keep):
        words[i // 32] |= int(alive) << (i % 32)
    return torch.tensor([w - (1 << 32) if w >= 1 << 31 else w for w in words], dtype=torch.int32)


def bits_from_words(words: torch.Tensor, numel: int) -> list[bool]:
    return [bool((int(words[i // 32]) >> (i % 32)) & 1) for i in range(numel)]


def tail_bits(words: torch.Tensor, numel: int) -> list[int]:
    """The bits of the last word past ``numel``."""
    if numel % 32 == 0:
        return []
    last = int(words[-1]) & 0xFFFFFFFF
    return [(last >> j) & 1 for j in range(numel % 32, 32)]


def oracle_prune(tensors, keeps, k):
    """The keep lists after pruning the k smallest surviving non-NaN magnitudes, ties in model order."""
    order = sorted(
        (oracle_key(x, t.dtype), i, j)
        for i, (t, keep) in enumerate(zip(tensors, keeps))
        for j, x in enumerate(t.reshape(-1).tolist())
        if keep[j] and not math.isnan(x)
    )
    out = [list(keep) for keep in keeps]
    for _, i, j in order[:k]:
        out[i][j] = False
    return out


def oracle_outside(tensors, keeps):
    """Entries whose keep flag is False but whose key is not 0 (NaN counted, +0.0 and -0.0 not): weights that
    grew back outside the masks, from the definition. Elements past numel do not exist here."""
    return sum(
        1
        for t, keep in zip(tensors, keeps)
        for x, alive in zip(t.reshape(-1).tolist(), keep)
        if not alive and (math.isnan(x) or oracle_key(x, t.dtype) != 0)
    )


def oracle_stats(tensors, keeps, bits):
    """(histogram, counts, abs_sums, sq_sums, nan_counts) of the survivors, from the definition."""
    dtype = tensors[0].dtype
    hist = [0] * (1 << bits)
    counts, abs_sums, sq_sums, nans = [], [], [], []
    for t, keep in zip(tensors, keeps):
        alive = [x for x, k in zip(t.reshape(-1).tolist(), keep) if k]
        ok = [x for x in alive if not math.isnan(x)]
        for x in ok:
            hist[oracle_key(x, dtype) >> (KEY_BITS[dtype] - bits)] += 1
        counts.append(len(ok))
        abs_sums.append(math.fsum(abs(x) for x in ok))
        sq_sums.append(math.fsum(x * x for x in ok))
        nans.append(len(alive) - len(ok))
    return hist, counts, abs_sums, sq_sums, nans


def assert_stats_equal_oracle(stats, want):
    hist, counts, abs_sums, sq_sums, nans = stats
    assert hist.tolist() == want[0]
    assert counts.tolist() == want[1]
    assert nans.tolist() == want[4]
    for got, exact in zip(abs_sums.tolist() + sq_sums.tolist(), want[2] + want[3]):
        assert got == exact or math.isclose(got, exact, rel_tol=1e-12), (got, exact)


def tensor(values, dtype):
    return torch.tensor(values, dtype=torch.float64).to(dtype)


@pytest.fixture
def reference_ops(monkeypatch):
    """The public ops (rgprune.*) dispatch to the reference, whatever backend this process loaded."""
    monkeypatch.setattr(extension, "compiled_for", lambda device, op=None: False)


# ------------------------------------------------------------------------------------------------------
# ties, k, +0.0
# ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_ties_are_pruned_in_model_order(dtype):
    """Three equal magnitudes, prune two: the two earliest in (tensor, flat index) order go, whatever their sign.

    Guards against: ties pruned last-first (``rank > n_equal - n_ties``) or by sign (-1.0 before 1.0)."""
    tensors = [tensor([5.0, 1.0, 3.0], dtype), tensor([-1.0, 2.0, 1.0], dtype)]
    masks = [words_from_bits([True] * 3), words_from_bits([True] * 3)]
    info, _ = ref.global_magnitude_threshold(tensors, masks, 2)
    assert info.tolist() == [oracle_key(1.0, dtype), 0, 2, 3, 6, 0, 0]
    ref.apply_threshold_(tensors, masks, info, 8)
    assert [bits_from_words(m, 3) for m in masks] == [[True, False, True], [False, True, True]]
    assert raw_bits(tensors[1])[0] == 0  # -1.0 pruned: +0.0, not -0.0
    assert tensors[0].tolist() == [5.0, 0.0, 3.0] and tensors[1].tolist()[1:] == [2.0, 1.0]


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_tie_group_spanning_tensors_is_cut_in_model_order(dtype):
    """A tie group over three tensors, with already-pruned tied weights among them, cut inside the second
    tensor: the first n_ties *surviving* tied weights in model order go, the rest stay.

    Guards against: the tie budget restarting in every tensor (``ties_left`` not carried over), pruned weights
    counted as ties (``at_thr`` without the mask), and ties ranked by flat index across tensors."""
    values = [[0.5, 2.0, 0.5, 0.5], [0.5, -0.5, 3.0, 0.5, 0.5], [0.5, 0.25, -0.5]]
    tensors = [tensor(v, dtype) for v in values]
    keeps = [[True, True, False, True], [True, True, True, False, True], [True, True, True]]
    masks = [words_from_bits(k) for k in keeps]
    # survivors at 0.5 in model order: (0,0) (0,3) (1,0) (1,1) (1,4) (2,0) (2,2); 0.25 is below. k = 5 prunes
    # 0.25 and the first four of them.
    info, _ = ref.global_magnitude_threshold(tensors, masks, 5)
    assert info.tolist() == [oracle_key(0.5, dtype), 1, 4, 7, 10, 0, 2]  # two stale 0.5 outside the masks
    ref.apply_threshold_(tensors, masks, info, 4)
    got = [bits_from_words(m, len(v)) for m, v in zip(masks, values)]
    assert got == [[False, True, False, False], [False, False, True, False, True], [True, False, True]]
    assert got == oracle_prune([tensor(v, dtype) for v in values], keeps, 5)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_exactly_k_pruned_for_every_k(dtype):
    """For every k from 0 to n on tied, signed, partly pre-pruned weights: the reference prunes exactly the
    oracle's k weights (counted as integers), its info adds up, and every pruned weight is +0.0.

    Guards against: k - 1 or k + 1 pruned at a tie boundary (``rank < ties_left``), n_below counting ties,
    pre-pruned weights counted as survivors."""
    g = torch.Generator().manual_seed(1)
    shapes = [5, 33, 0, 1, 40]
    values = [(torch.round(torch.randn(n, generator=g, dtype=torch.float64) * 2) / 2).tolist() for n in shapes]
    keeps = [(torch.rand(n, generator=g) < 0.8).tolist() for n in shapes]
    n = sum(map(sum, keeps))
    assert n > 50
    for k in range(n + 1):
        tensors = [tensor(v, dtype) for v in values]
        masks = [words_from_bits(kp) for kp in keeps]
        info, top = ref.global_magnitude_threshold(tensors, masks, k)
        key, n_below, n_ties, n_equal, n_surv, n_nan, n_outside = info.tolist()
        assert (n_surv, n_nan) == (n, 0) and int(top.sum()) == n
        assert n_outside == oracle_outside([tensor(v, dtype) for v in values], keeps)
        if k == 0:
            assert (key, n_below, n_ties, n_equal) == (-1, 0, 0, 0)
        else:
            assert n_below + n_ties == k and 0 < n_ties <= n_equal, info.tolist()
        ref.apply_threshold_(tensors, masks, info, 6)
        got = [bits_from_words(m, len(v)) for m, v in zip(masks, values)]
        assert sum(map(sum, got)) == n - k
        assert got == oracle_prune([tensor(v, dtype) for v in values], keeps, k), k
        for t, v, kp in zip(tensors, values, got):
            assert raw_bits(t) == [b if alive else 0 for b, alive in zip(raw_bits(tensor(v, dtype)), kp)], k


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_every_pruned_weight_is_stored_as_plus_zero(dtype):
    """Pruned negative weights, pruned -0.0, and stale values under a cleared mask bit all end up +0.0 by bit
    pattern after apply_threshold_ and apply_masks_; survivors keep their exact bits.

    Guards against: zeroing by multiplication with the mask (``-1.0 * 0 == -0.0``), or leaving weights that
    were already masked out untouched."""
    values = [-0.0, -1.5, 0.0, 2.0, -3.0, 0.25, -0.25, 7.0]
    keep_before = [True, True, True, True, False, True, True, True]  # -3.0 is pruned but not zeroed yet
    tensors = [tensor(values, dtype)]
    masks = [words_from_bits(keep_before)]
    info, _ = ref.global_magnitude_threshold(tensors, masks, 4)  # -0.0, 0.0, 0.25, -0.25
    ref.apply_threshold_(tensors, masks, info, 4)
    keep = bits_from_words(masks[0], 8)
    assert keep == [False, True, False, True, False, False, False, True]
    before = raw_bits(tensor(values, dtype))
    assert raw_bits(tensors[0]) == [b if alive else 0 for b, alive in zip(before, keep)]

    moments = [tensor(values, dtype), tensor(values, torch.float32)]  # apply_masks_ takes any float dtypes
    ref.apply_masks_(moments, [masks[0], masks[0]])
    for t in moments:
        assert raw_bits(t) == [b if alive else 0 for b, alive in zip(raw_bits(tensor(values, t.dtype)), keep)]


# ------------------------------------------------------------------------------------------------------
# NaN, infinities, mask tails
# ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_nan_survivors_are_counted_not_ranked(dtype):
    """The reference never ranks NaN: it counts surviving NaNs in info[INFO_N_NAN] and nan_counts, leaves
    them out of the histogram, counts and sums, and ranks the rest; a NaN under a cleared bit is not counted.

    Guards against: NaN keys (above INF_KEY) ranked as the largest magnitudes, or counted as survivors."""
    tensors = [tensor([float("nan"), 1.0, 2.0, float("nan")], dtype), tensor([3.0, float("nan")], dtype)]
    keeps = [[True, True, True, False], [True, True]]
    masks = [words_from_bits(k) for k in keeps]
    info, top = ref.global_magnitude_threshold(tensors, masks, 3)
    assert info.tolist() == [oracle_key(3.0, dtype), 2, 1, 1, 3, 2, 1]  # the pruned NaN: outside, not ranked
    assert int(top.sum()) == 3
    stats = ref.magnitude_histogram(tensors, masks, 5)
    assert_stats_equal_oracle(stats, oracle_stats(tensors, keeps, 5))
    assert stats[4].tolist() == [1, 1]  # nan_counts
    info, _ = ref.global_magnitude_threshold(tensors, masks, 4)  # more than the 3 rankable survivors
    assert info.tolist() == [-1, 0, 0, 0, 3, 2, 1]


@pytest.mark.parametrize("call", ["histogram", "threshold", "prune"])
def test_public_ops_refuse_nan_on_the_reference_path(reference_ops, call):
    """Upstream of the reference, the public ops refuse a surviving NaN (ValueError naming the tensor) and change
    nothing. Guards against: the reference path skipping the NaN check that the compiled path does."""
    tensors = [torch.tensor([1.0, 2.0, 3.0]), torch.tensor([4.0, float("nan")])]
    masks = [words_from_bits([True] * 3), words_from_bits([True, True])]
    before = [raw_bits(t) for t in tensors], [m.clone() for m in masks]
    calls = {
        "histogram": lambda: rgprune.magnitude_histogram(tensors, masks),
        "threshold": lambda: rgprune.global_magnitude_threshold(tensors, masks, 2),
        "prune": lambda: rgprune.prune_global_(tensors, masks, 2),
    }
    with pytest.raises(ValueError, match=r"NaN.*tensors \[1\]"):
        calls[call]()
    assert [raw_bits(t) for t in tensors] == before[0]
    assert all(torch.equal(a, b) for a, b in zip(masks, before[1]))


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_infinities_are_ordinary_largest_magnitudes(dtype):
    """+Inf and -Inf rank as the two largest magnitudes (one key, INF_KEY, ties in model order), count as
    survivors, land in the top histogram bin and make the sums infinite; k = n prunes them too.

    Guards against: infinities treated like NaN (``keys >= INF_KEY``), or -Inf ranked below +Inf."""
    inf = float("inf")
    values = [[-inf, 1.0, 0.5], [inf, -2.0]]
    tensors = [tensor(v, dtype) for v in values]
    keeps = [[True] * 3, [True] * 2]
    masks = [words_from_bits(k) for k in keeps]
    info, _ = ref.global_magnitude_threshold(tensors, masks, 4)
    assert info.tolist() == [fmt.INF_KEY[dtype], 3, 1, 2, 5, 0, 0]
    hist, counts, abs_sums, sq_sums, _ = ref.apply_threshold_(tensors, masks, info, 3)
    assert [bits_from_words(m, len(v)) for m, v in zip(masks, values)] == [[False] * 3, [True, False]]
    assert raw_bits(tensors[0]) == [0, 0, 0] and tensors[1].tolist() == [inf, 0.0]
    assert hist.tolist() == [0] * 7 + [1] and counts.tolist() == [0, 1]
    assert abs_sums.tolist() == [0.0, inf] and sq_sums.tolist() == [0.0, inf]
    info, _ = ref.global_magnitude_threshold(tensors, masks, 1)
    assert info.tolist() == [fmt.INF_KEY[dtype], 0, 1, 1, 1, 0, 0]  # the pruned infinity is +0.0 now


@pytest.mark.parametrize("numel", [1, 7, 31, 32, 33, 70])
def test_mask_bits_past_numel_stay_zero(numel):
    """After pruning, the bits of the last mask word past numel are 0 (the format's promise, which the
    compiled kernels' word loops rely on). Guards against: a mask tail padded with ones."""
    g = torch.Generator().manual_seed(numel)
    tensors = [torch.randn(numel, generator=g), torch.randn(numel + 5, generator=g)]
    masks = [words_from_bits([True] * t.numel()) for t in tensors]
    info, _ = ref.global_magnitude_threshold(tensors, masks, numel // 2)
    ref.apply_threshold_(tensors, masks, info, 12)
    for t, m in zip(tensors, masks):
        assert m.numel() == (t.numel() + 31) // 32
        assert tail_bits(m, t.numel()) == [0] * ((32 - t.numel() % 32) % 32)
    assert sum(sum(bits_from_words(m, t.numel())) for t, m in zip(tensors, masks)) == 2 * numel + 5 - numel // 2


# ------------------------------------------------------------------------------------------------------
# statistics
# ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("bits", [1, 5, 12])
def test_statistics_follow_their_definition(dtype, bits):
    """magnitude_histogram, apply_threshold_'s statistics of the survivors after pruning and the threshold's
    top histogram (RADIX_BITS, before pruning) equal the oracle's histogram of the top key bits, survivor
    counts and float64 sums of |w| and w**2.

    Guards against: a histogram shifted by one bit, sums over pruned weights, statistics of apply_threshold_
    taken before pruning."""
    g = torch.Generator().manual_seed(bits)
    values = [torch.randn(n, generator=g, dtype=torch.float64).mul(4).tolist() for n in (50, 0, 17)]
    values[0][:4] = [0.0, -0.0, float("inf"), 1e-30]
    tensors = [tensor(v, dtype) for v in values]
    keeps = [(torch.rand(len(v), generator=g) < 0.7).tolist() for v in values]
    masks = [words_from_bits(k) for k in keeps]
    assert_stats_equal_oracle(ref.magnitude_histogram(tensors, masks, bits), oracle_stats(tensors, keeps, bits))
    n = sum(map(sum, keeps))
    info, top = ref.global_magnitude_threshold(tensors, masks, n // 3)
    assert top.tolist() == oracle_stats(tensors, keeps, fmt.RADIX_BITS)[0]
    after = oracle_prune(tensors, keeps, n // 3)
    stats = ref.apply_threshold_(tensors, masks, info, bits)
    assert_stats_equal_oracle(stats, oracle_stats(tensors, after, bits))
    assert sum(stats[1].tolist()) == n - n // 3  # counts


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_zero_k_prunes_nothing_but_clears_stale_weights(dtype):
    """k = 0 gives key -1 and apply_threshold_ then prunes nothing; it still stores +0.0 under every cleared bit.
    Guards against: key -1 read as "prune every key below -1 + 1" (pruning zeros), or k = 0 pruning one tie."""
    tensors = [tensor([0.0, -0.0, 1.0, -4.0], dtype)]
    masks = [words_from_bits([True, True, True, False])]
    info, _ = ref.global_magnitude_threshold(tensors, masks, 0)
    assert info.tolist() == [-1, 0, 0, 0, 3, 0, 1]  # -4.0 under the cleared bit
    ref.apply_threshold_(tensors, masks, info, 2)
    assert bits_from_words(masks[0], 4) == [True, True, True, False]
    assert raw_bits(tensors[0]) == raw_bits(tensor([0.0, -0.0, 1.0, 0.0], dtype))


# ------------------------------------------------------------------------------------------------------
# weights outside the masks, and a threshold over NaN survivors
# ------------------------------------------------------------------------------------------------------


def _outside_case(dtype):
    """Values under cleared bits of every kind: +0.0 and -0.0 (not outside), NaN, a subnormal, a negative, an
    infinity (outside); survivors beside them; the second tensor a slice of a larger buffer whose elements
    past numel are nonzero, its mask's bits past numel set to 1."""
    tiny = torch.finfo(dtype).smallest_normal / 4  # a subnormal: the smallest keys are not 0
    values = [
        [0.0, -0.0, float("nan"), tiny, -3.0, 1.0, -0.5, float("-inf"), 2.0, -0.0],
        [0.25, -7.0, 0.0, 5.0, -0.0, 1.5] + [1.0] * 30,
    ]
    keeps = [
        [False, False, False, False, False, True, True, False, True, True],
        [True, False, False, True, False, False] + [i % 3 == 0 for i in range(30)],
    ]
    first = tensor(values[0], dtype)
    buffer = tensor(values[1] + [9.0] * 30, dtype)  # 30 nonzero elements past numel
    second = buffer[: len(values[1])]
    masks = [words_from_bits(keeps[0]), words_from_bits(keeps[1])]
    masks[1][-1] |= -(1 << (len(values[1]) % 32))  # tail bits of the last word set
    return [first, second], masks, keeps


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_outside_count_follows_its_definition(dtype):
    """info[INFO_N_OUTSIDE] equals the oracle's count of entries under a cleared bit whose key is not 0, for
    every k (0, inside, more than the survivors): -0.0 and +0.0 do not count, NaN, a subnormal and -Inf do,
    and nothing past numel counts, whatever the tail bits and the memory there hold.

    Guards against: -0.0 counted (bit pattern compared with 0 instead of the key), NaN under a cleared bit
    skipped (the NaN filter applied before the count), the count computed only when a threshold is found,
    small keys missed (a count by histogram bin), elements or mask bits past numel counted."""
    tensors, masks, keeps = _outside_case(dtype)
    want = oracle_outside(tensors, keeps)
    assert want == 4 + 2 + 20  # NaN, tiny, -3.0, -inf; -7.0, 5.0 (the slice); 20 of the 1.0s
    n = sum(map(sum, keeps))
    for k in (0, 1, n, n + 1):
        info, _ = ref.global_magnitude_threshold(tensors, masks, k)
        assert info.tolist()[fmt.INFO_N_OUTSIDE] == want, k
        assert info.tolist()[fmt.INFO_N_SURVIVORS] == n, k
    ref.apply_masks_(tensors, masks)
    info, _ = ref.global_magnitude_threshold(tensors, masks, 1)
    assert info.tolist()[fmt.INFO_N_OUTSIDE] == 0  # apply_masks_ stored +0.0 under every cleared bit


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_apply_threshold_prunes_nothing_when_the_threshold_saw_nan(dtype):
    """An info whose NaN slot is > 0 (the threshold ran over NaN survivors) prunes nothing and writes nothing:
    weights (stale values outside the masks included) and masks stay the same bit for bit, and the statistics
    are those of the unchanged survivors.

    Guards against: pruning below a threshold that was ranked among NaN survivors (the NaN slot ignored), or
    storing +0.0 under the cleared bits although nothing is pruned."""
    values = [[float("nan"), 1.0, -2.0, 3.0, -0.5, 4.0], [0.75, -5.0, 0.125]]
    keeps = [[True, True, True, False, True, True], [True, False, True]]
    tensors = [tensor(v, dtype) for v in values]
    masks = [words_from_bits(k) for k in keeps]
    before = [raw_bits(t) for t in tensors], [m.clone() for m in masks]
    info, _ = ref.global_magnitude_threshold(tensors, masks, 3)
    assert info.tolist()[fmt.INFO_N_NAN] == 1 and info.tolist()[fmt.INFO_KEY] == oracle_key(0.75, dtype)
    for nan_info in (info, torch.tensor([oracle_key(4.0, dtype), 5, 1, 1, 6, 1, 2])):  # a key above everything
        stats = ref.apply_threshold_(tensors, masks, nan_info, 5)
        assert [raw_bits(t) for t in tensors] == before[0]
        assert all(torch.equal(a, b) for a, b in zip(masks, before[1]))
        assert_stats_equal_oracle(stats, oracle_stats(tensors, keeps, 5))
