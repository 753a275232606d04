"""pytest-benchmark: rgprune's individual kernels (and the reference's) on a BERT-like 3.5M-weight set at
density 1.0 (round 1) and 0.41 (round 5), so the kernel engineer can see where a round's time goes:

* ``test_threshold_first_pass``: ``global_magnitude_threshold(k=0)`` stops after its first radix pass, so
  it times one histogram read pass without the sums; the full threshold minus it is the refinement passes;
* ``test_magnitude_histogram`` minus the first pass is the cost of the per-tensor sums (sum|w|, sum w^2);
* ``test_apply_threshold`` (1 read + 1 write, with the survivors' statistics) and ``test_apply_masks``;
* ``test_copy_pass`` / ``test_read_write_pass``: the memory yardsticks (a clone of every tensor, and an
  in-place multiply by 1.0).

Divide by 3.5M for ns/weight. The 3.5M set (14 MB) partly fits in a large last-level cache; the real
sets are timed by ``python -m bench.compare`` (section "RG trace" there has threshold/apply/histogram)."""
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest  # noqa: E402
import torch  # noqa: E402

import rgprune  # noqa: E402
from bench.test_bench_prune import DEVICES, states_for  # noqa: E402
from rgprune.benchmark.measure import sync  # noqa: E402
from rgprune.kernels import reference  # noqa: E402

SET = "bertlike-3.5M"


def _state(device, round_=5):
    return states_for(SET, device)[2][round_]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("round_", [1, 5], ids=["round1", "round5"])
def test_magnitude_histogram(benchmark, device, round_):
    s = _state(device, round_)
    benchmark.group = f"ops: {SET} round {round_} on {device}"

    def run():
        rgprune.magnitude_histogram(s.weights, s.masks, 12, check_nan=False)
        sync(device)

    benchmark(run)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("round_", [1, 5], ids=["round1", "round5"])
def test_global_magnitude_threshold(benchmark, device, round_):
    s = _state(device, round_)
    benchmark.group = f"ops: {SET} round {round_} on {device}"
    benchmark(rgprune.global_magnitude_threshold, s.weights, s.masks, s.k)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("round_", [1, 5], ids=["round1", "round5"])
def test_threshold_first_pass(benchmark, device, round_):
    s = _state(device, round_)
    benchmark.group = f"ops: {SET} round {round_} on {device}"
    benchmark(rgprune.global_magnitude_threshold, s.weights, s.masks, 0)


@pytest.mark.parametrize("device", DEVICES)
def test_copy_pass(benchmark, device):
    s = _state(device, 5)
    benchmark.group = f"ops: {SET} round 5 on {device}"

    def run():
        [w.clone() for w in s.weights]
        sync(device)

    benchmark(run)


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
        rgprune.apply_threshold_(ws, ms, threshold, bits)
        sync(device)

    benchmark.pedantic(run, setup=setup, rounds=10, warmup_rounds=1)


@pytest.mark.parametrize("device", DEVICES)
def test_apply_masks(benchmark, device):
    s = _state(device, 5)
    ws = [w.clone() for w in s.weights]
    benchmark.group = f"ops: {SET} round 5 on {device}"

    def run():
        rgprune.apply_masks_(ws, s.masks)
        sync(device)

    benchmark(run)


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


@pytest.mark.parametrize("device", DEVICES)
def test_reference_threshold(benchmark, device):
    s = _state(device, 5)
    benchmark.group = f"ops: {SET} round 5 on {device}"
    benchmark.pedantic(reference.global_magnitude_threshold, args=(s.weights, s.masks, s.k), rounds=3)
