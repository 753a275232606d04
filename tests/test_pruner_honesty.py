"""Masks and weights cannot silently disagree: masks built from a model's exact zeros, a warning when a
pruner starts all-ones on an already pruned model, check() finding weights that grew back (prune refuses
them), no double hooks or rival pruners; and the smaller input checks (meta models, single-string patterns,
include= taking biases or norm weights)."""

import warnings

import pytest
import torch
from torch import nn

import rgprune
from rgprune.models import build_model


def resnet20(seed=0):
    return build_model("resnet20", 10, in_channels=1, seed=seed)


def train_steps(model, optimizer, steps, seed=0):
    g = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        x, y = torch.randn(8, 1, 8, 8, generator=g), torch.randint(0, 10, (8,), generator=g)
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


# ---- masks from zeros, and the warning when a model looks pruned ----------------------------------------


def test_masks_from_zeros_adopt_a_pruned_model_and_the_default_warns_naming_it():
    model = resnet20()
    first = rgprune.GlobalMagnitudePruner(model)
    first.prune(fraction=0.6)
    with pytest.warns(RuntimeWarning, match=r"60\.0% of the selected weights are exactly 0.*masks_from='zeros'"):
        naive = rgprune.GlobalMagnitudePruner(model)
    assert naive.density() == 1.0  # what the warning is about
    adopted = rgprune.GlobalMagnitudePruner(model, masks_from="zeros")
    assert adopted.masks == first.masks and adopted.density() == first.density()
    adopted.prune(fraction=0.5)  # prunes survivors, not weights that are already 0
    assert adopted.num_survivors == first.num_survivors - round(0.5 * first.num_survivors)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        rgprune.GlobalMagnitudePruner(model, masks_from="ones")  # an explicit choice is silent
        rgprune.GlobalMagnitudePruner(resnet20())  # as is a model that is not pruned
    with pytest.raises(ValueError, match="masks_from"):
        rgprune.GlobalMagnitudePruner(model, masks_from="nonzero")


# ---- check(): weights that grew back outside the masks ------------------------------------------------------


def test_check_finds_weights_that_grew_back_and_prune_refuses_them():
    model = resnet20()
    pruner = rgprune.GlobalMagnitudePruner(model)
    pruner.prune(fraction=0.5)
    assert pruner.check() == {}
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    train_steps(model, optimizer, 2)  # not attached: pruned weights grow back
    grown = {n: int((p[~k] != 0).sum()) for n, p, k in zip(pruner.names, pruner.params, pruner.masks.to_bool())}
    grown = {n: c for n, c in grown.items() if c}
    assert grown and pruner.density() == 0.5  # density() is the masks'; the weights disagree
    with pytest.warns(RuntimeWarning, match=r"attach\(optimizer\).*apply_masks\(\)"):
        assert pruner.check() == grown
    masks = pruner.masks.clone()
    with pytest.raises(ValueError, match=r"outside the masks are not 0.*attach\(optimizer\)"):
        pruner.prune(fraction=0.2)
    assert pruner.masks == masks  # refused before changing anything
    pruner.apply_masks()
    assert pruner.check() == {}
    pruner.attach(optimizer)
    train_steps(model, optimizer, 2, seed=1)
    assert pruner.check() == {}
    pruner.prune(fraction=0.2)


def test_check_counts_nan_and_tiny_values_outside_the_masks_but_not_zeros():
    model = nn.Sequential(nn.Linear(64, 64))
    pruner = rgprune.GlobalMagnitudePruner(model, prune_head=True)
    pruner.prune(fraction=0.5)
    keep = pruner.masks.to_bool()[0]
    pruned = (~keep).nonzero()
    with torch.no_grad():
        w = model[0].weight
        w[tuple(pruned[0])] = float("nan")
        w[tuple(pruned[1])] = 1e-45  # a subnormal: not 0
        w[tuple(pruned[2])] = -0.0  # zero: fine
    with pytest.warns(RuntimeWarning, match="2 weights outside the masks"):
        assert pruner.check() == {"0.weight": 2}


def test_prune_checks_the_masks_in_the_thresholds_pass_without_a_read_of_its_own(monkeypatch):
    """Guards against prune() reading the weights once more for its check (ops.count_outside_masks every round:
    a fifth pass) and against the threshold's outside count missing what check() finds (a NaN or a subnormal
    under a cleared bit): prune refuses those, before changing anything, naming the tensor."""
    from rgprune import ops

    calls = []
    count_outside = ops.count_outside_masks
    monkeypatch.setattr(ops, "count_outside_masks", lambda *a: calls.append(1) or count_outside(*a))
    model = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 64))
    pruner = rgprune.GlobalMagnitudePruner(model, prune_head=True)
    pruner.prune(fraction=0.5)
    pruner.prune(fraction=0.5)
    assert calls == [], "prune() read the weights for its check"
    for grown in (float("nan"), 1e-45):
        pruned = (~pruner.masks.to_bool()[1]).nonzero()[0]
        with torch.no_grad():
            model[2].weight[tuple(pruned)] = grown
        masks = pruner.masks.clone()
        with pytest.raises(ValueError, match=r"1 weights outside the masks are not 0 \(e.g. \{'2.weight': 1\}\)"):
            pruner.prune(fraction=0.5)
        assert pruner.masks == masks
        pruner.apply_masks()


# ---- one hook per optimizer, one attached pruner per parameter ----------------------------------------------


def test_a_second_attach_or_a_rival_attached_pruner_is_refused():
    model = resnet20()
    pruner = rgprune.GlobalMagnitudePruner(model)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    pruner.attach(optimizer)
    with pytest.raises(ValueError, match="already attached"):
        pruner.attach(optimizer)
    assert len(optimizer._optimizer_step_post_hooks) == 1
    rival = rgprune.GlobalMagnitudePruner(model, include=["layer1.*.conv1.weight"])
    with pytest.raises(ValueError, match="another GlobalMagnitudePruner"):
        rival.attach(torch.optim.SGD(model.parameters(), lr=0.05))
    other_model = resnet20(seed=1)  # a pruner of other parameters is fine
    rgprune.GlobalMagnitudePruner(other_model).attach(torch.optim.SGD(other_model.parameters(), lr=0.05))
    pruner.detach()
    assert not pruner.attached
    rival.attach(optimizer)  # once the first let go
    with pytest.raises(ValueError, match="another GlobalMagnitudePruner"):
        pruner.attach(optimizer)


# ---- smaller input checks -----------------------------------------------------------------------------------


def test_a_meta_device_model_is_refused_at_construction_naming_the_fix():
    with torch.device("meta"):
        model = nn.Sequential(nn.Linear(8, 8), nn.Linear(8, 2))
    with pytest.raises(ValueError, match=r"meta device.*to_empty"):
        rgprune.GlobalMagnitudePruner(model, prune_head=True)


def test_single_string_patterns_mean_one_pattern():
    model = resnet20()
    assert (
        rgprune.GlobalMagnitudePruner(model, include="layer1.*.conv1.weight").names
        == rgprune.GlobalMagnitudePruner(model, include=["layer1.*.conv1.weight"]).names
    )
    assert (
        rgprune.GlobalMagnitudePruner(model, exclude="layer3.*").names
        == rgprune.GlobalMagnitudePruner(model, exclude=["layer3.*"]).names
    )
    with pytest.raises(TypeError, match="include must be a string or a list"):
        rgprune.GlobalMagnitudePruner(model, include=3)


def test_include_that_takes_biases_or_norm_weights_warns_which():
    model = resnet20()
    with pytest.warns(UserWarning, match=r"not Linear/Conv/Embedding weights.*layer1\.0\.bn1\.weight") as record:
        pruner = rgprune.GlobalMagnitudePruner(model, include=["layer1.0*"])
    assert "layer1.0.bn1.bias" in str(record[0].message) and "layer1.0.conv1.weight" not in str(record[0].message)
    assert "layer1.0.bn1.weight" in pruner.names  # taken, as asked
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        rgprune.GlobalMagnitudePruner(model, include=["layer1.*.conv*.weight"])


def test_a_layer_emptied_by_global_pruning_warns_once_naming_it():
    """Global ranking can remove a whole layer whose weights are far smaller than the rest (an untrained
    pooler): every later prediction then reads a constant. Guards against that happening silently, and against a
    warning repeated on every later prune or raised for layers that still hold weights."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 8), nn.Linear(8, 8), nn.Linear(8, 2))
    with torch.no_grad():
        model[1].weight.mul_(1e-3)
    pruner = rgprune.GlobalMagnitudePruner(model, prune_head=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pruner.prune(0.3)  # 40 of 136 weights: the small layer's 64 are not all gone yet
        assert not caught and pruner.layer_densities()["1.weight"] > 0
        pruner.prune(0.3)
        pruner.prune(0.3)
    assert pruner.layer_densities()["1.weight"] == 0.0
    assert [str(w.message)[:55] for w in caught] == ["global pruning has removed every weight of ['1.weight']"]
    assert "exclude" in str(caught[0].message) and caught[0].category is RuntimeWarning


# ---- a NaN survivor is named by its parameter ------------------------------------------------------------


def test_a_nan_survivor_is_refused_naming_its_parameter_and_nothing_changes():
    """The kernels number the tensors they were given; the pruner's error names the parameter (the user's
    name for it, not 'tensors [5]'), and the masks and weights are as they were."""
    model = resnet20()
    pruner = rgprune.GlobalMagnitudePruner(model)
    pruner.prune(0.2)
    name = pruner.names[5]
    weight = dict(model.named_parameters())[name]
    with torch.no_grad():
        weight.view(-1)[weight.view(-1).nonzero()[0]] = float("nan")
    words = [w.clone() for w in pruner.masks.words]
    with pytest.raises(ValueError, match=rf"^1 surviving weights are NaN \(in \['{name}'\]\)") as caught:
        pruner.prune(0.2)
    assert isinstance(caught.value, rgprune.ops.NaNSurvivorsError) and caught.value.tensors == [5]
    assert all(torch.equal(a, b) for a, b in zip(words, pruner.masks.words))
