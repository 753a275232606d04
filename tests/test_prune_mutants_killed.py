"""rgprune.prune (the one-import switch), function by function: the tests that kill the mutants `make mutation
AREA=prune` found alive (docs/mutation.md). Small hand-built models only."""

import pytest
import torch
import torch.nn.utils.prune as tprune
from torch import nn

import rgprune
import rgprune.prune as prune
from rgprune.prune import count_to_prune


def test_count_to_prune_boundaries_of_counts_and_fractions():
    # torch's rule at its edges: 0 and every survivor are valid counts, 0.0 and 1.0 valid fractions
    assert count_to_prune(0, 10) == 0 and count_to_prune(10, 10) == 10
    assert count_to_prune(0.0, 10) == 0 and count_to_prune(1.0, 10) == 10 and count_to_prune(0.25, 10) == 2
    for amount, error in (
        (-1, ValueError),
        (11, ValueError),
        (-1e-9, ValueError),
        (-0.5, ValueError),
        (1.0 + 1e-9, ValueError),
        (1.5, ValueError),
        ("0.5", TypeError),
    ):
        with pytest.raises(error, match="should" if error is ValueError else "Invalid type"):  # torch's messages
            count_to_prune(amount, 10)


def test_bad_parameter_pairs_are_refused_each_with_its_position():
    lin = nn.Linear(3, 2)
    with pytest.raises(TypeError, match=r"parameters\[1\] must be a \(module, name\) tuple"):
        prune.global_unstructured([(lin, "weight"), [lin, "bias"]], pruning_method=prune.L1Unstructured, amount=1)
    with pytest.raises(TypeError, match=r"parameters\[0\] must be a \(module, name\) tuple"):
        prune.global_unstructured([(lin, "weight", 1)], pruning_method=prune.L1Unstructured, amount=1)
    with pytest.raises(AttributeError, match=r"parameters\[0\]: Linear has no tensor named 'wieght'"):
        prune.global_unstructured([(lin, "wieght")], pruning_method=prune.L1Unstructured, amount=1)
    assert not prune.is_pruned(lin)


@pytest.mark.parametrize("score", [torch.ones(3), [1.0] * 6], ids=["wrong-shape", "not-a-tensor"])
def test_importance_scores_of_the_wrong_shape_or_type_are_refused(score):
    lin = nn.Linear(3, 2)
    with pytest.raises(ValueError, match=r"must be a tensor of the parameter's shape \(2, 3\)"):
        prune.global_unstructured(
            [(lin, "weight")], pruning_method=prune.L1Unstructured, amount=1, importance_scores={(lin, "weight"): score}
        )
    assert not prune.is_pruned(lin)


def test_compute_mask_ranks_float_weights_with_the_kernels(monkeypatch):
    t = torch.tensor([[0.5, -0.1, 3.0], [0.2, -2.0, 0.05]])
    expected = torch.tensor([[1.0, 0.0, 1.0], [1.0, 1.0, 0.0]])
    monkeypatch.setattr(torch, "topk", lambda *a, **k: pytest.fail("torch.topk ranked float weights"))
    assert torch.equal(prune.L1Unstructured(amount=2).compute_mask(t, torch.ones_like(t)), expected)


def test_random_global_pruning_of_a_single_parameter():
    lin = nn.Linear(10, 10)
    prune.global_unstructured([(lin, "weight")], pruning_method=prune.RandomUnstructured, amount=0.3)
    assert int((lin.weight_mask == 0).sum()) == 30 and int((lin.weight == 0).sum()) >= 30


def test_adopt_makes_the_pruner_class_it_is_given():
    class Mine(rgprune.GlobalMagnitudePruner):
        pass

    def pruned():
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 2))
        tprune.global_unstructured([(m, "weight") for m in model], pruning_method=tprune.L1Unstructured, amount=0.5)
        return model

    assert type(prune.adopt(pruned())) is rgprune.GlobalMagnitudePruner
    assert type(prune.adopt(pruned(), pruner_class=Mine)) is Mine


def test_random_pruning_draws_a_fresh_wide_seed_each_call(monkeypatch):
    """Guards the seed's range: drawn from a narrow range, the masks of successive calls would repeat."""
    import numpy as np

    seeds, default_rng = [], np.random.default_rng
    monkeypatch.setattr(np.random, "default_rng", lambda seed: seeds.append(seed) or default_rng(seed))
    lin = nn.Linear(8, 8)
    for _ in range(40):
        prune.global_unstructured([(lin, "weight")], pruning_method=prune.RandomUnstructured, amount=0.0)
    assert len(set(seeds)) == 40 and max(seeds) >= 2**61 and min(seeds) >= 0
