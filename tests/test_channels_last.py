"""Dense weights in any memory layout (channels_last, channels_last_3d, transposed) are pruned in place in
their own layout, with masks and ties in logical row-major order: the same masks and weights as the same
model in the contiguous layout, on every backend; the optimizer state is re-masked in whatever layout it
has. Tensors whose elements overlap or leave gaps are refused."""

import copy

import pytest
import torch
from torch import nn

import rgprune
from rgprune.kernels import extension

CL = torch.channels_last


def resnet18():
    import torchvision

    torch.manual_seed(0)
    return torchvision.models.resnet18(weights=None)


def plant_ties(model, value=0.0123, every=37):
    """A group of equal magnitudes (both signs) spread over two conv weights, at logical positions whose
    storage order differs under channels_last. Returns how many were planted."""
    planted = 0
    with torch.no_grad():
        for name in ("layer2.0.conv1.weight", "layer3.0.conv2.weight"):
            w = model.get_parameter(name)
            flat = torch.zeros(w.numel(), dtype=torch.bool)
            flat[::every] = True
            signs = torch.where(torch.arange(w.numel()) % 2 == 0, 1.0, -1.0)
            w.copy_(torch.where(flat, signs * value, w.detach().reshape(-1)).reshape(w.shape))
            planted += int(flat.sum())
    return planted


def target_splitting_ties(pruner, value):
    """A target density whose threshold is ``value`` and prunes about half of the weights equal to it."""
    below = equal = 0
    with torch.no_grad():
        for p, keep in zip(pruner.params, pruner.masks.to_bool()):
            survivors = p.abs()[keep]
            below += int((survivors < value).sum())
            equal += int((survivors == value).sum())
    keep = pruner.num_survivors - (below + equal // 2)
    return keep / pruner.num_weights, equal


def assert_same_pruning(plain, permuted):
    assert permuted.masks == plain.masks
    assert all(torch.equal(a, b) for a, b in zip(plain.masks.to_bool(), permuted.masks.to_bool()))
    assert all(torch.equal(a, b) for a, b in zip(plain.params, permuted.params))  # values, whatever the layout
    saved_plain, saved_perm = plain.state_dict()["masks"], permuted.state_dict()["masks"]
    assert all(torch.equal(a, b) for a, b in zip(saved_plain["words"], saved_perm["words"]))


def test_resnet18_channels_last_prunes_like_contiguous_for_three_rounds_with_a_split_tie_group():
    contiguous = resnet18()
    value = 0.0123
    planted = plant_ties(contiguous, value)
    permuted = copy.deepcopy(contiguous).to(memory_format=CL)
    conv = permuted.get_parameter("layer2.0.conv1.weight")
    assert not conv.is_contiguous() and conv.is_contiguous(memory_format=CL)
    pointers = [p.data_ptr() for p in permuted.parameters()]
    plain, cl = rgprune.GlobalMagnitudePruner(contiguous), rgprune.GlobalMagnitudePruner(permuted)
    split_seen = False
    for round_ in range(3):
        if round_ == 1:  # the threshold falls inside the planted group: ties split, in logical order
            density, equal = target_splitting_ties(plain, value)
            assert equal == planted
            a, b = plain.prune(target_density=density), cl.prune(target_density=density)
            assert 0 < a.threshold.n_ties < a.threshold.n_equal == planted
            split_seen = True
        else:
            a, b = plain.prune(fraction=0.2), cl.prune(fraction=0.2)
        assert (a.k, a.threshold.key, a.threshold.n_ties) == (b.k, b.threshold.key, b.threshold.n_ties)
        assert torch.equal(a.stats.counts, b.stats.counts) and torch.equal(a.stats.histogram, b.stats.histogram)
        assert_same_pruning(plain, cl)
    assert split_seen
    # pruned in place, in their own layout
    assert [p.data_ptr() for p in permuted.parameters()] == pointers
    assert conv.is_contiguous(memory_format=CL)
    # the torch.nn.utils.prune export installs the same masks
    cl.export_torch_prune()
    plain.export_torch_prune()
    for name in ("layer2.0.conv1.weight", "layer3.0.conv2.weight", "layer4.1.conv2.weight"):
        module = name.rpartition(".")[0]
        assert torch.equal(contiguous.get_submodule(module).weight_mask, permuted.get_submodule(module).weight_mask)


def first_ties_in_logical_order(keep_before, keep_after, weights, value):
    """The pruned ties are exactly the first ones in logical row-major order, over the tensors in order."""
    ties = torch.cat([(w.abs() == value).reshape(-1) & k.reshape(-1) for w, k in zip(weights, keep_before)])
    pruned = torch.cat([(kb & ~ka).reshape(-1) for kb, ka in zip(keep_before, keep_after)])
    pruned_ties = (ties & pruned).nonzero().flatten()
    n = pruned_ties.numel()
    assert n > 0 and torch.equal(pruned_ties, ties.nonzero().flatten()[:n])


LAYOUTS = {
    "channels_last": lambda: torch.randn(6, 5, 4, 3).to(memory_format=CL),
    "channels_last_3d": lambda: torch.randn(4, 3, 2, 5, 3).to(memory_format=torch.channels_last_3d),
    "transposed": lambda: torch.randn(9, 7).t(),
    "permuted": lambda: torch.randn(3, 4, 5).permute(2, 0, 1),
}


def tensors_with_ties(layout, device, value):
    """Three tensors, the middle one in ``layout``, with many survivors of magnitude ``value`` (both signs)."""
    torch.manual_seed(0)
    tensors = [torch.randn(3, 11), LAYOUTS[layout](), torch.randn(40)]
    for t in tensors:
        small = t.abs() < 0.4
        t[small] = value * torch.sign(t[small])
    return [t.to(device) for t in tensors]


@pytest.mark.parametrize("backend", ["compiled", "reference"])
@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_split_ties_go_in_logical_order_in_every_layout_and_backend(layout, backend, device, monkeypatch):
    if backend == "reference":
        monkeypatch.setattr(extension, "compiled_for", lambda *args, **kwargs: False)
    elif extension.module is None:
        pytest.skip("the compiled extension is not built")
    value = 0.25
    stride = LAYOUTS[layout]().stride()
    equal = [int((t.abs() == value).sum()) for t in tensors_with_ties(layout, "cpu", value)]
    # the ties run out inside the permuted tensor, then inside the last one (the permuted one pruned whole)
    for n_ties in (equal[0] + equal[1] // 2, equal[0] + equal[1] + equal[2] // 2):
        permuted = tensors_with_ties(layout, device, value)
        contiguous = [t.contiguous() for t in permuted]
        assert not permuted[1].is_contiguous()
        below = sum(int((t.abs() < value).sum()) for t in contiguous)
        masks_c, masks_p = rgprune.MaskSet.ones(contiguous), rgprune.MaskSet.ones(permuted)
        rc = rgprune.prune_global_(contiguous, masks_c.words, below + n_ties)
        rp = rgprune.prune_global_(permuted, masks_p.words, below + n_ties)
        assert 0 < rc.threshold.n_ties < rc.threshold.n_equal == sum(equal)
        assert masks_c == masks_p
        assert all(torch.equal(a, b) for a, b in zip(contiguous, permuted))
        assert torch.equal(rc.stats.counts, rp.stats.counts)
        assert permuted[1].stride() == stride  # pruned in its own layout
        fresh = [t.contiguous().cpu() for t in tensors_with_ties(layout, "cpu", value)]
        first_ties_in_logical_order(
            [torch.ones_like(t, dtype=torch.bool) for t in fresh], [k.cpu() for k in masks_p.to_bool()], fresh, value
        )


OPTIMIZERS = {
    "sgd-momentum": (lambda ps: torch.optim.SGD(ps, lr=0.05, momentum=0.9), ["momentum_buffer"]),
    "adam": (lambda ps: torch.optim.Adam(ps, lr=1e-2), ["exp_avg", "exp_avg_sq"]),
}


class SmallConvNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3, padding=1)
        self.conv2 = nn.Conv2d(16, 16, 3, padding=1)
        self.fc = nn.Linear(16, 10)

    def forward(self, x):
        x = torch.relu(self.conv2(torch.relu(self.conv1(x))))
        return self.fc(x.mean((2, 3)))


def train(model, optimizer, steps, seed=0):
    g = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        x = torch.randn(8, 3, 8, 8, generator=g).to(memory_format=CL)
        y = torch.randint(0, 10, (8,), generator=g)
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_optimizer_state_in_channels_last_and_in_another_layout_stays_zero(name):
    make, keys = OPTIMIZERS[name]
    torch.manual_seed(0)
    model = SmallConvNet().to(memory_format=CL)
    pruner = rgprune.GlobalMagnitudePruner(model)
    pruner.prune(fraction=0.5)
    optimizer = make(model.parameters())
    train(model, optimizer, 1)  # creates the state, channels_last like the weights
    conv2 = model.conv2.weight
    assert optimizer.state[conv2][keys[0]].is_contiguous(memory_format=CL)
    # a state loaded from elsewhere may come in another layout than its weight: contiguous here
    optimizer.state[conv2][keys[0]] = optimizer.state[conv2][keys[0]].contiguous()
    pruner.attach(optimizer)

    def assert_zero():
        for p, keep in zip(pruner.params, pruner.masks.to_bool()):
            assert torch.all(p[~keep] == 0) and p.is_contiguous(memory_format=CL)
            for key in keys:
                assert torch.all(optimizer.state[p][key][~keep] == 0), key
                assert optimizer.state[p][key][keep].abs().sum() > 0, key

    assert_zero()
    train(model, optimizer, 3, seed=1)
    assert_zero()
    assert optimizer.state[conv2][keys[0]].is_contiguous()  # each tensor keeps its own layout
    pruner.prune(fraction=0.5)  # new masks while attached: the hook must use them, not stale ones
    train(model, optimizer, 3, seed=2)
    assert_zero()
    assert abs(pruner.density() - 0.25) < 1e-3


def test_non_dense_weights_are_refused_with_the_fix():
    model = nn.Linear(8, 8)
    model.weight = nn.Parameter(torch.randn(8, 16)[:, ::2])  # a strided slice: gaps in memory
    pruner = rgprune.GlobalMagnitudePruner(model, prune_head=True)
    with pytest.raises(ValueError, match=r"not dense.*contiguous\(\)"):
        pruner.prune(fraction=0.5)
