"""``rgprune transfer``: one run's ticket trained on another run's task, or every pair against flow distance."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rgprune.cli.arguments import add_threads_and_quiet, nonnegative_int, positive_int, set_threads
from rgprune.imp.config import ConfigError

__all__ = ["add_transfer_parser", "transfer_command"]


def add_transfer_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser("transfer", help="train one run's ticket on another run's task (2 runs), or all pairs "
                                        "against flow distance (3+ runs)",
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       description="A ticket is a run's round-N mask and rewind weights. It is trained on the "
                                   "target run's task exactly as the target's own round N was (optimizer, "
                                   "schedule, data order), and its accuracy is reported relative to the target's "
                                   "own ticket. With 3+ runs: every ordered pair, the flow distances, and their "
                                   "Spearman rank correlation (transfer.json, transfer.md; resumable).",
                       epilog="examples:\n  rgprune transfer runs/r20-digits runs/r20-digits-rotated\n"
                              "  rgprune transfer runs/r20-digits runs/r20-digits-inverted runs/r20-digits-rotated "
                              "runs/r20-digits-permuted --out runs/transfer")
    p.add_argument("runs", nargs="+", help="IMP run directories of one model (first = source when two)")
    p.add_argument("--round", type=nonnegative_int, help="the tickets' round (default: the last complete in all)")
    p.add_argument("--out", help="output directory (required with 3+ runs)")
    p.add_argument("--rank", type=positive_int,
                   help="DMD rank of the flows compared (default: flow_distance's truncation, which keeps every "
                        "direction the data supports: for a long flow that is one per snapshot pair)")
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
        print(f"{result.source} round {result.round} (density {result.density:.4f}) -> {result.target}: accuracy "
              f"{result.accuracy:.4f}, the target's own ticket {result.target_accuracy:.4f}, relative "
              f"{result.relative:.4f}", file=out, flush=True)
        if args.out:
            write_transfer_result(result, args.out)
        return result
    if not args.out:
        raise ConfigError("--out DIR is required with three or more runs (where transfer.json and the pairs go)")
    data = transfer_matrix(args.runs, args.out, args.round, progress=not args.quiet, log=out, rank=args.rank)
    c = data["correlation"]
    rho = "undefined" if c["rho"] is None else f"{c['rho']:.3f} (p = {c['p_value']:.3g}, {c['n']} pairs)"
    print(f"transfer at round {data['round']}: Spearman rho(relative accuracy, flow distance) = {rho}; report: "
          f"{Path(args.out) / REPORT_FILE}", file=out, flush=True)
    return data
