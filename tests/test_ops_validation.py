"""Bad input gets a ValueError/TypeError that names the problem and the fix, and changes nothing."""

import math

import pytest
import torch

import rgprune

pytestmark = pytest.mark.reference  # make test-reference


def snapshot(tensors, masks):
    return [t.clone() for t in tensors], [m.clone() for m in masks]


def assert_unchanged(tensors, masks, snap):
    for a, b in zip(tensors, snap[0]):
        assert torch.equal(a, b) or (torch.isnan(a).any() and torch.equal(torch.isnan(a), torch.isnan(b)))
    for a, b in zip(masks, snap[1]):
        assert torch.equal(a, b)


def setup():
    tensors = [torch.randn(10, 4), torch.randn(33)]
    return tensors, rgprune.MaskSet.ones(tensors).words


ALL_CALLS = {
    "histogram": lambda t, m: rgprune.magnitude_histogram(t, m),
    "threshold": lambda t, m: rgprune.global_magnitude_threshold(t, m, 5),
    "prune": lambda t, m: rgprune.prune_global_(t, m, 5),
    "apply_masks": lambda t, m: rgprune.apply_masks_(t, m),
}


@pytest.mark.parametrize("call", ["histogram", "threshold", "prune"])
def test_nan_weights_are_refused(call):
    tensors, masks = setup()
    tensors[1][7] = math.nan
    snap = snapshot(tensors, masks)
    with pytest.raises(ValueError, match=r"NaN.*tensors \[1\]"):
        ALL_CALLS[call](tensors, masks)
    assert_unchanged(tensors, masks, snap)


def test_nan_in_pruned_weight_is_ignored():
    """A NaN under a cleared mask bit is not refused, not counted, and stored as +0.0 by the next prune.
    Guards against: the NaN check reading pruned weights, a pruned NaN left in place or stored as -0.0."""
    tensors, masks = setup()
    tensors[0][0, 0] = -math.nan
    masks[0][0] = masks[0][0] & ~1  # weight 0 already pruned
    result = rgprune.prune_global_(tensors, masks, 5)
    assert result.threshold.n_survivors == 72 and int(result.stats.counts.sum()) == 67
    assert tensors[0].view(torch.int32)[0, 0].item() == 0  # +0.0 by bit pattern


@pytest.mark.parametrize("call", list(ALL_CALLS))
def test_integer_tensors_are_refused(call):
    tensors, masks = setup()
    tensors[1] = torch.arange(33)
    with pytest.raises(TypeError, match="dtype torch.int64.*float"):
        ALL_CALLS[call](tensors, masks)


@pytest.mark.parametrize("k, match", [(-1, "k must be >= 0"), (74, r"k=74 exceeds the 73 surviving")])
def test_k_out_of_range(k, match):
    tensors, masks = setup()
    snap = snapshot(tensors, masks)
    with pytest.raises(ValueError, match=match):
        rgprune.prune_global_(tensors, masks, k)
    assert_unchanged(tensors, masks, snap)


def test_k_counts_only_survivors():
    tensors, masks = setup()
    rgprune.prune_global_(tensors, masks, 70)
    with pytest.raises(ValueError, match="exceeds the 3 surviving"):
        rgprune.prune_global_(tensors, masks, 4)


def test_k_must_be_int():
    tensors, masks = setup()
    with pytest.raises(TypeError, match="k must be an int"):
        rgprune.prune_global_(tensors, masks, 0.2)


@pytest.mark.parametrize("call", list(ALL_CALLS))
def test_wrong_mask_shape(call):
    tensors, masks = setup()
    masks[1] = torch.zeros(5, dtype=torch.int32)  # 33 weights need 2 words
    snap = snapshot(tensors, masks)
    with pytest.raises(ValueError, match=r"masks\[1\] must be .* 2 words"):
        ALL_CALLS[call](tensors, masks)
    assert_unchanged(tensors, masks, snap)


def test_wrong_mask_dtype_and_count():
    tensors, masks = setup()
    with pytest.raises(ValueError, match="int32"):
        rgprune.prune_global_(tensors, [masks[0], masks[1].to(torch.int64)], 1)
    with pytest.raises(ValueError, match="one mask per tensor"):
        rgprune.prune_global_(tensors, masks[:1], 1)


@pytest.mark.parametrize("call", list(ALL_CALLS))
def test_tensors_on_different_devices(call):
    tensors, masks = setup()
    tensors[1] = torch.empty(33, device="meta")
    with pytest.raises(ValueError, match="one device"):
        ALL_CALLS[call](tensors, masks)


@pytest.mark.parametrize("call", list(ALL_CALLS))
def test_empty_list(call):
    with pytest.raises(ValueError, match="at least one"):
        ALL_CALLS[call]([], [])


def test_single_tensor_instead_of_list():
    t = torch.randn(4)
    with pytest.raises(TypeError, match="list"):
        rgprune.magnitude_histogram(t, rgprune.MaskSet.ones([t]).words)


@pytest.mark.parametrize("call", list(ALL_CALLS))
@pytest.mark.parametrize("view", ["strided slice", "expanded"])
def test_non_dense_refused(call, view):
    # a dense permuted layout (a transposed view, channels_last) is pruned in place (tests/test_channels_last.py);
    # a tensor with gaps or overlapping elements has no storage order to prune in place
    tensors, masks = setup()
    tensors[0] = torch.randn(10, 8)[:, ::2] if view == "strided slice" else torch.randn(10, 1).expand(10, 4)
    snap = snapshot(tensors, masks)
    with pytest.raises(ValueError, match=r"tensors\[0\].*not dense.*contiguous"):
        ALL_CALLS[call](tensors, masks)
    assert_unchanged(tensors, masks, snap)


def test_mixed_dtypes_refused_for_ranking_but_allowed_for_masks():
    tensors, masks = setup()
    tensors[1] = tensors[1].to(torch.bfloat16)
    with pytest.raises(TypeError, match="one dtype"):
        rgprune.prune_global_(tensors, masks, 3)
    rgprune.apply_masks_(tensors, masks)  # grads/moments of other dtypes are fine here


def test_bits_validated():
    tensors, masks = setup()
    with pytest.raises(ValueError, match="bits must be between 1 and 12"):
        rgprune.magnitude_histogram(tensors, masks, bits=13)


def test_leaf_requiring_grad_refused_in_place():
    p = torch.nn.Parameter(torch.randn(8))
    masks = rgprune.MaskSet.ones([p]).words
    with pytest.raises(ValueError, match="param.data"):
        rgprune.prune_global_([p], masks, 2)
    rgprune.prune_global_([p.data], masks, 2)
    assert int((p == 0).sum()) == 2


def test_apply_threshold_refuses_foreign_threshold():
    tensors, masks = setup()
    th = rgprune.global_magnitude_threshold(tensors, masks, 3)
    with pytest.raises(TypeError, match="Threshold"):
        rgprune.apply_threshold_(tensors, masks, th.info)
    other = [t.double() for t in tensors]
    with pytest.raises(ValueError, match="compute it on these tensors"):
        rgprune.apply_threshold_(other, masks, th)
