"""Pruning by scores when the k-th smallest score is exactly 0: a threshold key of 0 is a real threshold (prune every
survivor scored 0, ties in model order), not "nothing to prune". Through the op, the pruner and the torch.prune
drop-in, exactly k entries go."""

import torch
from torch import nn

import rgprune
import rgprune.prune as rp
from rgprune import ops
from rgprune.kernels.format import pack_mask, unpack_mask

N, ZEROS, K = 100, 10, 5


def zero_scored(n: int = N, zeros: int = ZEROS, seed: int = 0) -> torch.Tensor:
    """``n`` scores, ``zeros`` of them exactly 0 (spread out), the others in [1, 2)."""
    g = torch.Generator().manual_seed(seed)
    scores = 1.0 + torch.rand(n, generator=g)
    scores[torch.randperm(n, generator=g)[:zeros]] = 0.0
    return scores


def test_prune_by_scores_clears_exactly_k_bits_when_the_kth_smallest_score_is_zero():
    scores = zero_scored()
    masks = [pack_mask(torch.ones(N, dtype=torch.bool))]
    ops.prune_by_scores_([scores], masks, K)
    keep = unpack_mask(masks[0], N)
    assert int((~keep).sum()) == K
    assert bool((scores[~keep] == 0).all())  # the pruned ones are zero-scored ...
    assert torch.equal(torch.nonzero(~keep).flatten(), torch.nonzero(scores == 0).flatten()[:K])  # ... first in order


def test_prune_by_scores_zeroes_exactly_the_k_weights_it_unmasks_at_a_zero_threshold():
    scores = zero_scored().reshape(10, 10)
    weights = [torch.randn(10, 10).abs() + 1.0]  # no weight is 0 to begin with
    masks = [pack_mask(torch.ones(N, dtype=torch.bool))]
    ops.prune_by_scores_([scores], masks, K, weights)
    keep = unpack_mask(masks[0], N)
    assert int((~keep).sum()) == K
    assert int((weights[0] == 0).sum()) == K
    assert torch.equal(weights[0].reshape(-1) == 0, ~keep)


def test_prune_by_scores_prunes_all_zero_scores_and_then_the_smallest():
    """k at and past the number of zero scores: the zeros all go, then the smallest non-zero ones."""
    scores = zero_scored()
    for k in (ZEROS, ZEROS + 3):
        masks = [pack_mask(torch.ones(N, dtype=torch.bool))]
        ops.prune_by_scores_([scores], masks, k)
        keep = unpack_mask(masks[0], N)
        assert int((~keep).sum()) == k, k
        assert torch.equal(~keep, scores <= scores.sort().values[k - 1]), k


def test_pruner_with_zero_scores_prunes_exactly_k_weights():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(10, 10, bias=False))
    with torch.no_grad():
        model[0].weight.copy_(torch.randn(10, 10).abs() + 1.0)
    pruner = rgprune.GlobalMagnitudePruner(model)
    (name,) = pruner.names
    report = pruner.prune(fraction=K / N, scores={name: zero_scored().reshape(10, 10)})
    assert report.k == K
    assert pruner.num_survivors == N - K
    assert int((model[0].weight == 0).sum()) == K


def test_global_unstructured_with_zero_importance_scores_prunes_exactly_k_entries():
    torch.manual_seed(0)
    layers = [nn.Linear(10, 5, bias=False), nn.Linear(10, 5, bias=False)]
    scores = zero_scored().reshape(2, 5, 10)
    rp.global_unstructured(
        [(layer, "weight") for layer in layers],
        rp.L1Unstructured,
        importance_scores={(layer, "weight"): s for layer, s in zip(layers, scores)},
        amount=K,
    )
    pruned = torch.cat([(layer.weight_mask == 0).reshape(-1) for layer in layers])
    assert int(pruned.sum()) == K
    assert bool((scores.reshape(-1)[pruned] == 0).all())
