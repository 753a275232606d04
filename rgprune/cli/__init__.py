"""The ``rgprune`` console script.

Examples::

    rgprune demo                      # short IMP run: ResNet-20 on digits, 5 rounds with baselines
    rgprune imp --model resnet20 --task digits --rounds 8 --out runs/r20-digits
    rgprune prune-demo --model resnet50 --rounds 3   # prune ResNet-50 / BERT-base weights, no training
    rgprune flow runs/r20-digits                     # RG flow report of a run (or of checkpoints)
    rgprune compare runs/r20-digits runs/r20-digits-rotated --out runs/cmp
    rgprune transfer runs/r20-digits runs/r20-digits-rotated   # A's ticket trained on B's task
    rgprune bench --model torchvision:resnet50 --json out.json  # rgprune vs torch.prune on your model
    rgprune imp --help
"""

from __future__ import annotations

import argparse
import os
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing may load from a model hub at run time
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from rgprune.cli.arguments import ShortErrorParser  # noqa: E402
from rgprune.cli.bench import add_bench_parser  # noqa: E402
from rgprune.cli.flow import add_compare_parser, add_flow_parser, flow_summary  # noqa: E402
from rgprune.cli.imp import add_demo_parser, add_imp_parser  # noqa: E402
from rgprune.cli.prune_demo import add_prune_demo_parser, prune_demo  # noqa: E402
from rgprune.cli.transfer import add_transfer_parser  # noqa: E402
from rgprune.imp.config import ConfigError  # noqa: E402

__all__ = ["build_parser", "flow_summary", "main", "prune_demo"]


def build_parser() -> argparse.ArgumentParser:
    """The ``rgprune`` parser: one subcommand per module of this package."""
    parser = ShortErrorParser(  # a usage error prints two lines, not the whole usage (so do the subcommands')
        prog="rgprune", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for add in (
        add_demo_parser,
        add_imp_parser,
        add_flow_parser,
        add_compare_parser,
        add_transfer_parser,
        add_prune_demo_parser,
        add_bench_parser,
    ):
        add(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line ``argv`` (default: sys.argv[1:]); returns the exit status.

    An unusable configuration (``ConfigError``: bad values, a run directory holding another run, files that
    cannot be analysed) is a usage error: exit status 2 and one line on stderr. Any other exception is a bug
    and propagates with its traceback. A command that returns an exit status of its own (``rgprune bench``:
    1 when a measurement failed) has it returned."""
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    args.command_line = " ".join(["rgprune", *argv])  # what was run, for the records a command writes
    try:
        status = args.func(args)
    except ConfigError as exc:
        print(f"rgprune {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            f"rgprune {args.command}: interrupted; completed rounds are kept, run the same command to resume",
            file=sys.stderr,
        )
        return 130
    return status if type(status) is int else 0  # the other commands return their results
