"""``rgprune transfer``: one run's ticket trained on another run's task, or every pair against flow distance."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rgprune.cli.arguments import add_threads_and_quiet, nonnegative_int, positive_int, set_threads
from rgprune.imp.config import ConfigError
from rgprune.rg.observables import DEFAULT_OBSERVABLES, OBSERVABLES, observables_help
from rgprune.rg.stats import ALTERNATIVES

__all__ = ["add_transfer_parser", "transfer_command"]


def add_transfer_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "transfer",
        help="train one run's ticket on another run's task (2 runs), or all pairs against flow distance (3+ runs)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="A ticket is a run's round-N mask and rewind weights. It is trained on the "
        "target run's task exactly as the target's own round N was (optimizer, "
        "schedule, data order), and its accuracy is reported relative to the target's "
        "own ticket. With 3+ runs: every ordered pair; the normalized transfer gain "
        "(by each target's random-mask baseline: the run's own, else trained once the "
        "same way); the flow distances; and the Mantel permutation test over task "
        "labels of distance against gain, plain and controlling for the distance "
        "between the dense models (transfer.json, transfer.md; resumable).",
        epilog="examples:\n  rgprune transfer runs/r20-digits runs/r20-digits-rotated\n"
        "  rgprune transfer runs/r20-digits runs/r20-digits-inverted runs/r20-digits-rotated "
        "runs/r20-digits-permuted --out runs/transfer",
    )
    p.add_argument("runs", nargs="+", help="IMP run directories of one model (first = source when two)")
    p.add_argument("--round", type=nonnegative_int, help="the tickets' round (default: the last complete in all)")
    p.add_argument("--out", help="output directory (required with 3+ runs)")
    p.add_argument(
        "--rank",
        type=positive_int,
        help="a fixed DMD rank for the flows compared (default: each flow's rank from held-out one-step "
        "prediction, never an exact fit)",
    )
    p.add_argument(
        "--observable",
        choices=tuple(OBSERVABLES),
        default=DEFAULT_OBSERVABLES[0],
        help="the trace observable the flows are compared on (default: %(default)s). "
        + observables_help().replace("%", "%%"),
    )
    p.add_argument(
        "--alternative",
        choices=ALTERNATIVES,
        default="less",
        help="the sign the Mantel tests expect, fixed before looking: 'less' (default) = closer flows transfer better",
    )
    add_threads_and_quiet(p, "CPU threads for torch", "no progress bars")
    p.set_defaults(func=transfer_command)
    return p


def transfer_command(args: argparse.Namespace, out=None):
    """``rgprune transfer``: each run's ticket trained on the other runs' tasks, against flow distance."""
    from rgprune.transfer import REPORT_FILE, transfer_matrix, transfer_ticket, write_transfer_result

    out = out or sys.stdout
    set_threads(args)
    if len(args.runs) == 2:
        result = transfer_ticket(args.runs[0], args.runs[1], args.round, progress=not args.quiet)
        print(
            f"{result.source} round {result.round} (density {result.density:.4f}) -> {result.target}: accuracy "
            f"{result.accuracy:.4f}, the target's own ticket {result.target_accuracy:.4f}, relative "
            f"{result.relative:.4f}{_gain_text(result)}",
            file=out,
            flush=True,
        )
        if args.out:
            write_transfer_result(result, args.out)
        return result
    if not args.out:
        raise ConfigError("--out DIR is required with three or more runs (where transfer.json and the pairs go)")
    data = transfer_matrix(
        args.runs,
        args.out,
        args.round,
        progress=not args.quiet,
        log=out,
        rank=args.rank,
        observable=args.observable,
        alternative=args.alternative,
    )
    tasks = len(data["task_level"]["tasks"])
    print(
        f"transfer at round {data['round']}, {len(data['names'])} runs of {tasks} tasks, {data['observable']} flows:",
        file=out,
    )
    for name, key in (("Mantel", "mantel"), ("partial Mantel, dense models' distance controlled", "partial_mantel")):
        print(f"  {name}: {_mantel_text(data[key])}", file=out)
    print(f"report: {Path(args.out) / REPORT_FILE}", file=out, flush=True)
    return data


def _gain_text(result) -> str:
    """The normalized gain when the target run recorded its random-mask baseline at the round (nothing is trained)."""
    from rgprune.imp import load_result
    from rgprune.rg import transfer_gain
    from rgprune.transfer import RANDOM_MASK

    random_mask = load_result(result.target).rounds[result.round].baselines.get(RANDOM_MASK)
    if random_mask is None:
        return "; no normalized gain: the target run has no random-mask baseline at this round"
    gain = transfer_gain(result.accuracy, random_mask, result.target_accuracy)
    if gain is None:
        return f"; normalized gain undefined: the target's own ticket barely beats its random mask {random_mask:.4f}"
    return f", normalized gain {gain:.3f} (the target's random mask {random_mask:.4f})"


def _mantel_text(test: dict) -> str:
    if test["statistic"] is None:
        return f"undefined: {test['reason']}"
    return (
        f"r(flow distance, transfer gain) = {test['statistic']:+.3f}, one-sided p = {test['p_value']:.3g} "
        f"(alternative {test['alternative']!r}; {test['tasks']} tasks, {test['pairs']} pairs; the smallest p this "
        f"design can give is {test['smallest_p']:.3g})"
    )
