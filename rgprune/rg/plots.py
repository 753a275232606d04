"""Matplotlib figures of RG flow statistics, from plain numpy arrays and lists.

Every function validates its input (``ValueError`` with what was wrong), draws on a standalone
Agg canvas (no pyplot, no global backend switch, nothing shown on screen), writes the PNG
atomically (``rgprune._io.atomic_write``: a crash never leaves a half-written figure under the
final name) and returns the path written. Axes carry their units (log10 |w|, fraction of
survivors, accuracy), rounds are integer ticks, and a figure of weights or densities says whether
it shows them before or after the round's prune. ``run`` (or ``title``) names the run in each title.

The figures are meant to survive real weights: ``plot_magnitude_histograms`` counts exact zeros and
non-finite weights apart and spans only the bins that hold the bulk of the nonzero mass (saying how
many weights it leaves out), ``plot_lottery_ticket`` puts a labelled tick at every round's density, and
``plot_eigenvalues`` writes "nothing resolved" (or the fit's status) on a plot without eigenvalues.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, FuncFormatter, MaxNLocator, NullFormatter, NullLocator

from rgprune._io import atomic_write

__all__ = [
    "plot_eigenvalues",
    "plot_step_sizes",
    "plot_step_split",
    "plot_histogram_heatmap",
    "plot_layer_densities",
    "plot_magnitude_histograms",
    "plot_lottery_ticket",
    "plot_tail_flow",
]

_DPI = 120
# Beyond this many layers, label only every k-th layer so tick labels stay legible.
_MAX_LAYER_LABELS = 40
STEP_LABEL = "round n (step from round n − 1 to n)"
ROUND_LABEL = "round n (trained weights, before its prune)"
# plot_magnitude_histograms: the x axis leaves out at most this fraction of the nonzero mass, at the small end
TAIL_LEFT_OUT = 1e-3
# ... and spans at least this many decades (all-equal weights fill one bin)
MIN_DECADES = 1.0


# --------------------------------------------------------------------------------------------
# Validation and output
# --------------------------------------------------------------------------------------------


def _check_png_path(path: str | os.PathLike) -> Path:
    if not isinstance(path, (str, os.PathLike)):
        raise ValueError(f"path must be a str or os.PathLike; got {type(path).__name__}.")
    target = Path(path)
    if target.suffix.lower() != ".png":
        raise ValueError(f"path must end in .png (these functions write PNG files); got {target}.")
    if target.is_dir():
        raise ValueError(f"path {target} is a directory; give a file name ending in .png.")
    return target


def _save(figure: Figure, target: Path) -> Path:
    """Render ``figure`` to ``target`` atomically."""
    atomic_write(target, lambda temporary: FigureCanvasAgg(figure).print_png(temporary))
    return target


def _integer_ticks(axis) -> None:
    # min_n_ticks=1: a single round gets the tick 0, not ticks at -0.4, -0.2, ... (MaxNLocator's fallback)
    axis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))


def _titled(text: str, run: str | None) -> str:
    """``text`` prefixed with the run's name ("seed0: text"), or ``text`` alone when ``run`` is None."""
    if run is None:
        return text
    if not isinstance(run, str):
        raise ValueError(f"run must be a str (the run's name) or None; got {type(run).__name__}.")
    return f"{run}: {text}" if run else text


def _numeric_vector(values: object, what: str, dtype, allow_empty: bool = False) -> np.ndarray:
    """A finite 1-D array of ``dtype``, non-empty unless ``allow_empty``; ValueError naming ``what`` otherwise."""
    try:
        array = np.asarray(values, dtype=dtype)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{what} must be numeric ({error}).") from error
    if array.ndim != 1 or (array.size == 0 and not allow_empty):
        raise ValueError(f"{what} must be a {'' if allow_empty else 'non-empty '}1-D array; got shape {array.shape}.")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{what} contains non-finite values.")
    return array


def _real_vector(values: object, what: str, *, positive: bool = False) -> np.ndarray:
    if np.iscomplexobj(values):
        raise ValueError(f"{what} must be real; got complex values.")
    array = _numeric_vector(values, what, np.float64)
    if positive and np.any(array < 0):
        raise ValueError(f"{what} must be non-negative (step sizes are norms).")
    return array


def _complex_vector(values: object, what: str, allow_empty: bool = False) -> np.ndarray:
    return _numeric_vector(values, what, np.complex128, allow_empty)


def _check_named_series(series: Mapping[str, object], what: str) -> None:
    if not isinstance(series, Mapping) or len(series) == 0:
        raise ValueError(f"{what} must be a non-empty dict mapping names to arrays.")
    for name in series:
        if not isinstance(name, str):
            raise ValueError(f"{what}: keys must be str names; got {name!r}.")


def _real_matrix(values: object, what: str, shape_words: str) -> np.ndarray:
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{what} must be numeric ({error}).") from error
    if array.ndim != 2 or 0 in array.shape:
        raise ValueError(f"{what} must be a non-empty 2-D array ({shape_words}); got shape {array.shape}.")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{what} contains non-finite values.")
    return array


# --------------------------------------------------------------------------------------------
# Figures
# --------------------------------------------------------------------------------------------


def plot_eigenvalues(
    eigs_by_name: Mapping[str, object],
    path: str | os.PathLike,
    intervals: Mapping[str, object] | None = None,
    *,
    run: str | None = None,
    status: Mapping[str, str] | None = None,
) -> Path:
    """Scatter DMD eigenvalues of one or more flows in the complex plane with the unit circle.

    Points outside the circle are relevant directions, inside irrelevant, on it marginal. A flow may have
    no eigenvalues (a fit of rank 0: nothing resolved, or too short to tell); its legend entry says so.
    ``intervals`` (optional) maps a flow's name to a (k, 2) array of the lower and upper modulus of
    each of its k eigenvalues (``eigenvalue_intervals``); each is drawn as a radial bar through its
    eigenvalue, from |λ| = lower to upper, so a bar crossing the circle is an unresolved direction. An
    upper bound of inf (no information) is drawn dotted to the edge of the plot.

    ``status`` (optional) maps a flow's name to why it has no eigenvalues (the fit's status: "too short",
    "nothing resolved"; default "nothing resolved"). When no flow has an eigenvalue, that is written in the
    middle of the circle, so an empty plot reads as a result, not as a failure. ``run`` names the run in the
    title.
    """
    _check_named_series(eigs_by_name, "eigs_by_name")
    target = _check_png_path(path)
    eigenvalues = {
        name: _complex_vector(v, f"eigenvalues of {name!r}", allow_empty=True) for name, v in eigs_by_name.items()
    }
    bounds = _check_intervals(intervals, eigenvalues)
    if status is not None and (
        not isinstance(status, Mapping) or not all(isinstance(v, str) and v for v in status.values())
    ):
        raise ValueError("status must be a dict mapping flow names to non-empty str (why a flow has no eigenvalues).")
    why = {name: (status or {}).get(name) or "nothing resolved" for name in eigenvalues}
    bars = any(len(b) for b in bounds.values())
    title = _titled("DMD eigenvalues of the flow" + (" (bars: interval of |λ|)" if bars else ""), run)

    figure = Figure(figsize=(5.5, 5.0), dpi=_DPI)
    axes = figure.add_subplot()
    angle = np.linspace(0.0, 2.0 * np.pi, 400)
    axes.plot(np.cos(angle), np.sin(angle), color="0.5", lw=1.0, ls="--", label="|λ| = 1")
    axes.axhline(0.0, color="0.85", lw=0.8)
    axes.axvline(0.0, color="0.85", lw=0.8)
    finite = [np.abs(v) for v in eigenvalues.values()] + [b[np.isfinite(b)] for b in bounds.values()]
    extent = max([1.1] + [1.1 * float(x.max()) for x in finite if x.size])
    for name, values in eigenvalues.items():
        label = name if values.size else f"{name} ({why[name]})"
        points = axes.scatter(values.real, values.imag, s=30, alpha=0.8, label=label, zorder=3)
        if name in bounds:
            direction = np.exp(1j * np.angle(values))
            for (lower, upper), unit in zip(bounds[name], direction):
                top = upper if np.isfinite(upper) else extent
                axes.plot(
                    [lower * unit.real, top * unit.real],
                    [lower * unit.imag, top * unit.imag],
                    color=points.get_facecolor()[0] if values.size else "0.3",
                    lw=2.0,
                    alpha=0.6,
                    ls="-" if np.isfinite(upper) else ":",
                    solid_capstyle="butt",
                    gid=f"interval of {name}",
                )
    if not any(values.size for values in eigenvalues.values()):
        reasons = sorted(set(why.values()))
        note = reasons[0] if len(reasons) == 1 else "\n".join(f"{name}: {reason}" for name, reason in why.items())
        axes.text(0.0, 0.0, note, ha="center", va="center", fontsize="large", color="0.25", gid="no eigenvalues")
    axes.set_xlim(-extent, extent)
    axes.set_ylim(-extent, extent)
    axes.set_aspect("equal")
    axes.set_xlabel("Re λ (per round)")
    axes.set_ylabel("Im λ (per round)")
    axes.set_title(title, fontsize="medium")
    # with no eigenvalue "best" is the middle, where the note is
    axes.legend(loc="best" if bars or any(v.size for v in eigenvalues.values()) else "upper right", fontsize="small")
    figure.tight_layout()
    return _save(figure, target)


def _check_intervals(intervals, eigenvalues: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    if intervals is None:
        return {}
    if not isinstance(intervals, Mapping):
        raise ValueError("intervals must be a dict mapping flow names to (k, 2) arrays of |λ| bounds.")
    out = {}
    for name, value in intervals.items():
        if name not in eigenvalues:
            raise ValueError(f"intervals has {name!r}, which is not a flow of eigs_by_name.")
        count = eigenvalues[name].size
        try:
            bounds = np.asarray(value, dtype=np.float64)
        except (TypeError, ValueError) as error:
            raise ValueError(f"intervals of {name!r} must be numeric ({error}).") from error
        if count == 0 and bounds.size == 0:  # no eigenvalues (rank 0): no bounds, in any empty shape
            bounds = bounds.reshape(0, 2)
        if bounds.shape != (count, 2):
            raise ValueError(
                f"intervals of {name!r} must have shape ({count}, 2): one (lower, "
                f"upper) modulus per eigenvalue; got {bounds.shape}."
            )
        if np.any(np.isnan(bounds)) or not np.all(np.isfinite(bounds[:, 0])) or np.any(bounds[:, 1] == -np.inf):
            raise ValueError(
                f"intervals of {name!r} contain non-finite values (only an upper bound may be inf: no information)."
            )
        if np.any(bounds[:, 0] < 0) or np.any(bounds[:, 0] > bounds[:, 1]):
            raise ValueError(f"intervals of {name!r} must satisfy 0 <= lower <= upper (moduli).")
        out[name] = bounds
    return out


def plot_step_sizes(steps_by_name: Mapping[str, object], path: str | os.PathLike, *, run: str | None = None) -> Path:
    """Relative step size ||g(n) - g(n-1)|| / ||g(n-1)|| against round n = 1, 2, ..., one line per flow.

    Step n goes from round n − 1 to round n, as in the report's table (``step_sizes`` returns them in
    that order). Log scale when all steps are positive (steps shrink geometrically near a fixed point).
    """
    _check_named_series(steps_by_name, "steps_by_name")
    target = _check_png_path(path)
    steps = {name: _real_vector(v, f"step sizes of {name!r}", positive=True) for name, v in steps_by_name.items()}
    title = _titled("Flow step sizes", run)

    figure = Figure(figsize=(6.0, 4.0), dpi=_DPI)
    axes = figure.add_subplot()
    for name, values in steps.items():
        axes.plot(np.arange(1, values.size + 1), values, marker="o", ms=3, label=name)
    if all(np.all(v > 0) for v in steps.values()):
        axes.set_yscale("log")
    _integer_ticks(axes.xaxis)
    axes.set_xlabel(STEP_LABEL)
    axes.set_ylabel("relative step ‖g(n) − g(n−1)‖ / ‖g(n−1)‖")
    axes.set_title(title, fontsize="medium")
    axes.legend(loc="best", fontsize="small")
    figure.tight_layout()
    return _save(figure, target)


def plot_step_split(
    rounds: object,
    total: object,
    pruning: object,
    training: object,
    path: str | os.PathLike,
    observable: str = "excess",
    *,
    run: str | None = None,
) -> Path:
    """Each step of a flow beside its pruning-only part and its training part (``rgprune.rg.step_split``).

    ``rounds``: the round n each step arrives at (integers); ``total``, ``pruning``, ``training``: the
    relative steps, one per round. A training part near 0 means the step is what pruning alone does.
    """
    x = _real_vector(rounds, "rounds")
    if np.any(x != np.round(x)):
        raise ValueError("rounds must be whole numbers (the round each step arrives at).")
    series = {"step": total, "pruning alone": pruning, "training": training}
    values = {label: _real_vector(v, f"{label} steps", positive=True) for label, v in series.items()}
    for label, v in values.items():
        if v.size != x.size:
            raise ValueError(f"{label} steps has {v.size} values for {x.size} rounds; give one per round.")
    if not isinstance(observable, str):
        raise ValueError(f"observable must be a str; got {type(observable).__name__}.")
    title = _titled(f"Steps of the {observable} observable: pruning alone vs training", run)
    target = _check_png_path(path)

    figure = Figure(figsize=(6.0, 4.0), dpi=_DPI)
    axes = figure.add_subplot()
    for (label, v), style in zip(values.items(), ("-o", "--s", ":^")):
        axes.plot(x, v, style, ms=4, label=label)
    _integer_ticks(axes.xaxis)
    axes.set_xlabel(STEP_LABEL)
    axes.set_ylabel("relative step")
    axes.set_title(title, fontsize="medium")
    axes.legend(loc="best", fontsize="small")
    figure.tight_layout()
    return _save(figure, target)


def plot_histogram_heatmap(
    hist: object,
    bin_edges_or_centers: object,
    path: str | os.PathLike,
    title: str,
    *,
    xlabel: str = "log2 |w|",
    value_label: str = "survivors per bin",
    ylabel: str = ROUND_LABEL,
) -> Path:
    """Heatmap of a histogram per round (rows: rounds 0, 1, ..., columns: bins).

    ``bin_edges_or_centers`` holds bins + 1 strictly increasing edges, or bins strictly increasing
    centers (edges are then placed halfway between centers), in the units ``xlabel`` names. Values
    must be non-negative; ``value_label`` names them (e.g. "fraction of survivors").
    """
    histogram = _real_matrix(hist, "hist", "rounds x bins")
    if np.any(histogram < 0):
        raise ValueError("hist must be non-negative (counts or densities).")
    edges = _bin_edges(bin_edges_or_centers, histogram.shape[1])
    for name, text in (("title", title), ("xlabel", xlabel), ("value_label", value_label), ("ylabel", ylabel)):
        if not isinstance(text, str):
            raise ValueError(f"{name} must be a str; got {type(text).__name__}.")
    target = _check_png_path(path)

    figure = Figure(figsize=(7.0, 4.0), dpi=_DPI)
    axes = figure.add_subplot()
    round_edges = np.arange(histogram.shape[0] + 1) - 0.5
    mesh = axes.pcolormesh(edges, round_edges, histogram, shading="flat", cmap="viridis")
    figure.colorbar(mesh, ax=axes, label=value_label)
    _integer_ticks(axes.yaxis)
    axes.set_xlabel(xlabel)
    axes.set_ylabel(ylabel)
    axes.set_title(title)
    figure.tight_layout()
    return _save(figure, target)


def _bin_edges(values: object, bins: int) -> np.ndarray:
    """Edges of ``bins`` bins from either their edges or their centers."""
    points = _real_vector(values, "bin_edges_or_centers")
    if points.size not in (bins, bins + 1):
        raise ValueError(
            f"bin_edges_or_centers has {points.size} entries; with {bins} bins give {bins + 1} edges or {bins} centers."
        )
    if np.any(np.diff(points) <= 0):
        raise ValueError("bin_edges_or_centers must be strictly increasing.")
    if points.size == bins + 1:
        return points
    if bins == 1:
        return np.array([points[0] - 0.5, points[0] + 0.5])
    middles = (points[1:] + points[:-1]) / 2
    first, last = 2 * points[0] - middles[0], 2 * points[-1] - middles[-1]
    return np.concatenate([[first], middles, [last]])


def _magnitude_edges(values: object, bins: int) -> np.ndarray:
    """The bins + 1 edges in |w| of the kernels' histogram: non-decreasing from edges[0] >= 0, finite ones strictly
    increasing, inf from some bin on (the bins of Inf/NaN keys, ``magnitude_bin_edges``)."""
    try:
        edges = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise ValueError(f"edges must be numeric ({error}).") from error
    if edges.ndim != 1 or edges.size != bins + 1:
        raise ValueError(f"edges must hold {bins + 1} magnitudes (bins + 1) for {bins} bins; got shape {edges.shape}.")
    finite = edges[np.isfinite(edges)]
    if np.any(np.isnan(edges)) or edges[0] < 0 or np.any(np.diff(finite) <= 0) or np.any(edges[1:] < edges[:-1]):
        raise ValueError("edges must be magnitudes >= 0, strictly increasing, then inf (magnitude_bin_edges).")
    return edges


def _decades(value: float) -> str:
    return f"10^{value:.1f}"


def plot_magnitude_histograms(
    hist: object,
    edges: object,
    path: str | os.PathLike,
    title: str,
    *,
    ylabel: str = ROUND_LABEL,
    left_out: float = TAIL_LEFT_OUT,
) -> Path:
    """Heatmap of the weights' magnitude histogram per round on a log10 |w| axis, safe on real weights.

    ``hist``: (rounds, bins) counts on the kernels' bins (``FlowTrace.histograms``); ``edges``: their bins + 1
    edges in |w| (``magnitude_bin_edges``; bin b holds edges[b] ≤ |w| < edges[b + 1]). The bin from |w| = 0 (the
    exact zeros, and for float32 nothing else above 1e-39) has no place on a log axis: it is counted apart, not
    drawn, as are the bins of Inf/NaN. The x axis spans the bins from the ``left_out`` quantile of the nonzero
    weights (the lowest over the rounds: no round loses more) to the largest weight, at least ``MIN_DECADES``
    wide, so that one weight of 1e-30 among millions does not squeeze the rest into one pixel column; how many
    weights lie below it is written under the axis (with the smallest), as are the zeros and the non-finite
    ones. Empty bins are blank.
    """
    counts = _real_matrix(hist, "hist", "rounds x bins")
    if np.any(counts < 0):
        raise ValueError("hist must be non-negative (counts per bin).")
    bin_edges = _magnitude_edges(edges, counts.shape[1])
    for name, text in (("title", title), ("ylabel", ylabel)):
        if not isinstance(text, str):
            raise ValueError(f"{name} must be a str; got {type(text).__name__}.")
    if isinstance(left_out, bool) or not isinstance(left_out, (int, float)) or not 0 <= left_out < 1:
        raise ValueError(f"left_out must be a fraction in [0, 1); got {left_out!r}.")
    target = _check_png_path(path)

    lower, upper = bin_edges[:-1], bin_edges[1:]
    zero_bins, infinite_bins = lower == 0, ~np.isfinite(lower)
    data_bins = np.flatnonzero(~zero_bins & ~infinite_bins)
    zeros, infinite = counts[:, zero_bins].sum(), counts[:, infinite_bins].sum()
    # log10 edges of the drawable bins; a last finite bin open above (upper edge inf) gets its lower bin's width
    log_lower = np.log10(lower[data_bins]) if data_bins.size else np.zeros(0)
    log_upper = np.log10(np.where(np.isfinite(upper[data_bins]), upper[data_bins], np.nan)) if data_bins.size else []
    if data_bins.size and not np.isfinite(log_upper[-1]):
        log_upper[-1] = log_lower[-1] + (log_lower[-1] - log_lower[-2] if data_bins.size > 1 else 1.0)
    mass = counts[:, data_bins].sum(axis=0)
    total = float(mass.sum())

    figure = Figure(figsize=(7.0, 4.0), dpi=_DPI)
    axes = figure.add_subplot()
    notes = []
    if total > 0:
        occupied = np.flatnonzero(mass)
        # each round (with nonzero weights) loses at most ``left_out`` of its own nonzero weights to the left
        rows = counts[:, data_bins]
        first = min(
            int(np.searchsorted(np.cumsum(row), left_out * row.sum(), side="right")) for row in rows if row.any()
        )
        first = min(max(first, int(occupied[0])), int(occupied[-1]))
        last = int(occupied[-1]) + 1
        x_edges = np.append(log_lower[first:last], log_upper[last - 1])
        round_edges = np.arange(counts.shape[0] + 1) - 0.5
        shown = counts[:, data_bins[first:last]]
        mesh = axes.pcolormesh(
            x_edges, round_edges, np.ma.masked_equal(shown, 0), shading="flat", cmap="viridis", vmin=0
        )
        figure.colorbar(mesh, ax=axes, label="survivors per bin")
        low, high = float(x_edges[0]), float(x_edges[-1])
        if high - low < MIN_DECADES:  # e.g. all-equal weights: one bin
            middle = (low + high) / 2
            low, high = middle - MIN_DECADES / 2, middle + MIN_DECADES / 2
        axes.set_xlim(low, high)
        axes.set_ylim(round_edges[0], round_edges[-1])
        below = float(mass[:first].sum())
        if below:
            smallest = float(log_lower[occupied[0]])
            notes.append(
                f"{below:,.0f} with |w| < {_decades(x_edges[0])} (the smallest {below / total:.2%} of the nonzero "
                f"weights, from {_decades(smallest)}): not drawn"
            )
    else:
        axes.set_xlim(-1.0, 0.0)
        axes.set_ylim(-0.5, counts.shape[0] - 0.5)
        notes.append("no nonzero finite weights: nothing to draw")
    if zeros:
        cut = float(upper[zero_bins].max())  # float32: 7.3e-40, below any weight but 0; float16: 4.8e-07
        what = "exact zero" if cut < 1e-30 else "weight in the zero bin"
        notes.append(f"{zeros:,.0f} {what}{'s' if zeros != 1 else ''} (|w| < {cut:.2g}): not drawn")
    if infinite:
        notes.append(f"{infinite:,.0f} Inf/NaN: not drawn")
    if notes:
        axes.text(  # under the x axis' label, off the data (tight_layout makes room)
            0.0,
            -0.17,
            "Summed over the rounds:\n" + "\n".join(notes),
            transform=axes.transAxes,
            ha="left",
            va="top",
            fontsize="x-small",
            gid="not drawn",
        )
    _integer_ticks(axes.yaxis)
    axes.set_xlabel("log10 |w| (weight magnitude, decades)")
    axes.set_ylabel(ylabel)
    axes.set_title(title, fontsize="medium")
    figure.tight_layout()
    return _save(figure, target)


def plot_layer_densities(
    densities: object, layer_names: Sequence[str], path: str | os.PathLike, *, run: str | None = None
) -> Path:
    """Heatmap of per-layer densities after each round's prune (rows: rounds, columns: layers), colour 0..1."""
    density = _real_matrix(densities, "densities", "rounds x layers")
    if np.any(density < 0) or np.any(density > 1):
        raise ValueError("densities must lie in [0, 1] (fraction of weights surviving).")
    names = list(layer_names) if not isinstance(layer_names, str) else None
    if names is None or not all(isinstance(n, str) for n in names):
        raise ValueError("layer_names must be a sequence of str, one per layer.")
    if len(names) != density.shape[1]:
        raise ValueError(f"layer_names has {len(names)} names but densities has {density.shape[1]} layers (columns).")
    title = _titled("Per-layer density after each round's prune", run)
    target = _check_png_path(path)

    layers = density.shape[1]
    figure = Figure(figsize=(max(6.0, 0.25 * min(layers, _MAX_LAYER_LABELS) + 3), 4.5), dpi=_DPI)
    axes = figure.add_subplot()
    image = axes.imshow(
        density, aspect="auto", origin="lower", cmap="magma", vmin=0.0, vmax=1.0, interpolation="nearest"
    )
    figure.colorbar(image, ax=axes, label="fraction of the layer's weights surviving")
    every = max(1, -(-layers // _MAX_LAYER_LABELS))  # ceil division
    ticks = np.arange(0, layers, every)
    axes.set_xticks(ticks)
    axes.set_xticklabels([names[t] for t in ticks], rotation=90, fontsize="x-small")
    _integer_ticks(axes.yaxis)
    axes.set_xlabel("layer")
    axes.set_ylabel("round n")
    axes.set_title(title, fontsize="medium")
    figure.tight_layout()
    return _save(figure, target)


def _accuracy_series(values: object, what: str, points: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean, lowest and highest accuracy per density (entries: a number, a list over seeds, or None)."""
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence) or len(values) != points:
        raise ValueError(
            f"{what} must be a list of {points} entries (one per density), each an accuracy, a "
            f"list of accuracies (seeds) or None."
        )
    mean, low, high = (np.full(points, np.nan) for _ in range(3))
    for i, entry in enumerate(values):
        if entry is None:
            continue
        seeds = _real_vector(entry if isinstance(entry, (Sequence, np.ndarray)) else [entry], f"{what}[{i}]")
        mean[i], low[i], high[i] = seeds.mean(), seeds.min(), seeds.max()
    return mean, low, high


def plot_lottery_ticket(
    density: Sequence[float],
    ticket: Sequence,
    random_reinit: Sequence,
    random_mask: Sequence,
    dense: float | Sequence[float] | None,
    path: str | os.PathLike,
    title: str = "Lottery tickets",
) -> Path:
    """Accuracy against density (fraction of weights remaining, log scale, sparser to the right).

    ``ticket``, ``random_reinit`` (the ticket's mask, weights re-initialized) and ``random_mask`` (a
    random mask of the same density): one entry per density, each an accuracy, a list of accuracies
    over seeds (drawn as mean with a min-max bar) or None where it was not measured. ``dense``: the
    unpruned model's accuracy (a number or a list over seeds; None to leave it out), a dashed line.
    """
    x = _real_vector(density, "density")
    if np.any(x <= 0) or np.any(x > 1):
        raise ValueError("density must lie in (0, 1] (fraction of weights remaining).")
    series = {"ticket (IMP, rewound)": ticket, "random re-init": random_reinit, "random mask": random_mask}
    drawn = {label: _accuracy_series(v, label, x.size) for label, v in series.items()}
    if all(np.all(np.isnan(mean)) for mean, _, _ in drawn.values()):
        raise ValueError("ticket, random_reinit and random_mask hold no accuracy at all; nothing to draw.")
    dense_acc = None
    if dense is not None:
        dense_acc = _real_vector(dense if isinstance(dense, (Sequence, np.ndarray)) else [dense], "dense").mean()
    if not isinstance(title, str):
        raise ValueError(f"title must be a str; got {type(title).__name__}.")
    target = _check_png_path(path)

    figure = Figure(figsize=(6.0, 4.2), dpi=_DPI)
    axes = figure.add_subplot()
    for (label, (mean, low, high)), marker in zip(drawn.items(), ("o", "s", "^")):
        keep = ~np.isnan(mean)
        if keep.any():
            axes.errorbar(
                x[keep],
                mean[keep],
                yerr=[mean[keep] - low[keep], high[keep] - mean[keep]],
                marker=marker,
                ms=4,
                capsize=2,
                label=label,
            )
    if dense_acc is not None:
        axes.axhline(dense_acc, color="0.3", ls="--", lw=1.0, label="dense")
    _density_axis(axes, x)
    axes.set_xlabel("density (fraction of weights remaining)")
    axes.set_ylabel("accuracy")
    axes.set_title(title, fontsize="medium")
    axes.legend(loc="best", fontsize="small")
    figure.tight_layout()
    return _save(figure, target)


def _density_axis(axes, density: np.ndarray) -> None:
    """A log density axis, sparser to the right, with a labelled tick at every density (every round) and nothing
    else: a schedule of 0.8 per round stays within one decade for 10 rounds, where a decade locator labels only
    1 and 0.5 (or only 1). A margin of a tenth of the span in log (at least a factor 1.15) on either side."""
    ticks = np.unique(density)
    low, high = float(ticks[0]), float(ticks[-1])
    margin = max(1.15, (high / low) ** 0.1)
    axes.set_xscale("log")
    axes.set_xlim(high * margin, low / margin)  # high first: inverted, sparser to the right
    axes.xaxis.set_major_locator(FixedLocator(ticks))
    axes.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:.3g}"))  # 0.8, 0.64, 0.512
    axes.xaxis.set_minor_locator(NullLocator())
    axes.xaxis.set_minor_formatter(NullFormatter())
    if ticks.size > 8:  # many rounds: upright labels, still one per round
        axes.tick_params(axis="x", labelrotation=90, labelsize="x-small")


def plot_tail_flow(
    series: Mapping[str, tuple[object, object, object]],
    path: str | os.PathLike,
    band: float = 0.1,
    *,
    run: str | None = None,
) -> Path:
    """The tail index ξ_n against round n with its intervals, one line per flow (e.g. the run and pruning alone):
    ``series`` maps a name to (rounds, ξ, intervals (rounds, 2)); NaN rounds are left out, an unbounded interval side
    is drawn to the axes' edge. The Gumbel band ±``band`` is shaded and 0 marked (weibull below, frechet above)."""
    _check_named_series(series, "series")
    title = _titled("Tail-index flow (generalized Pareto shape)", run)
    target = _check_png_path(path)
    figure = Figure(figsize=(6.0, 4.0), dpi=_DPI)
    axes = figure.add_subplot()
    axes.axhspan(-band, band, color="0.9", zorder=0, label=f"gumbel band ±{band:g}")
    axes.axhline(0.0, color="0.5", lw=0.8, zorder=1)
    for name, (rounds, xi, intervals) in series.items():
        rounds = _numeric_vector(rounds, f"rounds of {name!r}", np.float64)
        xi = np.asarray(xi, dtype=np.float64).reshape(-1)  # NaN: a round without an estimate
        bounds = np.asarray(intervals, dtype=np.float64).reshape(-1, 2)
        if not (rounds.size == xi.size == len(bounds)):
            raise ValueError(f"{name!r}: rounds, ξ and intervals must have one entry per round")
        ok = np.isfinite(xi)
        lower = np.where(np.isfinite(bounds[ok, 0]), xi[ok] - bounds[ok, 0], 0.0)
        upper = np.where(np.isfinite(bounds[ok, 1]), bounds[ok, 1] - xi[ok], 0.0)
        axes.errorbar(rounds[ok], xi[ok], yerr=[lower, upper], marker="o", ms=3, capsize=3, label=name)
    _integer_ticks(axes.xaxis)
    axes.set_xlabel("round n")
    axes.set_ylabel("tail index ξ of the survivors' excess")
    axes.set_title(title, fontsize="medium")
    axes.legend(loc="best", fontsize="small")
    figure.tight_layout()
    return _save(figure, target)
