"""The pruner sees through torch.compile's OptimizedModule as through DDP (same names, selection and state
as on the plain model), and attach() takes wrapped optimizers: Accelerate's AcceleratedOptimizer (which
subclasses Optimizer without its step hooks) and any wrapper exposing the optimizer as ``.optimizer``."""

import copy

import pytest
import torch
from torch import nn

import rgprune
from rgprune.models import build_model


def resnet20(seed=0):
    return build_model("resnet20", 10, in_channels=1, seed=seed)


def batch(seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(8, 1, 8, 8, generator=g), torch.randint(0, 10, (8,), generator=g)


def step(model, optimizer, seed=0):
    x, y = batch(seed)
    optimizer.zero_grad()
    nn.functional.cross_entropy(model(x), y).backward()
    optimizer.step()


def assert_masked(pruner, optimizer_state, keys):
    for p, keep in zip(pruner.params, pruner.masks.to_bool()):
        assert torch.all(p[~keep] == 0)
        for key in keys:
            assert torch.all(optimizer_state[p][key][~keep] == 0), key


def test_compiled_model_has_the_plain_models_names_selection_and_state():
    model = resnet20()
    plain = rgprune.GlobalMagnitudePruner(copy.deepcopy(model))
    compiled = torch.compile(model, backend="eager")
    assert any(n.startswith("_orig_mod.") for n, _ in compiled.named_parameters())
    pruner = rgprune.GlobalMagnitudePruner(compiled)
    assert pruner.names == plain.names and "fc.weight" not in pruner.names  # prune_head=False holds
    init = copy.deepcopy(compiled.state_dict())  # keys carry the "_orig_mod." prefix
    plain.prune(fraction=0.3)
    pruner.prune(fraction=0.3)
    assert pruner.masks == plain.masks
    optimizer = torch.optim.SGD(compiled.parameters(), lr=0.05, momentum=0.9)
    pruner.attach(optimizer)
    step(compiled, optimizer)  # a compiled forward and backward, masks kept
    assert_masked(pruner, optimizer.state, ["momentum_buffer"])
    pruner.rewind(init)  # the compiled wrapper's own state dict is accepted, as DDP's
    keeps = dict(zip(pruner.names, pruner.masks.to_bool()))
    for name, value in model.state_dict().items():
        expected = init["_orig_mod." + name]
        assert torch.equal(value, expected * keeps[name] if name in keeps else expected), name
    # state loads across compiled and uncompiled models, both ways
    uncompiled = rgprune.GlobalMagnitudePruner(resnet20(seed=1))
    uncompiled.load_state_dict(pruner.state_dict())
    assert uncompiled.masks == pruner.masks
    again = rgprune.GlobalMagnitudePruner(torch.compile(resnet20(seed=2), backend="eager"))
    again.load_state_dict(plain.state_dict())
    assert again.masks == plain.masks


class StepWrapper:
    """A minimal optimizer wrapper (as LR-warmup or gradient-scaling libraries write them)."""

    def __init__(self, optimizer):
        self.optimizer = optimizer

    @property
    def state(self):
        return self.optimizer.state

    def step(self):
        self.optimizer.step()

    def zero_grad(self):
        self.optimizer.zero_grad()


def test_attach_takes_a_wrapper_exposing_the_optimizer_and_refuses_other_objects():
    model = resnet20()
    pruner = rgprune.GlobalMagnitudePruner(model)
    pruner.prune(fraction=0.5)
    inner = torch.optim.Adam(model.parameters(), lr=1e-2)
    wrapped = StepWrapper(StepWrapper(inner))
    pruner.attach(wrapped)
    for seed in range(3):
        step(model, wrapped, seed)
    assert_masked(pruner, inner.state, ["exp_avg", "exp_avg_sq"])
    with pytest.raises(ValueError, match="already attached"):
        pruner.attach(inner)  # the same optimizer, seen through the wrapper
    with pytest.raises(TypeError, match=r"\.optimizer"):
        rgprune.GlobalMagnitudePruner(resnet20()).attach(object())


def test_attach_takes_accelerates_accelerated_optimizer():
    accelerate = pytest.importorskip("accelerate")
    model = resnet20()
    pruner = rgprune.GlobalMagnitudePruner(model)
    pruner.prune(fraction=0.5)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    accelerated = accelerate.Accelerator(cpu=True).prepare(optimizer)
    assert type(accelerated).__name__ == "AcceleratedOptimizer" and isinstance(accelerated, torch.optim.Optimizer)
    pruner.attach(accelerated)
    for seed in range(3):
        step(model, accelerated, seed)
    assert_masked(pruner, optimizer.state, ["exp_avg", "exp_avg_sq"])
