"""The CUDA kernels run: csrc/cuda's own device code and launch sequences, compiled as host C++ and executed by
the SIMT simulator of tests/cuda_sim (fibers for CUDA threads, checked barriers and warp masks), equal the
pure-PyTorch reference bit for bit. On a machine with a GPU the same cases run on the device (marker ``cuda``;
``make gpu-check``).

What the simulation covers: the kernels' arithmetic, their use of shared memory, barriers and warp intrinsics
under several thread schedules, grid sizes, chunk tables split over several launches, the host launch
sequence (which kernels run, reading what). What it cannot: races between blocks (blocks run one after
another), memory ordering, occupancy and speed; those need a GPU.

The cases and the comparison live in tests/cuda_sim/cases.py.
"""

from __future__ import annotations

import pytest
import torch
from cuda_sim.cases import (
    CASES,
    DTYPES,
    WAVES,
    Case,
    assert_stats_equal,
    assert_tensors_equal,
    check_all_ops,
    check_key_buffer,
    check_split_ties_under_every_schedule,
    levels,
    make_case,
    masks_keeping,
    schedule_and_wave,
    survivor_count,
)
from cuda_sim.ops import SCHEDULES, load
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rgprune.kernels import reference as ref
from rgprune.kernels.format import INFO_KEY, INFO_N_NAN


@pytest.fixture(scope="module")
def sim():
    return load()


@pytest.mark.parametrize("index", range(len(CASES)), ids=[f"{k}-{str(d)[6:]}" for k, d in CASES])
def test_simulated_kernels_equal_reference(sim, index):
    """Guards against any kernel or launch-sequence bug visible in the results (tie ranks, pass prefixes, masks
    words, the key buffer, chunk tables split over launches, misaligned vector paths), under every schedule
    and grid cap in turn."""
    kind, dtype = CASES[index]
    case = make_case(kind, dtype, seed=index)
    settings_ = schedule_and_wave(index)
    with sim.configured(**settings_):
        check_all_ops(sim, case, f"{kind} {dtype} {settings_}")


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: str(d)[6:])
def test_split_ties_under_every_schedule_and_grid(sim, dtype):
    """Guards against barrier and warp bugs that only some interleavings expose (a per-warp shared array
    rewritten before every warp read it shows under warp-greedy only) and against tie ranks that depend on the
    grid: the threshold and the tie-splitting apply under all four schedules and four grid caps."""
    check_split_ties_under_every_schedule(sim, dtype)


@pytest.mark.parametrize("dtype", (torch.float32, torch.float64), ids=lambda d: str(d)[6:])
@pytest.mark.parametrize("capacity", (8, 300, 5000))
def test_key_buffer_window_and_overflow_paths(sim, dtype, capacity):
    """Guards against the threshold's gathering pass: a window that misses the k-th key, an overflowing buffer
    that is still trusted, a buffer pass that filters by the wrong prefix. A tiny buffer forces the window
    and the fallback passes over the weights; a large one takes the whole bin."""
    paths = check_key_buffer(sim, dtype, capacity)
    # the buffer served the last passes where it held the k-th key; the weights did where it overflowed (8 keys)
    # or its window missed (the crowded bin's spikes at its edges defeat the interpolation)
    assert "buffer" in paths and (capacity == 5000 or paths & {"overflow", "miss"}), paths
    assert "overflow" in paths or capacity == 5000, paths


def test_apply_prunes_nothing_when_the_threshold_saw_nan(sim):
    """Guards against pruning by a threshold computed over NaN survivors: on a GPU the Python API raises only
    when the threshold is read, so the kernels must refuse on their own (the reference does too)."""
    case = make_case("nan", torch.float32, seed=11)
    info, _ = ref.global_magnitude_threshold(case.tensors, case.masks, 100)
    assert info[INFO_N_NAN] > 0 and info[INFO_KEY] >= 0
    got, want = case.clone(), case.clone()
    sim.apply_threshold_(got.tensors, got.masks, info, 12)
    assert_tensors_equal(got, case, "a NaN threshold changed the weights")
    ref.apply_threshold_(want.tensors, want.masks, info, 12)
    assert_tensors_equal(want, case, "the reference pruned under a NaN threshold")


@settings(max_examples=25, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(
    sizes=st.lists(st.integers(0, 3000), min_size=1, max_size=5),
    dtype=st.sampled_from(DTYPES),
    distinct=st.one_of(st.none(), st.integers(1, 6)),
    density=st.floats(0.0, 1.0),
    frac=st.floats(0.0, 1.0),
    seed=st.integers(0, 2**16),
    schedule=st.sampled_from(SCHEDULES),
    wave=st.sampled_from(WAVES),
)
def test_simulated_kernels_equal_reference_hypothesis(sim, sizes, dtype, distinct, density, frac, seed, schedule, wave):
    """Guards against kernel bugs on shapes and densities the fixed cases do not have."""
    gen = torch.Generator().manual_seed(seed)
    tensors = [levels(n, dtype, gen, distinct) for n in sizes]
    case = Case("hypothesis", tensors, masks_keeping(tensors, gen, density, stale=seed % 2 == 1))
    k = round(frac * survivor_count(case))
    with sim.configured(schedule=schedule, wave=wave):
        info, top = sim.global_magnitude_threshold(case.tensors, case.masks, k)
        want_info, want_top = ref.global_magnitude_threshold(case.tensors, case.masks, k)
        assert info.tolist() == want_info.tolist() and torch.equal(top, want_top)
        got, want = case.clone(), case.clone()
        stats = sim.apply_threshold_(got.tensors, got.masks, want_info, 12)
        assert_stats_equal(stats, ref.apply_threshold_(want.tensors, want.masks, want_info, 12), "apply")
        assert_tensors_equal(got, want, "apply")


# --------------------------------------------------------------------------------------------------
# The same cases on a GPU (make gpu-check)
# --------------------------------------------------------------------------------------------------


def _built_with_cuda() -> bool:
    from rgprune.kernels import extension

    return extension.module is not None and bool(extension.module.built_with_cuda)


class CudaOps:
    """``torch.ops.rgprune`` on the GPU with the interface of the simulated ops: CPU tensors in, copied to the
    device at the same offset modulo 16 bytes (misaligned views stay misaligned), results copied back."""

    @staticmethod
    def _to_device(case_tensors, masks):
        device = Case("device", list(case_tensors), list(masks)).clone("cuda")
        return device.tensors, device.masks

    def magnitude_histogram(self, tensors, masks, bits):
        return torch.ops.rgprune.magnitude_histogram(*self._to_device(tensors, masks), bits)

    def radix_histogram(self, tensors, masks, prefix, prefix_bits, bits):
        return torch.ops.rgprune.radix_histogram(*self._to_device(tensors, masks), prefix, prefix_bits, bits)

    def global_magnitude_threshold(self, tensors, masks, k):
        return torch.ops.rgprune.global_magnitude_threshold(*self._to_device(tensors, masks), k)

    def _in_place(self, op, tensors, masks, *args):
        device_tensors, device_masks = self._to_device(tensors, masks)
        out = op(device_tensors, device_masks, *args)
        for t, d in zip(list(tensors) + list(masks), device_tensors + device_masks):
            t.copy_(d.cpu())
        return out

    def apply_threshold_(self, tensors, masks, info, bits):
        return self._in_place(torch.ops.rgprune.apply_threshold_, tensors, masks, info.cuda(), bits)

    def threshold_masks_(self, tensors, masks, info):
        self._in_place(torch.ops.rgprune.threshold_masks_, tensors, masks, info.cuda())

    def apply_masks_(self, tensors, masks):
        self._in_place(torch.ops.rgprune.apply_masks_, tensors, masks)

    def masks_where_one_(self, tensors, masks):
        self._in_place(torch.ops.rgprune.masks_where_one_, tensors, masks)


@pytest.mark.cuda
@pytest.mark.skipif(not (torch.cuda.is_available() and _built_with_cuda()), reason="no CUDA GPU or CUDA build")
@pytest.mark.parametrize("index", range(len(CASES)), ids=[f"{k}-{str(d)[6:]}" for k, d in CASES])
def test_cuda_kernels_equal_reference(index):
    """Guards against what the simulation cannot see (races between blocks, memory ordering, nvcc's code):
    the simulation's cases on the GPU, every op against the reference."""
    kind, dtype = CASES[index]
    check_all_ops(CudaOps(), make_case(kind, dtype, seed=index), f"{kind} {dtype} on the GPU")
