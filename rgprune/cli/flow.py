"""``rgprune flow`` (the RG flow report of a run or of checkpoints) and ``rgprune compare`` (of several flows)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from rgprune.cli.arguments import fraction
from rgprune.imp.config import ConfigError
from rgprune.imp.rundir import RunDir

__all__ = ["add_compare_parser", "add_flow_parser", "compare_command", "flow_command", "flow_summary"]


def add_flow_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "flow",
        help="RG flow statistics of a run directory or a list of checkpoints",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  rgprune flow runs/r20-digits\n"
        "  rgprune flow ckpt-0.safetensors ckpt-1.safetensors ckpt-2.safetensors --out flow/\n"
        "  rgprune flow round0.pt round1.pt round2.pt --fraction 0.2 --out flow/",
    )
    p.add_argument(
        "paths",
        nargs="+",
        help="a run directory, or checkpoints in round order (safetensors or torch.save state_dicts)",
    )
    p.add_argument(
        "--out", help="where to write trace.json, flow.json, report.md and the PNGs (default: the run directory)"
    )
    p.add_argument(
        "--from-checkpoints", action="store_true", help="recompute the trace of a run directory from its checkpoints"
    )
    p.add_argument("--include", action="append", help="fnmatch pattern of tensor names to analyse (repeatable)")
    p.add_argument("--exclude", action="append", help="fnmatch pattern of tensor names to skip (repeatable)")
    p.add_argument(
        "--fraction",
        type=fraction,
        help="pruning fraction per round: the scaling exponents, and the "
        "last checkpoint's threshold for the rescaled observables",
    )
    _add_observable_option(p, "the report's main observable (the others are fitted beside it)")
    p.set_defaults(func=flow_command)
    return p


def _add_observable_option(parser: argparse.ArgumentParser, what: str) -> None:
    from rgprune.rg.observables import DEFAULT_OBSERVABLES, OBSERVABLES, observables_help

    parser.add_argument(
        "--observable",
        choices=tuple(OBSERVABLES),
        default=DEFAULT_OBSERVABLES[0],
        help=f"{what} (default: %(default)s). " + observables_help().replace("%", "%%"),
    )


def _observables(main: str) -> tuple[str, ...]:
    """``main`` first, then the report's other default observables."""
    from rgprune.rg.observables import DEFAULT_OBSERVABLES

    return (main,) + tuple(k for k in DEFAULT_OBSERVABLES if k != main)


def _checkpoints(paths: list[Path]) -> list[Path]:
    """The checkpoints given: files as they are, run directories expanded into their rounds' checkpoints."""
    found = []
    for path in paths:
        if path.is_dir():
            rounds = RunDir(path).checkpoints()
            if not rounds:
                raise ConfigError(
                    f"{path} is a directory without IMP round checkpoints; pass a run directory or checkpoint files"
                )
            found += rounds
        else:
            found.append(path)
    return found


def flow_command(args: argparse.Namespace, out=None) -> dict[str, Path]:
    """``rgprune flow``: the RG flow report of a run directory or of a list of checkpoints."""
    from rgprune.rg.checkpoints import parameter_gram, trace_from_checkpoints
    from rgprune.rg.report import MIN_ROUNDS, write_flow_report
    from rgprune.rg.trace import FlowTrace

    out = out or sys.stdout
    paths = [Path(p) for p in args.paths]
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        raise ConfigError(f"no such run directory or checkpoint: {', '.join(missing)}")
    run = RunDir(paths[0]) if len(paths) == 1 and paths[0].is_dir() else None
    if run is not None and run.trace_path.is_file() and not args.from_checkpoints:
        trace = FlowTrace.load(run.trace_path)  # recorded during the run, from the kernels' own passes
        if len(trace) < MIN_ROUNDS:
            raise ConfigError(
                f"the run has {len(trace)} rounds: a flow needs at least {MIN_ROUNDS}; run more IMP rounds"
            )
        out_dir = Path(args.out) if args.out else run.path
        checkpoints = run.checkpoints()
    else:
        if not args.out:
            raise ConfigError("--out DIR is required when analysing checkpoints (where to write the report)")
        out_dir = Path(args.out)
        checkpoints = _checkpoints(paths)
        if len(checkpoints) < MIN_ROUNDS:
            raise ConfigError(
                f"{len(checkpoints)} checkpoints: a flow needs at least {MIN_ROUNDS} (rounds 0, 1, 2, ...)"
            )
        try:
            trace = trace_from_checkpoints(
                checkpoints, include=args.include, exclude=args.exclude or (), fraction=args.fraction
            )
        except (ValueError, FileNotFoundError) as exc:  # it validates each file it is given and says what is wrong
            raise ConfigError(str(exc)) from exc
    gram = (
        parameter_gram(checkpoints, include=args.include, exclude=args.exclude or ())
        if len(checkpoints) >= MIN_ROUNDS
        else None
    )
    source = run.path if run is not None and not args.from_checkpoints else checkpoints
    reference, note = _pruning_reference(trace, source, args, gram)
    paths_written = write_flow_report(
        trace, out_dir, title=out_dir.name, gram=gram, observables=_observables(args.observable), reference=reference
    )
    if note:
        print(f"note: {note}", file=out)
    print(flow_summary(paths_written["flow"], paths_written["report"]), file=out, flush=True)
    return paths_written


def _pruning_reference(trace, source, args, gram):
    """(the run beside pruning alone from its own round-0 weights, None) or (None, why not: the report then
    computes it from the trace alone, or says why it cannot)."""
    from rgprune.rg.observables import OBSERVABLES
    from rgprune.rg.reference import pruning_reference, round0_weights

    if len(trace) < 2:
        return None, None
    kind = None
    if OBSERVABLES[args.observable].splits:
        try:
            trace.trajectory(args.observable)
            kind = args.observable
        except ValueError:
            pass  # the report falls back to another observable, and says why
    try:
        weights, masks = round0_weights(source, trace, args.include, args.exclude or ())
        return pruning_reference(trace, kind=kind, weights=weights, masks=masks, gram=gram), None
    except (ValueError, KeyError, FileNotFoundError) as exc:
        return None, f"no pruning-only reference from the round-0 weights ({exc}); the report's is from the trace"


def _steps(values) -> str:
    return ", ".join(f"{x:.3f}" for x in values)


def _fit_line(fit: dict, limit: int = 4) -> str:
    """'DMD rank 1 (...): |λ| 0.844 [0.703, 0.887] irrelevant' or the plain reason nothing is resolved."""
    from rgprune.rg.analysis import describe_directions
    from rgprune.rg.linear_fit import MIN_FOLDS

    if fit["status"] == "too short":
        return (
            f"DMD rank 0: too short to resolve anything ({fit['snapshot_pairs']} snapshot pairs; the held-out rank "
            f"rule needs at least {MIN_FOLDS}, i.e. {MIN_FOLDS + 1} rounds)"
        )
    if fit["status"] == "nothing resolved":
        return (
            f"DMD rank 0: nothing resolved (no direction predicts held-out rounds better than the mean step, "
            f"{fit['snapshot_pairs']} snapshot pairs)"
        )
    return f"DMD rank {fit['dmd_rank']} ({fit['snapshot_pairs']} snapshot pairs): {describe_directions(fit, limit)}"


def flow_summary(flow_json, report) -> str:
    """A few lines on a flow (from its flow.json): rounds, step sizes beside what pruning alone would give and what
    training adds, the resolved directions with their intervals (or "too short to resolve anything", "nothing
    resolved"), the other observables and the parameter-space fit in one line each, and, last, the report's path."""
    flow = json.loads(Path(flow_json).read_text())
    a = flow["analysis"]
    reference = flow.get("pruning_reference")
    lines = [] if "pruning_reference" not in flow else [_first_line(flow)]
    lines += [
        f"RG flow over {len(flow['rounds'])} rounds ({flow['observable']} observable), relative step of each "
        f"round n = 1, 2, ...:"
    ]
    if flow.get("observable_fallback"):
        lines.append(f"  note: {flow['observable_fallback']}")
    split = flow.get("step_split")
    rows = [("step sizes", flow.get("step_sizes", []))]
    if split:
        rows += [("pruning alone", split["pruning"]), ("training", split["training"])]
    if reference is not None:
        rows.append(("pruning-only flow", reference["step_sizes"]["pruning_only"]))
    lines += [f"  {label:<17} {_steps(values)}" for label, values in rows if values]
    if flow.get("tail_flow"):
        lines += _tail_lines(flow, reference)
    if a is None:  # too few rounds for any fit
        return "\n".join(lines + [f"  no flow analysis: {flow['reason']}", f"flow report: {report}"])
    lines.append("  " + _fit_line(a))
    if a["eigenvalues"]:
        unbounded = "; ∞: unbounded" if any(None in bounds for bounds in a["intervals"]) else ""
        lines.append(
            f"    ({round(100 * flow['interval_level'])}% bootstrap intervals of |λ|{unbounded}; a direction "
            f"is classed only when its whole interval lies in one band, marginal = 1 ± "
            f"{flow['marginal_tolerance']})"
        )
    if a.get("fixed_point_distance") is not None:
        lines.append(f"  the last round is {a['fixed_point_distance']:.4g} from the fitted affine fixed point")
    others = [
        (kind, f["analysis"])
        for kind, f in flow.get("by_observable", {}).items()
        if kind != flow["observable"] and f["analysis"] is not None
    ]
    space = (flow.get("parameter_space") or {}).get("analysis")
    if space is not None:
        others.append(("parameter space (Gram DMD of the checkpoints)", space))
    lines += [f"  also {kind}: {_fit_line(fit, 2)}" for kind, fit in others]
    if reference is not None:
        lines.append(f"  pruning alone, {reference['observable']}: {_reference_fit(reference['dmd']['pruning_only'])}")
        space = reference.get("parameter_space_pruning_only")
        if space is not None:
            lines.append(f"  pruning alone, parameter space: {_fit_line(space, 2)}")
    return "\n".join(lines + [f"flow report: {report}"])


def _first_line(flow: dict) -> str:
    """The report's first line: whether training moved the flow beyond pruning alone, with the interval."""
    from rgprune.rg.report import first_line

    return first_line(flow)


def _reference_fit(fit) -> str:
    return "no fit" if fit is None else _fit_line(fit, 2)


def _xi_text(tail: dict) -> str:
    """'−0.198 weibull, −0.189 weibull, ...' (nan where a round has no estimate)."""
    return ", ".join(("nan" if x is None else f"{x:.3f}") + f" {d}" for x, d in zip(tail["xi"], tail["domains"]))


def _tail_lines(flow: dict, reference) -> list[str]:
    tail = flow["tail_flow"]
    lines = [
        f"  tail index ξ of the survivors' excess over each round's threshold, round 0, 1, ... "
        f"({round(100 * tail['level'])}% intervals decide the domain; flow.json has them):",
        f"  {'ξ':<17} {_xi_text(tail)}",
    ]
    if reference is not None:
        lines.append(f"  {'ξ pruning alone':<17} {_xi_text(reference['tail_flow']['pruning_only'])}")
    return lines


def add_compare_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "compare",
        help="distance matrix and figures comparing the flows of several runs",
        epilog="example: rgprune compare runs/r20-digits runs/r20-digits-inverted --out runs/cmp",
    )
    p.add_argument("runs", nargs="+", help="run directories (or their trace.json files)")
    p.add_argument("--out", default="runs/compare", help="output directory (default: runs/compare)")
    _add_observable_option(p, "the observable whose flows are compared")
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
    try:
        written = compare_flows(traces, args.out, observable=args.observable)
    except ValueError as exc:  # e.g. an observable these traces cannot give
        raise ConfigError(str(exc)) from exc
    result = json.loads(written["compare"].read_text())
    width = max(len(n) for n in traces)
    for key, what in (("trajectory_distance", "trajectory"), ("eigenvalue_distance", "eigenvalue")):
        print(f"flow distance, {what} ({result['observable']} observable; —: no resolved direction):", file=out)
        print(" " * width + "".join(f" {n[:12]:>12}" for n in traces), file=out)
        for name, row in zip(traces, result[key]):
            print(f"{name:<{width}}" + "".join(f" {'—' if d is None else f'{d:.4f}':>12}" for d in row), file=out)
    for name, fit in result["flows"].items():
        print(f"{name:<{width}} {_fit_line(fit, 2)}", file=out)
    print(f"compare: {len(traces)} flows; report: {written['report']}", file=out, flush=True)
    return written
