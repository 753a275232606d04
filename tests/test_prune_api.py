"""rgprune.prune is torch.nn.utils.prune with one changed import: global_unstructured takes torch's arguments
and errors, installs torch's reparametrization (so remove / is_pruned / repeated calls work), and gives
torch's masks up to the documented tie order, while rgprune's kernels rank the tensors in place (no
concatenation, no topk). GlobalMagnitudePruner.prune(scores=...) ranks by scores and prunes the weights."""

import copy

import pytest
import torch
import torch.nn.utils.prune as tprune
from torch import nn

import rgprune
import rgprune.prune as prune


def layer_pairs(model):
    return [(m, "weight") for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


def resnet18():
    import torchvision

    torch.manual_seed(0)
    return torchvision.models.resnet18(weights=None).eval()


def small_bert():
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    return BertModel(
        BertConfig(
            vocab_size=200,
            hidden_size=64,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=128,
            max_position_embeddings=32,
        )
    ).eval()


def random_scores(pairs, seed):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(getattr(m, n).shape, generator=g) for m, n in pairs]


def kth_survivor_magnitude(masks, scores, k):
    """Independent oracle: the k-th smallest |score| among the entries torch counts as surviving (mask 1)."""
    values = torch.cat(
        [
            s.abs().reshape(-1)[m.reshape(-1) == 1] if m is not None else s.abs().reshape(-1)
            for m, s in zip(masks, scores)
        ]
    )
    return float(torch.kthvalue(values, k).values)


def compare_round(ours, theirs, scores, threshold):
    """Masks equal except among entries whose score equals the threshold (torch.topk's tie order is not
    documented); exact counts. Continues from torch's choice when ties split, so rounds compare alike."""
    our_keep = [m.weight_mask.bool() for m, _ in ours]
    their_keep = [m.weight_mask.bool() for m, _ in theirs]
    assert sum(int(k.sum()) for k in our_keep) == sum(int(k.sum()) for k in their_keep)
    differ = [(a != b) for a, b in zip(our_keep, their_keep)]
    if any(d.any() for d in differ):
        threshold = threshold()
        for d, s in zip(differ, scores):
            assert torch.all(s.abs()[d] == threshold)
        with torch.no_grad():
            for (a, _), (b, _) in zip(ours, theirs):
                a.weight_mask.copy_(b.weight_mask)
                a.weight = a.weight_orig * a.weight_mask
    return sum(int(d.sum()) for d in differ)


@pytest.mark.parametrize(
    "build, amounts", [(resnet18, [0.2, 100_000]), (small_bert, [0.2, 0.3, 1000])], ids=["resnet18", "bert-config"]
)
def test_one_changed_import_gives_torchs_masks_and_reparametrization(build, amounts):
    # amounts: a fraction of the survivors, then (bert: another fraction and) a count
    theirs_model = build()
    ours_model = copy.deepcopy(theirs_model)
    theirs, ours = layer_pairs(theirs_model), layer_pairs(ours_model)
    originals = [m.weight.detach().clone() for m, _ in ours]
    for round_, amount in enumerate(amounts):
        scored = round_ == 0  # first round ranked by importance scores, then by the (masked) weights
        scores = random_scores(ours, seed=round_) if scored else [getattr(m, n).detach().clone() for m, n in ours]
        survivors = sum(int(m.weight_mask.sum()) if hasattr(m, "weight_mask") else m.weight.numel() for m, _ in ours)
        k = amount if isinstance(amount, int) else round(amount * survivors)
        previous = [m.weight_mask.clone() if hasattr(m, "weight_mask") else None for m, _ in ours]
        kwargs = {"importance_scores": dict(zip(theirs, scores))} if scored else {}
        tprune.global_unstructured(theirs, pruning_method=tprune.L1Unstructured, amount=amount, **kwargs)
        kwargs = {"importance_scores": dict(zip(ours, [s.clone() for s in scores]))} if scored else {}
        prune.global_unstructured(ours, pruning_method=prune.L1Unstructured, amount=amount, **kwargs)
        compare_round(
            ours,
            theirs,
            scores,
            lambda previous=previous, scores=scores, k=k: kth_survivor_magnitude(previous, scores, k),
        )
        for (a, _), (b, _) in zip(ours, theirs):  # the reparametrization of torch's first round, kept after it
            assert [type(h) for h in a._forward_pre_hooks.values()] == [tprune.CustomFromMask]
            assert a.weight_mask.dtype == b.weight_mask.dtype and a.weight_mask.shape == b.weight_mask.shape
            assert torch.equal(a.weight, a.weight_orig * a.weight_mask)
    assert all(torch.equal(m.weight_orig, w) for (m, _), w in zip(ours, originals))  # weights not touched
    assert prune.is_pruned(ours_model) and tprune.is_pruned(ours_model)
    for m, n in ours:
        prune.remove(m, n)
    assert not prune.is_pruned(ours_model)
    assert all(torch.equal(m.weight, b.weight_orig * b.weight_mask) for (m, _), (b, _) in zip(ours, theirs))


def test_scores_are_not_modified_and_decide_the_ranking():
    model = nn.Sequential(nn.Linear(20, 30), nn.ReLU(), nn.Linear(30, 10))
    pairs = layer_pairs(model)
    # |score| grows with the flat index, and every score of layer 2 is above layer 0's: layer 0's first go
    scores = {
        p: -torch.arange(getattr(*p).numel(), dtype=torch.float32).reshape(getattr(*p).shape) - 1 - 1000 * i
        for i, p in enumerate(pairs)
    }
    saved = {p: s.clone() for p, s in scores.items()}
    prune.global_unstructured(pairs, pruning_method=prune.L1Unstructured, importance_scores=scores, amount=50)
    assert all(torch.equal(scores[p], saved[p]) for p in pairs)
    keep0 = model[0].weight_mask.reshape(-1)
    assert keep0[:50].sum() == 0 and keep0[50:].all() and model[2].weight_mask.all()


def test_torch_classes_are_ranked_by_the_kernels_without_concatenating_or_topk(monkeypatch):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(20, 30), nn.ReLU(), nn.Linear(30, 10))
    reference = copy.deepcopy(model)
    tprune.global_unstructured(layer_pairs(reference), pruning_method=tprune.L1Unstructured, amount=0.5)
    for name in ("cat", "topk"):
        monkeypatch.setattr(torch, name, lambda *a, _name=name, **k: pytest.fail(f"torch.{_name} was called"))
    monkeypatch.setattr(torch.nn.utils, "parameters_to_vector", lambda *a, **k: pytest.fail("concatenated"))
    prune.global_unstructured(layer_pairs(model), pruning_method=tprune.L1Unstructured, amount=0.5)
    assert all(
        torch.equal(a.weight_mask, b.weight_mask) for (a, _), (b, _) in zip(layer_pairs(model), layer_pairs(reference))
    )
    prune.global_unstructured(layer_pairs(model), pruning_method=tprune.RandomUnstructured, amount=0.5)
    survivors = sum(int(m.weight_mask.sum()) for m, _ in layer_pairs(model))
    assert survivors == round(0.5 * round(0.5 * 900))  # 900 weights: 450 after L1, 225 after random


def torch_error(call):
    try:
        call()
    except (TypeError, ValueError, AttributeError) as exc:
        return type(exc), str(exc)
    return None


@pytest.mark.parametrize(
    "kwargs",
    [
        {"amount": -1},
        {"amount": 1.5},
        {"amount": "half"},
        {"amount": 10_000},
        {"amount": 0.3, "importance_scores": [1]},
        {},
    ],
    ids=["negative", "above-one", "string", "too-many", "scores-not-dict", "no-amount"],
)
def test_bad_arguments_raise_torchs_errors_and_change_nothing(kwargs):
    model = nn.Sequential(nn.Linear(20, 30), nn.Linear(30, 10))
    theirs = torch_error(
        lambda: tprune.global_unstructured(
            layer_pairs(copy.deepcopy(model)), pruning_method=tprune.L1Unstructured, **kwargs
        )
    )
    ours = torch_error(
        lambda: prune.global_unstructured(layer_pairs(model), pruning_method=prune.L1Unstructured, **kwargs)
    )
    assert theirs is not None and ours is not None
    assert ours[0] is theirs[0]
    if "amount" in kwargs:  # the missing-argument message names the class, which differs
        assert ours[1] == theirs[1]
    assert not prune.is_pruned(model)


def test_structured_methods_are_refused_and_other_unstructured_methods_run_torchs_implementation():
    model = nn.Sequential(nn.Linear(20, 30), nn.Linear(30, 10))
    with pytest.raises(TypeError, match="unstructured"):
        prune.global_unstructured(layer_pairs(model), pruning_method=prune.RandomStructured, amount=0.2, dim=0)

    class EveryOther(tprune.BasePruningMethod):
        PRUNING_TYPE = "unstructured"

        def compute_mask(self, t, default_mask):
            mask = default_mask.clone()
            mask.view(-1)[::2] = 0
            return mask

    reference = copy.deepcopy(model)
    prune.global_unstructured(layer_pairs(model), pruning_method=EveryOther)
    tprune.global_unstructured(layer_pairs(reference), pruning_method=EveryOther)
    for (a, _), (b, _) in zip(layer_pairs(model), layer_pairs(reference)):
        assert torch.equal(a.weight_mask, b.weight_mask)


def test_a_generator_of_parameters_is_pruned_like_a_list():
    model = nn.Sequential(nn.Linear(20, 30), nn.Linear(30, 10))
    reference = copy.deepcopy(model)
    prune.global_unstructured((p for p in layer_pairs(model)), pruning_method=prune.L1Unstructured, amount=0.4)
    prune.global_unstructured(layer_pairs(reference), pruning_method=prune.L1Unstructured, amount=0.4)
    assert all(
        torch.equal(a.weight_mask, b.weight_mask) for (a, _), (b, _) in zip(layer_pairs(model), layer_pairs(reference))
    )
    with pytest.raises(ValueError, match="empty"):
        prune.global_unstructured([], pruning_method=prune.L1Unstructured, amount=0.4)


def test_random_unstructured_prunes_exactly_k_uniform_survivors_reproducibly():
    def draw(seed, k=400):
        torch.manual_seed(seed)
        model = nn.Sequential(nn.Linear(10, 100), nn.Linear(100, 30))  # 1000 and 3000 weights
        pairs = layer_pairs(model)
        prune.global_unstructured(pairs, pruning_method=prune.RandomUnstructured, amount=k)
        first = [m.weight_mask.clone() for m, _ in pairs]
        prune.global_unstructured(pairs, pruning_method=prune.RandomUnstructured, amount=0.5)
        return first, [m.weight_mask for m, _ in pairs]

    first, second = draw(0)
    assert sum(int((1 - m).sum()) for m in first) == 400
    assert all(torch.all(b <= a) for a, b in zip(first, second))  # only survivors are pruned
    assert sum(int(m.sum()) for m in second) == 1800
    again, _ = draw(0)
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    shares = [int((1 - draw(seed)[0][0]).sum()) for seed in range(1, 61)]
    assert not all(s == shares[0] for s in shares)
    assert abs(sum(shares) / len(shares) - 100) < 6  # hypergeometric mean 400 * 1000 / 4000, sd ~7.5/sqrt(60)


def small_convnet():
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 32, 3),
        nn.ReLU(),
        nn.Conv2d(32, 64, 3),
        nn.ReLU(),
        nn.Conv2d(64, 64, 1),
        nn.Flatten(),
        nn.Linear(64, 10),
    )


def test_channels_last_weights_which_torch_refuses_get_the_contiguous_models_masks():
    contiguous = small_convnet()
    permuted = copy.deepcopy(contiguous).to(memory_format=torch.channels_last)
    with pytest.raises(RuntimeError):  # torch concatenates with .view(-1), which channels_last weights refuse
        tprune.global_unstructured(
            layer_pairs(copy.deepcopy(permuted)), pruning_method=tprune.L1Unstructured, amount=0.2
        )
    for _ in range(2):
        prune.global_unstructured(layer_pairs(contiguous), pruning_method=prune.L1Unstructured, amount=0.2)
        prune.global_unstructured(layer_pairs(permuted), pruning_method=prune.L1Unstructured, amount=0.2)
    for (a, _), (b, _) in zip(layer_pairs(contiguous), layer_pairs(permuted)):
        assert torch.equal(a.weight_mask, b.weight_mask)
    assert permuted[2].weight_orig.is_contiguous(memory_format=torch.channels_last)


def test_per_tensor_l1_unstructured_uses_the_kernels_and_matches_torch():
    torch.manual_seed(0)
    a, b = nn.Linear(50, 40), nn.Linear(50, 40)
    b.load_state_dict(a.state_dict())
    prune.l1_unstructured(a, "weight", amount=0.3)
    tprune.l1_unstructured(b, "weight", amount=0.3)
    assert torch.equal(a.weight_mask, b.weight_mask)
    prune.l1_unstructured(a, "weight", amount=100)  # 100 of the survivors, as torch's PruningContainer counts
    tprune.l1_unstructured(b, "weight", amount=100)
    assert torch.equal(a.weight_mask, b.weight_mask)


# ---- GlobalMagnitudePruner.prune(scores=...) ----------------------------------------------------------


def test_pruner_scores_rank_and_prune_the_weights_like_importance_scores():
    model = small_bert()
    reference = copy.deepcopy(model)
    pruner = rgprune.GlobalMagnitudePruner(model)
    g = torch.Generator().manual_seed(3)
    scores = {n: torch.randn(p.shape, generator=g) for n, p in zip(pruner.names, pruner.params)}
    saved = {n: s.clone() for n, s in scores.items()}
    report = pruner.prune(fraction=0.3, scores=scores)
    assert report.k == round(0.3 * pruner.num_weights)
    assert all(torch.equal(scores[n], saved[n]) for n in pruner.names)
    pairs = [(reference.get_submodule(n.rpartition(".")[0]), "weight") for n in pruner.names]
    prune.global_unstructured(
        pairs,
        pruning_method=prune.L1Unstructured,
        amount=0.3,
        importance_scores={p: scores[n] for p, n in zip(pairs, pruner.names)},
    )
    for (m, _), keep, p in zip(pairs, pruner.masks.to_bool(), pruner.params):
        assert torch.equal(m.weight_mask.bool(), keep)
        assert torch.all(p[~keep] == 0) and torch.equal(p[keep], m.weight_orig[keep])  # the weights are pruned
    # a list in the order of pruner.names works too; the next prune ranks the survivors only
    pruner.prune(fraction=0.5, scores=[s.abs() + 1 for s in scores.values()])
    assert pruner.num_survivors == round(0.5 * round(0.7 * pruner.num_weights))


@pytest.mark.parametrize(
    "spoil, error, match",
    [
        (lambda s: s.popitem(), ValueError, "missing"),
        (lambda s: s.update({"fc.weight": torch.zeros(1000, 512)}), ValueError, "not pruned"),
        (lambda s: s.update({"conv1.weight": torch.zeros(3)}), ValueError, "shape"),
    ],
    ids=["missing", "unknown", "shape"],
)
def test_pruner_bad_scores_raise_and_change_nothing(spoil, error, match):
    model = nn.Sequential()
    model.conv1 = nn.Conv2d(3, 8, 3)
    model.conv2 = nn.Conv2d(8, 8, 3)
    pruner = rgprune.GlobalMagnitudePruner(model)
    scores = {n: torch.rand(p.shape) for n, p in zip(pruner.names, pruner.params)}
    spoil(scores)
    before = pruner.masks.clone()
    with pytest.raises(error, match=match):
        pruner.prune(fraction=0.5, scores=scores)
    assert pruner.masks == before and pruner.density() == 1.0
    with pytest.raises(TypeError, match="dict name -> tensor"):
        pruner.prune(fraction=0.5, scores=torch.zeros(3))


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU present")
def test_prune_by_scores_peak_extra_memory_is_one_tensor():
    device = torch.device("cuda")
    sizes = [1 << 22, 1 << 20, 3 << 20, 1 << 21]
    weights = [torch.randn(n, device=device) for n in sizes]
    scores = [torch.randn(n, device=device) for n in sizes]
    masks = rgprune.MaskSet.ones(weights).words
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    rgprune.ops.prune_by_scores_(scores, masks, sum(sizes) // 3, weights)
    torch.cuda.synchronize()
    extra = torch.cuda.max_memory_allocated() - base
    largest = max(sizes) * 4
    assert extra <= largest + largest // 4 + (1 << 20), (extra, largest)  # one tensor + small workspaces


def test_prune_by_scores_splits_a_tie_group_across_tensors_in_model_order():
    """Guards against prune_by_scores_'s per-tensor tie shares (an info vector of the wrong layout refused by the
    kernels, or ties taken from the wrong tensor): the masks are those the reference cuts from the scores."""
    from rgprune.kernels import reference

    scores = [torch.tensor([1.0, 1.0, 1.0, 2.0]), torch.tensor([1.0, -1.0, 3.0])]
    weights = [torch.randn(4), torch.randn(3)]
    masks = rgprune.MaskSet.ones(weights).words
    result = rgprune.ops.prune_by_scores_(scores, masks, 4, weights)
    want_masks = rgprune.MaskSet.ones(weights).words
    reference.apply_threshold_([s.clone() for s in scores], want_masks, result.threshold.info, 12)
    assert (result.threshold.n_ties, result.threshold.n_equal) == (4, 5)
    assert all(torch.equal(m, w) for m, w in zip(masks, want_masks))
    assert [(w == 0).sum().item() for w in weights] == [3, 1]
