"""pytest-benchmark: rgprune's individual kernels (and the reference's) on a BERT-like 3.5M-weight set at
density 1.0 (round 1) and 0.41 (round 5), so the kernel engineer can see where a round's time goes:

* ``test_threshold_first_pass``: ``global_magnitude_threshold(k=0)`` stops after its first radix pass, so
  it times one histogram read pass without the sums; the full threshold minus it is the refinement passes;
* ``test_magnitude_histogram`` minus the first pass is the cost of the per-tensor sums (sum|w|, sum w^2);
* ``test_apply_threshold`` (1 read + 1 write, with the survivors' statistics) and ``test_apply_masks``;
* ``test_copy_pass`` / ``test_read_write_pass``: the memory yardsticks (a clone of every tensor, and an
  in-place multiply by 1.0).

Divide by 3.5M for ns/weight. The 3.5M set (14 MB) partly fits in a large last-level cache; the real
sets are timed by ``python -m bench.compare`` (section "RG trace" there has threshold/apply/histogram).

After timing, each test checks what the timed call returned or wrote against the pure-PyTorch reference
(statistics, threshold info, masks, +0.0 bit patterns, exact survivor counts), so an op that got faster by
doing less fails here."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest  # noqa: E402
import torch  # noqa: E402

import rgprune  # noqa: E402
from bench.test_bench_prune import DEVICES, bits_of, reference_round, states_for  # noqa: E402
from rgprune.benchmark.measure import sync  # noqa: E402
from rgprune.kernels import reference  # noqa: E402
from rgprune.kernels.format import unpack_mask  # noqa: E402

SET = "bertlike-3.5M"


def _state(device, round_=5):
    return states_for(SET, device)[2][round_]


def check_stats(stats, want, survivors):
    hist, counts, abs_sums, sq_sums, nans = stats
    assert torch.equal(hist, want[0]) and torch.equal(counts, want[1]) and torch.equal(nans, want[4])
    assert int(counts.sum()) == survivors
    torch.testing.assert_close(abs_sums, want[2], rtol=1e-12, atol=0)
    torch.testing.assert_close(sq_sums, want[3], rtol=1e-12, atol=0)


def check_threshold(threshold, s, k):
    info, top = reference.global_magnitude_threshold(s.weights, s.masks, k)
    got = [threshold.key, threshold.n_below, threshold.n_ties, threshold.n_equal, threshold.n_survivors]
    assert got == info.tolist()[:5] and threshold.k == k and threshold.n_survivors == s.survivors
    assert torch.equal(threshold.histogram, top)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("round_", [1, 5], ids=["round1", "round5"])
def test_magnitude_histogram(benchmark, device, round_):
    s = _state(device, round_)
    benchmark.group = f"ops: {SET} round {round_} on {device}"

    def run():
        stats = rgprune.magnitude_histogram(s.weights, s.masks, 12, check_nan=False)
        sync(device)
        return stats

    stats = benchmark(run)
    check_stats(stats, reference.magnitude_histogram(s.weights, s.masks, 12), s.survivors)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("round_", [1, 5], ids=["round1", "round5"])
def test_global_magnitude_threshold(benchmark, device, round_):
    s = _state(device, round_)
    benchmark.group = f"ops: {SET} round {round_} on {device}"
    check_threshold(benchmark(rgprune.global_magnitude_threshold, s.weights, s.masks, s.k), s, s.k)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("round_", [1, 5], ids=["round1", "round5"])
def test_threshold_first_pass(benchmark, device, round_):
    s = _state(device, round_)
    benchmark.group = f"ops: {SET} round {round_} on {device}"
    threshold = benchmark(rgprune.global_magnitude_threshold, s.weights, s.masks, 0)
    check_threshold(threshold, s, 0)
    assert threshold.key == -1  # k = 0: nothing to prune, the first pass only


@pytest.mark.parametrize("device", DEVICES)
def test_copy_pass(benchmark, device):
    s = _state(device, 5)
    benchmark.group = f"ops: {SET} round 5 on {device}"

    def run():
        copies = [w.clone() for w in s.weights]
        sync(device)
        return copies

    copies = benchmark(run)
    assert all(torch.equal(bits_of(c), bits_of(w)) for c, w in zip(copies, s.weights))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("round_", [1, 5], ids=["round1", "round5"])
@pytest.mark.parametrize("bits", [12, 1])
def test_apply_threshold(benchmark, device, round_, bits):
    s = _state(device, round_)
    threshold = rgprune.global_magnitude_threshold(s.weights, s.masks, s.k)
    benchmark.group = f"ops: {SET} round {round_} on {device}"

    def setup():
        return ([w.clone() for w in s.weights], [m.clone() for m in s.masks]), {}

    def run(ws, ms):
        stats = rgprune.apply_threshold_(ws, ms, threshold, bits)
        sync(device)
        return ws, ms, stats

    ws, ms, stats = benchmark.pedantic(run, setup=setup, rounds=10, warmup_rounds=1)
    want_keep, want_weights, _ = reference_round(s)
    for w, m, keep, want in zip(ws, ms, want_keep, want_weights):
        assert torch.equal(unpack_mask(m, w.numel()).reshape(w.shape), keep)
        assert torch.equal(bits_of(w), bits_of(want))  # pruned weights +0.0, survivors untouched
    check_stats(stats, reference.magnitude_histogram(want_weights, ms, bits), s.survivors - s.k)


@pytest.mark.parametrize("device", DEVICES)
def test_apply_masks(benchmark, device):
    s = _state(device, 5)
    keep = [unpack_mask(m, w.numel()).reshape(w.shape) for w, m in zip(s.weights, s.masks)]
    # stale values (-1.0) under the cleared bits: the first timed call must zero them
    ws = [w.masked_fill(~k, -1.0) for w, k in zip(s.weights, keep)]
    benchmark.group = f"ops: {SET} round 5 on {device}"

    def run():
        rgprune.apply_masks_(ws, s.masks)
        sync(device)

    benchmark(run)
    for w, want in zip(ws, s.weights):
        assert torch.equal(bits_of(w), bits_of(want))  # +0.0 under every cleared bit, survivors untouched


@pytest.mark.parametrize("device", DEVICES)
def test_read_write_pass(benchmark, device):
    """The yardstick for apply_masks_: one read + write pass over the same tensors."""
    s = _state(device, 5)
    ws = [w.clone() for w in s.weights]
    benchmark.group = f"ops: {SET} round 5 on {device}"

    def run():
        torch._foreach_mul_(ws, 1.0)
        sync(device)

    benchmark(run)
    assert all(torch.equal(bits_of(w), bits_of(v)) for w, v in zip(ws, s.weights))


@pytest.mark.parametrize("device", DEVICES)
def test_reference_threshold(benchmark, device):
    s = _state(device, 5)
    benchmark.group = f"ops: {SET} round 5 on {device}"
    info, top = benchmark.pedantic(reference.global_magnitude_threshold, args=(s.weights, s.masks, s.k), rounds=3)
    _, n_below, n_ties, _, n_survivors, n_nan = info.tolist()
    assert n_below + n_ties == s.k and n_survivors == s.survivors == int(top.sum()) and n_nan == 0
    assert info.tolist() == rgprune.global_magnitude_threshold(s.weights, s.masks, s.k).info.tolist()
