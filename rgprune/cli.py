"""The ``rgprune`` console script.

Examples::

    rgprune demo                      # prune ResNet-50 and BERT-base (random init) over three rounds
    rgprune prune-demo --model resnet50 --rounds 3
    rgprune --help
"""
from __future__ import annotations

import argparse
import os
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def _demo_model(name: str):
    import torch

    if name == "resnet50":
        import torchvision
        return torchvision.models.resnet50(weights=None)
    if name == "bert-base":
        from transformers import BertConfig, BertModel
        return BertModel(BertConfig())
    raise ValueError(f"unknown demo model {name!r}; choose resnet50 or bert-base")


def prune_demo(models=("resnet50", "bert-base"), rounds: int = 3, fraction: float = 0.2, seed: int = 0,
               out=sys.stdout) -> list[dict]:
    """Prune each model's conv/linear weights ``rounds`` times by ``fraction`` of the survivors and print
    per-round time, sparsity and a per-layer density table. Returns one record per (model, round)."""
    import torch

    import rgprune

    print(f"rgprune backend: {rgprune.backend()}", file=out)
    records = []
    for name in models:
        torch.manual_seed(seed)
        model = _demo_model(name)
        named = [(n, m.weight) for n, m in model.named_modules()
                 if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
        tensors = [p.data for _, p in named]
        masks = rgprune.MaskSet.ones(tensors, names=[n for n, _ in named])
        n_total = sum(t.numel() for t in tensors)
        print(f"\n{name}: {len(tensors)} conv/linear weight tensors, {n_total / 1e6:.1f}M weights", file=out)
        print(f"{'round':>5} {'pruned':>10} {'sparsity':>9} {'threshold':>11} {'time ms':>9}", file=out)
        for r in range(1, rounds + 1):
            survivors = sum(masks.survivor_counts())
            k = round(fraction * survivors)
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


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _fraction(text: str) -> float:
    value = float(text)
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1 (exclusive), got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rgprune", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="the quick-start demo (make demo)")
    demo.set_defaults(func=lambda a: prune_demo())

    pd = sub.add_parser("prune-demo", help="prune ResNet-50 / BERT-base weights and print the tables",
                        epilog="example: rgprune prune-demo --model resnet50 --rounds 5")
    pd.add_argument("--model", action="append", choices=["resnet50", "bert-base"],
                    help="model to prune (repeatable; default: both)")
    pd.add_argument("--rounds", type=_positive_int, default=3)
    pd.add_argument("--fraction", type=_fraction, default=0.2, help="fraction of survivors pruned per round")
    pd.add_argument("--seed", type=int, default=0)
    pd.set_defaults(func=lambda a: prune_demo(tuple(a.model or ("resnet50", "bert-base")), a.rounds,
                                              a.fraction, a.seed))
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except (ValueError, TypeError, FileNotFoundError) as exc:
        print(f"rgprune {args.command}: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
