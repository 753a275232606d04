"""``python -m rgprune.experiments``: run the pieces of a finding, and collect its summaries.

    python -m rgprune.experiments run finding1 imp --runs runs/findings --shard 0/2
    python -m rgprune.experiments run finding1 baselines --runs runs/findings    # these two only after the
    python -m rgprune.experiments run finding1 transfer --runs runs/findings     # go/no-go test passed
    python -m rgprune.experiments collect finding1 --runs runs/findings --data docs/findings-data
    python -m rgprune.experiments references finding2 --data docs/findings-data  # pruning-only references

Every piece resumes: run the same command again after an interruption. ``--shard i/n`` does every n-th item from
the i-th, so n processes can share a piece (start one per shard).
"""

from __future__ import annotations

import argparse
import os
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

PIECES = {"finding1": ("imp", "baselines", "transfer"), "finding2": ("imp",), "finding3": ("imp",)}


def _shard(text: str) -> tuple[int, int]:
    try:
        index, count = (int(part) for part in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--shard is i/n (e.g. 0/2), got {text!r}") from None
    if not (count >= 1 and 0 <= index < count):
        raise argparse.ArgumentTypeError(f"--shard i/n needs 0 <= i < n, got {text!r}")
    return index, count


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m rgprune.experiments", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run (or resume) one piece of a finding")
    run.add_argument("finding", choices=sorted(PIECES))
    run.add_argument("piece", help="finding1: imp, baselines, transfer; finding2, finding3: imp")
    run.add_argument("--runs", default="runs/findings", help="root of the run directories (default: runs/findings)")
    run.add_argument("--shard", type=_shard, default=(0, 1), help="i/n: do every n-th item from the i-th")
    run.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    collect = sub.add_parser("collect", help="write the summaries of a finding's complete runs")
    collect.add_argument("finding", choices=sorted(PIECES))
    collect.add_argument("--runs", default="runs/findings")
    collect.add_argument("--data", default="docs/findings-data", help="summaries root (default: docs/findings-data)")
    collect.add_argument("--threads", type=int, default=1)
    references = sub.add_parser(
        "references", help="write the pruning-only reference of every summarized run of finding 2 (from summaries)"
    )
    references.add_argument("finding", choices=["finding2"])
    references.add_argument("--data", default="docs/findings-data", help="summaries root (default: docs/findings-data)")
    references.add_argument("--threads", type=int, default=1)
    return parser


def _run(args) -> int:
    from rgprune.experiments import designs, pieces

    if args.piece not in PIECES[args.finding]:
        raise SystemExit(f"{args.finding} has the pieces {PIECES[args.finding]}, not {args.piece!r}")
    if args.finding == "finding1" and args.piece == "imp":
        return pieces.imp_runs(designs.F1.runs(), args.runs, args.shard, log=sys.stdout)
    if args.finding == "finding1":  # the baselines and transfers: only after the go/no-go test passed
        _require_go(args.runs)
        if args.piece == "baselines":
            return pieces.f1_baselines(args.runs, args.shard, log=sys.stdout)
        return pieces.f1_transfers(args.runs, args.shard, log=sys.stdout)
    if args.finding == "finding3":
        return pieces.imp_runs(pieces.f3_specs(shared=True), args.runs, args.shard, log=sys.stdout)
    return pieces.imp_runs(designs.F2.runs(), args.runs, args.shard, log=sys.stdout, datasets=pieces.f2_datasets)


def _require_go(runs: str) -> None:
    """The baselines and transfers of finding 1 run only after its go/no-go test passed on the complete runs."""
    import tempfile

    from rgprune.experiments import finding1
    from rgprune.experiments.collect import collect

    with tempfile.TemporaryDirectory() as data:
        collect("finding1", runs, data)
        check = finding1.go_no_go(finding1.load(data))
    if check["missing"]:
        raise SystemExit(f"the go/no-go test needs every run of the eight tasks; missing: {check['missing']}")
    result = check["result"]
    print(
        f"go/no-go: PERMANOVA pseudo-F {result.statistic:.3f}, p = {result.p_value:.4f}, between/within "
        f"{check['ratio']:.3f}: {'go' if check['go'] else 'NO GO'}",
        flush=True,
    )
    if not check["go"]:
        raise SystemExit(
            "no go: between-task flow distances are not larger than between-seed ones; the transfers "
            "are not run (docs/findings.md, finding 1)"
        )


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    if args.command == "run":
        done = _run(args)
        print(f"{args.finding} {args.piece} shard {args.shard[0]}/{args.shard[1]}: {done} item(s) done", flush=True)
        return 0
    if args.command == "references":
        from rgprune.experiments import finding2

        print(finding2.write_references(args.data), flush=True)
        return 0
    from rgprune.experiments.collect import collect

    print(collect(args.finding, args.runs, args.data), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
