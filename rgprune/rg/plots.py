"""Matplotlib figures of RG flow statistics, from plain numpy arrays.

Every function validates its input (``ValueError`` with what was wrong), draws on a standalone
Agg canvas (no pyplot, no global backend switch, nothing shown on screen), writes the PNG
atomically (temporary file in the target directory, then ``os.replace``, so a crash never leaves
a half-written figure under the final name) and returns the path written.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from rgprune._io import atomic_write

__all__ = [
    "plot_eigenvalues",
    "plot_step_sizes",
    "plot_histogram_heatmap",
    "plot_layer_densities",
]

_DPI = 120
# Beyond this many layers, label only every k-th layer so tick labels stay legible.
_MAX_LAYER_LABELS = 40


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


def _save_atomically(figure: Figure, target: Path) -> Path:
    """Render ``figure`` to ``target`` through a temporary file in the same directory."""
    atomic_write(target, lambda temporary: FigureCanvasAgg(figure).print_png(temporary))
    return target


def _numeric_vector(values: object, what: str, dtype) -> np.ndarray:
    """A non-empty, finite 1-D array of ``dtype``; ValueError naming ``what`` otherwise."""
    try:
        array = np.asarray(values, dtype=dtype)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{what} must be numeric ({error}).") from error
    if array.ndim != 1 or array.size == 0:
        raise ValueError(f"{what} must be a non-empty 1-D array; got shape {array.shape}.")
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


def _complex_vector(values: object, what: str) -> np.ndarray:
    return _numeric_vector(values, what, np.complex128)


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
        raise ValueError(
            f"{what} must be a non-empty 2-D array ({shape_words}); got shape {array.shape}."
        )
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{what} contains non-finite values.")
    return array


# --------------------------------------------------------------------------------------------
# Figures
# --------------------------------------------------------------------------------------------


def plot_eigenvalues(eigs_by_name: Mapping[str, object], path: str | os.PathLike) -> Path:
    """Scatter DMD eigenvalues of one or more flows in the complex plane with the unit circle.

    Points outside the circle are relevant directions, inside irrelevant, on it marginal.
    """
    _check_named_series(eigs_by_name, "eigs_by_name")
    target = _check_png_path(path)
    eigenvalues = {name: _complex_vector(v, f"eigenvalues of {name!r}")
                   for name, v in eigs_by_name.items()}

    figure = Figure(figsize=(5.5, 5.0), dpi=_DPI)
    axes = figure.add_subplot()
    angle = np.linspace(0.0, 2.0 * np.pi, 400)
    axes.plot(np.cos(angle), np.sin(angle), color="0.5", lw=1.0, ls="--", label="|λ| = 1")
    axes.axhline(0.0, color="0.85", lw=0.8)
    axes.axvline(0.0, color="0.85", lw=0.8)
    for name, values in eigenvalues.items():
        axes.scatter(values.real, values.imag, s=30, alpha=0.8, label=name)
    extent = max(1.1, 1.1 * max(np.abs(v).max() for v in eigenvalues.values()))
    axes.set_xlim(-extent, extent)
    axes.set_ylim(-extent, extent)
    axes.set_aspect("equal")
    axes.set_xlabel("Re λ")
    axes.set_ylabel("Im λ")
    axes.set_title("DMD eigenvalues of the flow")
    axes.legend(loc="best", fontsize="small")
    figure.tight_layout()
    return _save_atomically(figure, target)


def plot_step_sizes(steps_by_name: Mapping[str, object], path: str | os.PathLike) -> Path:
    """Relative step size ||g_{n+1} - g_n|| / ||g_n|| against round n, one line per flow.

    Log scale when all steps are positive (steps shrink geometrically near a fixed point).
    """
    _check_named_series(steps_by_name, "steps_by_name")
    target = _check_png_path(path)
    steps = {name: _real_vector(v, f"step sizes of {name!r}", positive=True)
             for name, v in steps_by_name.items()}

    figure = Figure(figsize=(6.0, 4.0), dpi=_DPI)
    axes = figure.add_subplot()
    for name, values in steps.items():
        axes.plot(np.arange(values.size), values, marker="o", ms=3, label=name)
    if all(np.all(v > 0) for v in steps.values()):
        axes.set_yscale("log")
    axes.set_xlabel("round n")
    axes.set_ylabel("‖g(n+1) − g(n)‖ / ‖g(n)‖")
    axes.set_title("Flow step sizes")
    axes.legend(loc="best", fontsize="small")
    figure.tight_layout()
    return _save_atomically(figure, target)


def plot_histogram_heatmap(
    hist: object, bin_edges_or_centers: object, path: str | os.PathLike, title: str
) -> Path:
    """Heatmap of a histogram per round (rows: rounds, columns: bins).

    ``bin_edges_or_centers`` holds bins + 1 strictly increasing edges, or bins strictly increasing
    centers (edges are then placed halfway between centers). Values must be non-negative.
    """
    histogram = _real_matrix(hist, "hist", "rounds x bins")
    if np.any(histogram < 0):
        raise ValueError("hist must be non-negative (counts or densities).")
    edges = _bin_edges(bin_edges_or_centers, histogram.shape[1])
    if not isinstance(title, str):
        raise ValueError(f"title must be a str; got {type(title).__name__}.")
    target = _check_png_path(path)

    figure = Figure(figsize=(7.0, 4.0), dpi=_DPI)
    axes = figure.add_subplot()
    round_edges = np.arange(histogram.shape[0] + 1) - 0.5
    mesh = axes.pcolormesh(edges, round_edges, histogram, shading="flat", cmap="viridis")
    figure.colorbar(mesh, ax=axes, label="value")
    axes.set_xlabel("bin")
    axes.set_ylabel("round n")
    axes.set_title(title)
    figure.tight_layout()
    return _save_atomically(figure, target)


def _bin_edges(values: object, bins: int) -> np.ndarray:
    """Edges of ``bins`` bins from either their edges or their centers."""
    points = _real_vector(values, "bin_edges_or_centers")
    if points.size not in (bins, bins + 1):
        raise ValueError(
            f"bin_edges_or_centers has {points.size} entries; with {bins} bins give {bins + 1} "
            f"edges or {bins} centers."
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


def plot_layer_densities(
    densities: object, layer_names: Sequence[str], path: str | os.PathLike
) -> Path:
    """Heatmap of per-layer densities over rounds (rows: rounds, columns: layers), colour 0..1."""
    density = _real_matrix(densities, "densities", "rounds x layers")
    if np.any(density < 0) or np.any(density > 1):
        raise ValueError("densities must lie in [0, 1] (fraction of weights surviving).")
    names = list(layer_names) if not isinstance(layer_names, str) else None
    if names is None or not all(isinstance(n, str) for n in names):
        raise ValueError("layer_names must be a sequence of str, one per layer.")
    if len(names) != density.shape[1]:
        raise ValueError(
            f"layer_names has {len(names)} names but densities has {density.shape[1]} layers "
            "(columns)."
        )
    target = _check_png_path(path)

    layers = density.shape[1]
    figure = Figure(figsize=(max(6.0, 0.25 * min(layers, _MAX_LAYER_LABELS) + 3), 4.5), dpi=_DPI)
    axes = figure.add_subplot()
    image = axes.imshow(density, aspect="auto", origin="lower", cmap="magma", vmin=0.0, vmax=1.0,
                        interpolation="nearest")
    figure.colorbar(image, ax=axes, label="density")
    every = max(1, -(-layers // _MAX_LAYER_LABELS))  # ceil division
    ticks = np.arange(0, layers, every)
    axes.set_xticks(ticks)
    axes.set_xticklabels([names[t] for t in ticks], rotation=90, fontsize="x-small")
    axes.set_xlabel("layer")
    axes.set_ylabel("round n")
    axes.set_title("Per-layer density over rounds")
    figure.tight_layout()
    return _save_atomically(figure, target)
