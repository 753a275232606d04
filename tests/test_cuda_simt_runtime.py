"""The SIMT simulator itself (tests/cuda_sim): small CUDA-style kernels (cuda_sim/selftest_kernels.cpp), built
through cuda_sim/build.py and driven through ctypes, check that every intrinsic gives the CUDA-defined result,
that the cub::BlockScan stand-in scans and exposes a reused TempStorage, that each broken CUDA rule is
reported, and that the schedules are what they claim. Each test's docstring names the simulator bug it guards
against: a simulator that is wrong or lax would let kernel bugs through the simulation tests.
"""

from __future__ import annotations

import ctypes

import numpy as np
import pytest
import torch
from cuda_sim.build import BuildError, build_library

SCHEDULES = ("in-order", "reversed", "random:1", "warp-greedy")
FULL = 0xFFFFFFFF
# st_shuffle's type codes and their sizes in bytes.
SHUFFLE_TYPES = {"int": (0, 4), "unsigned": (1, 4), "long long": (2, 8), "unsigned long long": (3, 8)}
SHUFFLE_TYPES |= {"float": (4, 4), "double": (5, 8), "long": (6, 8)}
SHUFFLE_OPS = ("shfl", "up", "down", "xor")
# st_rule_kernel's kernels (kRuleKernels in selftest_kernels.cpp).
RULE_KERNELS = (
    "barrier_in_branch_kernel",
    "barrier_in_both_branches_kernel",
    "barrier_after_return_kernel",
    "half_warp_shuffle_kernel",
    "mask_excludes_lane_kernel",
    "mixed_kinds_kernel",
    "mixed_widths_kernel",
    "mixed_masks_kernel",
    "overlapping_masks_kernel",
    "collective_vs_barrier_kernel",
    "disjoint_masks_kernel",
    "shuffle_outside_mask_kernel",
)


def ptr(a: np.ndarray) -> ctypes.c_void_p:
    assert a.flags.c_contiguous
    return ctypes.c_void_p(a.ctypes.data)


class Sim:
    """The self-test library: ``run`` an st_* entry point and get its launch error ("" on success)."""

    def __init__(self, path):
        self.lib = ctypes.CDLL(str(path))
        self.lib.simt_last_error.restype = ctypes.c_char_p
        self.lib.simt_set_schedule.argtypes = [ctypes.c_char_p]
        self.lib.simt_context_switches.restype = ctypes.c_ulonglong

    def run(self, entry: str, *args) -> str:
        rc = getattr(self.lib, "st_" + entry)(*args)
        message = self.lib.simt_last_error().decode()
        assert (rc != 0) == (message != ""), (rc, message)
        return message

    def ok(self, entry: str, *args) -> None:
        message = self.run(entry, *args)
        assert message == "", message

    def error(self, entry: str, *args) -> str:
        message = self.run(entry, *args)
        assert message, f"st_{entry} should have failed"
        return message

    def set_schedule(self, spec: str) -> int:
        return self.lib.simt_set_schedule(spec.encode())

    def switches(self) -> int:
        return int(self.lib.simt_context_switches())

    def rule(self, which: str, threads: int = 64, arg: int = 5) -> tuple[str, np.ndarray]:
        out = np.zeros(threads, dtype=np.int32)
        return self.run("rule_kernel", RULE_KERNELS.index(which), threads, arg, ptr(out)), out

    def trace(self, threads: int = 64) -> list[tuple[int, int]]:
        """(point, thread) in the order the block's threads passed trace_kernel's three points."""
        order = np.zeros(3 * threads, dtype=np.int32)
        self.ok("trace", threads, ptr(order))
        return [(int(i) // threads, int(i) % threads) for i in np.argsort(order)]


@pytest.fixture(scope="module")
def sim():
    return Sim(build_library("simt_selftest", ["tests/cuda_sim/selftest_kernels.cpp"]))


@pytest.fixture(autouse=True)
def default_schedule(sim, monkeypatch):
    monkeypatch.delenv("SIMT_SCHEDULE", raising=False)
    sim.set_schedule("")
    yield
    sim.set_schedule("")


# --------------------------------------------------------------------------------------------------------------
# Intrinsics
# --------------------------------------------------------------------------------------------------------------


def cuda_source_lane(op: str, lane: int, arg: int, width: int) -> int:
    """The lane a shuffle reads, from the CUDA Programming Guide's definitions."""
    base, local = lane - lane % width, lane % width
    if op == "shfl":  # srcLane outside [0, width) wraps modulo width, within the lane's segment
        return base + arg % width
    if op == "up":  # the lowest `delta` lanes of each segment keep their value
        return lane - arg if local >= arg else lane
    if op == "down":  # the highest `delta` lanes of each segment keep their value
        return lane + arg if local + arg < width else lane
    src = lane ^ arg  # xor may read earlier segments, never later ones
    return src if src // width <= lane // width else lane


def shuffle_args(op: str, rng: np.random.Generator) -> list[np.ndarray]:
    if op == "shfl":
        return [rng.integers(-70, 70, 32).astype(np.int32), np.full(32, 5, np.int32), np.arange(32, dtype=np.int32)]
    uniform = [np.full(32, v, np.int32) for v in (0, 1, 2, 5, 16, 31)]
    return uniform + [rng.integers(0, 32, 32).astype(np.int32)]


@pytest.mark.parametrize("op", SHUFFLE_OPS)
@pytest.mark.parametrize("type_name", list(SHUFFLE_TYPES))
def test_shuffles_read_the_cuda_defined_lane(sim, type_name, op):
    """Guards against shuffles reading the wrong lane (segments of width < 32, srcLane out of range, deltas
    crossing a segment) or truncating 8-byte values."""
    code, size = SHUFFLE_TYPES[type_name]
    rng = np.random.default_rng(code * 10 + SHUFFLE_OPS.index(op))
    values = rng.integers(0, 2**63, 32, dtype=np.uint64) | np.uint64(2**63)
    expected_bits = values if size == 8 else values & np.uint64(0xFFFFFFFF)
    for width in (1, 2, 4, 8, 16, 32):
        for args in shuffle_args(op, rng):
            out = np.zeros(32, dtype=np.uint64)
            sim.ok("shuffle", code, SHUFFLE_OPS.index(op), ptr(values), ptr(args), width, ptr(out))
            want = [expected_bits[cuda_source_lane(op, lane, int(args[lane]), width)] for lane in range(32)]
            assert out.tolist() == [int(w) for w in want], (width, args.tolist())


@pytest.mark.parametrize("mask", [FULL, 0x0000FFFF, 0x80000001, 0x00000001, 0x5A5A5A5A])
def test_votes_count_the_lanes_of_the_mask(sim, mask):
    """Guards against ballot/any/all counting lanes outside the mask or mishandling nonzero predicates."""
    rng = np.random.default_rng(mask & 0xFFFF)
    for preds in (rng.integers(-2, 3, 32).astype(np.int32), np.ones(32, np.int32), np.zeros(32, np.int32)):
        ballot, any_, all_ = np.zeros(32, np.uint32), np.zeros(32, np.int32), np.zeros(32, np.int32)
        sim.ok("vote", ctypes.c_uint(mask), ptr(preds), ptr(ballot), ptr(any_), ptr(all_))
        want = sum(1 << lane for lane in range(32) if (mask >> lane) & 1 and preds[lane] != 0)
        lanes = [lane for lane in range(32) if (mask >> lane) & 1]
        assert ballot[lanes].tolist() == [want] * len(lanes)
        assert any_[lanes].tolist() == [int(want != 0)] * len(lanes)
        assert all_[lanes].tolist() == [int(want == mask)] * len(lanes)


@pytest.mark.parametrize("size", [4, 8])
@pytest.mark.parametrize("mask", [FULL, 0xFFFF0000, 0x0F0F0F0F])
def test_match_any_groups_equal_values(sim, size, mask):
    """Guards against __match_any_sync comparing the wrong number of bytes or including lanes outside the mask."""
    rng = np.random.default_rng(size + mask % 97)
    low = rng.choice([0, 7, 0xFFFFFFFF], 32).astype(np.uint64)
    values = low | (rng.integers(0, 2, 32).astype(np.uint64) << np.uint64(40))  # high bits matter for 8 bytes
    out = np.zeros(32, np.uint32)
    sim.ok("match", size, ctypes.c_uint(mask), ptr(values), ptr(out))
    key = values if size == 8 else low
    for lane in range(32):
        if (mask >> lane) & 1:
            want = sum(1 << o for o in range(32) if (mask >> o) & 1 and key[o] == key[lane])
            assert out[lane] == want, lane


def test_bit_intrinsics(sim):
    """Guards against off-by-one or zero-input mistakes in __popc/__popcll/__ffs/__ffsll/__clz/__clzll."""
    rng = np.random.default_rng(3)
    special = [0, 1, 2, 0x80000000, 0xFFFFFFFF, 0x100000000, 2**63, 2**64 - 1, 0x8000000000000001]
    values = np.array(special + rng.integers(0, 2**64, 300, dtype=np.uint64).tolist(), dtype=np.uint64)
    out = np.zeros(6 * len(values), np.int32)
    sim.ok("bits", ptr(values), len(values), ptr(out))

    def ffs(x):
        return (x & -x).bit_length()

    for i, v in enumerate(values.tolist()):
        lo = v & 0xFFFFFFFF
        want = [bin(lo).count("1"), bin(v).count("1"), ffs(lo), ffs(v), 32 - lo.bit_length(), 64 - v.bit_length()]
        assert out[6 * i : 6 * i + 6].tolist() == want, hex(v)


def test_half_to_float_is_exact_for_every_pattern(sim):
    """Guards against __half2float mishandling subnormals, signed zeros, infinities or NaNs (it turns
    float16 magnitude keys into the sums of the statistics)."""
    out = np.zeros(65536, np.float32)
    sim.ok("half", ptr(out))
    want = np.arange(65536, dtype=np.uint32).astype(np.uint16).view(np.float16).astype(np.float32)
    nan = np.isnan(want)
    assert np.array_equal(np.isnan(out), nan)
    assert np.array_equal(out[~nan].view(np.uint32), want[~nan].view(np.uint32))  # bits: -0.0 and subnormals
    assert np.array_equal(np.signbit(out[nan]), np.signbit(want[nan]))
    via_torch = torch.arange(65536, dtype=torch.int32).to(torch.int16).view(torch.float16).float().numpy()
    assert np.array_equal(out, via_torch, equal_nan=True)


def test_reinterpreting_casts(sim):
    """Guards against __uint_as_float/__longlong_as_double (and their inverses) converting values instead
    of reinterpreting bits."""
    rng = np.random.default_rng(4)
    values = rng.integers(0, 2**64, 200, dtype=np.uint64)
    values[:3] = [0, 0x3F800000, 0x7FF0000000000000]
    as_float, as_double = np.zeros(200, np.float32), np.zeros(200, np.float64)
    back = np.zeros(600, np.uint64)
    sim.ok("cast", ptr(values), 200, ptr(as_float), ptr(as_double), ptr(back))
    low = (values & np.uint64(0xFFFFFFFF)).astype(np.uint32)
    assert np.array_equal(as_float.view(np.uint32), low)
    assert np.array_equal(as_double.view(np.uint64), values)
    assert np.array_equal(back[0::3], low.astype(np.uint64))
    assert np.array_equal(back[1::3], values)
    assert np.array_equal(back[2::3], low.astype(np.uint64))


def test_atomics_accumulate_over_the_grid(sim):
    """Guards against an atomic that loses updates, returns the new instead of the old value, or wraps or
    compares in the wrong type (signed vs unsigned, 32 vs 64 bits)."""
    blocks, threads = 2, 96
    n = blocks * threads
    i32 = np.array([0, 1000, -1000, 1000, 10], np.int32)
    u32 = np.array([0, 5, 0, 1000, 0, 0xFFFFFFFF, 77], np.uint32)
    u64 = np.array([0, 0, 2**62, 0, 2**64 - 1], np.uint64)
    s64 = np.array([-(10**12), 10**12], np.int64)
    f32, f64, olds = np.array([1.0], np.float32), np.array([0.5]), np.zeros(n, np.int32)
    sim.ok("atomics", blocks, threads, ptr(i32), ptr(u32), ptr(u64), ptr(s64), ptr(f32), ptr(f64), ptr(olds))
    assert sorted(olds.tolist()) == list(range(n))  # each thread got a distinct old value
    assert i32.tolist() == [n, 1000 - 3 * n, n - 1 - 100, -100, 10 + 2 * n]
    assert u32[:6].tolist() == [2 * n, (5 - n) % 2**32, n - 1, 5, 0xFFFFFFFF, 0] and 0 <= u32[6] < n
    assert u64.tolist() == [n << 33, 3 * (n - 1), 7, 2**64 - 1, 0]
    assert s64.tolist() == [0, -(n - 1)]
    assert f32[0] == 1.0 + 0.5 * n and f64[0] == 0.5 + 0.25 * n


def test_atomics_return_the_old_value(sim):
    """Guards against an atomic returning anything but the value before the operation."""
    out = np.zeros(32, np.int64)
    sim.ok("atomic_returns", ptr(out))
    want = [5, 8, 8, -2, -2, 4, 4, -9, -9, 11, 11, 12, 12, 12, 7, 15, 15, 6, 6, 0xFFFFFFFF]
    want += [9, 2**40 + 9, 2**40 + 9, 2**40 + 9, -4, -4, -4, -5, 1, 7, 2, 12]
    assert out.tolist() == want


# --------------------------------------------------------------------------------------------------------------
# cub::BlockScan stand-in
# --------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("aggregate", [True, False])
@pytest.mark.parametrize("inclusive", [False, True])
@pytest.mark.parametrize("items", [1, 4])
@pytest.mark.parametrize("threads", [256, 512])
def test_block_scan_sums(sim, threads, items, inclusive, aggregate):
    """Guards against a BlockScan stand-in with wrong prefix sums, aggregates or item order (N items per
    thread, output aliasing input), which would hide or invent bugs in the tie-count scan."""
    blocks = 3
    per_block = threads * items
    data = np.random.default_rng(threads + items).integers(-1000, 1000, blocks * per_block).astype(np.int64)
    out, agg = np.zeros_like(data), np.full(blocks * threads, -1, np.int64)
    sim.ok("block_scan", threads, items, int(inclusive), int(aggregate), blocks, ptr(data), ptr(out), ptr(agg))
    by_block = data.reshape(blocks, per_block)
    cumsum = np.cumsum(by_block, axis=1)
    want = cumsum if inclusive else cumsum - by_block
    assert np.array_equal(out.reshape(blocks, per_block), want)
    want_agg = np.repeat(cumsum[:, -1], threads) if aggregate else np.zeros(blocks * threads, np.int64)
    assert np.array_equal(agg, want_agg)


def test_block_scan_rejects_a_wrong_block_size(sim):
    """Guards against a BlockScan<T, 256> silently scanning a block of another size (cub's result is undefined)."""
    data, out, agg = np.zeros(128, np.int64), np.zeros(128, np.int64), np.zeros(128, np.int64)
    message = sim.error("block_scan_wrong_size", 128, ptr(data), ptr(out), ptr(agg))
    assert "cub::BlockScan" in message and "128 threads" in message and "scan_kernel" in message


def run_scan_loop(sim, with_barrier: bool, schedule: str, iterations: int = 4) -> bool:
    """True when the reused-TempStorage loop gave the right sums (False: wrong sums or an error)."""
    data = np.random.default_rng(5).integers(-50, 50, iterations * 256).astype(np.int64)
    out, agg = np.zeros_like(data), np.zeros_like(data)
    assert sim.set_schedule(schedule) == 0
    if sim.run("scan_loop", int(with_barrier), iterations, ptr(data), ptr(out), ptr(agg)):
        return False
    rows = data.reshape(iterations, 256)
    want = np.cumsum(rows, axis=1) - rows
    return np.array_equal(out.reshape(iterations, 256), want) and np.array_equal(
        agg.reshape(iterations, 256), np.repeat(rows.sum(axis=1, keepdims=True), 256, axis=1)
    )


def test_block_scan_reuse_without_barrier_is_exposed(sim):
    """Guards against a BlockScan stand-in that keeps partials outside TempStorage or adds a trailing barrier:
    either would hide a kernel that reuses TempStorage without __syncthreads (a real race under cub)."""
    correct_without = {s: run_scan_loop(sim, False, s) for s in SCHEDULES}
    assert not all(correct_without.values()), correct_without
    assert not correct_without["warp-greedy"]
    assert all(run_scan_loop(sim, True, s) for s in SCHEDULES)


def run_warp_totals(sim, with_barrier: bool, schedule: str, iterations: int = 3) -> bool:
    lane, warp = np.arange(256) % 32, np.arange(256) // 32
    flags = np.stack([(lane < (3 * it + warp) % 32) for it in range(iterations)]).astype(np.int32)
    out = np.zeros(iterations * 256, np.int32)
    assert sim.set_schedule(schedule) == 0
    if sim.run("warp_totals", int(with_barrier), iterations, ptr(flags), ptr(out)):
        return False
    return np.array_equal(out.reshape(iterations, 256), np.repeat(flags.sum(axis=1, keepdims=True), 256, axis=1))


def test_warp_greedy_exposes_a_per_warp_array_rewritten_without_barrier(sim):
    """Guards against losing the schedule that runs one warp ahead: a per-warp __shared__ array rewritten in
    the next iteration without a barrier (surviving_ties' warp_ties) reads correctly under in-order and only
    warp-greedy lets a warp overwrite its slot before the other warps have read it."""
    assert not run_warp_totals(sim, False, "warp-greedy")
    assert run_warp_totals(sim, False, "in-order")  # in-order alone would miss this bug
    assert all(run_warp_totals(sim, True, s) for s in SCHEDULES)


# --------------------------------------------------------------------------------------------------------------
# Broken CUDA rules
# --------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kernel", ["barrier_in_branch_kernel", "barrier_in_both_branches_kernel"])
@pytest.mark.parametrize("schedule", SCHEDULES)
def test_barrier_inside_a_branch_is_divergent(sim, kernel, schedule):
    """Guards against a counting barrier that lets threads waiting at different __syncthreads release each
    other (on a GPU: deadlock or undefined behaviour), also when both branches have one."""
    sim.set_schedule(schedule)
    message, _ = sim.rule(kernel)
    assert kernel in message and "divergent __syncthreads" in message
    assert "selftest_kernels.cpp:" in message and "block 0 of 1" in message and schedule in message


@pytest.mark.parametrize("schedule", SCHEDULES)
def test_barrier_after_an_early_return_is_divergent(sim, schedule):
    """Guards against a barrier that completes without the threads that returned early."""
    sim.set_schedule(schedule)
    message, _ = sim.rule("barrier_after_return_kernel")
    assert "barrier_after_return_kernel" in message and "divergent __syncthreads" in message


def test_deadlock_report_names_every_waiting_group(sim):
    """Guards against a scheduler that hangs, or stops silently, when no thread can run."""
    sim.set_schedule("reversed")  # threads 63..32 exit before any thread reaches the barrier
    message, _ = sim.rule("barrier_after_return_kernel")
    assert "deadlock" in message
    assert "threads 0-31 wait at __syncthreads at" in message and "threads 32-63 have exited" in message


@pytest.mark.parametrize("schedule", SCHEDULES)
def test_full_mask_shuffle_called_by_half_the_warp(sim, schedule):
    """Guards against a collective that completes without all the lanes its mask names."""
    sim.set_schedule(schedule)
    message, _ = sim.rule("half_warp_shuffle_kernel")
    assert "half_warp_shuffle_kernel" in message and "__shfl_sync(mask 0xffffffff" in message
    assert "exited" in message


def test_mask_that_excludes_the_calling_lane(sim):
    """Guards against accepting a mask without the caller's own lane (undefined in CUDA)."""
    message, _ = sim.rule("mask_excludes_lane_kernel")
    assert "mask_excludes_lane_kernel" in message and "excludes the calling lane" in message


@pytest.mark.parametrize("kernel", ["mixed_kinds_kernel", "mixed_widths_kernel", "mixed_masks_kernel"])
@pytest.mark.parametrize("schedule", SCHEDULES)
def test_lanes_meeting_at_different_collectives(sim, kernel, schedule):
    """Guards against lanes of one warp pairing up across different intrinsics, masks or widths."""
    sim.set_schedule(schedule)
    message, _ = sim.rule(kernel)
    assert kernel in message and "diverged at a warp collective" in message


@pytest.mark.parametrize("schedule", SCHEDULES)
def test_lane_at_block_barrier_while_its_warp_syncs(sim, schedule):
    """Guards against a lane named in a warp collective waiting at __syncthreads instead."""
    sim.set_schedule(schedule)
    message, _ = sim.rule("collective_vs_barrier_kernel")
    assert "collective_vs_barrier_kernel" in message and "__syncthreads" in message and "__syncwarp" in message


@pytest.mark.parametrize("schedule", SCHEDULES)
def test_disjoint_masks_in_one_warp_are_legal(sim, schedule):
    """Guards against rejecting (or mixing up) two half-warps that shuffle independently with disjoint masks."""
    sim.set_schedule(schedule)
    message, out = sim.rule("disjoint_masks_kernel")
    assert message == ""
    lane = np.arange(64) % 32
    assert out.tolist() == np.where(lane < 16, 30, 200).tolist()


# Each row pins the report of one check: a report must name the thread that broke the rule first and where
# the others wait (without that check, the deadlock report or a later check would still fail the launch,
# but would name other threads or no rule).
FIRST_BREAKER_REPORTS = [
    # exit while the block waits at a barrier
    ("barrier_after_return_kernel", "in-order", 64, 0, "thread 32 exited while threads 0-31 wait at __syncthreads"),
    # exit while named in an open collective
    ("half_warp_shuffle_kernel", "in-order", 32, 0, "thread 16 exited, but it is named in the mask of a warp"),
    # a new collective naming lanes that have exited
    ("half_warp_shuffle_kernel", "reversed", 32, 0, "thread 15 calls __shfl_sync(mask 0xffffffff"),
    ("half_warp_shuffle_kernel", "reversed", 32, 0, "whose mask names threads 16-31, which have exited"),
    # a barrier reached by a lane that an open collective names
    ("collective_vs_barrier_kernel", "in-order", 32, 5, "thread 5 reached __syncthreads at"),
    ("collective_vs_barrier_kernel", "in-order", 32, 5, "threads 0-4 wait at __syncwarp(mask 0xffffffff)"),
    # a new collective naming a lane that waits at the barrier
    ("collective_vs_barrier_kernel", "in-order", 32, 0, "thread 1 calls __syncwarp(mask 0xffffffff)"),
    ("collective_vs_barrier_kernel", "in-order", 32, 0, "whose mask names thread 0, which wait at __syncthreads"),
    # a new collective whose mask overlaps an open one that does not name the caller
    ("overlapping_masks_kernel", "reversed", 32, 0, "thread 15 calls __shfl_sync(mask 0x0000ffff"),
    ("overlapping_masks_kernel", "reversed", 32, 0, "threads 16-31 wait at __shfl_sync(mask 0xffff0001"),
]


@pytest.mark.parametrize(("kernel", "schedule", "threads", "arg", "expected"), FIRST_BREAKER_REPORTS)
def test_reports_name_the_first_breaker(sim, kernel, schedule, threads, arg, expected):
    """Guards against losing a check to its backstop (the deadlock report or a later check), which would name
    the wrong threads or no rule and make the kernel bug hard to find."""
    sim.set_schedule(schedule)
    message, _ = sim.rule(kernel, threads=threads, arg=arg)
    assert kernel in message and expected in message, message


@pytest.mark.parametrize("schedule", SCHEDULES)
def test_overlapping_masks_are_an_error(sim, schedule):
    """Guards against two collectives of one warp whose masks overlap (a lane cannot be in both)."""
    sim.set_schedule(schedule)
    message, _ = sim.rule("overlapping_masks_kernel")
    assert "overlapping_masks_kernel" in message


@pytest.mark.parametrize("width", [0, 3, 64])
def test_shuffle_width_must_be_a_power_of_two(sim, width):
    """Guards against accepting a shuffle width CUDA leaves undefined (not a power of 2 in [1, 32])."""
    values, args, out = np.zeros(32, np.uint64), np.zeros(32, np.int32), np.zeros(32, np.uint64)
    message = sim.error("shuffle", 0, 0, ptr(values), ptr(args), width, ptr(out))
    assert f"width {width}" in message and "power of 2" in message


def test_shuffle_from_a_lane_outside_the_mask(sim):
    """Guards against returning a value from a lane that did not take part (undefined in CUDA)."""
    message, _ = sim.rule("shuffle_outside_mask_kernel")
    assert "reads lane 16" in message and "not in the mask" in message


def test_misaligned_vector_access(sim):
    """Guards against RGP_CHECK_ALIGNED accepting a pointer that a 16-byte vector load would fault on."""
    data = np.zeros(64, np.uint8)
    base = (-data.ctypes.data) % 16  # the first 16-byte aligned offset
    sim.ok("misaligned", ptr(data), base)
    message = sim.error("misaligned", ptr(data), base + 4)
    assert "misaligned_kernel" in message and "misaligned vector access" in message
    assert "selftest_kernels.cpp:" in message and "16-byte aligned" in message


def test_activemask_is_the_lanes_that_have_not_exited(sim):
    """Guards against __activemask counting exited lanes or lanes past the end of a partial warp."""
    sim.set_schedule("in-order")  # after the __syncwarp, lanes run (and exit) one after another from lane 0
    out = np.zeros(40, np.uint32)
    sim.ok("activemask", 40, ptr(out))
    assert out[:20].tolist() == [0x000FFFFF & ~((1 << lane) - 1) for lane in range(20)]
    assert out[32:40].tolist() == [0xFF & ~((1 << lane) - 1) for lane in range(8)]


# --------------------------------------------------------------------------------------------------------------
# Launch mechanics and schedules
# --------------------------------------------------------------------------------------------------------------


def test_dynamic_shared_memory_is_per_block(sim):
    """Guards against dynamic shared memory that is missing, unaligned, or leaks one block's data into the next."""
    blocks, threads = 3, 96
    seen, out = np.zeros(blocks * threads, np.int32), np.zeros(blocks * threads, np.int32)
    aligned = np.full(blocks, -1, np.int32)
    sim.ok("dynamic_shared", blocks, threads, ptr(seen), ptr(out), ptr(aligned))
    assert seen.tolist() == [-1] * (blocks * threads)  # the poison: never a previous block's values
    t = np.arange(threads)
    assert out.tolist() == np.concatenate([b * 1000 + (t + 1) % threads for b in range(blocks)]).tolist()
    assert aligned.tolist() == [0] * blocks


def test_each_thread_gets_its_own_parameters(sim):
    """Guards against kernel parameters shared between threads (one thread's change seen by another)."""
    out = np.zeros(128, np.int32)
    sim.ok("parameter_copy", 7, 128, ptr(out))
    assert out.tolist() == list(range(7, 7 + 128))


def test_schedules_follow_their_definitions(sim):
    """Guards against schedules that do not interleave as documented (the bugs each one exposes depend on it)."""

    def at(point, threads):
        return [(point, t) for t in threads]

    warp0, warp1, both = range(32), range(32, 64), range(64)
    expected = {
        "in-order": [*at(0, both), *at(1, both), *at(2, both)],
        "reversed": [*at(0, reversed(both)), *at(1, reversed(both)), *at(2, reversed(both))],
        # a warp runs on until all its lanes wait at the block barrier; the last warp to arrive leaves first
        "warp-greedy": [*at(0, warp0), *at(1, warp0), *at(0, warp1), *at(1, warp1), *at(2, warp1), *at(2, warp0)],
    }
    for schedule, want in expected.items():
        assert sim.set_schedule(schedule) == 0
        assert sim.trace() == want, schedule


def test_schedules_are_deterministic_and_differ(sim):
    """Guards against a schedule that is not reproducible from its name (a failure could not be replayed) or
    against schedules that collapse into one."""
    traces = {}
    for schedule in (*SCHEDULES, "random:2", "random", "random:0"):
        sim.set_schedule(schedule)
        traces[schedule] = sim.trace()
        assert sim.trace() == traces[schedule], schedule
    assert len({tuple(traces[s]) for s in (*SCHEDULES, "random:2")}) == 5
    assert traces["random"] == traces["random:0"]
    assert sorted(traces["random:1"]) == sorted(traces["in-order"])


def test_schedule_comes_from_the_environment_unless_set(sim, monkeypatch):
    """Guards against SIMT_SCHEDULE being read once (or never), or overriding an explicit set_schedule."""
    monkeypatch.setenv("SIMT_SCHEDULE", "reversed")
    assert sim.trace()[0] == (0, 63)
    monkeypatch.setenv("SIMT_SCHEDULE", "in-order")
    assert sim.trace()[0] == (0, 0)
    sim.set_schedule("reversed")
    assert sim.trace()[0] == (0, 63)
    sim.set_schedule("")
    assert sim.trace()[0] == (0, 0)


def test_invalid_schedules_name_the_valid_ones(sim, monkeypatch):
    """Guards against a misspelt schedule silently running another one."""
    assert sim.set_schedule("sideways") == -1
    message = sim.lib.simt_last_error().decode()
    for name in ("in-order", "reversed", "random[:SEED]", "warp-greedy", "sideways"):
        assert name in message
    assert sim.set_schedule("random:x") == -1
    monkeypatch.setenv("SIMT_SCHEDULE", "backwards")
    order = np.zeros(3 * 64, np.int32)
    message = sim.error("trace", 64, ptr(order))
    assert "SIMT_SCHEDULE" in message and "backwards" in message and "warp-greedy" in message


@pytest.mark.parametrize("which", [0, 1, 2])
def test_unsupported_launch_shapes_are_rejected(sim, which):
    """Guards against running a 2-D block, more than 1024 threads or an empty grid as something else."""
    assert "switch_bench_kernel" in sim.error("bad_config", which)


def test_runtime_is_reusable_after_errors(sim):
    """Guards against an abandoned launch leaving fibers, barriers or warp state behind that break the next one."""
    for schedule in SCHEDULES:
        sim.set_schedule(schedule)
        for kernel in RULE_KERNELS:
            if kernel != "disjoint_masks_kernel":
                assert sim.rule(kernel, threads=1024)[0]
            assert run_scan_loop(sim, True, schedule)
    sim.set_schedule("in-order")
    assert sim.trace() == [(p, t) for p in range(3) for t in range(64)]


def test_context_switches_are_counted(sim):
    """Guards against a switch counter that misses switches (the measure of the simulator's cost)."""
    before = sim.switches()
    sim.ok("switch_bench", 2, 32, 10)
    # each thread: resumed at start and after each of its 10 __syncwarp; every resume is two stack switches
    assert sim.switches() - before == 2 * 32 * 11 * 2


# --------------------------------------------------------------------------------------------------------------
# build.py
# --------------------------------------------------------------------------------------------------------------


def test_build_follows_the_source_root_and_rebuilds_stale_headers(tmp_path):
    """Guards against a stale library after a header edit, or a mutation test building the repository's csrc
    instead of its copy."""
    root = tmp_path / "root"
    (root / "csrc").mkdir(parents=True)
    (root / "csrc" / "probe.h").write_text("#define PROBE_VALUE 1\n")
    source = tmp_path / "probe.cpp"
    source.write_text('#include "probe.h"\nextern "C" int probe() { return PROBE_VALUE; }\n')

    def build():
        return build_library("probe", [source], root=root, out_dir=tmp_path / "out", runtime=False)

    first = build()
    assert build() == first and ctypes.CDLL(str(first)).probe() == 1
    (root / "csrc" / "probe.h").write_text("#define PROBE_VALUE 2\n")
    second = build()
    assert second != first and ctypes.CDLL(str(second)).probe() == 2
    assert not [p for p in (tmp_path / "out").iterdir() if not p.name.endswith(".so")]  # no temporaries left


def test_build_error_shows_the_compiler_output(tmp_path):
    """Guards against a failed build that hides g++'s message (or leaves a broken library behind)."""
    source = tmp_path / "broken.cpp"
    source.write_text("int broken( {\n")
    with pytest.raises(BuildError, match=r"broken\.cpp.*error"):
        build_library("broken", [source], out_dir=tmp_path / "out", runtime=False)
    assert not list((tmp_path / "out").glob("*.so"))
