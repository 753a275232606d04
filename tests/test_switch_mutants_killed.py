"""rgprune.torch_prune_masks (the switch's reads and writes of torch's reparametrization), case by case: the tests
that kill the mutants `make mutation AREA=switch` found alive (docs/mutation.md). Each compares with torch."""

import copy

import pytest
import torch
import torch.nn.utils.prune as tprune
from torch import nn

import rgprune.prune as prune
from rgprune import torch_prune_masks as reparametrization
from rgprune.masks import MaskSet


def outcome(lib, module, name="weight"):
    try:
        lib.global_unstructured([(module, name)], pruning_method=lib.L1Unstructured, amount=0.5)
    except Exception as exc:  # noqa: BLE001 - the test compares torch's outcome with ours, errors included
        return type(exc), str(exc)
    return getattr(module, name + "_mask").tolist(), getattr(module, name).tolist()


def same_as_torch(prepare):
    torch.manual_seed(0)
    ours = nn.Linear(3, 2)
    theirs = copy.deepcopy(ours)
    prepare(ours)
    prepare(theirs)
    assert outcome(prune, ours) == outcome(tprune, theirs)
    return ours


def test_the_hook_of_one_tensor_is_found_beside_another_tensors_hook():
    """Pruning the bias as well must not send the weight to torch's path (a new buffer and container)."""
    lin = nn.Linear(6, 4)
    for round_ in range(2):
        prune.global_unstructured([(lin, "weight"), (lin, "bias")], pruning_method=prune.L1Unstructured, amount=0.3)
        if round_ == 0:
            buffers = (lin.weight_mask, lin.bias_mask)
    assert lin.weight_mask is buffers[0] and lin.bias_mask is buffers[1]
    assert type(reparametrization.pruning_hook(lin, "weight")) is tprune.CustomFromMask
    assert reparametrization.pruning_hook(lin, "bias")._tensor_name == "bias"


def test_a_bool_mask_put_in_by_hand_is_read_and_replaced_as_torch_does():
    def bool_mask(m):
        tprune.l1_unstructured(m, "weight", amount=0.2)
        m.weight_mask = m.weight_mask.bool()

    ours = same_as_torch(bool_mask)
    assert ours.weight_mask.dtype == torch.float32


def test_a_weight_mask_buffer_of_a_module_never_pruned_goes_through_torch():
    same_as_torch(lambda m: m.register_buffer("weight_mask", torch.ones(2, 3)))


def test_two_pruning_hooks_for_one_tensor_get_torchs_error_and_nothing_changes():
    def two_hooks(m):
        tprune.l1_unstructured(m, "weight", amount=0.2)
        m.register_forward_pre_hook(copy.deepcopy(next(iter(m._forward_pre_hooks.values()))))

    torch.manual_seed(0)
    ours = nn.Linear(3, 2)
    two_hooks(ours)
    mask = ours.weight_mask.clone()
    error, message = outcome(prune, ours)
    assert error is AssertionError and "multiple pruning hooks" in message
    assert torch.equal(ours.weight_mask, mask)


def test_an_expanded_mask_is_handed_to_torch_not_to_the_kernels():
    lin = nn.Linear(3, 2)
    tprune.identity(lin, "weight")
    lin._buffers["weight_mask"] = torch.ones(1, 3).expand(2, 3)  # not dense: the kernels refuse it
    keep = torch.tensor([[True, False, True], [False, True, True]])
    reparametrization.install_masks(
        [(lin, "weight")], MaskSet.ones([lin.weight]).words, MaskSet.from_bool([keep]).words
    )
    assert torch.equal(lin.weight_mask, keep.float())


def test_pruning_hook_wants_exactly_one_hook():
    lin = nn.Linear(3, 2)
    with pytest.raises(ValueError, match="Linear.weight has 0 pruning hooks; expected one"):
        reparametrization.pruning_hook(lin, "weight")
    tprune.identity(lin, "weight")
    assert reparametrization.pruning_hook(lin, "weight")._tensor_name == "weight"
    lin.register_forward_pre_hook(copy.deepcopy(reparametrization.pruning_hook(lin, "weight")))
    with pytest.raises(ValueError, match="has 2 pruning hooks"):
        reparametrization.pruning_hook(lin, "weight")


def test_a_mask_of_another_shape_is_refused_as_torch_refuses_it():
    """A broadcasting mask (shape (2, 1) for a (2, 3) weight) is not a mask the kernels can rewrite in place:
    torch's path raises, and nothing is pruned."""

    def broadcasting_mask(m):
        tprune.identity(m, "weight")
        m._buffers["weight_mask"] = torch.ones(2, 1)

    lin, theirs = nn.Linear(3, 2), nn.Linear(3, 2)
    broadcasting_mask(lin)
    broadcasting_mask(theirs)
    assert outcome(tprune, theirs)[0] is IndexError  # torch refuses it too
    error, _ = outcome(prune, lin)
    assert error is AssertionError and torch.equal(lin.weight_mask, torch.ones(2, 1))


def test_a_pair_named_twice_is_cut_once_with_what_either_pruned():
    """The two entries of one buffer are merged before the kernel call (whose threads rewrite whole words):
    every entry pruned by either entry is 0, as when they are cut one after the other."""
    lin = nn.Linear(40, 2)
    tprune.identity(lin, "weight")
    a = torch.ones(2, 40, dtype=torch.bool)
    b = a.clone()
    a[0, :10] = False
    b[1, 5:30] = False
    ones = MaskSet.ones([lin.weight]).words
    words = MaskSet.from_bool([a]).words + MaskSet.from_bool([b]).words
    reparametrization.install_masks([(lin, "weight"), (lin, "weight")], ones + ones, words)
    assert torch.equal(lin.weight_mask, (a & b).float())
