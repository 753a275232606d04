"""pytest-benchmark: one optimizer step with the masks kept applied (torch.prune's forward-pre-hook
reparametrization, rgprune's ``attach``) against no pruning, on small models at density 0.41.

After timing, each test checks the steps it timed (``check_steps``): the weights trained (finite, changed),
and with the masks kept applied the pruned weights (and, for rgprune, their optimizer state) are still zero,
+0.0 by bit pattern, with the survivor count unchanged; without pruning they grew back, which shows the check
can fail."""

import copy
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import pytest  # noqa: E402
import torch  # noqa: E402

from bench.test_bench_prune import DEVICES  # noqa: E402
from rgprune.benchmark.measure import sync  # noqa: E402
from rgprune.benchmark.methods import make_states, pairs  # noqa: E402
from rgprune.benchmark.training import loss, make_batch, optimizer  # noqa: E402
from rgprune.benchmark.workloads import WORKLOADS  # noqa: E402
from rgprune.kernels.format import unpack_mask  # noqa: E402
from rgprune.masks import MaskSet  # noqa: E402
from rgprune.pruner import GlobalMagnitudePruner, select_prunable  # noqa: E402

MODELS = ["resnet20", "bert-tiny"]
_CACHE = {}


def _base(name, device):
    key = (name, device)
    if key not in _CACHE:
        _CACHE.clear()
        spec = WORKLOADS[name]
        torch.manual_seed(0)
        model = spec.build(torch.device(device))
        named = select_prunable(model, **spec.select)
        names = [n for n, _ in named]
        state = make_states([p.detach() for _, p in named])[5]
        _CACHE[key] = (spec, model, names, state)
    return _CACHE[key]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("variant", ["no_pruning", "torch_prune", "rgprune_attach"])
@pytest.mark.parametrize("name", MODELS)
def test_training_step(benchmark, name, variant, device):
    spec, base, names, state = _base(name, device)
    train = spec.train
    model = copy.deepcopy(base).train()
    params = dict(model.named_parameters())
    with torch.no_grad():
        for n, w in zip(names, state.weights):
            params[n].copy_(w)
    shapes = [w.shape for w in state.weights]
    if variant == "torch_prune":
        MaskSet([m.clone() for m in state.masks], shapes, names).to_torch_prune(pairs(model, names))
    opt = optimizer(train, model.parameters())
    pruner = None
    if variant == "rgprune_attach":
        pruner = GlobalMagnitudePruner(model, masks_from="zeros", **spec.select)  # the state is pruned already
        pruner.masks = MaskSet([m.clone() for m in state.masks], shapes, names)
        pruner.attach(opt)
    batch = make_batch(train, device)
    benchmark.group = f"training step: {name} ({train['optimizer']}) on {device}"

    def step():
        opt.zero_grad(set_to_none=True)
        loss(train, model, batch).backward()
        opt.step()
        sync(device)

    step()  # optimizer state is created on the first step
    benchmark(step)
    check_steps(variant, model, opt, names, state, pruner)


def check_steps(variant, model, opt, names, state, pruner):
    params = dict(model.named_parameters())
    keep = [unpack_mask(m, w.numel()).reshape(w.shape) for w, m in zip(state.weights, state.masks)]
    grew_back = 0
    for name, w0, k in zip(names, state.weights, keep):
        if variant == "torch_prune":
            module = model.get_submodule(name.rpartition(".")[0])
            mask = module.weight_mask.bool()
            assert torch.equal(mask, k), name  # the masks are the state's
            w = (module.weight_orig * module.weight_mask).detach()  # the weight torch.prune's hook computes
        else:
            w = params[name].detach()
        assert bool(torch.isfinite(w).all()), name
        assert not torch.equal(w[k], w0[k]), f"{name}: the survivors did not train"
        if variant == "rgprune_attach":
            assert bool((w.view(torch.int32)[~k] == 0).all()), f"{name}: a pruned weight is not +0.0"
            for moment in opt.state[params[name]].values():
                if torch.is_tensor(moment) and moment.shape == w.shape:
                    assert bool((moment[~k] == 0).all()), f"{name}: a pruned weight's optimizer state is not 0"
        elif variant == "torch_prune":
            assert bool((w[~k] == 0).all()), f"{name}: a pruned weight is not zero"
        else:
            grew_back += int((w[~k] != 0).sum())
    if variant == "no_pruning":
        assert grew_back > 0, "without pruning the pruned weights should train away from zero"
    if variant == "rgprune_attach":
        assert pruner.num_survivors == state.survivors
        assert all(torch.equal(a, b) for a, b in zip(pruner.masks.words, state.masks))
