"""include / exclude patterns that match no parameter are refused, naming the closest names, before anything
changes: in GlobalMagnitudePruner, select_prunable, from_torch_prune / rgprune.prune.adopt and (the same check)
rgprune imp --exclude. A typo must not prune what it meant to keep."""

import re

import pytest
import torch
import torch.nn.utils.prune as tprune
from torch import nn

import rgprune
import rgprune.prune
from rgprune.models import build_model
from rgprune.prunable import (
    check_patterns,
    closest_names,
    parameter_names,
    select_prunable,
    unmatched_patterns_message,
)


def resnet():
    torch.manual_seed(0)
    return build_model("resnet20", 10)  # conv1, layer1..3, fc


class Net(nn.Module):
    """Named like the issue's example: layer1, layer2, fc1, fc2."""

    def __init__(self):
        super().__init__()
        self.layer1 = nn.Sequential(nn.Linear(8, 8), nn.ReLU())
        self.layer2 = nn.Sequential(nn.Linear(8, 8), nn.ReLU())
        self.fc1 = nn.Linear(8, 8)
        self.fc2 = nn.Linear(8, 4)

    def forward(self, x):
        return self.fc2(self.fc1(self.layer2(self.layer1(x))))


def state_snapshot(model):
    """Everything a refused call must leave as it was: the state_dict (names, order, values), each parameter's
    identity, the hooks and the modules' attributes."""
    return (
        [(k, v.clone()) for k, v in model.state_dict().items()],
        [id(p) for p in model.parameters()],
        [(id(m), [type(h).__name__ for h in m._forward_pre_hooks.values()], sorted(vars(m))) for m in model.modules()],
    )


def assert_unchanged(model, snapshot):
    state, params, modules = state_snapshot(model)
    assert [k for k, _ in state] == [k for k, _ in snapshot[0]]
    assert all(torch.equal(a, b) for (_, a), (_, b) in zip(state, snapshot[0]))
    assert params == snapshot[1] and modules == snapshot[2]


@pytest.mark.parametrize(
    "selection, bad, close",
    [
        (dict(include=["layer1.*", "layr2.*"]), "include pattern(s) ['layr2.*']", "'layer2.*'"),
        (dict(exclude=["fc3.*"]), "exclude pattern(s) ['fc3.*']", "'fc2.*', 'fc1.*'"),
        (dict(include="layer1.*", exclude=["fc2.wieght"]), "exclude pattern(s) ['fc2.wieght']", "'fc2.weight'"),
    ],
)
def test_pattern_matching_nothing_is_refused_naming_the_closest_names(selection, bad, close):
    """Guards against GlobalMagnitudePruner / select_prunable silently dropping a pattern that matches nothing
    (issue 25: include=["layer1.*", "layr2.*"] pruned layer1 alone, exclude=["fc2.*"]-style typos pruned what they
    meant to keep)."""
    model = Net()
    before = state_snapshot(model)
    for build in (rgprune.GlobalMagnitudePruner, select_prunable):
        with pytest.raises(ValueError, match="match no parameter") as caught:
            build(model, **selection)
        assert bad in str(caught.value) and "closest [" + close in str(caught.value)
        assert_unchanged(model, before)


def test_each_unmatched_pattern_is_named_and_matching_ones_pass():
    model = resnet()
    message = unmatched_patterns_message(model, include=["layer1.*", "layr2.*", "zzzz"], exclude=["fc.bias", "fx.*"])
    assert "include pattern(s) ['layr2.*', 'zzzz']" in message and "exclude pattern(s) ['fx.*']" in message
    assert "'zzzz': no name is close" in message and "such as 'conv1.weight'" in message
    assert unmatched_patterns_message(model, include=["layer1.*"], exclude=["fc.*", "*.bias"]) is None
    assert unmatched_patterns_message(model) is None  # the default selection has no patterns
    check_patterns(model, include="layer1.*.conv1.weight")  # a single string is one pattern
    # an exclude that matches a parameter outside the default set is not a typo: it is accepted
    assert rgprune.GlobalMagnitudePruner(model, exclude=["*.bias"]).names == rgprune.GlobalMagnitudePruner(model).names


def test_closest_names_include_module_wildcards():
    names = ["layer1.0.conv1.weight", "layer2.0.conv1.weight", "fc.weight", "fc.bias"]
    assert closest_names("layr2.*", names)[0] == "layer2.*"
    assert closest_names("fc.wieght", names)[0] == "fc.weight"
    assert closest_names("qqqqqqq", names) == []


def test_wrapped_and_tied_models_match_the_inner_names():
    """Patterns are matched against the names inside DataParallel / torch.compile wrappers (what the pruner
    selects by); a tied parameter matches under each of its names."""
    model = Net()
    wrapped = nn.DataParallel(model)
    assert rgprune.GlobalMagnitudePruner(wrapped, include=["layer1.*.weight"]).names == ["layer1.0.weight"]
    with pytest.raises(ValueError, match=re.escape("'module.layer1.*': closest ['layer1.*'")):
        rgprune.GlobalMagnitudePruner(wrapped, include=["module.layer1.*"])
    tied = Net()
    tied.fc1.weight = tied.layer1[0].weight
    assert "fc1.weight" in parameter_names(tied)
    rgprune.GlobalMagnitudePruner(tied, include=["layer2.*.weight"], exclude=["fc1.weight"])  # no error


def torch_pruned_resnet():
    """Pruned twice by torch: each pruned conv holds a PruningContainer hook, which undoing a remove() would not
    give back (it installs a CustomFromMask)."""
    model = resnet()
    pairs = [(m, "weight") for m in model.modules() if isinstance(m, nn.Conv2d)]
    for _ in range(2):
        tprune.global_unstructured(pairs, pruning_method=tprune.L1Unstructured, amount=0.3)
    return model


@pytest.mark.parametrize("adopt", [rgprune.GlobalMagnitudePruner.from_torch_prune, rgprune.prune.adopt])
def test_adopting_a_torch_pruned_model_refuses_a_typo_before_removing_anything(adopt):
    """Guards against the check running only after the reparametrization was made permanent: the refused call
    must leave weight_orig, weight_mask and the hooks exactly as they were (same Parameters)."""
    model = torch_pruned_resnet()
    before = state_snapshot(model)
    assert "PruningContainer" in str(before[2])
    with pytest.raises(ValueError, match=re.escape("include pattern(s) ['layr1.*']")):
        adopt(model, include=["layr1.*"])
    assert_unchanged(model, before)
    with pytest.raises(ValueError, match=re.escape("exclude pattern(s) ['layer1.*.conv1.weight_orig']")):
        adopt(model, exclude=["layer1.*.conv1.weight_orig"])  # the name once the pruning is made permanent
    assert_unchanged(model, before)
    pruner = adopt(model, exclude=["layer1.*"])  # names as they are after remove(): accepted
    assert pruner.names and not any(n.startswith("layer1.") for n in pruner.names)
