"""``rgprune bench``: rgprune against torch.prune and the naive PyTorch ways on the user's own model
(``rgprune.benchmark``; its options are ``rgprune.benchmark.cli.add_arguments``)."""

from __future__ import annotations

import argparse

from rgprune.imp.config import ConfigError

__all__ = ["add_bench_parser", "bench_command"]

BENCH_EXAMPLES = """examples:
  rgprune bench --model resnet18 --quick                      # rgprune vs torch.prune, one round: seconds
  rgprune bench --model resnet50                              # CPU, rounds 1 and 5, every method: minutes
  rgprune bench --model torchvision:convnext_tiny --device cuda --dtype bfloat16 --json results/
  rgprune bench --model hf:./my-bert --methods rgprune,torch_prune,naive --rounds 1,10
  rgprune bench --model module:mypkg.models:build --json mine.json   # build(num_classes=1000, in_channels=3)
  rgprune bench --scale --scale-sizes 10M,50M,200M            # how time and memory grow with the weights

--model takes the model specs of rgprune imp. Each round is timed for every method (repetitions
interleaved; medians and spread), with speedups, peak extra memory, the memory-bandwidth floor and
whether the masks equal torch.prune's up to the order of tied magnitudes. On the CPU a run first says
roughly how long it will take. --json DIR/ (a trailing '/' or an existing folder) writes a dated file in
DIR, creating it. Exit status 1 when a measurement failed (the error is in the table and the JSON), 2 for
bad input.
"""


def add_bench_parser(sub) -> argparse.ArgumentParser:
    from rgprune.benchmark.cli import add_arguments

    p = sub.add_parser(
        "bench",
        help="benchmark rgprune against torch.prune and naive pruning on your model",
        description="Time exact global magnitude pruning by rgprune, torch.nn.utils.prune, the "
        "naive cat+kthvalue / cat+topk and rgprune's pure-PyTorch reference on one model.",
        epilog=BENCH_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arguments(p)
    p.set_defaults(func=bench_command)
    return p


def bench_command(args: argparse.Namespace) -> int:
    """``rgprune bench``: returns the exit status (1 when a measurement failed); bad input (``BenchmarkError``,
    raised before anything is timed) is a ``ConfigError``, the usage error of every rgprune command."""
    from rgprune.benchmark import BenchmarkError
    from rgprune.benchmark.cli import command

    try:
        return command(args, getattr(args, "command_line", None))
    except BenchmarkError as exc:
        raise ConfigError(str(exc)) from exc
