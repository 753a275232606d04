"""``rgprune prune-demo``: prune ResNet-50 / BERT-base weights with the kernels alone (no training)."""

from __future__ import annotations

import argparse
import sys
import time

from rgprune.cli import arguments

__all__ = ["DEMO_MODELS", "add_prune_demo_parser", "prune_demo"]

DEMO_MODELS = ("resnet50", "bert-base")


def _demo_model(name: str):
    if name == "resnet50":
        import torchvision

        return torchvision.models.resnet50(weights=None)
    from transformers import BertConfig, BertModel

    return BertModel(BertConfig())


def prune_demo(models=DEMO_MODELS, rounds: int = 3, fraction: float = 0.2, seed: int = 0, out=sys.stdout) -> list[dict]:
    """Prune each model's conv/linear weights ``rounds`` times by ``fraction`` of the survivors and print
    per-round time, sparsity and a per-layer density table. Returns one record per (model, round)."""
    import torch

    import rgprune
    from rgprune.prunable import select_prunable
    from rgprune.schedule import prune_count

    unknown = [name for name in models if name not in DEMO_MODELS]
    if unknown:
        raise ValueError(f"unknown demo model(s) {unknown}; choose from {', '.join(DEMO_MODELS)}")
    if isinstance(rounds, bool) or not isinstance(rounds, int) or rounds < 1:
        raise ValueError(f"rounds must be an int >= 1, got {rounds!r}")
    if not 0 < fraction < 1:
        raise ValueError(f"fraction must be between 0 and 1 (exclusive), got {fraction!r}")
    print(f"rgprune backend: {rgprune.backend()}", file=out)
    records = []
    for name in models:
        torch.manual_seed(seed)
        model = _demo_model(name)
        named = select_prunable(model)  # the default set, as GlobalMagnitudePruner takes it (heads stay dense)
        tensors = [p.data for _, p in named]
        masks = rgprune.MaskSet.ones(tensors, names=[n for n, _ in named])
        n_total = sum(t.numel() for t in tensors)
        print(
            f"\n{name}: {len(tensors)} prunable weight tensors (conv/linear, no head), {n_total / 1e6:.1f}M weights",
            file=out,
        )
        print(f"{'round':>5} {'pruned':>10} {'sparsity':>9} {'threshold':>11} {'time ms':>9}", file=out)
        for r in range(1, rounds + 1):
            survivors = sum(masks.survivor_counts())
            k = prune_count(fraction, survivors)
            start = time.perf_counter()
            result = rgprune.prune_global_(tensors, masks.words, k)
            elapsed = (time.perf_counter() - start) * 1e3
            sparsity = 1 - masks.density()
            print(f"{r:>5} {k:>10} {sparsity:>9.2%} {result.threshold.magnitude:>11.3e} {elapsed:>9.1f}", file=out)
            records.append({"model": name, "round": r, "k": k, "sparsity": sparsity, "ms": elapsed})
        print("per-layer density after the last round:", file=out)
        for layer, density in masks.layer_densities().items():
            print(f"  {layer:<55} {density:6.3f}", file=out)
    return records


def add_prune_demo_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "prune-demo",
        help="prune ResNet-50 / BERT-base weights and print the tables",
        epilog="example: rgprune prune-demo --model resnet50 --rounds 5",
    )
    p.add_argument("--model", action="append", choices=DEMO_MODELS, help="model to prune (repeatable; default: both)")
    p.add_argument("--rounds", type=arguments.positive_int, default=3)
    p.add_argument("--fraction", type=arguments.fraction, default=0.2, help="fraction of survivors pruned per round")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=prune_demo_command)
    return p


def prune_demo_command(args: argparse.Namespace) -> list[dict]:
    """``rgprune prune-demo``."""
    return prune_demo(tuple(args.model or DEMO_MODELS), args.rounds, args.fraction, args.seed)
