"""Matplotlib figures of RG flow statistics, from plain numpy arrays and lists.

Every function validates its input (``ValueError`` with what was wrong), draws on a standalone
Agg canvas (no pyplot, no global backend switch, nothing shown on screen), writes the PNG
atomically (``rgprune._io.atomic_write``: a crash never leaves a half-written figure under the
final name) and returns the path written. Axes carry their units (log2 |w|, fraction of
survivors, accuracy), rounds are integer ticks, and a figure of weights or densities says whether
it shows them before or after the round's prune.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter

from rgprune._io import atomic_write

__all__ = [
    "plot_eigenvalues",
    "plot_step_sizes",
    "plot_step_split",
    "plot_histogram_heatmap",
    "plot_layer_densities",
    "plot_lottery_ticket",
    "plot_tail_flow",
]

_DPI = 120
# Beyond this many layers, label only every k-th layer so tick labels stay legible.
_MAX_LAYER_LABELS = 40
STEP_LABEL = "round n (step from round n − 1 to n)"


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
    axis.set_major_locator(MaxNLocator(integer=True))


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
    eigs_by_name: Mapping[str, object], path: str | os.PathLike, intervals: Mapping[str, object] | None = None
) -> Path:
    """Scatter DMD eigenvalues of one or more flows in the complex plane with the unit circle.

    Points outside the circle are relevant directions, inside irrelevant, on it marginal. A flow may have
    no eigenvalues (a fit of rank 0: nothing resolved, or too short to tell); its legend entry says so.
    ``intervals`` (optional) maps a flow's name to a (k, 2) array of the lower and upper modulus of
    each of its k eigenvalues (``eigenvalue_intervals``); each is drawn as a radial bar through its
    eigenvalue, from |λ| = lower to upper, so a bar crossing the circle is an unresolved direction. An
    upper bound of inf (no information) is drawn dotted to the edge of the plot.
    """
    _check_named_series(eigs_by_name, "eigs_by_name")
    target = _check_png_path(path)
    eigenvalues = {
        name: _complex_vector(v, f"eigenvalues of {name!r}", allow_empty=True) for name, v in eigs_by_name.items()
    }
    bounds = _check_intervals(intervals, eigenvalues)

    figure = Figure(figsize=(5.5, 5.0), dpi=_DPI)
    axes = figure.add_subplot()
    angle = np.linspace(0.0, 2.0 * np.pi, 400)
    axes.plot(np.cos(angle), np.sin(angle), color="0.5", lw=1.0, ls="--", label="|λ| = 1")
    axes.axhline(0.0, color="0.85", lw=0.8)
    axes.axvline(0.0, color="0.85", lw=0.8)
    finite = [np.abs(v) for v in eigenvalues.values()] + [b[np.isfinite(b)] for b in bounds.values()]
    extent = max([1.1] + [1.1 * float(x.max()) for x in finite if x.size])
    for name, values in eigenvalues.items():
        label = name if values.size else f"{name} (nothing resolved)"
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
    axes.set_xlim(-extent, extent)
    axes.set_ylim(-extent, extent)
    axes.set_aspect("equal")
    axes.set_xlabel("Re λ")
    axes.set_ylabel("Im λ")
    axes.set_title("DMD eigenvalues of the flow" + (" (bars: interval of |λ|)" if bounds else ""))
    axes.legend(loc="best", fontsize="small")
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


def plot_step_sizes(steps_by_name: Mapping[str, object], path: str | os.PathLike) -> Path:
    """Relative step size ||g(n) - g(n-1)|| / ||g(n-1)|| against round n = 1, 2, ..., one line per flow.

    Step n goes from round n − 1 to round n, as in the report's table (``step_sizes`` returns them in
    that order). Log scale when all steps are positive (steps shrink geometrically near a fixed point).
    """
    _check_named_series(steps_by_name, "steps_by_name")
    target = _check_png_path(path)
    steps = {name: _real_vector(v, f"step sizes of {name!r}", positive=True) for name, v in steps_by_name.items()}

    figure = Figure(figsize=(6.0, 4.0), dpi=_DPI)
    axes = figure.add_subplot()
    for name, values in steps.items():
        axes.plot(np.arange(1, values.size + 1), values, marker="o", ms=3, label=name)
    if all(np.all(v > 0) for v in steps.values()):
        axes.set_yscale("log")
    _integer_ticks(axes.xaxis)
    axes.set_xlabel(STEP_LABEL)
    axes.set_ylabel("relative step ‖g(n) − g(n−1)‖ / ‖g(n−1)‖")
    axes.set_title("Flow step sizes")
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
    target = _check_png_path(path)

    figure = Figure(figsize=(6.0, 4.0), dpi=_DPI)
    axes = figure.add_subplot()
    for (label, v), style in zip(values.items(), ("-o", "--s", ":^")):
        axes.plot(x, v, style, ms=4, label=label)
    _integer_ticks(axes.xaxis)
    axes.set_xlabel(STEP_LABEL)
    axes.set_ylabel("relative step")
    axes.set_title(f"Steps of the {observable} observable: pruning alone vs training")
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
    ylabel: str = "round n (trained weights, before its prune)",
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


def plot_layer_densities(densities: object, layer_names: Sequence[str], path: str | os.PathLike) -> Path:
    """Heatmap of per-layer densities after each round's prune (rows: rounds, columns: layers), colour 0..1."""
    density = _real_matrix(densities, "densities", "rounds x layers")
    if np.any(density < 0) or np.any(density > 1):
        raise ValueError("densities must lie in [0, 1] (fraction of weights surviving).")
    names = list(layer_names) if not isinstance(layer_names, str) else None
    if names is None or not all(isinstance(n, str) for n in names):
        raise ValueError("layer_names must be a sequence of str, one per layer.")
    if len(names) != density.shape[1]:
        raise ValueError(f"layer_names has {len(names)} names but densities has {density.shape[1]} layers (columns).")
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
    axes.set_title("Per-layer density after each round's prune")
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
    axes.set_xscale("log")
    axes.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    axes.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))  # 0.5, 0.2, 0.1: densities
    axes.xaxis.set_minor_formatter(NullFormatter())
    axes.invert_xaxis()
    axes.set_xlabel("density (fraction of weights remaining)")
    axes.set_ylabel("accuracy")
    axes.set_title(title)
    axes.legend(loc="best", fontsize="small")
    figure.tight_layout()
    return _save(figure, target)


def plot_tail_flow(
    series: Mapping[str, tuple[object, object, object]], path: str | os.PathLike, band: float = 0.1
) -> Path:
    """The tail index ξ_n against round n with its intervals, one line per flow (e.g. the run and pruning alone):
    ``series`` maps a name to (rounds, ξ, intervals (rounds, 2)); NaN rounds are left out, an unbounded interval side
    is drawn to the axes' edge. The Gumbel band ±``band`` is shaded and 0 marked (weibull below, frechet above)."""
    _check_named_series(series, "series")
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
    axes.set_title("Tail-index flow (generalized Pareto shape)")
    axes.legend(loc="best", fontsize="small")
    figure.tight_layout()
    return _save(figure, target)
