"""The benchmark's command line: ``add_arguments(parser)`` and ``command(args)``, for ``rgprune bench`` and
``python -m rgprune.benchmark``.

    python -m rgprune.benchmark --model resnet50                     # CPU, rounds 1 and 5, every method
    python -m rgprune.benchmark --model resnet18 --quick             # rgprune and the switch vs torch.prune, < 30 s
    python -m rgprune.benchmark --model mypkg.models:build --device cuda --dtype bfloat16 --json out.json
    python -m rgprune.benchmark --scale --scale-sizes 10M,50M,200M   # how time and memory grow

``command`` raises ``BenchmarkError`` (a ``ValueError``) for bad input, before anything is timed: a usage
error.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rgprune.benchmark.api import DTYPES, run
from rgprune.benchmark.methods import ALL_METHODS
from rgprune.benchmark.scale import DEFAULT_METHODS, DEFAULT_SIZES, run_scale, size_label
from rgprune.benchmark.tables import scale_summary, summary
from rgprune.benchmark.workloads import BenchmarkError, model_spec_help

_SUFFIXES = {"k": 10**3, "M": 10**6, "B": 10**9, "G": 10**9}
#: --quick: what it times (rgprune and the one-import switch against torch.prune), the rounds and rgprune's repetitions
QUICK_METHODS = ("torch_prune", "rgprune_switch", "rgprune")
QUICK_ROUNDS = (5,)
QUICK_REPS = 3


def _names(text: str) -> list:
    return [x for x in text.split(",") if x]


def _rounds(text: str) -> list:
    try:
        return [int(x) for x in _names(text)]
    except ValueError:
        raise argparse.ArgumentTypeError(f"rounds are comma-separated round numbers, e.g. 1,5; got {text!r}") from None


def _sizes(text: str) -> list:
    """``10M,50M,1.5B`` or plain numbers."""
    out = []
    for item in _names(text):
        scale = _SUFFIXES.get(item[-1], 1)
        try:
            out.append(int(float(item[:-1] if scale != 1 else item) * scale))
        except ValueError:
            raise argparse.ArgumentTypeError(f"sizes are numbers of weights like 10M,50M,1B; got {item!r}") from None
    return out


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``rgprune bench``."""
    parser.add_argument("--model", help=f"the model to prune: {model_spec_help()}")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (or cuda:N); default cpu")
    parser.add_argument("--dtype", choices=DTYPES, help="cast the model's weights (default: its own dtype)")
    parser.add_argument(
        "--rounds",
        type=_rounds,
        default=None,
        help="IMP rounds to time, comma-separated (round r starts at density (1-fraction)^(r-1)); "
        "default 1,5 (--scale: 1)",
    )
    parser.add_argument(
        "--fraction", type=float, default=0.2, help="share of the survivors pruned per round (default 0.2)"
    )
    parser.add_argument(
        "--methods",
        type=_names,
        default=None,
        help=f"comma-separated subset of {','.join(ALL_METHODS)} (default all; --scale: "
        f"{','.join(DEFAULT_METHODS)}); rgprune is always timed",
    )
    parser.add_argument("--reps", type=int, default=None, help="repetitions per method (default 7; --scale 3)")
    parser.add_argument(
        "--slow-reps",
        type=int,
        default=None,
        help="repetitions of torch.prune and the reference on the CPU and of any method slower "
        "than --slow-after (default 2; --scale 1)",
    )
    parser.add_argument("--slow-after", type=float, default=10.0, help="seconds (default 10)")
    parser.add_argument(
        "--include",
        action="append",
        help="fnmatch pattern of parameter names to prune instead of the Linear/Conv weights (repeatable)",
    )
    parser.add_argument("--exclude", action="append", default=[], help="pattern of parameters not to prune")
    parser.add_argument("--prune-head", action="store_true", help="prune the classifier head too")
    parser.add_argument("--prune-embeddings", action="store_true", help="prune nn.Embedding weights too")
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-memory measurement")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's default)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a first look in seconds: rgprune and the one-import switch against torch.prune only, round "
        f"{','.join(map(str, QUICK_ROUNDS))}, "
        f"{QUICK_REPS} repetitions (torch.prune 1), no memory measurement (options given explicitly still apply)",
    )
    parser.add_argument(
        "--json",
        type=str,
        help="write the result to this file; a folder (a path ending in '/', or an existing folder, created "
        "when missing) gets a dated file name in it",
    )
    parser.add_argument(
        "--scale",
        action="store_true",
        help="synthetic weight sets of growing size instead of --model: how time and memory grow",
    )
    parser.add_argument(
        "--scale-sizes",
        type=_sizes,
        default=None,
        help="numbers of weights for --scale (default "
        f"{','.join(size_label(n) for n in DEFAULT_SIZES)}, as many as the memory allows)",
    )
    parser.add_argument("--plot", type=Path, help="--scale: the plot's PNG (default: beside --json)")


def _select(args) -> dict | None:
    chosen = {
        "include": args.include,
        "exclude": args.exclude,
        "prune_head": args.prune_head,
        "prune_embeddings": args.prune_embeddings,
    }
    return (
        None if chosen == {"include": None, "exclude": [], "prune_head": False, "prune_embeddings": False} else chosen
    )


def command(args, command_line: str | None = None) -> int:
    """Runs ``rgprune bench`` with parsed ``args``; prints the table, writes ``--json``. Returns the exit
    status (1 when a measurement failed: the errors are in the table and the JSON). ``command_line`` is
    recorded in the JSON (default: this process's command line)."""
    shown = command_line or " ".join([Path(sys.argv[0]).name] + sys.argv[1:])
    common = {
        "device": args.device,
        "dtype": args.dtype,
        "fraction": args.fraction,
        "slow_after": args.slow_after,
        "memory": not args.no_memory,
        "threads": args.threads,
        "progress": not args.no_progress,
        "json_path": args.json,
        "command": shown,
    }
    if args.scale:
        if args.quick:
            raise BenchmarkError("--quick goes with --model (--scale has its own defaults: --scale-sizes, --reps)")
        if args.model is not None:
            raise BenchmarkError("--scale times synthetic weight sets: drop --model, or drop --scale")
        result = run_scale(
            args.scale_sizes,
            rounds=args.rounds or (1,),
            methods=args.methods or DEFAULT_METHODS,
            reps=args.reps or 3,
            slow_reps=args.slow_reps or 1,
            plot_path=args.plot,
            **common,
        )
        print(summary(result) + "\n\n" + scale_summary(result))
    else:
        if args.model is None:
            raise BenchmarkError(f"--model is required (or --scale): {model_spec_help()}")
        if args.plot is not None or args.scale_sizes is not None:
            raise BenchmarkError("--plot and --scale-sizes go with --scale")
        quick = args.quick
        if quick:
            common["memory"] = False
        result = run(
            args.model,
            rounds=args.rounds or (QUICK_ROUNDS if quick else (1, 5)),
            methods=args.methods or (QUICK_METHODS if quick else None),
            reps=args.reps or (QUICK_REPS if quick else 7),
            slow_reps=args.slow_reps or (1 if quick else 2),
            select=_select(args),
            quick=quick,
            **common,
        )
        print(summary(result))
    return 1 if result["errors"] else 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m rgprune.benchmark",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arguments(parser)
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser.parse_args(argv)
    try:
        return command(args, " ".join([parser.prog] + argv))
    except BenchmarkError as exc:
        parser.error(str(exc))
