"""The files ``rgprune flow`` / ``rgprune compare`` write, and every finished IMP run gets: flow report, comparison.

``write_flow_report(trace, out_dir)`` writes trace.json, flow.json (the numbers of
:func:`rgprune.rg.analysis.analyse_flow`: fits with intervals, statuses, the step split, the lottery-ticket
series), report.md and the figures. Every report also puts the run's flow beside the flow pruning alone would
produce from its round-0 weights on its schedule (``rgprune.rg.reference.pruning_reference``: step sizes, the ξ
flow of ``rgprune.rg.tail``, the DMD eigenvalues), and report.md's first line is the verdict on whether training
moved the flow beyond pruning alone, with its interval. ``compare_flows`` writes the distances between several
flows with each flow's resolved directions. Flows with fewer than ``MIN_ROUNDS`` rounds get no fit: the report says why.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from rgprune._io import atomic_write, atomic_write_json
from rgprune.rg import plots
from rgprune.rg.analysis import (
    FLOW_JSON_VERSION,
    INTERVALS_NOTE,
    MIN_ROUNDS,
    analyse_flow,
    describe_directions,
    describe_status,
    fit_json,
    format_interval,
)
from rgprune.rg.distance import flow_distance
from rgprune.rg.dmd import dmd
from rgprune.rg.observables import DEFAULT_OBSERVABLES, OBSERVABLES
from rgprune.rg.reference import PruningReference, pruning_reference
from rgprune.rg.steps import step_sizes
from rgprune.rg.tail import DOMAINS, describe_tail_flow, tail_flow, tail_flow_from_json, tail_flow_json
from rgprune.rg.trace import FlowTrace

__all__ = [
    "FLOW_REPORT_FILES",
    "MIN_ROUNDS",
    "analyse_flow",
    "compare_flows",
    "first_line",
    "load_trace",
    "render_flow_markdown",
    "write_flow_report",
]

#: the files ``write_flow_report`` writes into its directory besides the figures (``load_trace`` reads "trace")
FLOW_REPORT_FILES = {"trace": "trace.json", "flow": "flow.json", "report": "report.md"}


def _write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda tmp: Path(tmp).write_text(text))


def _observable_heatmap(stats: dict, trajectory: np.ndarray, path: Path, title: str) -> Path | None:
    """Heatmap of the main observable when the registry gives it fixed bins (the columns outside them left out)."""
    kind = stats["observable"]
    axis = OBSERVABLES[kind].axis
    if axis is None:
        return None
    rows = {} if axis.rows is None else {"ylabel": axis.rows}
    return plots.plot_histogram_heatmap(
        trajectory[:, axis.first : axis.first + len(axis.edges) - 1],
        axis.edges,
        path,
        f"{title}: {kind} observable",
        xlabel=axis.label,
        value_label="fraction of survivors",
        **rows,
    )


def _figures(trace: FlowTrace, stats: dict, out: Path, title: str) -> dict[str, Path]:
    figures = {}
    figures["histogram_png"] = plots.plot_magnitude_histograms(
        trace.histograms(),
        np.append(trace.bin_lower_edges(), np.inf),
        out / "histograms.png",
        f"{title}: weight magnitudes per round",
    )
    heatmap = _observable_heatmap(stats, trace.trajectory(stats["observable"]), out / "observable.png", title)
    if heatmap is not None:
        figures["observable_png"] = heatmap
    figures["density_png"] = plots.plot_layer_densities(
        np.array(stats["layer_density"]), trace.tensor_names, out / "layer_density.png", run=title
    )
    steps = {kind: flow["step_sizes"] for kind, flow in stats["by_observable"].items() if flow["step_sizes"]}
    if steps:
        figures["steps_png"] = plots.plot_step_sizes(steps, out / "step_sizes.png", run=title)
    split = stats["step_split"]
    if split is not None:
        figures["split_png"] = plots.plot_step_split(
            split["rounds"],
            split["total"],
            split["pruning"],
            split["training"],
            out / "step_split.png",
            split["observable"],
            run=title,
        )
    fits = {stats["observable"]: stats["analysis"]}
    if stats["parameter_space"] is not None:
        fits["parameter space"] = stats["parameter_space"]["analysis"]
    fits = {name: fit for name, fit in fits.items() if fit is not None}
    if fits:
        figures["eigen_png"] = plots.plot_eigenvalues(
            {name: _eigenvalues(fit) for name, fit in fits.items()},
            out / "eigenvalues.png",
            intervals={name: _bounds(fit) for name, fit in fits.items()},
            run=title,
            status={name: fit["status"] for name, fit in fits.items()},
        )
    tails = {"run": stats["tail_flow"]}
    if stats.get("pruning_reference") is not None:
        tails["pruning alone"] = stats["pruning_reference"]["tail_flow"]["pruning_only"]
    if any(x is not None for x in stats["tail_flow"]["xi"]) or len(tails) > 1:
        figures["tail_png"] = plots.plot_tail_flow(
            {name: _tail_series(tail) for name, tail in tails.items()},
            out / "tail_flow.png",
            stats["tail_flow"]["band"],
            run=title,
        )
    lottery = stats["lottery_ticket"]
    if lottery is not None:
        figures["lottery_png"] = plots.plot_lottery_ticket(
            lottery["density"],
            lottery["ticket"],
            lottery["random-reinit"],
            lottery["random-mask"],
            lottery["dense"],
            out / "lottery_ticket.png",
            title=f"{title}: lottery tickets",
        )
    return figures


def _tail_series(tail: dict) -> tuple[list, np.ndarray, np.ndarray]:
    """(rounds, ξ, intervals) of a ``tail_flow_json`` for the figure (None back to NaN / ±inf)."""
    flow = tail_flow_from_json(tail)
    return list(flow.rounds), flow.xi, flow.xi_intervals


def _eigenvalues(fit: dict) -> np.ndarray:
    return np.array([complex(re, im) for re, im in fit["eigenvalues"]], dtype=np.complex128)


def _bounds(fit: dict) -> np.ndarray:
    """(k, 2) |λ| intervals from JSON, None (unbounded above) back to inf."""
    return np.array(
        [[lower, np.inf if upper is None else upper] for lower, upper in fit["intervals"]], dtype=np.float64
    ).reshape(-1, 2)


def write_flow_report(
    trace: FlowTrace,
    out_dir: str | os.PathLike,
    *,
    title: str = "RG flow",
    gram: np.ndarray | None = None,
    observables: str | Sequence[str] = DEFAULT_OBSERVABLES,
    reference: PruningReference | None = None,
) -> dict[str, Path]:
    """Write trace.json, flow.json, report.md and the PNG figures into ``out_dir``; returns the paths.

    ``observables``: the kinds fitted, the first the main one (``analyse_flow``); ``gram``: the Gram matrix of
    the round checkpoints for the parameter-space fit; ``reference``: the run beside pruning alone
    (``pruning_reference``, exact when it was given the run's round-0 weights; default: computed from the trace
    alone). flow.json gets ``"tail_flow"`` (the run's ξ flow) and ``"pruning_reference"`` (None, with
    ``"pruning_reference_reason"``, when the trace cannot give one). Everything is computed before anything is
    written.
    """
    if not isinstance(title, str) or not title:
        raise ValueError(f"title must be a non-empty str, got {title!r}")
    stats = analyse_flow(trace, observables, gram)
    stats["tail_flow"] = tail_flow_json(tail_flow(trace))
    stats["pruning_reference"], stats["pruning_reference_reason"] = _reference_json(trace, stats, gram, reference)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {key: out / name for key, name in FLOW_REPORT_FILES.items()}
    trace.save(paths["trace"])
    atomic_write_json(paths["flow"], stats)
    paths.update(_figures(trace, stats, out, title))
    text = render_flow_markdown(trace, stats, title, {k: v.name for k, v in paths.items() if k.endswith("png")})
    _write_text(paths["report"], text)
    return paths


def _reference_json(trace: FlowTrace, stats: dict, gram, reference: PruningReference | None):
    """(the comparison with pruning alone as JSON, None) or (None, why there is none)."""
    if reference is None:
        if len(trace) < 2:
            return None, f"{len(trace)} round recorded: a step, and pruning alone's, need at least 2"
        kind = stats["observable"] if OBSERVABLES[stats["observable"]].splits else None
        try:
            reference = pruning_reference(trace, kind=kind, gram=gram)
        except ValueError as exc:  # e.g. checkpoints without a pruning fraction: nothing says what each round pruned
            return None, str(exc)
    elif not isinstance(reference, PruningReference):
        raise TypeError(f"reference must be a PruningReference (pruning_reference), got {type(reference).__name__}")
    return reference.to_json(), None


def first_line(stats: dict) -> str:
    """report.md's first line: whether training moved the flow beyond pruning alone, with its interval."""
    ref = stats.get("pruning_reference")
    if ref is None:
        return f"Training against pruning alone: no pruning-only reference ({stats.get('pruning_reference_reason')})."
    return ref["sentence"]


def _rounds_table(trace: FlowTrace, stats: dict) -> list[str]:
    metric_keys = sorted(
        {
            k
            for r in trace.rounds
            for k, v in r.metrics.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool)
        }
    )
    split = stats["step_split"] or {}
    lines = [
        "| round | density after prune | step size | pruning alone | training |"
        + "".join(f" {k} |" for k in metric_keys),
        "|---|---|---|---|---|" + "---|" * len(metric_keys),
    ]
    steps = [None] + list(stats["step_sizes"])
    pruning = [None] + list(split.get("pruning", [None] * len(stats["step_sizes"])))
    training = [None] + list(split.get("training", [None] * len(stats["step_sizes"])))
    for r, step, p, t in zip(trace.rounds, steps, pruning, training):
        cells = [str(r.round), f"{r.density:.4f}"] + ["" if v is None else f"{v:.4f}" for v in (step, p, t)]
        cells += [f"{r.metrics[k]:.4g}" if k in r.metrics else "" for k in metric_keys]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _directions_table(fit: dict, marginal_tol: float) -> list[str]:
    level = round(100 * fit["interval_level"])
    lines = [f"**{describe_status(fit)}.**", ""]
    if fit["eigenvalues"]:
        exponents = "scaling_exponents" in fit
        lines += [
            f"| λ | \\|λ\\| | {level}% interval of \\|λ\\| | class |"
            + (" y = ln\\|λ\\| / ln b | interval of y |" if exponents else ""),
            "|---|---|---|---|" + ("---|---|" if exponents else ""),
        ]
        for i, ((re, im), modulus, bounds, cls) in enumerate(
            zip(fit["eigenvalues"], fit["eigenvalue_moduli"], fit["intervals"], fit["classes"])
        ):
            row = f"| {re:.4f}{im:+.4f}i | {modulus:.4f} | {format_interval(bounds)} | {cls} |"
            if exponents:
                y = fit["scaling_exponents"][i]
                row += f" {'−∞' if y is None else f'{y:.3f}'} | {format_interval(fit['exponent_intervals'][i])} |"
            lines.append(row)
        lines += [
            "",
            f"A direction is relevant when its whole interval lies above 1 + {marginal_tol}, irrelevant "
            f"below 1 − {marginal_tol}, marginal within; unresolved otherwise. Intervals: bootstrap over "
            f"snapshot {fit['resampling_units']} (∞: unbounded, no information).",
        ]
    if fit["heldout_error"]:
        errors = ", ".join(
            f"{r}: {e:.3f} ± {s:.3f}" for r, (e, s) in enumerate(zip(fit["heldout_error"], fit["heldout_error_se"]))
        )
        lines += ["", f"Held-out one-step prediction error by rank, relative to rank 0 (the mean step): {errors}."]
    return lines + [""]


def _cell(text: str) -> str:
    """Text for a markdown table cell: a bare | would end the cell."""
    return text.replace("|", "\\|")


def _xi_cell(tail: dict, i: int) -> str:
    """'−0.052 [−0.071, −0.031] weibull' for round i of a ``tail_flow_json``; 'nan (unresolved)' without one."""
    xi = tail["xi"][i] if i < len(tail["xi"]) else None
    if xi is None:
        return "nan (unresolved)"
    return f"{xi:.3f} {format_interval(tail['xi_intervals'][i])} {tail['domains'][i]}"


def _fit_cell(fit: dict | None) -> str:
    if fit is None:
        return "no fit"
    return _cell(describe_status(fit) + (f": {describe_directions(fit, 3)}" if fit["eigenvalues"] else ""))


def _reference_section(stats: dict) -> list[str]:
    """The run beside pruning alone: steps, ξ and the DMD eigenvalues of each, and the verdict's numbers."""
    ref = stats.get("pruning_reference")
    lines = ["## Against pruning alone", ""]
    if ref is None:
        return lines + [f"No pruning-only reference: {stats.get('pruning_reference_reason')}", ""]
    how = (
        "from the run's own round-0 weights (exact, per tensor)"
        if ref["exact"]
        else "from weights with the run's round-0 histogram (the trace alone: its histograms and counts are exact)"
    )
    lines += [
        f"The flow pruning alone would produce {how}, pruned by the kernels on the run's schedule with no training "
        f"in between, beside the run's. Step sizes and DMD of the {ref['observable']} observable; ξ: the tail index "
        f"of the kept survivors' excess over each round's threshold (binned GPD fit, "
        f"{round(100 * ref['tail_flow']['run']['level'])}% intervals).",
        "",
        "| round | step size | step of the pruning-only flow | ξ of the run | ξ of pruning alone |",
        "|---|---|---|---|---|",
    ]
    run_tail, ref_tail = ref["tail_flow"]["run"], ref["tail_flow"]["pruning_only"]
    steps, ref_steps = [None, *ref["step_sizes"]["run"]], [None, *ref["step_sizes"]["pruning_only"]]
    for i, n in enumerate(run_tail["rounds"]):
        cells = [str(n)] + ["" if i >= len(v) or v[i] is None else f"{v[i]:.4f}" for v in (steps, ref_steps)]
        cells += [_xi_cell(run_tail, i), _xi_cell(ref_tail, i)]
        lines.append("| " + " | ".join(cells) + " |")
    interval = format_interval(ref["interval"])
    lines += [
        "",
        f"- DMD of the run: {_fit_cell(ref['dmd']['run'])}",
        f"- DMD of pruning alone: {_fit_cell(ref['dmd']['pruning_only'])}",
        f"- Parameter-space DMD of pruning alone (its Gram matrix from the sums): "
        f"{_fit_cell(ref['parameter_space_pruning_only'])}",
        f"- Training part of each step, run − pruning alone (bin quantization): mean {_number(ref['difference'])} "
        f"{interval} ({round(100 * ref['level'])}% t-interval over the steps): {ref['verdict']}.",
        "",
    ]
    return lines


def _number(x) -> str:
    return "nan" if x is None else f"{x:.4f}"


def _tail_section(stats: dict) -> list[str]:
    """The run's ξ flow round by round (``describe_tail_flow``): interval, domain, misfit, the moments check."""
    tail = stats["tail_flow"]
    lines = ["## Tail index ξ of the survivors", ""]
    lines += [
        "Under prune-and-rescale the fixed points are the generalized Pareto laws; the domain the interval of ξ "
        "puts a round in is its universality class: weibull (ξ < 0, a bounded tail), gumbel (ξ ≈ 0), frechet "
        "(ξ > 0, a power law), or unresolved. Domains of the rounds: "
        + ", ".join(f"{tail['domains'].count(d)} {d}" for d in DOMAINS if d in tail["domains"])
        + ".",
        "",
    ]
    lines += [f"- {_cell(line)}" for line in describe_tail_flow(tail_flow_from_json(tail))[1:]]
    return lines + [""]


def _main_flow_section(stats: dict) -> list[str]:
    kind, analysis = stats["observable"], stats["analysis"]
    lines = [f"## Flow of the {kind} observable", ""]
    if analysis is None:
        return lines + ["**No flow analysis:** " + stats["reason"], ""]
    lines += _directions_table(analysis, stats["marginal_tolerance"])
    if analysis["fixed_point_distance"] is not None:
        lines += [
            f"Distance of the last round from the affine fixed point: {analysis['fixed_point_distance']:.4g} "
            f"(affine residual {analysis['affine_residual']:.3g}).",
            "",
        ]
    return lines


def _observables_section(stats: dict) -> list[str]:
    lines = ["## All observables side by side", "", "| observable | mean step | last step | fit |", "|---|---|---|---|"]
    for kind, flow in stats["by_observable"].items():
        steps = flow["step_sizes"]
        fit = flow["analysis"]
        text = (
            flow["reason"]
            if fit is None
            else describe_status(fit) + (f": {describe_directions(fit)}" if fit["eigenvalues"] else "")
        )
        cells = [f"{np.mean(steps):.4f}" if steps else "", f"{steps[-1]:.4f}" if steps else "", _cell(text)]
        lines.append(f"| {kind} | " + " | ".join(cells) + " |")
    lines.append("")
    lines += [f"- **{kind}**: {OBSERVABLES[kind].note}" for kind in stats["by_observable"]]
    lines += [f"- **{kind}**: unavailable: {reason}" for kind, reason in stats["unavailable"].items()]
    return lines + [""]


def render_flow_markdown(trace: FlowTrace, stats: dict, title: str, figures: Mapping[str, str]) -> str:
    """report.md from a trace and its ``analyse_flow`` numbers; ``figures`` maps keys to figure file names. The ξ flow
    and the comparison with pruning alone are computed from the trace when ``stats`` lacks them."""
    if "tail_flow" not in stats or "pruning_reference" not in stats:
        stats = dict(stats)
        stats.setdefault("tail_flow", tail_flow_json(tail_flow(trace)))
        if "pruning_reference" not in stats:
            stats["pruning_reference"], stats["pruning_reference_reason"] = _reference_json(trace, stats, None, None)
    kind = stats["observable"]
    lines = [
        f"**{first_line(stats)}**",
        "",
        f"# {title}",
        "",
        f"Source: {trace.source or 'recorded during the run'}",
        "",
        f"Main observable: **{kind}**: {OBSERVABLES[kind].note}",
        "",
    ]
    if "observable_fallback" in stats:
        lines += [f"Note: {stats['observable_fallback']}.", ""]
    lines += ["## Rounds", ""] + _rounds_table(trace, stats)
    lines += [
        "",
        "Round n's histogram is of its trained weights (the survivors of the mask it trained with, whose "
        "density is `train_density` when the run recorded it); `density after prune` is what round n's own "
        "prune kept for round n + 1 (equal to the trained density for a round that did not prune). "
        f"Step size n = ‖O_n − O_{{n−1}}‖ / ‖O_{{n−1}}‖ of the {kind} observable O. `pruning alone` = "
        "‖P_n − O_{n−1}‖ / ‖O_{n−1}‖, where P_n is what round n − 1's survivors would give after round n's "
        "prune with no training in between; `training` = ‖O_n − P_n‖ / ‖O_{n−1}‖, the part of the step "
        "that retraining causes (near 0: the step is what pruning alone does).",
    ]
    if stats["step_split"] is None:
        lines += ["", f"No pruning/training split: {stats['step_split_reason']}."]
    lines += [""] + _reference_section(stats) + _tail_section(stats)
    lines += _main_flow_section(stats) + _observables_section(stats)
    space = stats["parameter_space"]
    if space is not None:
        lines += [
            "## Parameter space",
            "",
            "Centred DMD of the round checkpoints θ_n from their Gram matrix (the "
            "prunable weights, pruned ones as 0), with the same rank rule and intervals.",
            "",
        ]
        lines += (
            ["**No fit:** " + space["reason"], ""]
            if space["analysis"] is None
            else _directions_table(space["analysis"], stats["marginal_tolerance"])
        )
    lines += ["## Lottery tickets", ""]
    if stats["lottery_ticket"] is None:
        lines += ["The trace records no accuracies (e.g. a trace of checkpoints): no lottery-ticket figure.", ""]
    else:
        lines += [
            "Accuracy against the density each round trained at: the ticket (IMP, rewound; round 0 is the "
            "dense model), and the baselines the run trained (columns of the rounds table).",
            "",
        ]
    lines += [f"![{name}]({name})" for name in figures.values()]
    return "\n".join(lines) + "\n"


def _check_traces(traces: Mapping[str, FlowTrace]) -> None:
    if not isinstance(traces, Mapping) or len(traces) < 2:
        raise ValueError("compare needs at least two runs (a dict of name -> FlowTrace)")
    bad = [name for name, t in traces.items() if not isinstance(t, FlowTrace)]
    if bad:
        raise ValueError(f"compare needs FlowTraces; {bad} are not")
    short = [n for n, t in traces.items() if len(t) < MIN_ROUNDS]
    if short:
        raise ValueError(f"runs with fewer than {MIN_ROUNDS} rounds cannot be compared: {short}")


def compare_flows(
    traces: Mapping[str, FlowTrace], out_dir: str | os.PathLike, observable: str = DEFAULT_OBSERVABLES[0]
) -> dict[str, Path]:
    """Distances between flows (``flow_distance``: each flow fitted at the rank its data supports), each flow's
    resolved directions with intervals, and comparison figures, in ``out_dir``: compare.json, compare.md."""
    _check_traces(traces)
    names = list(traces)
    trajs = {}
    for name, trace in traces.items():
        try:
            trajs[name] = trace.trajectory(observable)
        except ValueError as exc:
            raise ValueError(f"{name}: the {observable} observable is undefined ({exc}); compare another one") from None
    widths = {t.shape[1] for t in trajs.values()}
    if len(widths) != 1:
        raise ValueError(
            f"the flows have different observable sizes {sorted(widths)}; compare runs of one dtype and architecture"
        )
    n = len(names)
    fits = {name: fit_json(dmd(trajs[name]), fraction=traces[name].fraction) for name in names}
    # a flow that resolved no direction has no eigenvalues to compare: its eigenvalue distances are null
    eig = [[0.0 if i == j and fits[names[i]]["dmd_rank"] else None for j in range(n)] for i in range(n)]
    traj_d = np.zeros((n, n))
    for i in range(n):
        for j in range(i + 1, n):
            d = flow_distance(trajs[names[i]], trajs[names[j]])
            eig[i][j] = eig[j][i] = d.eigenvalue_distance
            traj_d[i, j] = traj_d[j, i] = d.trajectory_distance
    result = {
        "version": FLOW_JSON_VERSION,
        "runs": names,
        "observable": observable,
        "eigenvalue_distance": eig,
        "trajectory_distance": traj_d.tolist(),
        "flows": fits,
        "intervals_note": INTERVALS_NOTE,
        "distance_note": "eigenvalue_distance: Wasserstein-1 distance between the flows' resolved DMD eigenvalue "
        "sets (dimensionless; null where either flow resolved no direction); trajectory_distance: mean distance "
        "between aligned rounds (observable units). The two are not added: their units differ",
    }
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"compare": out / "compare.json", "report": out / "compare.md"}
    atomic_write_json(paths["compare"], result)
    paths["eigen_png"] = plots.plot_eigenvalues(
        {name: _eigenvalues(f) for name, f in fits.items()},
        out / "eigenvalues.png",
        intervals={name: _bounds(f) for name, f in fits.items()},
        run=f"{', '.join(names)} ({observable} observable)",
        status={name: f["status"] for name, f in fits.items()},
    )
    paths["steps_png"] = plots.plot_step_sizes(
        {name: step_sizes(trajs[name]) for name in names},
        out / "step_sizes.png",
        run=f"{', '.join(names)} ({observable} observable)",
    )
    _write_text(paths["report"], _compare_markdown(result))
    return paths


def _distance_text(value) -> str:
    return "—" if value is None else f"{value:.4f}"


def _compare_markdown(result: dict) -> str:
    names, n = result["runs"], len(result["runs"])
    lines = [
        "# Flow comparison",
        "",
        f"Observable: {result['observable']}: {OBSERVABLES[result['observable']].note}",
        "",
        f"Distance: {result['distance_note']} (rgprune.rg.flow_distance).",
        "",
    ]
    for key, what in (("trajectory_distance", "Trajectory distance"), ("eigenvalue_distance", "Eigenvalue distance")):
        lines += [f"{what} ({key}; —: a flow resolved no direction):", "", "| | " + " | ".join(names) + " |"]
        lines.append("|---|" + "---|" * n)
        for i, name in enumerate(names):
            lines.append(f"| {name} | " + " | ".join(_distance_text(v) for v in result[key][i]) + " |")
        lines.append("")
    lines += ["", "Each flow's fit (held-out rank rule, bootstrap intervals of |λ|; ∞: unbounded):", ""]
    lines += [
        f"- **{name}**: {describe_status(fit)}" + (f": {_cell(describe_directions(fit))}" if fit["eigenvalues"] else "")
        for name, fit in result["flows"].items()
    ]
    lines += ["", "![eigenvalues](eigenvalues.png)", "![step sizes](step_sizes.png)"]
    return "\n".join(lines) + "\n"


def load_trace(path: str | os.PathLike) -> FlowTrace:
    """A trace from a directory that holds one (where ``write_flow_report`` puts it) or a trace.json file."""
    p = Path(path)
    if p.is_dir():
        p = p / FLOW_REPORT_FILES["trace"]
    if not p.is_file():
        raise FileNotFoundError(f"no trace.json at {path}: run `rgprune flow` on it first")
    return FlowTrace.load(p)
