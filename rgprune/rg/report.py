"""Flow analysis of FlowTraces and the files ``rgprune flow`` / ``rgprune compare`` write.

``analyse_flow(trace)`` turns a trace into the numbers of flow.json: step sizes, exact DMD (Koopman
eigenvalues), the affine fixed point, scaling exponents y = ln|λ| / ln b with b = 1/(1 - p), and the
classification of directions. Flows with fewer than 3 rounds cannot be analysed: the result says so
(``"analysis": null`` with the reason) instead of reporting numbers that mean nothing.
"""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Mapping

import numpy as np

from rgprune._io import atomic_write, atomic_write_json
from rgprune.rg import flow, plots
from rgprune.rg.trace import FlowTrace

MIN_ROUNDS = 3
#: the files ``write_flow_report`` writes into its directory besides the figures (``load_trace`` reads "trace")
FLOW_REPORT_FILES = {"trace": "trace.json", "flow": "flow.json", "report": "report.md"}


def _complex_list(values) -> list[list[float]]:
    return [[float(np.real(v)), float(np.imag(v))] for v in values]


def analyse_flow(trace: FlowTrace, kind: str = "histogram", gram: np.ndarray | None = None,
                 marginal_tol: float = flow.MARGINAL_TOL) -> dict:
    """Flow statistics of one trace as a JSON-ready dict (see the module docstring)."""
    traj = trace.trajectory(kind)
    out: dict = {
        "observable": kind,
        "rounds": [r.round for r in trace.rounds],
        "density": [r.density for r in trace.rounds],
        "layer_density": trace.trajectory("layer-density").tolist(),
        "tensor_names": list(trace.tensor_names),
        "fraction": trace.fraction,
        "marginal_tolerance": marginal_tol,
    }
    if len(trace) < 2:
        out["step_sizes"] = []
    else:
        out["step_sizes"] = flow.step_sizes(traj).tolist()
    if len(trace) < MIN_ROUNDS:
        out["analysis"] = None
        out["reason"] = (f"{len(trace)} rounds recorded; DMD needs at least {MIN_ROUNDS} (2 snapshot pairs): "
                         f"run more IMP rounds")
        return out
    # The report keeps the singular-value threshold rule (tol) it printed before the held-out rank rule and
    # intervals of issue 12 existed; moving the report to them is the report/CLI wiring step.
    result = flow.dmd(traj, tol=flow.DEFAULT_TOL)
    affine = flow.affine_fixed_point(traj, tol=flow.DEFAULT_TOL)
    analysis = {
        "dmd_rank": result.rank,
        "eigenvalues": _complex_list(result.eigenvalues),
        "eigenvalue_moduli": np.abs(result.eigenvalues).tolist(),
        "reconstruction_error": result.reconstruction_error,
        "classes": flow.classify_directions(result.eigenvalues, marginal_tol).tolist(),
        "affine_eigenvalues": _complex_list(affine.eigenvalues),
        "fixed_point_distance": float(np.linalg.norm(traj[-1] - affine.fixed_point)),
        "affine_residual": affine.residual,
    }
    if trace.fraction:
        b = flow.rescaling_factor(trace.fraction)
        exps = flow.scaling_exponents(result.eigenvalues, b)
        analysis["rescaling_factor"] = b
        analysis["scaling_exponents"] = [None if not math.isfinite(y) else float(y) for y in exps]
    if gram is not None:
        g = flow.gram_dmd(gram, tol=flow.GRAM_DEFAULT_TOL)
        analysis["parameter_space_eigenvalues"] = _complex_list(g.eigenvalues)
        analysis["parameter_space_moduli"] = np.abs(g.eigenvalues).tolist()
    out["analysis"] = analysis
    return out


def _eigs(analysis: dict) -> np.ndarray:
    return np.array([complex(re, im) for re, im in analysis["eigenvalues"]])


def write_flow_report(trace: FlowTrace, out_dir: str | os.PathLike, *, title: str = "RG flow",
                      gram: np.ndarray | None = None) -> dict[str, Path]:
    """Write trace.json, flow.json, report.md and the PNG figures into ``out_dir``; returns the paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stats = analyse_flow(trace, gram=gram)
    paths = {key: out / name for key, name in FLOW_REPORT_FILES.items()}
    trace.save(paths["trace"])
    atomic_write_json(paths["flow"], stats)
    edges = trace.bin_lower_edges()
    occupied = np.nonzero(trace.histograms().sum(axis=0))[0]
    lo, hi = (occupied[0], occupied[-1] + 1) if occupied.size else (0, len(edges))
    log_edges = np.log2(np.maximum(np.append(edges[lo:hi], edges[hi] if hi < len(edges) else edges[-1] * 2),
                                   np.finfo(float).tiny))
    paths["histogram_png"] = plots.plot_histogram_heatmap(trace.histograms()[:, lo:hi], log_edges,
                                                          out / "histograms.png", f"{title}: log2|w| per round")
    paths["density_png"] = plots.plot_layer_densities(np.array(stats["layer_density"]), trace.tensor_names,
                                                      out / "layer_density.png")
    if stats["step_sizes"]:
        paths["steps_png"] = plots.plot_step_sizes({title: stats["step_sizes"]}, out / "step_sizes.png")
    if stats["analysis"]:
        paths["eigen_png"] = plots.plot_eigenvalues({title: _eigs(stats["analysis"])}, out / "eigenvalues.png")
    text = render_flow_markdown(trace, stats, title, {k: v.name for k, v in paths.items() if k.endswith("png")})
    atomic_write(paths["report"], lambda tmp: Path(tmp).write_text(text))
    return paths


def render_flow_markdown(trace: FlowTrace, stats: dict, title: str, figures: Mapping[str, str]) -> str:
    metric_keys = sorted({k for r in trace.rounds for k, v in r.metrics.items() if isinstance(v, (int, float))})
    lines = [f"# {title}", "", f"Source: {trace.source or 'recorded during the run'}", "",
             "| round | density after prune | step size |" + "".join(f" {k} |" for k in metric_keys)]
    lines.append("|---|---|---|" + "---|" * len(metric_keys))
    steps = [None] + list(stats["step_sizes"])
    for r, step in zip(trace.rounds, steps):
        cells = [str(r.round), f"{r.density:.4f}", "" if step is None else f"{step:.4f}"]
        cells += [f"{r.metrics[k]:.4g}" if k in r.metrics else "" for k in metric_keys]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "Round n's histogram is of its trained weights (the survivors of the mask it trained with, "
                  "whose density is `train_density` when the run recorded it); `density after prune` is what "
                  "round n's own prune kept for round n + 1 (equal to the trained density for a round that did "
                  "not prune). Step size n = ‖g_n − g_{n−1}‖ / ‖g_{n−1}‖ of the histogram fractions g.", ""]
    analysis = stats["analysis"]
    if analysis is None:
        lines += ["**No flow analysis:** " + stats["reason"], ""]
    else:
        lines += [f"Observable: {stats['observable']} (fraction of surviving weights per magnitude bin). "
                  f"DMD rank {analysis['dmd_rank']}, reconstruction error {analysis['reconstruction_error']:.3g}. "
                  f"Directions: relevant |λ| > 1 + {stats['marginal_tolerance']}, irrelevant |λ| < 1 - "
                  f"{stats['marginal_tolerance']}, marginal otherwise.", "",
                  "| λ | \\|λ\\| | class | y = ln\\|λ\\| / ln b |", "|---|---|---|---|"]
        exps = analysis.get("scaling_exponents") or [None] * len(analysis["eigenvalues"])
        for (re, im), mod, cls, y in zip(analysis["eigenvalues"], analysis["eigenvalue_moduli"],
                                         analysis["classes"], exps):
            lines.append(f"| {re:.4f}{im:+.4f}i | {mod:.4f} | {cls} | {'' if y is None else f'{y:.3f}'} |")
        lines += ["", f"Distance of the last round from the affine fixed point: "
                      f"{analysis['fixed_point_distance']:.4g}.", ""]
        if "parameter_space_moduli" in analysis:
            mods = ", ".join(f"{m:.4f}" for m in analysis["parameter_space_moduli"])
            lines += [f"Parameter-space DMD (method of snapshots) eigenvalue moduli: {mods}.", ""]
    for name in figures.values():
        lines.append(f"![{name}]({name})")
    return "\n".join(lines) + "\n"


def compare_flows(traces: Mapping[str, FlowTrace], out_dir: str | os.PathLike,
                  kind: str = "histogram") -> dict[str, Path]:
    """Distance matrix between flows (``flow.flow_distance``) and comparison figures, in ``out_dir``."""
    if len(traces) < 2:
        raise ValueError("compare needs at least two runs")
    short = [n for n, t in traces.items() if len(t) < MIN_ROUNDS]
    if short:
        raise ValueError(f"runs with fewer than {MIN_ROUNDS} rounds cannot be compared: {short}")
    names = list(traces)
    trajs = {n: t.trajectory(kind) for n, t in traces.items()}
    widths = {t.shape[1] for t in trajs.values()}
    if len(widths) != 1:
        raise ValueError(f"the flows have different observable sizes {sorted(widths)}; compare runs of one dtype")
    n = len(names)
    eig, traj_d, total = np.zeros((n, n)), np.zeros((n, n)), np.zeros((n, n))
    for i in range(n):
        for j in range(i + 1, n):
            d = flow.flow_distance(trajs[names[i]], trajs[names[j]])
            eig[i, j] = eig[j, i] = d.eigenvalue_distance
            traj_d[i, j] = traj_d[j, i] = d.trajectory_distance
            total[i, j] = total[j, i] = d.total
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    result = {"runs": names, "observable": kind, "eigenvalue_distance": eig.tolist(),
              "trajectory_distance": traj_d.tolist(), "total": total.tolist()}
    paths = {"compare": out / "compare.json", "report": out / "compare.md"}
    atomic_write_json(paths["compare"], result)
    eigs = {name: flow.dmd(trajs[name], tol=flow.DEFAULT_TOL).eigenvalues for name in names}
    paths["eigen_png"] = plots.plot_eigenvalues(eigs, out / "eigenvalues.png")
    paths["steps_png"] = plots.plot_step_sizes({name: flow.step_sizes(trajs[name]) for name in names},
                                               out / "step_sizes.png")
    lines = ["# Flow comparison", "", f"Observable: {kind}. Distance = Wasserstein distance between the DMD "
             "eigenvalue sets + trajectory distance (see rgprune.rg.flow_distance).", "",
             "| | " + " | ".join(names) + " |", "|---|" + "---|" * n]
    for i, name in enumerate(names):
        lines.append(f"| {name} | " + " | ".join(f"{total[i, j]:.4f}" for j in range(n)) + " |")
    lines += ["", "![eigenvalues](eigenvalues.png)", "![step sizes](step_sizes.png)"]
    atomic_write(paths["report"], lambda tmp: Path(tmp).write_text("\n".join(lines) + "\n"))
    return paths


def load_trace(path: str | os.PathLike) -> FlowTrace:
    """A trace from a directory that holds one (where ``write_flow_report`` puts it) or a trace.json file."""
    p = Path(path)
    if p.is_dir():
        p = p / FLOW_REPORT_FILES["trace"]
    if not p.is_file():
        raise FileNotFoundError(f"no trace.json at {path}: run `rgprune flow` on it first")
    return FlowTrace.load(p)
