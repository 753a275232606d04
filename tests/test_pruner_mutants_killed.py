"""rgprune.pruner.GlobalMagnitudePruner, method by method: the tests that kill the mutants `make mutation
AREA=pruner` found alive (docs/mutation.md). Small hand-built models only."""

import copy
import dataclasses
import gc
import warnings
import weakref

import pytest
import torch
from torch import nn

from rgprune import GlobalMagnitudePruner


def mlp(n=3, width=8):
    torch.manual_seed(0)
    return nn.Sequential(*[nn.Linear(width, width) for _ in range(n)])


def test_meta_parameters_are_refused_naming_the_first_three():
    with torch.device("meta"):
        model = mlp(5)
    with pytest.raises(ValueError, match=r"e\.g\. \['0\.weight', '1\.weight', '2\.weight'\]\): there are no"):
        GlobalMagnitudePruner(model)


def test_the_already_pruned_warning_points_at_the_users_line():
    model = mlp(2, 20)
    with torch.no_grad():
        for layer in model:
            layer.weight[:, :15] = 0
    with pytest.warns(RuntimeWarning, match="exactly 0") as w:
        GlobalMagnitudePruner(model)
    assert w[0].filename == __file__


def test_scores_by_name_must_match_the_pruned_names_exactly():
    pruner = GlobalMagnitudePruner(mlp(5))
    scores = {n: torch.rand(8, 8) for n in pruner.names}
    with pytest.raises(ValueError, match=r"missing \['0\.weight'\], not pruned \[\]"):
        pruner.prune(0.5, scores={n: s for n, s in scores.items() if n != "0.weight"})
    with pytest.raises(ValueError, match=r"missing \[\], not pruned \['head\.weight'\]"):
        pruner.prune(0.5, scores={**scores, "head.weight": torch.rand(8, 8)})
    with pytest.raises(ValueError, match=r"missing \['0\.weight', '1\.weight', '2\.weight'\], not"):
        pruner.prune(0.5, scores={"4.weight": scores["4.weight"]})  # four missing: the first three named
    extra = {f"x{i}.weight": torch.rand(8, 8) for i in range(4)}
    with pytest.raises(ValueError, match=r"not pruned \['x0\.weight', 'x1\.weight', 'x2\.weight'\]$"):
        pruner.prune(0.5, scores={**scores, **extra})
    assert pruner.density() == 1.0


def test_scores_as_a_list_in_the_order_of_names_rank_as_the_dict_does():
    a, b = GlobalMagnitudePruner(mlp()), GlobalMagnitudePruner(mlp())
    scores = {n: torch.rand(8, 8, generator=torch.Generator().manual_seed(i)) for i, n in enumerate(a.names)}
    a.prune(0.5, scores=scores)
    b.prune(0.5, scores=[scores[n] for n in b.names])
    assert a.masks == b.masks and a.density() == 0.5


def test_the_emptied_layers_warning_names_four_and_points_at_the_users_line():
    model = mlp(6)
    with torch.no_grad():
        for layer in model[:5]:
            layer.weight.mul_(1e-6)  # far below the last layer's: global ranking empties them first
    pruner = GlobalMagnitudePruner(model)
    with pytest.warns(RuntimeWarning, match="removed every weight") as w:
        pruner.prune(target_density=1 / 6)
    message = str(w[0].message)
    assert "['0.weight', '1.weight', '2.weight', '3.weight'] ...: the layer" in message
    assert w[0].filename == __file__
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        pruner.prune(0.1)  # the same layers are not reported twice
    four = mlp(5)
    with torch.no_grad():
        for layer in four[:4]:
            layer.weight.mul_(1e-6)
    with pytest.warns(RuntimeWarning, match="removed every weight") as w:
        GlobalMagnitudePruner(four).prune(target_density=1 / 5)
    assert "['0.weight', '1.weight', '2.weight', '3.weight']: the layer" in str(w[0].message)  # all four, no "..."


def channels_last_convs(momentum=0.0):
    """Two channels_last convolutions with an attached pruner: (model, optimizer, pruner, one step of training)."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Conv2d(8, 8, 3)).to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=momentum)
    pruner = GlobalMagnitudePruner(model)
    pruner.attach(optimizer)
    x = torch.randn(2, 3, 8, 8).contiguous(memory_format=torch.channels_last)

    def step():
        optimizer.zero_grad()
        model(x).square().sum().backward()
        optimizer.step()

    return model, optimizer, pruner, step


def assert_pruned_weights_are_zero(pruner):
    for w, keep in zip(pruner.params, pruner.masks.to_bool()):  # read apart from the pruner's own cache
        assert (w.detach()[~keep] == 0).all()  # no pruned weight has grown back


def test_the_step_hook_keeps_the_newest_masks_of_channels_last_weights():
    """The step hook caches channels_last masks in storage order: a prune must invalidate that cache, or the
    weights it pruned grow back at the next optimizer step."""
    _, _, pruner, step = channels_last_convs(momentum=0.9)  # channels_last momentum buffers too
    for fraction in (0.3, 0.5):
        pruner.prune(fraction)
        step()
        assert_pruned_weights_are_zero(pruner)


def test_new_masks_set_on_the_pruner_replace_the_step_hooks_cached_ones():
    model, _, pruner, step = channels_last_convs()
    other = GlobalMagnitudePruner(copy.deepcopy(model))
    other.prune(0.6)
    for load in (False, True):
        if load:
            old_words = weakref.ref(pruner.masks.words[0])
            pruner.load_state_dict(other.state_dict())  # the masks setter: the cache must be dropped
        step()
    assert_pruned_weights_are_zero(pruner)
    gc.collect()
    assert old_words() is None  # the step hook's cache no longer holds the replaced masks


@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed is not available")
def test_a_replicated_pruner_of_one_tensor_checks_its_ranks_and_prunes():
    import torch.distributed as dist

    if dist.is_initialized():
        pytest.skip("a default process group already exists in this process")
    dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
    try:
        pruner = GlobalMagnitudePruner(nn.Sequential(nn.Linear(8, 8)), prune_head=True, process_group="default")
        assert pruner.prune(fraction=0.5).k == 32 and pruner.density() == 0.5
    finally:
        dist.destroy_process_group()


@pytest.mark.parametrize("density", [-0.5, 1.5, True, "0.5"])
def test_a_target_density_outside_zero_to_one_is_refused_with_its_own_message(density):
    pruner = GlobalMagnitudePruner(mlp())
    with pytest.raises(ValueError, match=r"target_density must be a number in \[0, 1\], got"):
        pruner.prune(target_density=density)
    assert pruner.density() == 1.0


@pytest.mark.parametrize("scores", [torch.rand(8, 8), 3], ids=["one-tensor", "a-number"])
def test_scores_that_are_neither_a_dict_nor_a_list_are_refused(scores):
    pruner = GlobalMagnitudePruner(mlp())
    with pytest.raises(TypeError, match="scores must be a dict name -> tensor or a list in the order of pruner.names"):
        pruner.prune(0.5, scores=scores)
    assert pruner.density() == 1.0


def test_a_few_exact_zeros_are_no_sign_of_an_already_pruned_model():
    model = mlp(2, 20)
    with torch.no_grad():
        model[0].weight[0, :5] = 0  # 5 of 800 weights: trained weights can be exactly 0
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        GlobalMagnitudePruner(model)


def test_statistics_have_4096_bins_by_default():
    pruner = GlobalMagnitudePruner(mlp())
    assert pruner.stats().histogram.numel() == 4096
    assert pruner.prune(0.5).stats.histogram.numel() == 4096


def test_a_target_density_equal_to_the_current_one_prunes_nothing():
    pruner = GlobalMagnitudePruner(mlp())
    pruner.prune(0.5)
    report = pruner.prune(target_density=0.5)
    assert report.k == 0 and pruner.density() == 0.5


def test_a_tied_parameter_selected_by_its_second_name_is_found():
    """include may name a tied parameter by a later name (the head of a model that ties it to the embedding):
    the pruner must find it under that name."""
    model = nn.Sequential(nn.Embedding(10, 8), nn.Linear(8, 10, bias=False))
    model[1].weight = model[0].weight
    pruner = GlobalMagnitudePruner(model, include="1.weight")
    assert pruner.names == ["1.weight"] and pruner.params[0] is model[0].weight
    pruner.prune(0.5)
    assert int((model[0].weight == 0).sum()) == 40


def test_loaded_masks_are_the_pruners_own_copy_on_its_device():
    a, b = GlobalMagnitudePruner(mlp(1)), GlobalMagnitudePruner(mlp(1))
    a.prune(0.5)
    b.load_state_dict(a.state_dict())
    assert b.masks == a.masks and b.masks.words[0].device == b.params[0].device
    b.prune(0.5)
    assert a.density() == 0.5 and b.density() == 0.25


def test_a_bad_score_in_a_list_is_named_with_what_it_is():
    pruner = GlobalMagnitudePruner(mlp(2))
    with pytest.raises(ValueError, match=r"the score of 1\.weight must be a tensor of its shape \(8, 8\), got list"):
        pruner.prune(0.5, scores=[torch.rand(8, 8), [1.0] * 64])
    with pytest.raises(ValueError, match=r"the score of 0\.weight must be a tensor of its shape \(8, 8\), got \(64,\)"):
        pruner.prune(0.5, scores=[torch.rand(64), torch.rand(8, 8)])


def test_check_warns_at_the_users_line_naming_three_grown_tensors():
    model = mlp(5)
    pruner = GlobalMagnitudePruner(model)
    pruner.prune(0.5)
    with torch.no_grad():
        for layer in model:
            layer.weight.add_(1.0)  # every pruned weight grows back
    with pytest.warns(
        RuntimeWarning, match=r"\(e\.g\. \{'0\.weight': \d+, '1\.weight': \d+, '2\.weight': \d+\}\)"
    ) as w:
        grown = pruner.check()
    assert w[0].filename == __file__ and sum(grown.values()) == 160


def test_a_rewind_state_with_foreign_entries_names_three():
    model = mlp(1)
    pruner = GlobalMagnitudePruner(model)
    state = {**model.state_dict(), **{f"extra{i}": torch.zeros(1) for i in range(4)}}
    with pytest.raises(ValueError, match=r"lacks, e\.g\. \['extra0', 'extra1', 'extra2'\]$"):
        pruner.rewind(state)
    partial = {k: v for k, v in mlp(5).state_dict().items() if not k.startswith(("0.", "1.", "2.", "3."))}
    with pytest.raises(
        ValueError, match=r"lacks 4 pruned parameters, e\.g\. \['0\.weight', '1\.weight', '2\.weight'\];"
    ):
        GlobalMagnitudePruner(mlp(5)).rewind(partial)


def test_pruning_by_scores_refuses_weights_grown_outside_the_masks():
    """Scores do not read the weights, so the threshold's own count of weights outside the masks is missing:
    prune(scores=) checks them first and changes nothing."""
    model = mlp()
    pruner = GlobalMagnitudePruner(model)
    pruner.prune(0.5)
    with torch.no_grad():
        model[0].weight.add_(1.0)
    before = pruner.masks.clone()
    with pytest.raises(ValueError, match="before pruning"):
        pruner.prune(0.2, scores={n: torch.rand(8, 8) for n in pruner.names})
    assert pruner.masks == before


def test_target_densities_zero_and_one_are_valid():
    pruner = GlobalMagnitudePruner(mlp())
    assert pruner.prune(target_density=1.0).k == 0 and pruner.density() == 1.0
    with pytest.warns(RuntimeWarning, match="removed every weight"):  # every layer emptied, as asked
        assert pruner.prune(target_density=0).k == pruner.num_weights and pruner.density() == 0.0


def test_a_prune_report_cannot_be_changed_after_the_fact():
    report = GlobalMagnitudePruner(mlp()).prune(fraction=0.5)
    with pytest.raises(dataclasses.FrozenInstanceError):
        report.k = 0


def test_a_tensor_with_no_weights_is_not_warned_about_as_emptied():
    """Global ranking empties a layer only when it had weights to remove: a zero-element weight (a Linear with
    no inputs) reports density 1.0 and no layer-collapse warning."""
    model = nn.Sequential(nn.Linear(0, 4, bias=False), nn.Linear(4, 4, bias=False))
    pruner = GlobalMagnitudePruner(model, prune_head=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        pruner.prune(fraction=0.5)
    assert pruner.layer_densities() == {"0.weight": 1.0, "1.weight": 0.5}


@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed is not available")
def test_a_sharded_pruner_counts_a_tensor_with_no_weights_as_dense():
    """FSDP2 (fully_shard) on one gloo rank: the sharded densities come from all_reduced counts, where a tensor
    with no weights, or a model with none at all, is dense (1.0), as the unsharded MaskSet says."""
    import torch.distributed as dist
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    if dist.is_initialized():
        pytest.skip("a default process group already exists in this process")
    dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
    try:
        mesh = init_device_mesh("cpu", (1,))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # torch: "Initializing zero-element tensors is a no-op"
            mixed, empty = (
                nn.Sequential(nn.Linear(0, 4, bias=False), nn.Linear(4, 4, bias=False)),
                nn.Sequential(nn.Linear(0, 4, bias=False)),
            )
        pruners = []
        for model in (mixed, empty):
            fully_shard(model, mesh=mesh)
            pruners.append(GlobalMagnitudePruner(model, prune_head=True, process_group="default"))
        assert all(p.sharded for p in pruners)
        pruners[0].prune(fraction=0.5)
        assert pruners[0].layer_densities() == {"0.weight": 1.0, "1.weight": 0.5}
        assert pruners[1].density() == 1.0 and pruners[1].layer_densities() == {"0.weight": 1.0}
    finally:
        dist.destroy_process_group()


def test_the_masks_follow_the_model_to_another_device_without_a_gpu():
    """``model.to(device)`` moves the weights; the pruner's next use moves the masks after them. The meta device
    stands in for a GPU here (tests/test_pruner.py runs the real move on CUDA where one is present)."""
    pruner = GlobalMagnitudePruner(mlp(2), prune_head=True)
    pruner.prune(fraction=0.5)
    before = pruner.masks
    pruner.apply_masks()
    assert pruner.masks is before  # on the same device the masks stay what they are
    pruner.model.to("meta")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the reference kernels run on meta
        pruner.apply_masks()
    assert {w.device.type for w in pruner.masks.words} == {"meta"}


def test_exactly_the_share_of_zeros_that_warns_does_not_warn():
    """The already-pruned warning needs more than ALREADY_PRUNED_SHARE (5 %) of the weights exactly 0."""
    from rgprune.pruner import ALREADY_PRUNED_SHARE

    model = mlp(1, 20)  # one 20x20 weight (the head, with prune_head=True): 400 weights
    with torch.no_grad():
        model[0].weight.view(-1)[: int(ALREADY_PRUNED_SHARE * 400)] = 0  # 20 of 400: exactly 5 %
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        GlobalMagnitudePruner(model, prune_head=True)
    with torch.no_grad():
        model[0].weight.view(-1)[20] = 0
    with pytest.warns(RuntimeWarning, match="5.2% of the selected weights are exactly 0"):
        GlobalMagnitudePruner(model, prune_head=True)
