"""The numbers of a flow report (flow.json) from a FlowTrace: fits with intervals, the step split, lottery tickets.

``analyse_flow(trace)`` fits every observable asked for with the estimators' default rules (``rgprune.rg.dmd``:
centred fit, rank from held-out one-step prediction, never the exact fit; bootstrap intervals of |λ|; a class
only when the whole interval lies in its band, else "unresolved"), splits each step of the main observable
into its pruning-only part and its training part (``rgprune.rg.step_split``), fits the parameter-space flow
from a Gram matrix of the round checkpoints (``gram_dmd``, same rule) and collects the accuracies the run
recorded for the lottery-ticket figure. ``report`` writes these numbers into files.

Everything returned is JSON-safe: all numbers are finite, and an interval bound that is unbounded (no
information on that side, e.g. the upper bound of [0, inf) when the bootstrap could not bound |λ|, or the
lower bound of a scaling exponent when |λ| may be 0) is ``None`` (``null`` in flow.json; ``INTERVALS_NOTE``
says so in the file itself).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from rgprune.rg.dmd import dmd, gram_dmd
from rgprune.rg.exponents import MARGINAL_TOL, classify_directions, rescaling_factor, scaling_exponents
from rgprune.rg.fixed_point import affine_fixed_point
from rgprune.rg.intervals import DEFAULT_LEVEL, DEFAULT_REPLICATES, check_interval_options
from rgprune.rg.linear_fit import MIN_FOLDS
from rgprune.rg.observables import DEFAULT_OBSERVABLES, OBSERVABLES, SPLIT_KINDS, step_split
from rgprune.rg.steps import step_sizes
from rgprune.rg.trace import FlowTrace

__all__ = [
    "FLOW_JSON_VERSION",
    "INTERVALS_NOTE",
    "MIN_ROUNDS",
    "analyse_flow",
    "describe_directions",
    "describe_status",
    "fit_json",
    "format_interval",
    "lottery_ticket_series",
]

#: fewest rounds a flow report analyses (2 snapshot pairs); resolving a direction needs MIN_FOLDS + 1 rounds
MIN_ROUNDS = 3
#: version 2: intervals, statuses, several observables, the step split and the lottery-ticket series
FLOW_JSON_VERSION = 2
INTERVALS_NOTE = (
    "intervals: bootstrap intervals of |λ| (lower, upper) at coverage interval_level; null as a bound "
    "means unbounded on that side (no information: [0, null] is [0, ∞)). A direction is relevant, "
    "marginal or irrelevant only when its whole interval lies in that band, else unresolved."
)
# The lottery-ticket series and the trace metrics they come from (RunDir.write_summary names them)
_LOTTERY_METRICS = {
    "ticket": "accuracy",
    "random-reinit": "random-reinit_accuracy",
    "random-mask": "random-mask_accuracy",
}


def _bound(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def _intervals_json(bounds: np.ndarray) -> list[list[float | None]]:
    return [[_bound(lower), _bound(upper)] for lower, upper in np.asarray(bounds, dtype=np.float64)]


def format_interval(bounds: Sequence[float | None]) -> str:
    """'[0.801, 0.865]' from a JSON interval; an unbounded side (None) reads ∞ (or −∞ for a lower bound)."""
    lower, upper = bounds
    left = "(−∞" if lower is None else f"[{lower:.3f}"
    right = "∞)" if upper is None else f"{upper:.3f}]"
    return f"{left}, {right}"


def describe_status(fit: dict) -> str:
    """One plain sentence on what a fit (``fit_json``) resolved."""
    pairs, status = fit["snapshot_pairs"], fit["status"]
    if status == "too short":
        return (
            f"too short to resolve anything: {pairs} snapshot pairs, and the held-out rank rule needs at least "
            f"{MIN_FOLDS} ({MIN_FOLDS + 1} rounds of one run) to test a direction; record more rounds"
        )
    if status == "nothing resolved":
        return (
            f"nothing resolved: over {pairs} snapshot pairs no direction predicts a held-out step better than "
            f"the mean step, so the flow reads as a constant drift plus noise"
        )
    k = fit["dmd_rank"]
    how = "held-out one-step prediction" if fit["rank_rule"] == "held-out" else f"the caller's {fit['rank_rule']}"
    exact = "; an exact fit of every pair, not a measurement" if fit["exact_fit"] else ""
    return f"{k} direction{'s' if k != 1 else ''} resolved over {pairs} snapshot pairs (rank from {how}{exact})"


def describe_directions(fit: dict, limit: int | None = None) -> str:
    """'|λ| 0.826 [0.801, 0.865] irrelevant, ...' for the first ``limit`` eigenvalues of a fit (``fit_json``)."""
    rows = list(zip(fit["eigenvalue_moduli"], fit["intervals"], fit["classes"]))
    shown = rows if limit is None else rows[:limit]
    text = ", ".join(f"{m:.3f} {format_interval(b)} {c}" for m, b, c in shown)
    more = f" (+{len(rows) - len(shown)} more)" if len(shown) < len(rows) else ""
    return f"|λ| {text}{more}" if rows else "no eigenvalues"


def fit_json(result, *, marginal_tol: float = MARGINAL_TOL, fraction: float | None = None) -> dict:
    """A ``dmd`` / ``gram_dmd`` result as JSON: status, rank, eigenvalues with intervals and classes, exponents.

    ``fraction``: the pruning fraction per round, for the scaling exponents y = ln|λ| / ln b, b = 1/(1 − p)
    (left out when None); their intervals map the |λ| intervals through the same increasing function.
    """
    selection = result.selection
    moduli = np.abs(result.eigenvalues)
    out = {
        "status": selection.status,
        "dmd_rank": int(result.rank),
        "rank_rule": selection.rule,
        "resampling_units": selection.units,
        "snapshot_pairs": int(selection.pairs),
        "exact_fit": bool(result.rank > 0 and selection.exact_fit),
        "heldout_error": [float(e) for e in selection.heldout_error],
        "heldout_error_se": [float(e) for e in selection.heldout_error_se],
        "eigenvalues": [[float(z.real), float(z.imag)] for z in result.eigenvalues],
        "eigenvalue_moduli": moduli.tolist(),
        "intervals": _intervals_json(result.eigenvalue_intervals),
        "interval_level": float(result.interval_level),
        "classes": classify_directions(result, marginal_tol).tolist(),
        "reconstruction_error": float(result.reconstruction_error),
    }
    if fraction:
        b = rescaling_factor(fraction)
        with np.errstate(divide="ignore"):
            exponent_bounds = np.log(np.asarray(result.eigenvalue_intervals, dtype=np.float64)) / math.log(b)
        out["rescaling_factor"] = b
        out["scaling_exponents"] = [_bound(y) for y in scaling_exponents(result.eigenvalues, b)]
        out["exponent_intervals"] = _intervals_json(exponent_bounds.reshape(-1, 2))
    out["summary"] = describe_status(out)
    return out


def _observable_flow(trace: FlowTrace, kind: str, options: dict) -> dict:
    """Step sizes and the fit of one observable's flow (ValueError when the observable is undefined here)."""
    traj = trace.trajectory(kind)
    out: dict = {
        "observable": kind,
        "note": OBSERVABLES[kind].note,
        "step_sizes": step_sizes(traj).tolist() if len(trace) >= 2 else [],
    }
    if len(trace) < MIN_ROUNDS:
        out["analysis"] = None
        out["reason"] = (
            f"{len(trace)} rounds recorded; a flow analysis needs at least {MIN_ROUNDS} (2 snapshot "
            f"pairs), and resolving a direction {MIN_FOLDS + 1}: run more IMP rounds"
        )
        return out
    result = dmd(traj, level=options["level"], n_boot=options["n_boot"], seed=options["seed"])
    analysis = fit_json(result, marginal_tol=options["marginal_tol"], fraction=trace.fraction)
    analysis["fixed_point_distance"] = analysis["affine_residual"] = None
    if result.rank:  # at rank 0 the "fixed point" is only the mean image: no dynamics to have one
        affine = affine_fixed_point(traj, n_boot=0)
        analysis["fixed_point_distance"] = float(np.linalg.norm(traj[-1] - affine.fixed_point))
        analysis["affine_residual"] = float(affine.residual)
    out["analysis"] = analysis
    return out


def _step_split_json(trace: FlowTrace, kind: str) -> tuple[dict | None, str | None]:
    if not OBSERVABLES[kind].splits:
        return None, (
            f"the pruning-only step is defined for {', '.join(SPLIT_KINDS)}, not {kind} (layer "
            f"observables would need per-layer histograms)"
        )
    if len(trace) < 2:
        return None, "a step needs at least 2 rounds"
    try:
        split = step_split(trace, kind)
    except ValueError as exc:
        return None, str(exc)
    return {
        "observable": kind,
        "rounds": split.rounds.tolist(),
        "total": split.total.tolist(),
        "pruning": split.pruning.tolist(),
        "training": split.training.tolist(),
    }, None


def lottery_ticket_series(trace: FlowTrace) -> dict | None:
    """Accuracy against the density each round trained at, for the ticket and the baselines the run recorded.

    Round 0 is the dense model (its accuracy is also ``dense``); a baseline a round did not train is None. The
    density of round n is its recorded ``train_density`` (else the density round n − 1's prune left, 1 for
    round 0). None when the trace recorded no accuracy (e.g. a trace of checkpoints).
    """

    def accuracy(metrics: dict, key: str) -> float | None:
        value = metrics.get(key)
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        return float(value) if ok else None

    series = {name: [accuracy(r.metrics, key) for r in trace.rounds] for name, key in _LOTTERY_METRICS.items()}
    if all(v is None for v in series["ticket"]):
        return None
    density = []
    for n, r in enumerate(trace.rounds):
        recorded = accuracy(r.metrics, "train_density")
        density.append(recorded if recorded is not None else 1.0 if n == 0 else trace.rounds[n - 1].density)
    dense = series["ticket"][0] if density[0] == 1.0 else None
    return {"rounds": [r.round for r in trace.rounds], "density": density, **series, "dense": dense}


def _check_options(observables, marginal_tol: float, level: float, n_boot: int, seed: int) -> tuple[str, ...]:
    kinds = (observables,) if isinstance(observables, str) else tuple(observables)
    unknown = [k for k in kinds if not isinstance(k, str) or k not in OBSERVABLES]
    if not kinds or unknown or len(set(kinds)) != len(kinds):
        raise ValueError(
            f"observables must be distinct names from {tuple(OBSERVABLES)} (the first is the report's main "
            f"one); got {observables!r}"
        )
    if isinstance(marginal_tol, bool) or not isinstance(marginal_tol, (int, float)) or not 0 <= marginal_tol < 1:
        raise ValueError(f"marginal_tol must be in [0, 1) (half-width of the marginal band); got {marginal_tol!r}")
    check_interval_options(level, n_boot, seed)
    return kinds


def analyse_flow(
    trace: FlowTrace,
    observables: str | Sequence[str] = DEFAULT_OBSERVABLES,
    gram: np.ndarray | None = None,
    *,
    marginal_tol: float = MARGINAL_TOL,
    level: float = DEFAULT_LEVEL,
    n_boot: int = DEFAULT_REPLICATES,
    seed: int = 0,
) -> dict:
    """Flow statistics of one trace as a JSON-ready dict (flow.json; the module docstring says what is in it).

    ``observables``: the kinds of ``FlowTrace.trajectory`` to fit, the first being the main one (``"observable"``,
    ``"step_sizes"`` and ``"analysis"`` at the top level, the step split). A kind the trace cannot give (e.g. the
    rescaled ones for checkpoints without a pruning fraction) is listed under ``"unavailable"`` with the reason,
    and the main observable is then the first one available (``"observable_fallback"`` says why).
    ``gram``: the Gram matrix of the round checkpoints, for the parameter-space fit (``"parameter_space"``).
    ``marginal_tol``: half-width of the marginal band; ``level``, ``n_boot``, ``seed``: the intervals' coverage,
    bootstrap replicates and seed (the same trace and seed give the same report).
    """
    if not isinstance(trace, FlowTrace):
        raise ValueError(f"trace must be a FlowTrace, got {type(trace).__name__}")
    if not trace.rounds:
        raise ValueError("the trace has no rounds yet: nothing to analyse")
    kinds = _check_options(observables, marginal_tol, level, n_boot, seed)
    options = {"marginal_tol": marginal_tol, "level": level, "n_boot": n_boot, "seed": seed}
    flows, unavailable = {}, {}
    for kind in kinds:
        try:
            flows[kind] = _observable_flow(trace, kind, options)
        except ValueError as exc:  # the observable is undefined for this trace; the report says why
            unavailable[kind] = str(exc)
    if not flows:
        raise ValueError(f"no observable of {kinds} is defined for this trace: {unavailable}")
    main = next(iter(flows))
    out: dict = {
        "version": FLOW_JSON_VERSION,
        "observable": main,
        "observables": list(flows),
        "unavailable": unavailable,
        "rounds": [r.round for r in trace.rounds],
        "density": [r.density for r in trace.rounds],
        "layer_density": trace.trajectory("layer-density").tolist(),
        "tensor_names": list(trace.tensor_names),
        "fraction": trace.fraction,
        "marginal_tolerance": marginal_tol,
        "interval_level": level,
        "intervals_note": INTERVALS_NOTE,
        "step_sizes": flows[main]["step_sizes"],
        "analysis": flows[main]["analysis"],
    }
    if main != kinds[0]:
        out["observable_fallback"] = f"{kinds[0]} is unavailable ({unavailable[kinds[0]]}); analysed {main} instead"
    if out["analysis"] is None:
        out["reason"] = flows[main]["reason"]
    out["by_observable"] = flows
    out["step_split"], out["step_split_reason"] = _step_split_json(trace, main)
    out["parameter_space"] = _parameter_space(gram, len(trace), options, trace.fraction)
    out["lottery_ticket"] = lottery_ticket_series(trace)
    return out


def _parameter_space(gram, rounds: int, options: dict, fraction: float | None) -> dict | None:
    if gram is None:
        return None
    g = np.asarray(gram, dtype=np.float64)
    if g.shape != (rounds, rounds):
        raise ValueError(
            f"gram is {g.shape}, the trace has {rounds} rounds: pass the Gram matrix of the same "
            f"rounds' checkpoints ({rounds} x {rounds})"
        )
    if rounds < MIN_ROUNDS:
        return {"analysis": None, "reason": f"{rounds} checkpoints; a fit needs at least {MIN_ROUNDS}"}
    try:
        result = gram_dmd(g, level=options["level"], n_boot=options["n_boot"], seed=options["seed"])
    except ValueError as exc:  # e.g. checkpoints that do not move: the report says so instead of failing
        return {"analysis": None, "reason": str(exc)}
    return {"analysis": fit_json(result, marginal_tol=options["marginal_tol"], fraction=fraction)}
