"""pytest-benchmark: one optimizer step with the masks kept applied (torch.prune's forward-pre-hook
reparametrization, rgprune's ``attach``) against no pruning, on small models at density 0.41."""
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
    if variant == "rgprune_attach":
        pruner = GlobalMagnitudePruner(model, **spec.select)
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
