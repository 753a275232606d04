"""rgprune.ops, the typed entry points to the kernels: the tests that kill the mutants `make mutation AREA=ops`
found alive (docs/mutation.md). Small tensors only."""

import pytest
import torch

from rgprune import MaskSet, ops
from rgprune.kernels import extension, reference
from rgprune.kernels.format import KEY_BITS

needs_cpu_kernels = pytest.mark.skipif(
    not extension.compiled_for(torch.device("cpu")), reason="the compiled CPU kernels are not built"
)

REFERENCE_OPS = [
    "magnitude_histogram",
    "global_magnitude_threshold",
    "radix_histogram",
    "apply_threshold_",
    "threshold_masks_",
    "apply_masks_",
    "masks_where_one_",
]


def weights(memory_format=torch.contiguous_format):
    torch.manual_seed(0)
    return [torch.randn(4, 3, 3, 3).contiguous(memory_format=memory_format), torch.randn(7, 5)]


@needs_cpu_kernels
@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last], ids=["contiguous", "nhwc"])
def test_every_op_runs_the_compiled_kernels_when_they_are_built(memory_format, monkeypatch):
    """The reference is the fallback where no kernel is built, never the path taken beside a built one (its
    results are the same, bit for bit, at a fraction of the speed)."""

    def refuse(name):
        def called(*args, **kwargs):
            raise AssertionError(f"reference.{name} was called although the CPU kernels are built")

        return called

    for name in REFERENCE_OPS:
        monkeypatch.setattr(reference, name, refuse(name))
    tensors = weights(memory_format)
    masks = MaskSet.ones(tensors).words
    ops.magnitude_histogram(tensors, masks)
    ops.radix_histogram(tensors, masks, 0, 0)
    threshold = ops.global_magnitude_threshold(tensors, masks, 20)
    ops.apply_threshold_(tensors, masks, threshold)
    ops.prune_global_(tensors, masks, 20)
    ops.prune_by_scores_([t.abs() for t in tensors], masks, 20, tensors)
    ops.apply_masks_(tensors, masks)
    assert ops.count_outside_masks(tensors, masks) == [0, 0]
    ones = ops.masks_where_one([torch.ones(4, 3, 3, 3).contiguous(memory_format=memory_format)])
    assert MaskSet(ones, [(4, 3, 3, 3)]).density() == 1.0


def test_a_threshold_of_another_dtype_is_refused_for_a_single_tensor():
    (t,) = weights()[:1]
    masks = MaskSet.ones([t]).words
    threshold = ops.global_magnitude_threshold([t], masks, 3)
    with pytest.raises(ValueError, match=r"computed for torch.float32 on cpu but the tensors are torch.float64 on cpu"):
        ops.apply_threshold_([t.double()], masks, threshold)


@pytest.mark.parametrize("numel", [32, 45, 64])
def test_count_outside_masks_counts_every_grown_weight_up_to_the_last(numel):
    """Entries under cleared bits that are not 0 count (NaN included, -0.0 not), in every bit of every word up
    to the last weight of a last word that is only partly used."""
    keep = torch.zeros(numel, dtype=torch.bool)
    keep[::3] = True
    t = torch.where(keep, 5.0, 0.5)  # every pruned entry grew back ...
    t[2], t[4], t[7] = float("nan"), -0.0, 0.0  # ... but these: NaN counts, the zeros of either sign do not
    expected = int((~keep).sum()) - 2
    masks = MaskSet.from_bool([keep]).words
    ones = MaskSet.ones([torch.zeros(3)]).words
    assert ops.count_outside_masks([t, torch.zeros(3)], masks + ones) == [expected, 0]
    assert ops.count_outside_masks([torch.zeros(numel)], masks) == [0]


def test_count_outside_masks_counts_a_tensor_with_only_grown_weights_and_one_with_only_nans():
    grown, nans, clean = torch.zeros(40), torch.zeros(40), torch.zeros(40)
    grown[3], nans[5] = 0.5, float("nan")
    empty = [MaskSet.from_bool([torch.zeros(40, dtype=torch.bool)]).words[0] for _ in range(3)]
    assert ops.count_outside_masks([grown, nans, clean], empty) == [1, 1, 0]


def test_split_ties_are_found_after_a_permuted_tensor_whose_ties_are_all_pruned():
    """Ties at the threshold go in model order: the first permuted tensor loses all of its ties, the second
    some; the second is the one that needs its ties in logical order (the first is pruned whole either way)."""
    torch.manual_seed(0)
    values = [torch.randn(4, 3, 3, 3), torch.randn(9, 7)]
    for t in values:
        t[t.abs() < 0.5] = 0.25
    permuted = [values[0].contiguous(memory_format=torch.channels_last), values[1].t().contiguous().t()]
    contiguous = [t.clone() for t in values]
    equal = [int((t == 0.25).sum()) for t in values]
    k = equal[0] + equal[1] // 2  # every weight below 0.25 is 0.25 here
    masks_c, masks_p = MaskSet.ones(contiguous), MaskSet.ones(permuted)
    result = ops.prune_global_(contiguous, masks_c.words, k)
    ops.prune_global_(permuted, masks_p.words, k)
    assert result.threshold.n_ties == k < result.threshold.n_equal == sum(equal)
    assert masks_p == masks_c
    assert all(torch.equal(a, b) for a, b in zip(permuted, contiguous))


@pytest.mark.parametrize("what", ["tensors", "masks"])
def test_a_single_tensor_for_a_list_says_how_to_wrap_it(what):
    t = torch.randn(5)
    args = {"tensors": [t], "masks": MaskSet.ones([t]).words}
    args[what] = args[what][0]
    with pytest.raises(
        TypeError, match=rf"{what} must be a list of tensors, got a single tensor; wrap it: \[{what[:-1]}\]"
    ):
        ops.magnitude_histogram(args["tensors"], args["masks"])


def test_prune_by_scores_bins_the_survivors_in_4096_bins_by_default():
    t = torch.randn(50)
    result = ops.prune_by_scores_([t.abs()], MaskSet.ones([t]).words, 10, [t])
    assert result.stats.histogram.numel() == 4096 and int(result.stats.counts[0]) == 40


def test_a_score_that_is_not_a_tensor_is_refused_by_position():
    t = torch.randn(5)
    masks = MaskSet.ones([t, t]).words
    with pytest.raises(TypeError, match=r"tensors\[1\] and masks\[1\] must be torch.Tensor, got list and Tensor"):
        ops.prune_by_scores_([t.abs(), [1.0] * 5], masks, 2)
    assert MaskSet(masks, [(5,), (5,)]).density() == 1.0


def test_the_read_only_ops_accept_parameters_that_require_grad():
    """Only the ops that write refuse a leaf that requires grad (autograd would not see the change); ranking
    and counting read it as it is."""
    p = torch.nn.Parameter(torch.randn(6, 5))
    masks = MaskSet.ones([p]).words
    threshold = ops.global_magnitude_threshold([p], masks, 4)
    assert threshold.n_below + threshold.n_ties == 4
    assert int(ops.magnitude_histogram([p], masks).counts[0]) == 30
    assert ops.count_outside_masks([p], masks) == [0]
    with pytest.raises(ValueError, match=r"tensors\[0\] is a leaf that requires grad"):
        ops.prune_global_([p], masks, 4)


@pytest.mark.parametrize("prefix, bits", [(-1, 3), (8, 3), (1, 0)])
def test_a_prefix_outside_its_bits_is_refused(prefix, bits):
    t = torch.randn(10)
    with pytest.raises(
        ValueError, match=rf"prefix must be in \[0, 2\*\*prefix_bits\) = \[0, {1 << bits}\), got {prefix}"
    ):
        ops.radix_histogram([t], MaskSet.ones([t]).words, prefix, bits)


def test_the_last_prefix_of_its_bits_is_accepted():
    t = torch.tensor([1.0, -1.0, 2.0])
    hist = ops.radix_histogram([t], MaskSet.ones([t]).words, 7, 3)
    assert int(hist.sum()) == 0  # no float32 magnitude key starts with 111 (the sign bit of a key is 0)


@pytest.mark.parametrize("tie", [1.0, 0.1], ids=["even-key", "odd-key"])
def test_one_tie_pruned_in_a_permuted_tensor_is_its_first_in_logical_order(tie):
    """A threshold that prunes exactly one of a permuted tensor's ties takes the logical first, not the first in
    storage. The ties are counted per tensor by the key's last bit: 0.1's float32 key is odd, 1.0's even."""
    values = torch.full((4, 3), 2.0)
    values[1, 2], values[3, 0] = tie, tie  # in a transposed storage (3, 0) comes before (1, 2)
    permuted = values.t().contiguous().t()
    masks = MaskSet.ones([permuted])
    result = ops.prune_global_([permuted], masks.words, 1)
    assert (result.threshold.n_ties, result.threshold.n_equal) == (1, 2)
    assert permuted[1, 2] == 0 and permuted[3, 0] == tie


def test_weights_shaped_unlike_their_scores_are_refused():
    scores, weights = torch.rand(6, 1), torch.randn(6)
    masks = MaskSet.ones([weights]).words
    with pytest.raises(ValueError, match=r"weights\[0\] has shape \(6,\) but scores\[0\] has \(6, 1\): pass one score"):
        ops.prune_by_scores_([scores], masks, 2, [weights])
    assert MaskSet(masks, [(6,)]).density() == 1.0


def test_a_threshold_made_from_known_numbers_counts_no_weights_outside_by_default():
    """``Threshold(...)`` from numbers known on the host (what the distributed select composes)."""
    info = torch.zeros(8, dtype=torch.int64)
    threshold = ops.Threshold(3, 1000, 2, 1, 1, 10, torch.float32, info, torch.zeros(4096, dtype=torch.int64))
    assert (threshold.key, threshold.n_below, threshold.n_ties, threshold.n_equal) == (1000, 2, 1, 1)
    assert threshold.n_survivors == 10 and threshold.n_outside == 0


def test_split_ties_in_a_permuted_tensor_after_a_tensor_without_ties():
    """The ties left to prune are counted down tensor by tensor: all of the first's, none of the second's (it has
    none at the key), then the permuted third is where they run out."""
    first, second = torch.full((8,), 2.0), torch.full((5,), 3.0)
    first[:4] = 0.25  # 4 ties, all pruned
    third = torch.full((4, 3), 2.0)
    third[1, 2], third[2, 0], third[3, 0] = 0.25, 0.25, 0.25  # 3 ties; transposed storage meets (2, 0) first
    permuted = third.t().contiguous().t()
    tensors = [first, second, permuted]
    masks = MaskSet.ones(tensors)
    result = ops.prune_global_(tensors, masks.words, 5)  # 4 in the first, then the third's first: (1, 2)
    assert (result.threshold.n_ties, result.threshold.n_equal) == (5, 7)
    assert permuted[1, 2] == 0 and permuted[2, 0] == 0.25 and permuted[3, 0] == 0.25


def test_prune_by_scores_takes_its_options_by_keyword():
    t = torch.randn(6)
    masks = MaskSet.ones([t]).words
    with pytest.raises(TypeError):
        ops.prune_by_scores_([t.abs()], masks, 2, [t], 12, False)
    result = ops.prune_by_scores_(scores=[t.abs()], masks=masks, k=2, weights=[t], bits=12, stats=False)
    assert result.stats is None and int((t == 0).sum()) == 2


def test_radix_histogram_has_4096_bins_by_default():
    t = torch.randn(20)
    hist = ops.radix_histogram([t], MaskSet.ones([t]).words, 0, 0)
    assert hist.numel() == 4096 and int(hist.sum()) == 20


def test_apply_masks_refuses_a_leaf_that_requires_grad_and_takes_its_data():
    p = torch.nn.Parameter(torch.randn(40))
    keep = torch.arange(40) % 2 == 0
    masks = MaskSet.from_bool([keep]).words
    with pytest.raises(ValueError, match=r"tensors\[0\] is a leaf that requires grad: pass param.data"):
        ops.apply_masks_([p], masks)
    assert (p != 0).all()  # refused before anything was written
    ops.apply_masks_([p.data, torch.ones(40, dtype=torch.float64)], masks + masks)  # dtypes may differ
    assert torch.equal(p.detach() != 0, keep)


@pytest.mark.parametrize("bits", [True, 12.0])
def test_bits_that_are_not_an_int_are_refused(bits):
    t = torch.randn(10)
    with pytest.raises(TypeError, match=rf"bits must be an int, got {type(bits).__name__}"):
        ops.magnitude_histogram([t], MaskSet.ones([t]).words, bits)


@pytest.mark.parametrize(
    "prefix, prefix_bits, name", [(1.0, 3, "prefix"), (0, 3.0, "prefix_bits"), (True, 3, "prefix")]
)
def test_a_prefix_that_is_not_an_int_is_refused(prefix, prefix_bits, name):
    t = torch.randn(10)
    with pytest.raises(TypeError, match=rf"^{name} must be an int, got"):
        ops.radix_histogram([t], MaskSet.ones([t]).words, prefix, prefix_bits)


def test_prune_global_bins_the_survivors_in_4096_bins_by_default():
    t = torch.randn(30)
    result = ops.prune_global_([t], MaskSet.ones([t]).words, 5)
    assert result.stats.histogram.numel() == 4096 and int(result.stats.histogram.sum()) == 25


def test_a_threshold_reads_as_its_numbers_without_the_nan_count():
    t = torch.tensor([3.0, 1.0, 2.0, 1.0])
    threshold = ops.global_magnitude_threshold([t], MaskSet.ones([t]).words, 1)
    assert repr(threshold) == (
        "Threshold(k=1, key=1065353216, n_below=0, n_ties=1, n_equal=2, n_survivors=4, n_outside=0, "
        "dtype=torch.float32)"
    )


def test_validate_takes_its_options_by_keyword():
    t = torch.randn(4)
    with pytest.raises(TypeError):
        ops.validate([t], MaskSet.ones([t]).words, False)


def test_a_prefix_longer_than_the_key_leaves_room_for_is_refused_with_the_room():
    t = torch.randn(10)
    room = KEY_BITS[torch.float32] - 12
    with pytest.raises(ValueError, match=rf"prefix_bits must be between 0 and {room} \(torch.float32 keys have"):
        ops.radix_histogram([t], MaskSet.ones([t]).words, 0, room + 1)


@needs_cpu_kernels
def test_the_compiled_ops_have_their_fake_kernels_once_loaded():
    """Importing rgprune.ops registers the fake (meta) kernels, which torch.compile traces the ops with."""
    t = torch.empty(10, device="meta")
    words = torch.empty(1, dtype=torch.int32, device="meta")
    info, hist = torch.ops.rgprune.global_magnitude_threshold([t], [words], 3)
    assert info.device.type == "meta" and hist.shape == (4096,)
    assert torch.ops.rgprune.magnitude_histogram([t], [words], 10)[0].shape == (1024,)


def test_prune_by_scores_refuses_weights_that_require_grad_before_cutting_a_mask():
    p = torch.nn.Parameter(torch.randn(8))
    masks = MaskSet.ones([p]).words
    with pytest.raises(ValueError, match=r"tensors\[0\] is a leaf that requires grad"):
        ops.prune_by_scores_([p.detach().abs()], masks, 3, [p])
    assert MaskSet(masks, [(8,)]).density() == 1.0  # the masks are as they were


def test_the_smallest_subnormal_that_grew_back_is_counted():
    """Only exact zeros (magnitude key 0) are not counted: key 1, the smallest float32 subnormal, is."""
    t = torch.zeros(40)
    t[5] = torch.tensor(1, dtype=torch.int32).view(torch.float32)  # 1.4e-45
    pruned_all = [MaskSet.from_bool([torch.zeros(40, dtype=torch.bool)]).words[0]]
    assert ops.count_outside_masks([t], pruned_all) == [1]
