"""The inputs and comparisons of the CUDA kernel tests: cases of every kind the kernels must get right (sizes
around chunk, tile and warp boundaries, ties, special values, stale weights under cleared bits, misaligned views,
long tensor lists), and ``check_all_ops``, which runs every op of an implementation (the simulated kernels, or the
CUDA kernels on a GPU) on a case against the pure-PyTorch reference.

``RGPRUNE_SIM_CASES=reduced`` keeps a few kinds (for compute-sanitizer runs on a GPU).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from rgprune.kernels import reference as ref
from rgprune.kernels.format import INF_KEY, INFO_N_EQUAL, INFO_N_TIES, KEY_BITS, magnitude_keys, pack_mask, unpack_mask

from .ops import SCHEDULES

DTYPES = (torch.float32, torch.float16, torch.bfloat16, torch.float64)
WAVES = (1, 3, 5, 7)
REDUCED = os.environ.get("RGPRUNE_SIM_CASES", "") == "reduced"


# --------------------------------------------------------------------------------------------------
# Inputs
# --------------------------------------------------------------------------------------------------


@dataclass
class Case:
    """A tensor list and its masks (weights may hold stale nonzero values under cleared bits)."""

    name: str
    tensors: list[torch.Tensor]
    masks: list[torch.Tensor]

    def clone(self, device: str = "cpu") -> Case:
        """Copies that keep each tensor's offset into its buffer modulo 16 bytes (a misaligned view stays
        misaligned)."""
        return Case(
            self.name, [same_alignment(t, device) for t in self.tensors], [m.clone().to(device) for m in self.masks]
        )


def same_alignment(t: torch.Tensor, device: str) -> torch.Tensor:
    offset = (t.data_ptr() % 16) // t.element_size()
    buffer = torch.zeros(t.numel() + 16, dtype=t.dtype, device=device)
    shift = (offset - buffer.data_ptr() // t.element_size()) % (16 // t.element_size())
    view = buffer[shift : shift + t.numel()]
    view.copy_(t.reshape(-1))
    return view


def levels(n: int, dtype, gen: torch.Generator, distinct: int | None = None) -> torch.Tensor:
    """n weights of random sign: normal magnitudes, or `distinct` magnitudes (heavy ties)."""
    if distinct is None:
        values = torch.randn(n, generator=gen, dtype=torch.float64) * 0.05
    else:
        values = (torch.randint(1, distinct + 1, (n,), generator=gen) * 0.125).to(torch.float64)
        values *= torch.where(torch.rand(n, generator=gen) < 0.5, -1.0, 1.0)
    return values.to(dtype)


def masks_keeping(tensors, gen: torch.Generator, density: float, stale: bool) -> list[torch.Tensor]:
    """Masks keeping `density` of each tensor; pruned weights are zeroed unless `stale` (weights that grew
    back: some zeros, some -0.0, the rest their old values)."""
    masks = []
    for t in tensors:
        keep = torch.rand(t.numel(), generator=gen) < density
        if not stale:
            t.view(-1)[~keep] = 0
        else:
            r = torch.rand(t.numel(), generator=gen)
            t.view(-1)[~keep & (r < 0.3)] = 0
            t.view(-1)[~keep & (r > 0.9)] = -0.0
        masks.append(pack_mask(keep))
    return masks


def misaligned(t: torch.Tensor, elements: int) -> torch.Tensor:
    """A view of t's values starting `elements` past a 16-byte boundary."""
    buffer = torch.zeros(t.numel() + 64, dtype=t.dtype)
    start = (-(buffer.data_ptr() // t.element_size())) % (16 // t.element_size()) + elements
    view = buffer[start : start + t.numel()]
    view.copy_(t.reshape(-1))
    return view


SIZES = (0, 1, 31, 32, 33, 8191, 8192, 8193, 100_000)


def with_specials(t: torch.Tensor, gen: torch.Generator, nan: bool) -> torch.Tensor:
    """t with 2% of its entries set to ±Inf, ±0.0, the largest finite value, a subnormal and, with `nan`, NaN bit
    patterns: the canonical quiet NaN, and the smallest NaN key with the sign bit set and with it clear."""
    n = t.numel()
    picks = torch.randperm(n, generator=gen)[: max(1, n // 50)].tolist()
    specials = [float("inf"), -float("inf"), -0.0, 0.0, torch.finfo(t.dtype).max, torch.finfo(t.dtype).tiny / 4]
    if nan:
        specials.append(float("nan"))
    for j, i in enumerate(picks):
        t[i] = specials[j % len(specials)]
    if nan and len(picks) >= 3:
        bits = t.view({2: torch.int16, 4: torch.int32, 8: torch.int64}[t.element_size()])
        lowest_nan = INF_KEY[t.dtype] + 1
        sign = -(1 << (8 * t.element_size() - 1))
        bits[picks[0]], bits[picks[1]] = lowest_nan, sign + lowest_nan
    return t


def make_case(kind: str, dtype, seed: int) -> Case:
    """The inputs of one kind (see KINDS)."""
    gen = torch.Generator().manual_seed(seed)
    if kind == "sizes":
        tensors = [levels(n, dtype, gen) for n in SIZES]
        return Case(kind, tensors, masks_keeping(tensors, gen, 1.0, False))
    if kind.startswith("size-"):
        tensors = [levels(int(kind[5:]), dtype, gen)]
        return Case(kind, tensors, masks_keeping(tensors, gen, 0.8, False))
    if kind == "many-small":  # more tensors than one chunk table holds: several launches per pass
        tensors = [levels(int(n), dtype, gen) for n in torch.randint(0, 300, (150,), generator=gen)]
        return Case(kind, tensors, masks_keeping(tensors, gen, 0.7, False))
    if kind == "ties":  # 4 magnitudes over chunk, tile, warp and block boundaries
        tensors = [levels(n, dtype, gen, distinct=4) for n in (20_000, 8192 + 1000, 3000)]
        return Case(kind, tensors, masks_keeping(tensors, gen, 0.9, False))
    if kind == "specials":
        tensors = [with_specials(levels(n, dtype, gen), gen, nan=False) for n in (5000, 9000)]
        return Case(kind, tensors, masks_keeping(tensors, gen, 0.95, False))
    if kind == "nan":
        tensors = [with_specials(levels(n, dtype, gen), gen, nan=True) for n in (3000, 9000)]
        return Case(kind, tensors, masks_keeping(tensors, gen, 0.95, False))
    if kind == "pruned":  # stale values under cleared bits, whole chunks pruned
        tensors = [levels(n, dtype, gen) for n in (30_000, 8192 * 2, 500)]
        masks = masks_keeping(tensors, gen, 0.3, stale=True)
        masks[1][: 8192 // 32] = 0  # the first chunk of tensor 1: every bit cleared, values left
        return Case(kind, tensors, masks)
    if kind == "misaligned":
        tensors = [misaligned(levels(n, dtype, gen, distinct=50), e) for n, e in ((9000, 1), (4000, 3), (777, 2))]
        return Case(kind, tensors, masks_keeping(tensors, gen, 0.8, False))
    raise ValueError(kind)


KINDS = ("sizes", "many-small", "ties", "specials", "nan", "pruned", "misaligned") + tuple(f"size-{n}" for n in SIZES)
if REDUCED:
    KINDS = ("sizes", "ties", "pruned", "misaligned")


def schedule_and_wave(index: int) -> dict:
    """Schedule and grid cap of the index-th case: every schedule meets every grid cap across the cases."""
    return {"schedule": SCHEDULES[index % len(SCHEDULES)], "wave": WAVES[(index // len(SCHEDULES)) % len(WAVES)]}


def survivor_count(case: Case) -> int:
    total = 0
    for t, m in zip(case.tensors, case.masks):
        keys, alive = magnitude_keys(t), unpack_mask(m, t.numel())
        total += int((alive & (keys <= INF_KEY[t.dtype])).sum())
    return total


def split_tie_k(case: Case) -> int | None:
    """A k whose threshold prunes about half of the largest group of tied survivors (None: no survivors)."""
    keys = [magnitude_keys(t)[unpack_mask(m, t.numel())] for t, m in zip(case.tensors, case.masks)]
    keys = torch.cat(keys)
    keys = keys[keys <= INF_KEY[case.tensors[0].dtype]]
    if not keys.numel():
        return None
    _, counts = keys.unique(return_counts=True)
    top = int(counts.argmax())
    return int(counts[:top].sum()) + max(1, int(counts[top]) // 2)


def ks_of(case: Case) -> list[int]:
    """k = 0, 1, all survivors, one more than the survivors, a random middle one, and one that splits the
    largest group of tied survivors."""
    n = survivor_count(case)
    ks = {0, 1, n, n + 1, n // 3, split_tie_k(case)}
    return sorted(k for k in ks if k is not None)


# --------------------------------------------------------------------------------------------------
# Comparison
# --------------------------------------------------------------------------------------------------


def bits_of(t: torch.Tensor) -> torch.Tensor:
    return t.view({2: torch.int16, 4: torch.int32, 8: torch.int64}[t.element_size()])


def assert_stats_equal(got, want, what: str):
    names = ("histogram", "counts", "abs_sums", "sq_sums", "nan_counts")
    for name, g, w in zip(names, got, want):
        g, w = g.cpu(), w.cpu()
        if w.dtype == torch.float64:  # float64 sums: equal up to summation order
            torch.testing.assert_close(g, w, rtol=1e-9, atol=0, msg=f"{what}: {name}")
        else:
            assert torch.equal(g, w), f"{what}: {name} differs at {(g != w).nonzero().flatten()[:5].tolist()}"


def assert_tensors_equal(got: Case, want: Case, what: str):
    for i, (g, w) in enumerate(zip(got.tensors, want.tensors)):
        assert torch.equal(bits_of(g.cpu()), bits_of(w)), f"{what}: tensor {i} differs bit for bit"
    for i, (g, w) in enumerate(zip(got.masks, want.masks)):
        assert torch.equal(g.cpu(), w), f"{what}: mask {i} differs"


def check_all_ops(ops, case: Case, what: str):
    """Every op on `case` by `ops` (simulated or CUDA) against the reference; raises AssertionError."""
    t, m = case.tensors, case.masks
    for bits in (12, 5):
        assert_stats_equal(
            ops.magnitude_histogram(t, m, bits), ref.magnitude_histogram(t, m, bits), f"{what} hist{bits}"
        )
    key_bits = KEY_BITS[t[0].dtype]
    alive_keys = [magnitude_keys(x)[unpack_mask(w, x.numel())] for x, w in zip(t, m)]
    some_key = next((int(k[0]) for k in alive_keys if k.numel()), 0)
    for prefix_bits, bits in ((0, 12), (12, min(12, key_bits - 12)), (key_bits - 1, 1)):
        prefix = some_key >> (key_bits - prefix_bits)
        got = ops.radix_histogram(t, m, prefix, prefix_bits, bits).cpu()
        assert torch.equal(got, ref.radix_histogram(t, m, prefix, prefix_bits, bits)), f"{what} radix {prefix_bits}"
    for k in ks_of(case):
        info, top = ops.global_magnitude_threshold(t, m, k)
        want_info, want_top = ref.global_magnitude_threshold(t, m, k)
        assert info.cpu().tolist() == want_info.tolist(), f"{what} threshold k={k}"
        assert torch.equal(top.cpu(), want_top), f"{what} top histogram k={k}"
        got, want = case.clone(), case.clone()
        stats = ops.apply_threshold_(got.tensors, got.masks, want_info, 12)
        assert_stats_equal(stats, ref.apply_threshold_(want.tensors, want.masks, want_info, 12), f"{what} apply k={k}")
        assert_tensors_equal(got, want, f"{what} apply k={k}")
        masks_only = case.clone()
        ops.threshold_masks_(masks_only.tensors, masks_only.masks, want_info)
        assert_tensors_equal(masks_only, Case(case.name, case.tensors, want.masks), f"{what} threshold_masks_ k={k}")
    got, want = case.clone(), case.clone()
    ops.apply_masks_(got.tensors, got.masks)
    ref.apply_masks_(want.tensors, want.masks)
    assert_tensors_equal(got, want, f"{what} apply_masks_")
    check_masks_where_one(ops, case, what)


def ones_at_survivors(case: Case) -> list[torch.Tensor]:
    """torch.nn.utils.prune-like float masks of the case: 1.0 at its survivors; elsewhere the case's own values
    (0, -0.0, specials, NaN, stale weights) and, every 7th pruned entry, -1.0 or the next float above 1.0.
    Each keeps its tensor's alignment."""
    out = []
    for t, m in zip(case.tensors, case.masks):
        x = same_alignment(t, "cpu")
        keep = unpack_mask(m, t.numel())
        pruned = (~keep).nonzero().flatten()
        x[pruned[::14]] = -1.0
        x[pruned[7::14]] = torch.nextafter(torch.tensor(1.0, dtype=t.dtype), torch.tensor(2.0, dtype=t.dtype))
        x[keep] = 1.0
        out.append(x)
    return out


def check_masks_where_one(ops, case: Case, what: str):
    """masks_where_one_ by `ops` against the reference, into words that start as garbage (every word must be
    written, tail bits 0): on the ones-at-survivors masks, which must give the case's masks back, on their
    negation (-1.0 is not 1) and on the weights themselves."""
    ones = ones_at_survivors(case)
    minus_ones = [same_alignment(-x, "cpu") for x in ones]
    for name, tensors in (("ones at survivors", ones), ("minus ones", minus_ones), ("weights", case.tensors)):
        got = [torch.full_like(m, -1) for m in case.masks]
        want = [torch.full_like(m, -1) for m in case.masks]
        ops.masks_where_one_(tensors, got)
        ref.masks_where_one_(tensors, want)
        for i, (g, w) in enumerate(zip(got, want)):
            assert torch.equal(g.cpu(), w), f"{what} masks_where_one_ on the {name}: mask {i} differs"
        if name == "ones at survivors":
            assert all(torch.equal(w, m) for w, m in zip(want, case.masks)), f"{what}: the reference lost the masks"


CASES = [(kind, dtype) for kind in KINDS for dtype in DTYPES]


def crowded_case(dtype) -> Case:
    """Weights with one crowded histogram bin whose values pile up at its edges (clamped): the threshold's key
    buffer overflows when small, and its interpolated window misses the k-th key's sub-bin."""
    gen = torch.Generator().manual_seed(3)
    tensors = [levels(n, dtype, gen) for n in (40_000, 9000)]
    tensors[0][:5000] = tensors[0][:5000].abs().to(torch.float64).clamp(0.01, 0.0101).to(dtype)
    return Case("crowded", tensors, masks_keeping(tensors, gen, 0.9, False))


def crowded_ks(case: Case) -> tuple[int, ...]:
    n = survivor_count(case)
    return (1, n // 10, n // 7, n // 2, n - 1, n)


def key_buffer_cases(dtype) -> list[tuple[Case, tuple[int, ...]]]:
    """Inputs and k for the threshold's key buffer: the crowded bin, and thousands of equal powers of two (the
    smallest magnitude, 0.125, fills sub-bin 0 of its bin, where the window of k = 1 lies: a small buffer
    overflows inside the k-th key's own sub-bin)."""
    ties = make_case("ties", dtype, seed=1)
    return [(crowded_case(dtype), crowded_ks(crowded_case(dtype))), (ties, (1, split_tie_k(ties)))]


def check_split_ties_under_every_schedule(sim, dtype, schedules=SCHEDULES) -> None:
    """The threshold and the tie-splitting apply of the "ties" case by `sim` under every schedule and grid cap,
    against the reference."""
    case = make_case("ties", dtype, seed=7)
    k = split_tie_k(case)
    want = case.clone()
    want_info, _ = ref.global_magnitude_threshold(want.tensors, want.masks, k)
    assert 0 < want_info[INFO_N_TIES] < want_info[INFO_N_EQUAL], "the case must split a group of ties"
    want_stats = ref.apply_threshold_(want.tensors, want.masks, want_info, 12)
    for schedule in schedules:
        for wave in WAVES:
            with sim.configured(schedule=schedule, wave=wave):
                info, _ = sim.global_magnitude_threshold(case.tensors, case.masks, k)
                assert torch.equal(info, want_info), (schedule, wave)
                got = case.clone()
                assert_stats_equal(sim.apply_threshold_(got.tensors, got.masks, info, 12), want_stats, schedule)
                assert_tensors_equal(got, want, f"{schedule} wave {wave}")


def check_key_buffer(sim, dtype, capacity: int) -> set[str]:
    """The threshold of the key-buffer cases by `sim` with a key buffer of `capacity` keys, against the reference;
    returns the paths the select took: "buffer" (its last passes read the buffer), "overflow" (the buffer
    overflowed: the weights were read again), "miss" (the window did not hold the k-th key's sub-bin)."""
    paths = set()
    with sim.configured(key_capacity=capacity, schedule="random:5", wave=3):
        for case, ks in key_buffer_cases(dtype):
            for k in ks:
                info, top = sim.global_magnitude_threshold(case.tensors, case.masks, k)
                want_info, want_top = ref.global_magnitude_threshold(case.tensors, case.masks, k)
                assert info.tolist() == want_info.tolist(), (case.name, capacity, k)
                assert torch.equal(top, want_top), (case.name, capacity, k)
                select = sim.last_select()
                overflow = select["gathered"] > capacity
                paths.add("buffer" if select["from_keys"] else "overflow" if overflow else "miss")
    return paths
