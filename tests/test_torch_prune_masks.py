"""The one-import switch reads and writes torch.nn.utils.prune's reparametrization with kernels: survivors read
by ``ops.masks_where_one`` (mask == 1), new masks written into the existing ``<name>_mask`` buffer in place by
``apply_masks_`` (hook and buffer kept: no re-parametrization), first-time masks registered as torch registers
them. Each test names the bug it guards."""

import pytest
import torch
import torch.nn.utils.prune as tprune
from torch import nn

import rgprune.prune as prune
from rgprune import ops
from rgprune.kernels.format import pack_mask
from rgprune.masks import MaskSet

pytestmark = pytest.mark.reference  # make test-reference: the same behaviour on the pure-PyTorch reference


def convnet():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 16, 3), nn.ReLU(), nn.Conv2d(16, 32, 3), nn.Flatten(), nn.Linear(32 * 4, 10))


def pairs(model):
    return [(m, "weight") for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


# ---- ops.masks_where_one ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "make",
    [
        lambda x: x,
        lambda x: x.contiguous(memory_format=torch.channels_last),
        lambda x: x.reshape(12, -1).t(),
    ],
    ids=["contiguous", "channels_last", "transposed"],
)
def test_masks_where_one_gives_logical_order_bits_in_any_layout(make):
    """Guards against bits in storage order (channels_last masks would be scrambled) and against counting
    values other than exactly 1 (-1.0, 1 + eps, 0.5)."""
    g = torch.Generator().manual_seed(1)
    base = torch.randn(12, 3, 5, 7, generator=g)
    base.view(-1)[torch.rand(base.numel(), generator=g) < 0.5] = 1.0
    base.view(-1)[:4] = torch.tensor([-1.0, 0.5, 1.0000001, 0.0])
    tensors = [make(base), make(base.double()), make(base.half())]
    before = [t.clone() for t in tensors]
    words = ops.masks_where_one(tensors)
    for t, w, b in zip(tensors, words, before):
        assert torch.equal(w, pack_mask(t == 1)), t.dtype
        assert torch.equal(t, b)  # read only


@pytest.mark.parametrize(
    "tensors, error, match",
    [
        (torch.ones(3), TypeError, "single tensor"),
        ([torch.ones(3, dtype=torch.int32)], TypeError, "float"),
        ([torch.ones(4, 4).expand(2, 4, 4)], ValueError, "not dense"),
        (["mask"], TypeError, "torch.Tensor"),
    ],
    ids=["bare tensor", "integer", "expanded", "not a tensor"],
)
def test_masks_where_one_refuses_bad_input_with_a_message(tensors, error, match):
    with pytest.raises(error, match=match):
        ops.masks_where_one(tensors)


def test_scores_ranked_in_place_with_a_tie_group_split_inside_a_channels_last_tensor():
    """Guards threshold_masks_ in storage order: ties are pruned in logical (row-major) order even where the
    scores are channels_last, and the scores are never written (prune_by_scores_ no longer copies them)."""
    g = torch.Generator().manual_seed(2)
    scores = [(torch.randint(1, 4, (4, 3, 5, 5), generator=g) * 0.25) for _ in range(2)]
    permuted = [s.contiguous(memory_format=torch.channels_last) for s in scores]
    kept = [s.clone() for s in permuted]
    n_small = int((scores[0] == 0.25).sum() + (scores[1] == 0.25).sum())
    k = n_small + int((scores[0] == 0.5).sum()) // 2  # the 0.5 ties run out inside tensor 0
    want = MaskSet.ones(scores).words
    ops.prune_by_scores_(scores, want, k)
    got = MaskSet.ones(permuted).words
    ops.prune_by_scores_(permuted, got, k)
    assert all(torch.equal(a, b) for a, b in zip(got, want))
    assert all(torch.equal(a, b) and a.stride() == b.stride() for a, b in zip(permuted, kept))


# ---- global_unstructured: in place after the first round ------------------------------------------------


def test_later_rounds_write_into_the_same_mask_buffers_and_keep_the_hooks():
    """Guards against re-parametrizing every round (torch's custom_from_mask: new buffer, PruningContainer,
    a copy of the mask per call) and against masks, weights or state dicts that then differ from torch's."""
    ours, theirs = convnet(), convnet()
    for round_ in range(3):
        prune.global_unstructured(pairs(ours), pruning_method=prune.L1Unstructured, amount=0.3)
        tprune.global_unstructured(pairs(theirs), pruning_method=tprune.L1Unstructured, amount=0.3)
        if round_ == 0:
            buffers = [(m.weight_mask, m.weight_mask.data_ptr()) for m, _ in pairs(ours)]
            hooks = [list(m._forward_pre_hooks.values()) for m, _ in pairs(ours)]
            assert all(type(h[0]) is tprune.CustomFromMask and len(h) == 1 for h in hooks)
        for (a, _), (b, _), (buffer, ptr), hook in zip(pairs(ours), pairs(theirs), buffers, hooks):
            assert a.weight_mask is buffer and a.weight_mask.data_ptr() == ptr
            assert list(a._forward_pre_hooks.values()) == hook
            assert torch.equal(a.weight_mask, b.weight_mask)
            assert torch.equal(a.weight, b.weight) and a.weight.grad_fn is not None
    assert list(ours.state_dict()) == list(theirs.state_dict())
    x = torch.randn(2, 3, 6, 6)
    assert torch.equal(ours(x), theirs(x))
    for (a, n), (b, _) in zip(pairs(ours), pairs(theirs)):
        prune.remove(a, n)
        tprune.remove(b, n)
        assert torch.equal(a.weight, b.weight) and isinstance(a.weight, nn.Parameter)


def test_one_call_over_pruned_and_first_time_parameters_keeps_each_mask_with_its_parameter():
    """Guards the batched kernel calls (one masks_where_one and one apply_masks_ over every pruned parameter,
    first-time parameters in between): a word list shifted by one position would cut the wrong tensor."""
    ours, theirs = convnet(), convnet()
    for model, lib in ((ours, prune), (theirs, tprune)):
        layers = [m for m, _ in pairs(model)]
        lib.l1_unstructured(layers[0], "weight", amount=0.5)
        lib.l1_unstructured(layers[2], "weight", amount=0.25)  # layers[1] stays unpruned until the global call
        lib.global_unstructured(pairs(model), pruning_method=lib.L1Unstructured, amount=0.3)
    for (a, _), (b, _) in zip(pairs(ours), pairs(theirs)):
        assert torch.equal(a.weight_mask, b.weight_mask) and torch.equal(a.weight, b.weight)


def test_mask_values_other_than_zero_and_one_are_left_alone():
    """Guards against zeroing every entry outside the survivors: only the entries equal to 1 are ranked and
    rewritten (torch's PruningContainer: a hand-made 0.5 stays 0.5 under l1_unstructured; torch's
    global_unstructured squares it, combining the mask with itself, which the switch does not copy)."""
    ours, theirs = nn.Linear(20, 10), nn.Linear(20, 10)
    theirs.load_state_dict(ours.state_dict())
    for m in (ours, theirs):
        tprune.random_unstructured(m, "weight", amount=0.0)
        with torch.no_grad():
            m.weight_mask.view(-1)[:10] = 0.5
    prune.l1_unstructured(ours, "weight", amount=0.4)
    tprune.l1_unstructured(theirs, "weight", amount=0.4)
    assert torch.equal(ours.weight_mask, theirs.weight_mask)
    prune.global_unstructured([(ours, "weight")], pruning_method=prune.L1Unstructured, amount=0.5)
    assert int((ours.weight_mask == 0.5).sum()) == 10
    assert int((ours.weight_mask == 1).sum()) == 190 - round(0.4 * 190) - round(0.5 * (190 - round(0.4 * 190)))


def test_a_tensor_that_is_not_a_parameter_gets_torchs_own_error():
    """Guards the fast path's limits: what it does not recognise goes to torch's code, errors included."""
    ours, theirs = nn.Linear(4, 3), nn.Linear(4, 3)
    for m in (ours, theirs):
        del m._parameters["weight"]
        m.weight = torch.randn(3, 4)
    with pytest.raises(TypeError) as torch_error:
        tprune.global_unstructured([(theirs, "weight")], pruning_method=tprune.L1Unstructured, amount=0.5)
    with pytest.raises(TypeError) as our_error:
        prune.global_unstructured([(ours, "weight")], pruning_method=prune.L1Unstructured, amount=0.5)
    assert str(our_error.value) == str(torch_error.value)


# ---- L1Unstructured / l1_unstructured on one tensor ---------------------------------------------------------


def test_repeated_l1_unstructured_matches_torch_in_place():
    """Guards the per-tensor switch: counts of the survivors (as torch's PruningContainer counts them), the
    mask updated in place, the method returned as torch returns it, the importance scores' shape checked."""
    torch.manual_seed(0)
    a, b = nn.Linear(50, 40), nn.Linear(50, 40)
    b.load_state_dict(a.state_dict())
    hook = prune.L1Unstructured.apply(a, "weight", amount=0.3)
    assert isinstance(hook, prune.L1Unstructured) and hook._tensor_name == "weight"
    tprune.l1_unstructured(b, "weight", amount=0.3)
    buffer = a.weight_mask
    for amount in (100, 0.5):
        prune.l1_unstructured(a, "weight", amount=amount)
        tprune.l1_unstructured(b, "weight", amount=amount)
        assert torch.equal(a.weight_mask, b.weight_mask) and a.weight_mask is buffer
        assert torch.equal(a.weight, b.weight)
    assert int(a.weight_mask.sum()) == round(0.5 * (2000 - 600 - 100))
    with pytest.raises(AssertionError, match="same shape"):
        prune.l1_unstructured(a, "weight", amount=0.1, importance_scores=torch.ones(3))
    assert torch.equal(a.weight_mask, b.weight_mask)


def test_l1_unstructured_keeps_torchs_path_for_integer_scores():
    """Guards against ranking integer scores with the float kernels (torch's topk ranks them)."""
    torch.manual_seed(0)
    a, b = nn.Linear(10, 4), nn.Linear(10, 4)
    scores = torch.arange(40).reshape(4, 10)
    prune.l1_unstructured(a, "weight", amount=0.25, importance_scores=scores)
    tprune.l1_unstructured(b, "weight", amount=0.25, importance_scores=scores)
    assert torch.equal(a.weight_mask, b.weight_mask)


def test_pruning_between_forward_and_backward_raises_instead_of_changing_the_gradient():
    """Guards against in-place kernels autograd cannot see: the mask buffer written in place is saved by the
    forward's multiply, so a backward after the prune must raise torch's in-place error (the version counter
    bumped), not silently use the new mask; a forward and backward after the prune give torch's gradient."""
    torch.manual_seed(0)
    a, b = nn.Linear(8, 4), nn.Linear(8, 4)
    b.load_state_dict(a.state_dict())
    x = torch.randn(3, 8)
    for lib, m in ((prune, a), (tprune, b)):
        lib.l1_unstructured(m, "weight", amount=0.25)
    loss = a(x).sum()
    prune.l1_unstructured(a, "weight", amount=0.25)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        loss.backward()
    tprune.l1_unstructured(b, "weight", amount=0.25)
    for m in (a, b):  # a backward after the prune: torch's gradients
        m.zero_grad()
        m(x).sum().backward()
    assert torch.equal(a.weight_mask, b.weight_mask) and torch.equal(a.weight_orig.grad, b.weight_orig.grad)


def test_in_place_ops_bump_the_version_counters_of_what_they_write():
    """Guards the same for every in-place op: weights and masks written by the kernels are seen by autograd."""
    w = torch.randn(100)
    masks = MaskSet.ones([w]).words
    versions = (w._version, masks[0]._version)
    ops.prune_global_([w], masks, 10)
    assert w._version > versions[0] and masks[0]._version > versions[1]
    before = w._version
    ops.apply_masks_([w], masks)
    assert w._version > before
    scores, versions = torch.randn(100), masks[0]._version
    ops.prune_by_scores_([scores], masks, 10)
    assert masks[0]._version > versions and scores._version == 0
