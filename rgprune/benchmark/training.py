"""Keeping masks applied during training: one optimizer step with no pruning, with torch.prune's
forward-pre-hook reparametrization and with rgprune's ``attach`` (``apply_masks_`` after the step)."""

from __future__ import annotations

import copy

import torch

import rgprune
from rgprune.benchmark.measure import interleaved, ratio, sync
from rgprune.benchmark.methods import pairs
from rgprune.masks import MaskSet
from rgprune.pruner import GlobalMagnitudePruner

VARIANTS = ("no_pruning", "torch_prune", "rgprune_attach")


def make_batch(train: dict, device):
    """A fixed random batch: images and labels (``kind="vision"``) or token ids and an attention mask."""
    g = torch.Generator().manual_seed(0)
    if train["kind"] == "vision":
        x = torch.randn(train["batch"], 3, train["image"], train["image"], generator=g)
        y = torch.randint(0, train["classes"], (train["batch"],), generator=g)
        return x.to(device), y.to(device)
    ids = torch.randint(0, train["vocab"], (train["batch"], train["seq"]), generator=g)
    return ids.to(device), torch.ones_like(ids).to(device)


def loss(train: dict, model, batch):
    if train["kind"] == "vision":
        x, y = batch
        return torch.nn.functional.cross_entropy(model(x), y)
    ids, attn = batch
    out = model(input_ids=ids, attention_mask=attn)
    return out.last_hidden_state.float().pow(2).mean() + out.pooler_output.float().pow(2).mean()


def optimizer(train: dict, params):
    if train["optimizer"] == "sgd":
        return torch.optim.SGD(params, lr=0.01, momentum=0.9)
    return torch.optim.AdamW(params, lr=1e-4)


def _setup(kind, workload, model, names, state):
    """A copy of ``model`` holding the state's weights, its optimizer and (rgprune_attach) its pruner."""
    m = copy.deepcopy(model).train()
    params = dict(m.named_parameters())
    with torch.no_grad():
        for n, w in zip(names, state.weights):
            params[n].copy_(w)
    shapes = [w.shape for w in state.weights]
    pruner = None
    if kind == "torch_prune":
        MaskSet([x.clone() for x in state.masks], shapes, names).to_torch_prune(pairs(m, names))
    opt = optimizer(workload.train, m.parameters())
    if kind == "rgprune_attach":
        pruner = GlobalMagnitudePruner(m, masks_from="zeros", **workload.select)  # the state is pruned already
        assert pruner.names == names
        pruner.masks = MaskSet([x.clone() for x in state.masks], shapes, names)
        pruner.apply_masks()
        pruner.attach(opt)
    return m, opt, pruner


def _mask_reapplication(pruner, opt, device, reps) -> dict:
    """The cost of re-applying the masks after a step (what attach's hook does: weights + optimizer state)
    against one read + write pass over the same tensors."""
    tensors, masks = pruner.masked_tensors(opt)
    with torch.no_grad():
        hook = interleaved(
            {
                "apply_masks_": (lambda: None, lambda ctx: rgprune.apply_masks_(tensors, masks)),
                "read_write_pass": (lambda: None, lambda ctx: torch._foreach_mul_(tensors, 1.0)),
            },
            reps,
            device,
        )
    return {
        "tensors": len(tensors),
        "bytes": sum(t.numel() * t.element_size() for t in tensors),
        "variants": hook,
        "ratio_vs_read_write_pass": ratio(hook["apply_masks_"]["median_s"], hook["read_write_pass"]["median_s"]),
        "note": "attach zeroes the pruned weights and every optimizer state tensor shaped like them "
        "(momentum / Adam moments) in one apply_masks_ call; the read+write pass is "
        "torch._foreach_mul_(same tensors, 1.0)",
    }


def bench_training(workload, model, names, state, device, settings) -> dict:
    """One optimizer step with no pruning, torch.prune's reparametrization, and rgprune's attach."""
    train = workload.train
    batch = make_batch(train, device)
    setups = {kind: _setup(kind, workload, model, names, state) for kind in VARIANTS}

    def step(kind):
        m, opt, _ = setups[kind]
        opt.zero_grad(set_to_none=True)
        loss(train, m, batch).backward()
        opt.step()

    for kind in setups:  # warm-up: optimizer state is created on the first step
        for _ in range(1 if settings.quick else 2):
            step(kind)
    sync(device)
    variants = {kind: (lambda: None, lambda ctx, kind=kind: step(kind)) for kind in setups}
    timed = interleaved(variants, settings.reps, device)
    base = timed["no_pruning"]["median_s"]
    out = {
        "optimizer": train["optimizer"],
        "batch": {k: v for k, v in train.items() if k != "optimizer"},
        "variants": timed,
        "ratio_vs_no_pruning": {k: ratio(v["median_s"], base) for k, v in timed.items()},
        "ratio_of_min_times_vs_no_pruning": {
            k: ratio(v["min_s"], timed["no_pruning"]["min_s"]) for k, v in timed.items()
        },
    }
    _, opt, pruner = setups["rgprune_attach"]
    out["mask_reapplication"] = _mask_reapplication(pruner, opt, device, settings.reps)
    return out  # the copies of the model are freed here; the caller collects
