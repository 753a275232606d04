"""``rgprune flow`` (the RG flow report of a run or of checkpoints) and ``rgprune compare`` (of several flows)."""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

from rgprune.cli.arguments import fraction
from rgprune.imp.config import ConfigError
from rgprune.imp.rundir import RunDir

__all__ = ["add_compare_parser", "add_flow_parser", "compare_command", "flow_command", "flow_summary"]


def add_flow_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser("flow", help="RG flow statistics of a run directory or a list of checkpoints",
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       epilog="examples:\n  rgprune flow runs/r20-digits\n"
                              "  rgprune flow ckpt-0.safetensors ckpt-1.safetensors ckpt-2.safetensors --out flow/\n"
                              "  rgprune flow round0.pt round1.pt round2.pt --fraction 0.2 --out flow/")
    p.add_argument("paths", nargs="+", help="a run directory, or checkpoints in round order (safetensors or "
                                            "torch.save state_dicts)")
    p.add_argument("--out", help="where to write trace.json, flow.json, report.md and the PNGs "
                                 "(default: the run directory)")
    p.add_argument("--from-checkpoints", action="store_true",
                   help="recompute the trace of a run directory from its checkpoints")
    p.add_argument("--include", action="append", help="fnmatch pattern of tensor names to analyse (repeatable)")
    p.add_argument("--exclude", action="append", help="fnmatch pattern of tensor names to skip (repeatable)")
    p.add_argument("--fraction", type=fraction, help="pruning fraction per round, for the scaling exponents")
    p.set_defaults(func=flow_command)
    return p


def _checkpoints(paths: list[Path]) -> list[Path]:
    """The checkpoints given: files as they are, run directories expanded into their rounds' checkpoints."""
    found = []
    for path in paths:
        if path.is_dir():
            rounds = RunDir(path).checkpoints()
            if not rounds:
                raise ConfigError(f"{path} is a directory without IMP round checkpoints; pass a run directory or "
                                  f"checkpoint files")
            found += rounds
        else:
            found.append(path)
    return found


def flow_command(args: argparse.Namespace, out=None) -> dict[str, Path]:
    """``rgprune flow``: the RG flow report of a run directory or of a list of checkpoints."""
    from rgprune.rg.report import MIN_ROUNDS, write_flow_report
    from rgprune.rg.trace import FlowTrace, parameter_gram, trace_from_checkpoints

    out = out or sys.stdout
    paths = [Path(p) for p in args.paths]
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        raise ConfigError(f"no such run directory or checkpoint: {', '.join(missing)}")
    run = RunDir(paths[0]) if len(paths) == 1 and paths[0].is_dir() else None
    if run is not None and run.trace_path.is_file() and not args.from_checkpoints:
        trace = FlowTrace.load(run.trace_path)  # recorded during the run, from the kernels' own passes
        if len(trace) < MIN_ROUNDS:
            raise ConfigError(f"the run has {len(trace)} rounds: a flow needs at least {MIN_ROUNDS}; run more IMP "
                              f"rounds")
        out_dir = Path(args.out) if args.out else run.path
        checkpoints = run.checkpoints()
    else:
        if not args.out:
            raise ConfigError("--out DIR is required when analysing checkpoints (where to write the report)")
        out_dir = Path(args.out)
        checkpoints = _checkpoints(paths)
        if len(checkpoints) < MIN_ROUNDS:
            raise ConfigError(f"{len(checkpoints)} checkpoints: a flow needs at least {MIN_ROUNDS} (rounds 0, 1, 2, "
                              f"...)")
        try:
            trace = trace_from_checkpoints(checkpoints, include=args.include, exclude=args.exclude or (),
                                           fraction=args.fraction)
        except (ValueError, FileNotFoundError) as exc:  # it validates each file it is given and says what is wrong
            raise ConfigError(str(exc)) from exc
    gram = parameter_gram(checkpoints, include=args.include, exclude=args.exclude or ()) \
        if len(checkpoints) >= MIN_ROUNDS else None
    paths_written = write_flow_report(trace, out_dir, title=out_dir.name, gram=gram)
    print(flow_summary(paths_written["flow"], paths_written["report"]), file=out, flush=True)
    return paths_written


def flow_summary(flow_json, report) -> str:
    """A few lines on a flow (from its flow.json): rounds, step sizes, DMD eigenvalues and their classes,
    distance from the affine fixed point (or why there is no analysis), and where the full report is."""
    flow = json.loads(Path(flow_json).read_text())
    a = flow["analysis"]
    steps = ", ".join(f"{x:.3f}" for x in flow.get("step_sizes", []))
    head = f"RG flow over {len(flow['rounds'])} rounds ({flow['observable']} observable): step sizes {steps}\n"
    if a is None:  # too few rounds for a DMD
        return head + f"  no flow analysis: {flow['reason']}\nflow report: {report}"
    kinds = ", ".join(f"{n} {c}" for c, n in sorted(Counter(a["classes"]).items()))
    moduli = ", ".join(f"{m:.3f}" for m in a["eigenvalue_moduli"][:4])
    return (head + f"  DMD rank {a['dmd_rank']}, leading |λ| {moduli} ({kinds}; marginal within "
            f"±{flow['marginal_tolerance']} of 1); distance of the last round from the affine fixed point "
            f"{a['fixed_point_distance']:.4g}\n"
            f"flow report: {report}")


def add_compare_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser("compare", help="distance matrix and figures comparing the flows of several runs",
                       epilog="example: rgprune compare runs/r20-digits runs/r20-digits-inverted --out runs/cmp")
    p.add_argument("runs", nargs="+", help="run directories (or their trace.json files)")
    p.add_argument("--out", default="runs/compare", help="output directory (default: runs/compare)")
    p.set_defaults(func=compare_command)
    return p


def compare_command(args: argparse.Namespace, out=None) -> dict[str, Path]:
    """``rgprune compare``: distances between the flows of several runs, and figures."""
    from rgprune.rg.report import MIN_ROUNDS, compare_flows, load_trace

    out = out or sys.stdout
    if len(args.runs) < 2:
        raise ConfigError("compare needs at least two runs")
    traces = {}
    for path in args.runs:
        name = Path(path).name if Path(path).is_dir() else Path(path).parent.name
        if name in traces:
            name = str(path)
        try:
            traces[name] = load_trace(path)
        except FileNotFoundError as exc:
            raise ConfigError(str(exc)) from None
    short = [name for name, trace in traces.items() if len(trace) < MIN_ROUNDS]
    if short:
        raise ConfigError(f"runs with fewer than {MIN_ROUNDS} rounds cannot be compared: {short}")
    written = compare_flows(traces, args.out)
    matrix = json.loads(written["compare"].read_text())["total"]
    width = max(len(n) for n in traces)
    print(" " * width + "".join(f" {n[:12]:>12}" for n in traces), file=out)
    for name, row in zip(traces, matrix):
        print(f"{name:<{width}}" + "".join(f" {d:12.4f}" for d in row), file=out)
    print(f"compare: {len(traces)} flows; report: {written['report']}", file=out, flush=True)
    return written
