"""The compiled kernels (C++ on CPU, CUDA on GPU) equal the pure-PyTorch reference exactly."""

import importlib
import importlib.machinery
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import rgprune
from rgprune.kernels import extension
from rgprune.kernels import format as fmt
from rgprune.kernels import reference as ref

pytestmark = pytest.mark.reference  # make test-reference

DTYPES = [torch.float32, torch.float16, torch.bfloat16, torch.float64]

requires_compiled = pytest.mark.skipif(
    extension.module is None, reason=f"needs the compiled extension rgprune._C: {rgprune.backend()}"
)


def make_weights(shapes, dtype, device, seed, *, ties=False, specials=False):
    g = torch.Generator().manual_seed(seed)
    out = []
    for shape in shapes:
        t = torch.randn(shape, generator=g, dtype=torch.float64)
        if ties:  # few distinct magnitudes: many ties at any threshold
            t = torch.round(t * 4) / 4
        if specials and t.numel() >= 8:
            flat = t.view(-1)
            idx = torch.randperm(flat.numel(), generator=g)[:8]
            flat[idx] = torch.tensor([math.inf, -math.inf, 0.0, -0.0, -0.0, 0.0, 1e-30, -1e-30], dtype=torch.float64)
        out.append(t.to(dtype).to(device))
    return out


def random_masks(tensors, seed, density):
    g = torch.Generator().manual_seed(seed)
    keep = [torch.rand(t.shape, generator=g) < density for t in tensors]
    masks = rgprune.MaskSet.from_bool(keep)
    return [w.to(tensors[0].device) for w in masks.words]


SHAPE_SETS = {
    "empty-and-one": [(0,), (1,), (0, 3)],
    "odd": [(7,), (33, 3), (5, 1, 3, 3), (1000,), (31,)],
    "conv-like": [(64, 3, 7, 7), (128, 64, 3, 3), (10, 128)],
    "many-small": [(n,) for n in torch.randint(0, 100, (200,), generator=torch.Generator().manual_seed(3)).tolist()],
    "million": [(1_000_003,), (17,)],
}


def clone_all(xs):
    return [x.clone() for x in xs]


def bits_of(t):
    """Raw bit patterns, so that +0.0 and -0.0 compare as different."""
    view = {
        torch.float32: torch.int32,
        torch.float16: torch.int16,
        torch.bfloat16: torch.int16,
        torch.float64: torch.int64,
    }[t.dtype]
    return t.contiguous().view(view)


def assert_stats_equal(got, want):
    hist, counts, abs_sums, sq_sums, nans = got
    assert torch.equal(hist.cpu(), want[0].cpu())
    assert torch.equal(counts.cpu(), want[1].cpu())
    assert torch.equal(nans.cpu(), want[4].cpu())
    # float64 sums: equal up to summation order
    torch.testing.assert_close(abs_sums.cpu(), want[2].cpu(), rtol=1e-12, atol=0)
    torch.testing.assert_close(sq_sums.cpu(), want[3].cpu(), rtol=1e-12, atol=0)


def check_against_reference(tensors, masks, ks, bits=12):
    # histogram
    assert_stats_equal(
        torch.ops.rgprune.magnitude_histogram(tensors, masks, bits), ref.magnitude_histogram(tensors, masks, bits)
    )
    for k in ks:
        info, top = torch.ops.rgprune.global_magnitude_threshold(tensors, masks, k)
        info_ref, top_ref = ref.global_magnitude_threshold(tensors, masks, k)
        assert info.tolist() == info_ref.tolist(), f"k={k}"
        assert torch.equal(top.cpu(), top_ref.cpu())
        # apply: masks, weights (bitwise) and survivors' stats
        t_a, m_a = clone_all(tensors), clone_all(masks)
        t_b, m_b = clone_all(tensors), clone_all(masks)
        got = torch.ops.rgprune.apply_threshold_(t_a, m_a, info, bits)
        want = ref.apply_threshold_(t_b, m_b, info_ref, bits)
        assert_stats_equal(got, want)
        for a, b in zip(m_a, m_b):
            assert torch.equal(a.cpu(), b.cpu())
        for a, b in zip(t_a, t_b):
            assert torch.equal(bits_of(a).cpu(), bits_of(b).cpu())
        if 0 < k <= info_ref[fmt.INFO_N_SURVIVORS]:
            # exactly k pruned
            assert survivor_count(tensors, masks) - survivor_count(tensors, m_a) == k
        # the same decisions on the masks alone: the apply's masks, the tensors untouched
        t_c, m_c = clone_all(tensors), clone_all(masks)
        torch.ops.rgprune.threshold_masks_(t_c, m_c, info)
        for a, b in zip(m_c, m_b):
            assert torch.equal(a.cpu(), b.cpu()), f"threshold_masks_ k={k}"
        for a, b in zip(t_c, tensors):
            assert torch.equal(bits_of(a).cpu(), bits_of(b).cpu()), f"threshold_masks_ wrote a tensor, k={k}"


def survivor_count(tensors, masks):
    """Mask bits set before each tensor's numel (bits past it, which some inputs set, never count)."""
    return sum(int(fmt.unpack_mask(m.cpu(), t.numel()).sum()) for t, m in zip(tensors, masks))


@requires_compiled
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("shapes", list(SHAPE_SETS.values()), ids=list(SHAPE_SETS))
@pytest.mark.parametrize("variant", ["plain", "ties", "specials-and-pruned"])
def test_ops_equal_reference(device, dtype, shapes, variant):
    tensors = make_weights(
        shapes, dtype, device, seed=len(shapes), ties=variant == "ties", specials=variant == "specials-and-pruned"
    )
    if variant == "specials-and-pruned":
        masks = random_masks(tensors, seed=1, density=0.6)
    else:
        masks = rgprune.MaskSet.ones(tensors).words
    n = survivor_count(tensors, masks)
    ks = sorted({0, min(1, n), n // 5, n // 2, max(n - 1, 0), n})
    check_against_reference(tensors, masks, ks, bits=12 if dtype != torch.float16 else 7)


@requires_compiled
@settings(max_examples=40, deadline=None, derandomize=True, database=None)
@given(
    sizes=st.lists(st.integers(0, 300), min_size=1, max_size=6),
    dtype=st.sampled_from(DTYPES),
    levels=st.sampled_from([0, 2, 8]),
    density=st.sampled_from([1.0, 0.7, 0.1]),
    frac=st.floats(0, 1),
    bits=st.integers(1, 12),
    seed=st.integers(0, 2**16),
)
def test_ops_equal_reference_hypothesis(sizes, dtype, levels, density, frac, bits, seed):
    """Random small cases on the CPU: few distinct levels make heavy ties."""
    g = torch.Generator().manual_seed(seed)
    tensors = []
    for n in sizes:
        t = torch.randn(n, generator=g, dtype=torch.float64)
        if levels:
            t = torch.round(t * levels) / levels
        tensors.append(t.to(dtype))
    masks = random_masks(tensors, seed, density)
    n = survivor_count(tensors, masks)
    check_against_reference(tensors, masks, [int(frac * n)], bits=bits)


@requires_compiled
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_apply_masks_equals_reference_mixed_dtypes(device, dtype):
    shapes = [(1000, 3), (5,), (0,), (64, 3, 3, 3)]
    weights = make_weights(shapes, dtype, device, seed=5, specials=True)
    moments = make_weights(shapes, torch.float32, device, seed=6)  # fp32 optimizer state beside them
    masks = random_masks(weights, seed=7, density=0.4)
    a, b = clone_all(weights + moments), clone_all(weights + moments)
    torch.ops.rgprune.apply_masks_(a, masks + masks)
    ref.apply_masks_(b, masks + masks)
    for x, y in zip(a, b):
        assert torch.equal(bits_of(x).cpu(), bits_of(y).cpu())
    keep = rgprune.MaskSet(masks, shapes).to_bool()
    for x, k in zip(a, keep + keep):
        assert torch.all(bits_of(x)[~k.to(x.device)] == 0)  # +0.0 exactly


@requires_compiled
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("shapes", list(SHAPE_SETS.values()), ids=list(SHAPE_SETS))
def test_masks_where_one_equals_reference_into_garbage_words(device, dtype, shapes):
    """Guards the kernel that reads torch.nn.utils.prune's float masks: every word written (they start as
    garbage), tail bits 0, only the bit pattern of 1.0 counted (not -1.0, not 1 + eps, not NaN), a float32
    list beside the dtype's."""
    ones = make_weights(shapes, dtype, device, seed=9, specials=True)
    for t in ones:
        flat = t.view(-1)
        flat[::3] = 1.0
        flat[1::7] = -1.0
        flat[2::11] = torch.nextafter(torch.tensor(1.0, dtype=dtype), torch.tensor(2.0, dtype=dtype)).item()
    tensors = ones + make_weights(shapes, torch.float32, device, seed=10)
    for t in tensors[len(ones) :]:
        t.view(-1)[1::2] = 1.0
    got = [torch.full((fmt.mask_words(t.numel()),), -1, dtype=torch.int32, device=device) for t in tensors]
    want = [g.clone() for g in got]
    torch.ops.rgprune.masks_where_one_(tensors, got)
    ref.masks_where_one_(tensors, want)
    for i, (g, w, t) in enumerate(zip(got, want, tensors)):
        assert torch.equal(g.cpu(), w.cpu()), f"mask {i}"
        assert torch.equal(fmt.unpack_mask(g.cpu(), t.numel()), (t.cpu() == 1).reshape(-1)), f"mask {i} vs == 1"


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_public_ops_break_ties_in_model_order(dtype):
    """Three equal magnitudes, prune two: the two earliest in (tensor, flat index) order go, the pruned -1.0 is
    stored as +0.0. Through the public ops, i.e. the active backend (the reference's own tie order is tested
    directly in test_reference.py). Guards against: ties pruned last-first, -0.0 stored for a pruned negative."""
    tensors = [torch.tensor([5.0, 1.0, 3.0], dtype=dtype), torch.tensor([-1.0, 2.0, 1.0], dtype=dtype)]
    masks = rgprune.MaskSet.ones(tensors).words
    result = rgprune.prune_global_(tensors, masks, 2)
    assert result.threshold.magnitude == 1.0
    assert (result.threshold.n_below, result.threshold.n_ties, result.threshold.n_equal) == (0, 2, 3)
    keep = rgprune.MaskSet(masks, [(3,), (3,)]).to_bool()
    assert keep[0].tolist() == [True, False, True]
    assert keep[1].tolist() == [False, True, True]
    assert tensors[1].tolist() == [0.0, 2.0, 1.0] and bits_of(tensors[1]).tolist()[0] == 0  # +0.0, not -0.0


def test_public_api_matches_reference_and_counts(device):
    tensors = make_weights([(300, 7), (1001,)], torch.float32, device, seed=11)
    ms = rgprune.MaskSet.ones(tensors)
    stats0 = rgprune.magnitude_histogram(tensors, ms.words)
    assert int(stats0.counts.sum()) == 3101
    res = rgprune.prune_global_(tensors, ms.words, 620)
    assert res.threshold.k == 620 and res.threshold.n_survivors == 3101
    assert int(res.stats.counts.sum()) == 3101 - 620 == sum(ms.survivor_counts())
    # the threshold histogram is the pre-pruning survivors' histogram; pruning removed the lowest bins
    assert int(res.threshold.histogram.sum()) == 3101
    assert torch.equal(res.threshold.histogram.cpu(), stats0.histogram.cpu())
    # every survivor is above the threshold, every pruned weight is +0.0
    for t, keep in zip(tensors, ms.to_bool()):
        assert torch.all(t.abs()[keep.to(device)] >= res.threshold.magnitude)
        assert torch.all(bits_of(t)[~keep.to(device)] == 0)
    # a second round: masks are respected (already pruned weights are ignored)
    res2 = rgprune.prune_global_(tensors, ms.words, 100)
    assert res2.threshold.n_survivors == 2481 and sum(ms.survivor_counts()) == 2381


def compiled_files_next_to_package():
    """What ``import rgprune._C`` would load, found without asking rgprune.kernels.extension."""
    package_dir = Path(rgprune.__file__).resolve().parent
    return [
        package_dir / f"_C{suffix}"
        for suffix in importlib.machinery.EXTENSION_SUFFIXES
        if (package_dir / f"_C{suffix}").is_file()
    ]


def test_backend_reports_implementation():
    """The rule: RGPRUNE_BACKEND=reference -> the reference, said to be forced; RGPRUNE_BACKEND=cpp, or a compiled
    rgprune._C next to the package -> the compiled kernels (a build that has the extension must load it);
    otherwise (a reference-only install) the reference, saying why rgprune._C did not load.

    Guards against: a build whose extension exists but silently falls back to the reference (e.g. the import
    error swallowed, or the wrong module name imported), and a forced reference that still loads rgprune._C."""
    b = rgprune.backend()
    choice = os.environ.get("RGPRUNE_BACKEND", "").strip().lower() or "auto"
    if choice == "reference":
        assert b == "reference (forced by RGPRUNE_BACKEND=reference)"
        assert extension.module is None and "rgprune._C" not in sys.modules
    elif choice == "cpp" or compiled_files_next_to_package():
        assert b in ("cpp", "cuda+cpp"), f"{compiled_files_next_to_package()} exist but the backend is {b}"
        assert (b == "cuda+cpp") == bool(extension.module.built_with_cuda)
        assert extension.has_kernel("rgprune::global_magnitude_threshold", torch.device("cpu"))
    else:
        assert b.startswith("reference (rgprune._C did not load: "), b


def test_backend_choice_is_validated():
    """Guards against: a misspelt RGPRUNE_BACKEND silently meaning auto."""
    assert extension.requested_backend("") == "auto"
    assert [extension.requested_backend(v) for v in ("auto", " CPP ", "reference")] == ["auto", "cpp", "reference"]
    with pytest.raises(ValueError, match=r"RGPRUNE_BACKEND='refrence' is not a backend.*auto.*cpp.*reference"):
        extension.requested_backend("refrence")


def test_cpp_backend_refuses_a_missing_extension_and_reference_never_imports_it(monkeypatch):
    """Guards against: RGPRUNE_BACKEND=cpp falling back to the reference when rgprune._C does not load, and
    RGPRUNE_BACKEND=reference importing rgprune._C anyway (registering compiled ops that could run)."""
    monkeypatch.setitem(sys.modules, "rgprune._C", None)  # makes `import rgprune._C` fail
    with pytest.raises(
        ImportError, match="RGPRUNE_BACKEND=cpp requires the compiled kernels, but rgprune._C did not load"
    ):
        extension.load("cpp")
    module, why = extension.load("auto")
    assert module is None and why.startswith("rgprune._C did not load: ")

    def no_import(name, *args):
        raise AssertionError(f"imported {name}")

    monkeypatch.setattr(importlib, "import_module", no_import)
    assert extension.load("reference") == (None, "forced by RGPRUNE_BACKEND=reference")


@requires_compiled
def test_cpp_backend_refuses_an_op_without_a_cpu_kernel(monkeypatch):
    """Guards against: RGPRUNE_BACKEND=cpp quietly running the reference for an op the build lacks."""
    monkeypatch.setattr(extension, "requested", "cpp")
    monkeypatch.setattr(extension, "has_kernel", lambda op, device: False)
    with pytest.raises(
        RuntimeError,
        match="RGPRUNE_BACKEND=cpp requires the compiled CPU kernels, but rgprune::radix_histogram has no CPU kernel",
    ):
        extension.compiled_for(torch.device("cpu"), "rgprune::radix_histogram")
    monkeypatch.setattr(extension, "requested", "auto")
    monkeypatch.setattr(extension, "_warned_ops", set())
    with pytest.warns(RuntimeWarning, match="no compiled cpu kernel"):
        assert not extension.compiled_for(torch.device("cpu"), "rgprune::radix_histogram")


FORCED_REFERENCE = """
import sys, warnings
warnings.simplefilter("error")  # the reference was asked for: no fallback warning
import torch, rgprune
from rgprune.kernels import extension
t = [torch.tensor([3.0, -1.0, 2.0]), torch.tensor([1.0, 5.0])]
m = rgprune.MaskSet.ones(t)
rgprune.prune_global_(t, m.words, 2)
assert extension.module is None and "rgprune._C" not in sys.modules
assert not hasattr(torch.ops.rgprune, "global_magnitude_threshold")  # no compiled op is even registered
print(rgprune.backend(), m.to_bool()[0].tolist(), m.to_bool()[1].tolist(), t[0].tolist())
"""


@pytest.mark.parametrize(
    "value, code, expect",
    [
        (
            "reference",
            FORCED_REFERENCE,
            "reference (forced by RGPRUNE_BACKEND=reference) [True, False, True] [False, True] [3.0, 0.0, 2.0]",
        ),
        (
            "cpp",
            "import sys; sys.modules['rgprune._C'] = None; import rgprune",
            "ImportError: RGPRUNE_BACKEND=cpp requires the compiled kernels",
        ),
        (
            "Reference-only",
            "import rgprune",
            "ValueError: RGPRUNE_BACKEND='Reference-only' is not a backend: set it to auto",
        ),
    ],
)
def test_backend_env_var_in_a_fresh_process(value, code, expect):
    """RGPRUNE_BACKEND is read at import: in a fresh interpreter, reference runs the ops without rgprune._C and
    without a warning; cpp without the extension makes `import rgprune` fail; a bad value fails naming the
    valid ones. Guards against: the variable read too late (after rgprune._C loaded) or not at all."""
    env = {**os.environ, "RGPRUNE_BACKEND": value}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    out = (done.stdout + done.stderr).strip()
    assert expect in out, out
    assert (done.returncode == 0) == (value == "reference"), out


def _apply_path_outputs(threads):
    """Outputs of magnitude_histogram, global_magnitude_threshold and apply_threshold_ (partial ties included)
    on float32 inputs with partly pruned masks, whose whole mask words take the SIMD word paths."""
    torch.set_num_threads(threads)
    out = []
    for seed, variant in ((21, {}), (22, {"ties": True}), (23, {"specials": True})):
        tensors = make_weights([(3, 70_001), (33, 3), (131_072,), (5,)], torch.float32, "cpu", seed=seed, **variant)
        masks = random_masks(tensors, seed=seed + 100, density=0.7)
        out.append(list(torch.ops.rgprune.magnitude_histogram(tensors, masks, 12)))
        n = survivor_count(tensors, masks)
        for k in (1, n // 5, n // 2):
            info, top = torch.ops.rgprune.global_magnitude_threshold(tensors, masks, k)
            t, m = clone_all(tensors), clone_all(masks)
            stats = torch.ops.rgprune.apply_threshold_(t, m, info, 12)
            out.append([info, top, *stats, *t, *m])
    return out


def _check_nan_words(threads):
    """NaN weights (several bit patterns, both signs) in whole mask words, alive and masked out, next to
    +-Inf: the float32 histogram passes skip a NaN lane but must count the rest of its word (the AVX2
    histogram pass takes a separate path for a word holding a NaN key, alive or not)."""
    torch.set_num_threads(threads)
    nan_bits = torch.tensor([0x7FC00000, 0x7F800001, 0x7FFFFFFF, -0x00400000, -0x7FFFFF], dtype=torch.int32)
    tensors = make_weights([(3, 70_001), (4096,), (131_072,), (37,)], torch.float32, "cpu", seed=31, specials=True)
    g = torch.Generator().manual_seed(32)
    for t in tensors:
        flat = t.view(-1)
        idx = torch.randperm(flat.numel(), generator=g)[: max(1, flat.numel() // 500)]
        flat.view(torch.int32)[idx] = nan_bits[torch.randint(0, len(nan_bits), (len(idx),), generator=g)]
    tensors[1][:32] = torch.tensor(float("nan"))  # one word of NaNs only
    masks = random_masks(tensors, seed=33, density=0.7)
    assert_stats_equal(
        torch.ops.rgprune.magnitude_histogram(tensors, masks, 12), ref.magnitude_histogram(tensors, masks, 12)
    )
    n = survivor_count(tensors, masks)
    for k in (1, n // 5, n // 2):
        info, top = torch.ops.rgprune.global_magnitude_threshold(tensors, masks, k)
        info_ref, top_ref = ref.global_magnitude_threshold(tensors, masks, k)
        assert info.tolist() == info_ref.tolist(), f"k={k}"
        assert torch.equal(top, top_ref)
    assert torch.equal(
        torch.ops.rgprune.radix_histogram(tensors, masks, 0, 0, 12), ref.radix_histogram(tensors, masks, 0, 0, 12)
    )


@requires_compiled
def test_nan_words_equal_reference():
    threads = torch.get_num_threads()
    try:
        for t in (1, 2):
            _check_nan_words(t)
    finally:
        torch.set_num_threads(threads)


@requires_compiled
def test_sse2_paths_equal_reference_without_avx2(tmp_path):
    """The float32 refinement pass, the unfiltered float32 histogram pass (the threshold's first, which also
    counts the weights outside the masks) and the float32 apply pass have AVX2 versions chosen at run time;
    RGPRUNE_NO_AVX2=1 forces the SSE2 ones, which machines with AVX2 would otherwise never run. Checked in a
    subprocess (the choice is made once), at 1 and 2 threads, against the reference and against this
    process's (AVX2 where available) outputs: everything bit for bit except the float64 sums, whose order of
    additions inside a chunk may differ between the paths (rtol 1e-12)."""
    import textwrap

    dump = tmp_path / "sse2.pt"
    script = textwrap.dedent(f"""
        import torch
        import test_kernels as t
        for threads in (1, 2):
            torch.set_num_threads(threads)
            for name in ("odd", "conv-like", "million"):
                for variant in ({{}}, {{"ties": True}}, {{"specials": True}}):
                    tensors = t.make_weights(t.SHAPE_SETS[name], torch.float32, "cpu", seed=5, **variant)
                    masks = t.random_masks(tensors, seed=6, density=0.7)
                    n = t.survivor_count(tensors, masks)
                    t.check_against_reference(tensors, masks, sorted({{0, 1, n // 5, n // 2, max(n - 1, 0), n}}))
            t._check_nan_words(threads)
            t._check_outside_counts(torch.float32, threads)
        torch.save([t._apply_path_outputs(1), t._apply_path_outputs(2)], {str(dump)!r})
        print("ok")
    """)
    env = {**os.environ, "RGPRUNE_NO_AVX2": "1"}
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=os.path.dirname(__file__),
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0 and done.stdout.strip().endswith("ok"), done.stdout + done.stderr
    sse2 = torch.load(dump)
    threads = torch.get_num_threads()
    try:
        here = [_apply_path_outputs(1), _apply_path_outputs(2)]
    finally:
        torch.set_num_threads(threads)
    for run_sse2, run_here in zip(sse2, here, strict=True):
        for got, want in zip(run_here, run_sse2, strict=True):
            for a, b in zip(got, want, strict=True):
                if a.dtype == torch.float64:
                    torch.testing.assert_close(a, b, rtol=1e-12, atol=0)
                else:
                    assert torch.equal(
                        bits_of(a) if a.is_floating_point() else a, bits_of(b) if b.is_floating_point() else b
                    )
    # the SSE2 path itself does not depend on the thread count, bit for bit (sums included)
    for got, want in zip(sse2[0], sse2[1], strict=True):
        for a, b in zip(got, want, strict=True):
            assert torch.equal(bits_of(a) if a.is_floating_point() else a, bits_of(b) if b.is_floating_point() else b)


@requires_compiled
@pytest.mark.skipif(not __import__("sys").platform.startswith("linux"), reason="OpenMP build flag is set on Linux")
def test_cpu_kernels_built_parallel():
    """at::parallel_for is a header template: an extension compiled without -fopenmp runs it serially, silently
    (ours did until setup.py passed the flag). Guard the flag, since no timing test could."""
    assert extension.module.cpu_kernels_parallel


@requires_compiled
@pytest.mark.parametrize(
    "dtype,clustered",
    [
        (torch.float32, False),
        (torch.float32, True),
        (torch.float64, False),
        (torch.float64, True),
        (torch.bfloat16, False),
    ],
    ids=str,
)
def test_cpu_ops_equal_reference_and_each_other_across_thread_counts(dtype, clustered):
    """Many 64k-element chunks per tensor, so every thread count splits the work differently: results must
    equal the reference and be bit-identical across thread counts (per-chunk sums are reduced in chunk order).
    `clustered` puts most weights in one top-level bin, so the threshold's gather buffer overflows and the
    multi-pass fallback runs, also threaded."""
    shapes = [(3, 200_001), (77, 4097), (1,), (640_000,)]
    tensors = make_weights(shapes, dtype, "cpu", seed=11, ties=dtype == torch.bfloat16)
    if clustered:
        g = torch.Generator().manual_seed(13)
        for t in tensors:
            t.copy_(1.0 + 1e-3 * torch.rand(t.shape, generator=g, dtype=torch.float64).to(dtype))
    masks = random_masks(tensors, seed=12, density=0.8)
    n = survivor_count(tensors, masks)
    threads = torch.get_num_threads()
    outputs = []
    try:
        for t in (1, 2, 3, 4):
            torch.set_num_threads(t)
            check_against_reference(tensors, masks, [1, n // 5, n // 2, n - 1])
            info, top = torch.ops.rgprune.global_magnitude_threshold(tensors, masks, n // 5)
            t_a, m_a = clone_all(tensors), clone_all(masks)
            stats = torch.ops.rgprune.apply_threshold_(t_a, m_a, info, 12)
            hist = torch.ops.rgprune.magnitude_histogram(tensors, masks, 12)
            outputs.append((info, top, *stats, *hist, *m_a, *t_a))
    finally:
        torch.set_num_threads(threads)
    for other in outputs[1:]:
        for a, b in zip(outputs[0], other):
            assert torch.equal(a, b)


def _window_inputs(variant):
    """~2.4M float32 weights (more than the ~2^20 the threshold samples, so its sample is a real subset) in
    tensors of awkward sizes, with 40% of them pruned."""
    shapes = [(1500, 1001), (3, 200_001), (77, 4097), (1,), (33,)]
    tensors = make_weights(shapes, torch.float32, "cpu", seed=21, specials=variant == "specials")
    if variant == "specials":  # NaNs too, alive and pruned, beside the infinities
        g = torch.Generator().manual_seed(22)
        for t in tensors[:3]:
            flat = t.view(-1)
            flat[torch.randperm(flat.numel(), generator=g)[:50]] = math.nan
    if variant == "tied":  # a third of the weights share one magnitude: a window holding it overflows
        g = torch.Generator().manual_seed(23)
        for t in tensors:
            flat = t.view(-1)
            flat[torch.rand(flat.numel(), generator=g) < 1 / 3] = 0.25
    if variant == "crowded":  # every magnitude in [1, 1.1), one 12-bit bin: the window's ends come from sub-bins
        g = torch.Generator().manual_seed(25)
        for t in tensors:
            t.copy_((1.0 + 0.1 * torch.rand(t.shape, generator=g)) * torch.sign(torch.randn(t.shape, generator=g)))
    if variant == "layered":  # layers of very different scales, the sample's runs see one scale each
        for i, t in enumerate(tensors):
            t.mul_(10.0 ** (i - 2))
    return tensors, random_masks(tensors, seed=24, density=0.6)


@requires_compiled
@pytest.mark.skipif(
    torch.backends.cpu.get_cpu_capability() not in ("AVX2", "AVX512")
    or bool(__import__("os").environ.get("RGPRUNE_NO_AVX2")),
    reason="the key window is part of the AVX2 first pass",
)
@pytest.mark.parametrize("variant", ["plain", "specials", "tied", "crowded", "layered"])
def test_threshold_key_window_equals_reference(variant, monkeypatch):
    """The float32 threshold's first-pass key window (chosen from a sample; bench/NOTES.md, attempt 16) gives
    the reference's answer whether the k-th survivor is found in it, missed (RGPRUNE_THRESHOLD_WINDOW=narrow:
    one sub-bin around the sampled estimate) or the window is off, at 1 and 2 threads; the counters show
    which path ran. (By default, `auto`, these 2.4M weights are too few for the window.)"""
    tensors, masks = _window_inputs(variant)
    n = survivor_count(tensors, masks)
    ks = [1, 2, n // 100, n // 5, n // 2, n - 1, n]
    want = {k: ref.global_magnitude_threshold(tensors, masks, k) for k in ks}
    threads = torch.get_num_threads()
    counts = {}
    try:
        for mode in ("on", "narrow", "off", "auto"):
            monkeypatch.setenv("RGPRUNE_THRESHOLD_WINDOW", mode)
            before = extension.module.threshold_window_counts()
            for t in (1, 2):
                torch.set_num_threads(t)
                for k in ks:
                    info, top = torch.ops.rgprune.global_magnitude_threshold(tensors, masks, k)
                    assert info.tolist() == want[k][0].tolist(), f"mode={mode} threads={t} k={k}"
                    assert torch.equal(top, want[k][1])
            after = extension.module.threshold_window_counts()
            counts[mode] = (after[0] - before[0], after[1] - before[1])
    finally:
        torch.set_num_threads(threads)
    assert counts["off"] == (0, 0)
    assert counts["auto"] == (0, 0)  # by default the window waits for 2^25 weights (its sample costs ~2 ms)
    tried, selected = counts["on"]
    assert tried == 2 * len(ks)
    if variant == "tied":  # the tie at 0.25 sits inside the window for some k and overflows it
        assert selected < tried
    else:
        assert selected >= 2 * 4  # at least the inner ks (n//100 .. n-1) were selected in the window
    assert counts["narrow"][1] < counts["narrow"][0]  # the narrow window mostly misses: the fallback ran


@requires_compiled
def test_threshold_key_window_mode_is_validated(monkeypatch):
    monkeypatch.setenv("RGPRUNE_THRESHOLD_WINDOW", "sometimes")
    w = [torch.randn(1000)]
    for dtype in (torch.float32, torch.float64):
        with pytest.raises(RuntimeError, match="RGPRUNE_THRESHOLD_WINDOW must be auto, on, off or narrow"):
            torch.ops.rgprune.global_magnitude_threshold([w[0].to(dtype)], rgprune.MaskSet.ones(w).words, 10)


def _outside_inputs(dtype, seed=41):
    """Stale values under cleared mask bits on every path of the threshold's first pass:
    - a tensor of three whole 2^16-element chunks and a tail: its second chunk fully pruned but holding
      nonzero weights and one word of NaNs, its third fully pruned and holding +0.0 and -0.0 only;
    - NaN, -0.0 and +0.0 under cleared bits among partly pruned words;
    - a slice of a larger buffer (nonzero memory past numel) whose mask has its bits past numel set;
    - a small tensor with every bit cleared.
    Returns (tensors, masks, the number of entries outside the masks by construction)."""
    chunk = 1 << 16
    g = torch.Generator().manual_seed(seed)
    big = torch.randn(3 * chunk + 1000, generator=g, dtype=torch.float64)
    keep_big = torch.rand(big.numel(), generator=g) < 0.6
    keep_big[chunk : 3 * chunk] = False
    big[chunk + 64 : chunk + 96] = math.nan  # a dead word of NaNs
    big[2 * chunk : 3 * chunk] = 0.0
    big[2 * chunk : 3 * chunk : 3] = -0.0
    dead = (~keep_big).nonzero().flatten()
    dead = dead[(dead < chunk) | (dead >= 3 * chunk)]
    pick = dead[torch.randperm(dead.numel(), generator=g)[:300]]
    big[pick[:100]] = math.nan
    big[pick[100:200]] = -0.0
    big[pick[200:]] = 0.0
    buffer = torch.randn(1013 + 50, generator=g, dtype=torch.float64).to(dtype)
    sliced = buffer[:1013]  # nonzero memory past numel
    keep_sliced = torch.rand(1013, generator=g) < 0.5
    small = torch.randn(31, generator=g, dtype=torch.float64).to(dtype)
    tensors = [big.to(dtype), sliced, small]
    keeps = [keep_big, keep_sliced, torch.zeros(31, dtype=torch.bool)]
    masks = [fmt.pack_mask(k) for k in keeps]
    masks[1][-1] |= -(1 << (1013 % 32))  # bits past numel set: never trusted
    outside = sum(int((~k & (fmt.magnitude_keys(t) != 0)).sum()) for t, k in zip(tensors, keeps))
    return tensors, masks, outside


def _has_avx2_paths():
    """Whether the AVX2 float32 paths (the key window among them) run in this process."""
    return torch.backends.cpu.get_cpu_capability() in ("AVX2", "AVX512") and not os.environ.get("RGPRUNE_NO_AVX2")


def _check_outside_counts(dtype, threads, modes=("on", "narrow", "off")):
    """The compiled threshold's info (all slots, the outside count included), top histogram and apply pass
    equal the reference's on _outside_inputs, at `threads` threads and, for float32, in each key-window mode."""
    tensors, masks, outside = _outside_inputs(dtype)
    assert outside > 65_000  # the fully pruned chunk of nonzero weights
    n = survivor_count(tensors, masks)
    saved_threads, saved_mode = torch.get_num_threads(), os.environ.get("RGPRUNE_THRESHOLD_WINDOW")
    try:
        torch.set_num_threads(threads)
        for mode in modes if dtype == torch.float32 else ("auto",):
            os.environ["RGPRUNE_THRESHOLD_WINDOW"] = mode
            check_against_reference(tensors, masks, [0, 1, n // 3, n, n + 1])
            before = extension.module.threshold_window_counts()
            info, _ = torch.ops.rgprune.global_magnitude_threshold(tensors, masks, n // 3)
            assert info[fmt.INFO_N_OUTSIDE] == outside, (mode, threads)
            if mode == "on" and _has_avx2_paths():  # the answer came from the window's early return
                assert extension.module.threshold_window_counts()[1] == before[1] + 1
    finally:
        torch.set_num_threads(saved_threads)
        if saved_mode is None:
            os.environ.pop("RGPRUNE_THRESHOLD_WINDOW", None)
        else:
            os.environ["RGPRUNE_THRESHOLD_WINDOW"] = saved_mode


@requires_compiled
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_threshold_counts_weights_outside_the_masks(dtype):
    """The threshold's first pass counts the entries whose mask bit is 0 but whose key is not 0 (info slot
    INFO_N_OUTSIDE) exactly as the reference does, at 1-4 threads, in every key-window mode (float32), for every
    k (0 and k > survivors included), on chunks that are entirely pruned but hold nonzero weights, dead words
    of NaNs, -0.0 and +0.0 under cleared bits, and mask tails whose bits past numel are set. (The SSE2 path
    runs the same check in test_sse2_paths_equal_reference_without_avx2.)

    Guards against: a first pass that skips words or chunks with no survivor (they are where weights grow
    back), -0.0 counted, NaN under a cleared bit missed (the AVX2 NaN-word path), elements past numel
    counted, the count lost on the window's or the gathered sub-bin's early return, a per-thread count merged
    twice or not at all."""
    for threads in (1, 2, 3, 4):
        _check_outside_counts(dtype, threads)


@requires_compiled
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_apply_threshold_prunes_nothing_when_the_threshold_saw_nan(dtype):
    """apply_threshold_'s CPU kernel given an info whose NaN slot is > 0 (a threshold ranked among NaN
    survivors, which the Python API refuses before, but a GPU caller cannot) prunes nothing: weights (the
    stale values outside the masks included) and masks unchanged bit for bit, and it returns the statistics
    of the survivors as they are, like the reference.

    Guards against: the kernel trusting the key of such a threshold (pruning below it), or storing +0.0 under
    the cleared bits although it prunes nothing."""
    tensors, masks, _ = _outside_inputs(dtype)
    alive = fmt.unpack_mask(masks[0], tensors[0].numel()).nonzero().flatten()
    tensors[0].view(-1)[alive[:3]] = math.nan  # three NaN survivors
    n = survivor_count(tensors, masks)
    info, _ = torch.ops.rgprune.global_magnitude_threshold(tensors, masks, n // 3)
    assert info[fmt.INFO_N_NAN] == 3 and info[fmt.INFO_KEY] >= 0
    made_up = torch.tensor([fmt.INF_KEY[dtype], n - 4, 1, 1, n - 3, 1, 0])  # would prune all but NaN and one Inf
    for nan_info in (info, made_up):
        t, m = clone_all(tensors), clone_all(masks)
        stats = torch.ops.rgprune.apply_threshold_(t, m, nan_info, 12)
        for a, b in zip(t, tensors):
            assert torch.equal(bits_of(a), bits_of(b))
        for a, b in zip(m, masks):
            assert torch.equal(a, b)
        assert_stats_equal(stats, ref.magnitude_histogram(tensors, masks, 12))
        assert_stats_equal(stats, ref.apply_threshold_(clone_all(tensors), clone_all(masks), nan_info, 12))
