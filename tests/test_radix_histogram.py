"""radix_histogram (one refinement pass of the radix select): compiled kernels == reference, and the
reference == the definition (a filter on the key prefix + a histogram of the next bits)."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from test_kernels import DTYPES, SHAPE_SETS, make_weights, random_masks, requires_compiled

import rgprune
from rgprune.kernels import extension
from rgprune.kernels import format as fmt
from rgprune.kernels import reference as ref

pytestmark = pytest.mark.reference  # make test-reference

OP = "rgprune::radix_histogram"


def has_kernel(device):
    return extension.module is not None and extension.has_kernel(OP, torch.device(device))


def radix_op(tensors, masks, prefix, prefix_bits, bits):
    """The compiled kernel where the build has one for the device, else the public wrapper (reference)."""
    if has_kernel(tensors[0].device):
        return torch.ops.rgprune.radix_histogram(tensors, masks, prefix, prefix_bits, bits)
    return rgprune.radix_histogram(tensors, masks, prefix, prefix_bits, bits)


def prefixes_of(tensors, masks, prefix_bits):
    """Prefixes that select something (the boundary bins a real select would pick) plus one that does not."""
    if prefix_bits == 0:
        return [0]
    key_bits = fmt.KEY_BITS[tensors[0].dtype]
    keys = [fmt.magnitude_keys(t)[fmt.unpack_mask(m, t.numel())] for t, m in zip(tensors, masks)]
    keys = torch.cat(keys).cpu() if keys else torch.zeros(0, dtype=torch.int64)
    keys = keys[keys <= fmt.INF_KEY[tensors[0].dtype]]
    out = {0, (1 << prefix_bits) - 1}
    if keys.numel():
        srt = keys.sort().values
        for q in (0.0, 0.3, 0.5, 0.99, 1.0):
            out.add(int(srt[min(int(q * srt.numel()), srt.numel() - 1)]) >> (key_bits - prefix_bits))
    return sorted(out)


def check(tensors, masks, prefix_bits, bits):
    for prefix in prefixes_of(tensors, masks, prefix_bits):
        want = ref.radix_histogram(tensors, masks, prefix, prefix_bits, bits)
        got = radix_op(tensors, masks, prefix, prefix_bits, bits)
        assert got.dtype == torch.int64 and got.shape == (1 << bits,)
        assert torch.equal(got.cpu(), want.cpu()), (prefix, prefix_bits, bits)


def definition(tensors, masks, prefix, prefix_bits, bits):
    """Straight from the docstring, one weight at a time (small inputs only)."""
    key_bits = fmt.KEY_BITS[tensors[0].dtype]
    hist = [0] * (1 << bits)
    for t, m in zip(tensors, masks):
        keep = fmt.unpack_mask(m, t.numel()).tolist()
        for key, alive in zip(fmt.magnitude_keys(t).tolist(), keep):
            if not alive or key > fmt.INF_KEY[t.dtype]:
                continue
            if prefix_bits and key >> (key_bits - prefix_bits) != prefix:
                continue
            hist[(key >> (key_bits - prefix_bits - bits)) & ((1 << bits) - 1)] += 1
    return hist


def split_points(dtype):
    """(prefix_bits, bits) pairs: the passes a radix select makes, and odd ones."""
    kb = fmt.KEY_BITS[dtype]
    pairs = {(0, 12), (0, 1), (0, 7), (12, min(12, kb - 12)), (kb - 1, 1), (kb - 5, 5), (3, 9)}
    if kb >= 24:
        pairs |= {(24, min(12, kb - 24)), (13, 12)}
    return sorted(pairs)


@requires_compiled
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("shapes", list(SHAPE_SETS.values()), ids=list(SHAPE_SETS))
@pytest.mark.parametrize("variant", ["plain", "ties", "specials-and-pruned"])
def test_radix_histogram_equals_reference(device, dtype, shapes, variant):
    tensors = make_weights(
        shapes, dtype, device, seed=len(shapes) + 1, ties=variant == "ties", specials=variant == "specials-and-pruned"
    )
    if variant == "specials-and-pruned":
        masks = random_masks(tensors, seed=2, density=0.6)
    else:
        masks = rgprune.MaskSet.ones(tensors).words
    for prefix_bits, bits in split_points(dtype):
        check(tensors, masks, prefix_bits, bits)


@requires_compiled
@settings(max_examples=60, deadline=None, derandomize=True, database=None)
@given(
    sizes=st.lists(st.integers(0, 200), min_size=1, max_size=5),
    dtype=st.sampled_from(DTYPES),
    levels=st.sampled_from([0, 2, 8]),
    density=st.sampled_from([1.0, 0.7, 0.1]),
    prefix_bits=st.integers(0, 62),
    bits=st.integers(1, 12),
    nan=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_radix_histogram_hypothesis(sizes, dtype, levels, density, prefix_bits, bits, nan, seed):
    kb = fmt.KEY_BITS[dtype]
    bits = min(bits, kb)
    prefix_bits = prefix_bits % (kb - bits + 1)
    g = torch.Generator().manual_seed(seed)
    tensors = []
    for n in sizes:
        t = torch.randn(n, generator=g, dtype=torch.float64)
        if levels:
            t = torch.round(t * levels) / levels
        if nan and n:
            t[0] = float("nan")  # NaN survivors are never counted
        tensors.append(t.to(dtype))
    masks = random_masks(tensors, seed, density)
    check(tensors, masks, prefix_bits, bits)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_reference_matches_definition(dtype):
    tensors = make_weights([(37,), (5, 7), (0,)], dtype, "cpu", seed=9, ties=True, specials=True)
    tensors[0][3] = float("nan")
    masks = random_masks(tensors, seed=4, density=0.8)
    kb = fmt.KEY_BITS[dtype]
    for prefix_bits, bits in split_points(dtype):
        for prefix in prefixes_of(tensors, masks, prefix_bits):
            assert ref.radix_histogram(tensors, masks, prefix, prefix_bits, bits).tolist() == definition(
                tensors, masks, prefix, prefix_bits, bits
            ), (prefix, prefix_bits, bits, kb)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_passes_reproduce_the_threshold(device, dtype):
    """Chaining radix_histogram passes on the boundary bin finds global_magnitude_threshold's key."""
    tensors = make_weights([(300, 7), (1001,), (5,)], dtype, device, seed=12, ties=True)
    masks = random_masks(tensors, seed=3, density=0.7)
    kb = fmt.KEY_BITS[dtype]
    n = int(rgprune.magnitude_histogram(tensors, masks).counts.sum())
    for k in (1, n // 3, n):
        remaining, prefix, consumed = k, 0, 0
        while consumed < kb:
            bits = min(12, kb - consumed)
            hist = rgprune.radix_histogram(tensors, masks, prefix, consumed, bits).cpu()
            cum = hist.cumsum(0)
            b = int(torch.searchsorted(cum, torch.tensor(remaining)))
            remaining -= int(cum[b] - hist[b])
            prefix, consumed = (prefix << bits) | b, consumed + bits
        assert prefix == rgprune.global_magnitude_threshold(tensors, masks, k).key
        # prefix_bits=0 at 12 bits is the first pass: the top histogram
        top = rgprune.radix_histogram(tensors, masks, 0, 0, 12)
        assert torch.equal(top.cpu(), rgprune.magnitude_histogram(tensors, masks).histogram.cpu())


@pytest.mark.parametrize(
    "args, err, match",
    [
        ((0, 0, 0), ValueError, "bits must be between 1 and 12"),
        ((0, 0, 13), ValueError, "bits must be between 1 and 12"),
        ((0, -1, 12), ValueError, "prefix_bits must be between 0 and 19"),
        ((0, 20, 12), ValueError, "prefix_bits must be between 0 and 19"),
        ((8, 3, 12), ValueError, r"prefix must be in \[0, 2\*\*prefix_bits\) = \[0, 8\)"),
        ((-1, 3, 12), ValueError, "prefix must be in"),
        ((0.5, 3, 12), TypeError, "prefix must be an int"),
        ((0, True, 12), TypeError, "prefix_bits must be an int"),
    ],
)
def test_validation(args, err, match):
    tensors = [torch.randn(10, 4), torch.randn(33)]
    masks = rgprune.MaskSet.ones(tensors).words
    with pytest.raises(err, match=match):
        rgprune.radix_histogram(tensors, masks, *args)


@requires_compiled
def test_direct_op_checks():
    tensors = [torch.randn(10)]
    masks = rgprune.MaskSet.ones(tensors).words
    with pytest.raises(RuntimeError, match="prefix_bits"):
        torch.ops.rgprune.radix_histogram(tensors, masks, 0, 25, 12)
    with pytest.raises(RuntimeError, match="prefix must be"):
        torch.ops.rgprune.radix_histogram(tensors, masks, 8, 3, 12)


@requires_compiled
def test_every_op_has_a_cuda_kernel_in_a_cuda_build():
    """Guards against an op left without its CUDA kernel (it would fall back to the reference on a GPU, with host
    syncs and temporaries as large as the weights): a CUDA build registers all five, GPU or not."""
    if not extension.module.built_with_cuda:
        pytest.skip("built without the CUDA kernels")
    for op in (
        "magnitude_histogram",
        "global_magnitude_threshold",
        "radix_histogram",
        "apply_threshold_",
        "apply_masks_",
    ):
        assert extension.has_kernel(f"rgprune::{op}", torch.device("cuda")), op


@requires_compiled
def test_an_op_without_a_kernel_for_the_device_falls_back_to_the_reference_with_one_warning(monkeypatch):
    """Guards against an op without a kernel for a device reaching the dispatcher (an error) or falling back
    silently; and against a misspelt op name taken for an op without a kernel."""
    monkeypatch.setattr(extension.module, "built_with_cuda", True, raising=False)
    monkeypatch.setattr(extension, "_warned_ops", set())
    cuda = torch.device("cuda")
    real_has_kernel = extension.has_kernel
    monkeypatch.setattr(
        extension, "has_kernel", lambda op, device: device.type != "cuda" and real_has_kernel(op, device)
    )
    assert extension.compiled_for(cuda)  # without an op: the device's kernels in general
    assert extension.compiled_for(torch.device("cpu"), OP) == has_kernel("cpu")
    with pytest.warns(RuntimeWarning, match="radix_histogram has no compiled cuda kernel"):
        assert not extension.compiled_for(cuda, OP)
    monkeypatch.setattr(extension, "has_kernel", real_has_kernel)
    with pytest.raises(RuntimeError, match="does not exist"):
        extension.compiled_for(cuda, "rgprune::no_such_op")


@requires_compiled
def test_fake_kernel_shapes():
    from torch._subclasses.fake_tensor import FakeTensorMode

    with FakeTensorMode():
        t = [torch.empty(100), torch.empty(7)]
        m = [torch.empty(4, dtype=torch.int32), torch.empty(1, dtype=torch.int32)]
        out = torch.ops.rgprune.radix_histogram(t, m, 3, 2, 9)
    assert out.shape == (512,) and out.dtype == torch.int64
