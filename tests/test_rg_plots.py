"""Tests of rgprune.rg.plots: what each figure draws (series, their data, axis labels, tick labels), PNGs
written atomically, bad input rejected."""

import functools
import os

import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg

from rgprune.rg.plots import (
    plot_eigenvalues,
    plot_histogram_heatmap,
    plot_layer_densities,
    plot_step_sizes,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def assert_png(path):
    """The file is a finished PNG (the figure's content is checked on the Figure, see ``figures_drawn``)."""
    assert path.is_file()
    assert path.read_bytes()[:8] == PNG_MAGIC
    # Nothing left behind from the atomic write.
    assert [p.name for p in path.parent.iterdir() if p.name.endswith(".tmp")] == []


def record_figures(monkeypatch) -> list:
    """A list that collects the matplotlib Figures rendered to PNG from now on, each once, in order (captured
    where Agg writes a PNG, which every plot function here and bench's scale plot go through; tight_layout's
    dry run lands there too, hence once)."""
    figures = []
    print_png = FigureCanvasAgg.print_png

    @functools.wraps(print_png)  # keeps its signature: savefig passes only the arguments it takes
    def record(canvas, *args, **kwargs):
        if not any(f is canvas.figure for f in figures):
            figures.append(canvas.figure)
        return print_png(canvas, *args, **kwargs)

    monkeypatch.setattr(FigureCanvasAgg, "print_png", record)
    return figures


@pytest.fixture
def figures_drawn(monkeypatch):
    return record_figures(monkeypatch)


def labelled_lines(axes, labels):
    return [line for line in axes.get_lines() if line.get_label() in labels]


def test_plot_eigenvalues_writes_png(tmp_path, figures_drawn):
    """One scatter per flow at its eigenvalues, the unit circle, the flows in the legend, Re/Im axes.
    Guards against: a flow left out, real and imaginary parts swapped, the circle missing."""
    eigs = {"resnet20": np.array([1.2, 0.5 + 0.3j, 0.5 - 0.3j]), "resnet56": [0.9, -0.2]}
    written = plot_eigenvalues(eigs, tmp_path / "eigs.png")
    assert written == tmp_path / "eigs.png"
    assert_png(written)
    (axes,) = figures_drawn[0].axes
    assert len(axes.collections) == 2
    for points, values in zip(axes.collections, eigs.values()):
        values = np.asarray(values, dtype=complex)
        np.testing.assert_allclose(points.get_offsets(), np.column_stack([values.real, values.imag]))
    legend = [t.get_text() for t in axes.get_legend().get_texts()]
    assert {"resnet20", "resnet56"} <= set(legend)
    circle = [line for line in axes.get_lines() if len(line.get_xdata()) > 100]
    assert len(circle) == 1
    np.testing.assert_allclose(np.hypot(circle[0].get_xdata(), circle[0].get_ydata()), 1.0)
    assert "Re" in axes.get_xlabel() and "Im" in axes.get_ylabel()
    assert axes.get_xlim()[1] >= 1.2 and axes.get_ylim()[1] >= 1.2  # every point inside the axes


def test_plot_step_sizes_writes_png_with_zero_steps_too(tmp_path, figures_drawn):
    """One line per flow through its steps against consecutive rounds; a log axis when every step is positive,
    a linear one when a step is 0. Guards against: a flow dropped, steps reordered, log axis with a zero."""
    assert_png(plot_step_sizes({"a": [0.3, 0.1, 0.03], "b": np.array([0.2, 0.2])}, tmp_path / "steps.png"))
    assert_png(plot_step_sizes({"a": [0.3, 0.0]}, tmp_path / "steps_zero.png"))  # linear axis
    axes = figures_drawn[0].axes[0]
    lines = labelled_lines(axes, ("a", "b"))
    assert [list(line.get_ydata()) for line in lines] == [[0.3, 0.1, 0.03], [0.2, 0.2]]
    for line in lines:
        assert np.all(np.diff(line.get_xdata()) == 1)  # one step per round
    assert axes.get_yscale() == "log" and "round" in axes.get_xlabel()
    assert [t.get_text() for t in axes.get_legend().get_texts()] == ["a", "b"]
    zero_axes = figures_drawn[1].axes[0]
    assert zero_axes.get_yscale() == "linear"
    assert [list(line.get_ydata()) for line in labelled_lines(zero_axes, ("a",))] == [[0.3, 0.0]]


def test_plot_histogram_heatmap_with_edges_and_centers(tmp_path, figures_drawn):
    """The mesh holds the histogram (rounds x bins) between the given bin edges (or the edges halfway between
    given centers), under the given title, with a colour bar. Guards against: rows and columns transposed,
    centers used as edges (bins shifted by half a bin), the title dropped."""
    hist = np.random.default_rng(0).random((5, 16))
    edges = np.linspace(-8, 0, 17)
    centers = (edges[1:] + edges[:-1]) / 2
    assert_png(plot_histogram_heatmap(hist, edges, tmp_path / "edges.png", "log|w| per round"))
    assert_png(plot_histogram_heatmap(hist, centers, str(tmp_path / "centers.png"), "centers"))
    assert_png(plot_histogram_heatmap(hist[:, :1], [0.0], tmp_path / "one_bin.png", "one bin"))
    for figure, data, want_edges, title in zip(
        figures_drawn,
        (hist, hist, hist[:, :1]),
        (edges, edges, [-0.5, 0.5]),
        ("log|w| per round", "centers", "one bin"),
    ):
        axes, _colorbar = figure.axes
        (mesh,) = axes.collections
        np.testing.assert_allclose(np.asarray(mesh.get_array()).reshape(data.shape), data)
        np.testing.assert_allclose(mesh.get_coordinates()[0, :, 0], want_edges)  # x edges of the first row
        assert mesh.get_coordinates().shape[:2] == (data.shape[0] + 1, data.shape[1] + 1)
        assert title in axes.get_title() and "round" in axes.get_ylabel()


def test_plot_layer_densities_writes_png_and_creates_directory(tmp_path, figures_drawn):
    """The image holds the densities (rounds x layers, colour 0..1); 60 layers get every second name as a
    tick label, at that layer's column. Guards against: labels shifted against their columns, all 60 labels
    crammed in, densities transposed."""
    densities = 0.8 ** np.arange(6)[:, None] * np.ones((6, 60))  # many layers: thinned labels
    names = [f"layer{i}.weight" for i in range(60)]
    target = tmp_path / "sub" / "dir" / "densities.png"
    assert_png(plot_layer_densities(densities, names, target))
    axes, _colorbar = figures_drawn[0].axes
    (image,) = axes.images
    np.testing.assert_allclose(image.get_array(), densities)
    assert image.get_clim() == (0.0, 1.0)
    assert list(axes.get_xticks()) == list(range(0, 60, 2))
    assert [t.get_text() for t in axes.get_xticklabels()] == names[::2]
    assert axes.get_xlabel() == "layer" and "round" in axes.get_ylabel()


def test_existing_file_is_replaced(tmp_path, figures_drawn):
    target = tmp_path / "eigs.png"
    target.write_bytes(b"old contents")
    plot_eigenvalues({"x": [0.5]}, target)
    assert_png(target)
    assert len(figures_drawn) == 1
    np.testing.assert_allclose(figures_drawn[0].axes[0].collections[0].get_offsets(), [[0.5, 0.0]])


def test_failed_write_leaves_no_partial_file(tmp_path, monkeypatch):
    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        plot_eigenvalues({"x": [0.5]}, tmp_path / "eigs.png")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda p: plot_eigenvalues({}, p), "non-empty dict"),
        (lambda p: plot_eigenvalues({"a": [np.nan]}, p), "non-finite"),
        (lambda p: plot_eigenvalues({"a": np.ones((2, 2))}, p), "1-D"),
        (lambda p: plot_eigenvalues({1: [0.5]}, p), "str names"),
        (lambda p: plot_eigenvalues({"a": [0.5]}, p.with_suffix(".jpg")), "\\.png"),
        (lambda p: plot_step_sizes({"a": [-0.1]}, p), "non-negative"),
        (lambda p: plot_step_sizes({"a": []}, p), "non-empty"),
        (lambda p: plot_step_sizes([0.1, 0.2], p), "dict"),
        (lambda p: plot_histogram_heatmap(np.ones(4), np.arange(5), p, "t"), "2-D"),
        (lambda p: plot_histogram_heatmap(np.ones((2, 4)), np.arange(7), p, "t"), "5 edges or 4"),
        (lambda p: plot_histogram_heatmap(np.ones((2, 4)), [0, 2, 1, 3], p, "t"), "increasing"),
        (lambda p: plot_histogram_heatmap(-np.ones((2, 4)), np.arange(5), p, "t"), "non-negative"),
        (lambda p: plot_histogram_heatmap(np.ones((2, 4)), np.arange(5), p, 3), "title"),
        (lambda p: plot_layer_densities(np.full((2, 2), 1.5), ["a", "b"], p), "\\[0, 1\\]"),
        (lambda p: plot_layer_densities(np.ones((2, 2)), ["a"], p), "1 names"),
        (lambda p: plot_layer_densities(np.ones((2, 2)), "ab", p), "sequence of str"),
        (lambda p: plot_layer_densities(np.ones((2, 2)) * np.nan, ["a", "b"], p), "non-finite"),
    ],
)
def test_bad_input_raises_value_error_and_writes_nothing(tmp_path, call, message):
    with pytest.raises(ValueError, match=message):
        call(tmp_path / "out.png")
    assert list(tmp_path.iterdir()) == []


def test_directory_as_path_is_rejected(tmp_path):
    folder = tmp_path / "folder.png"
    folder.mkdir()
    with pytest.raises(ValueError, match="directory"):
        plot_eigenvalues({"a": [0.5]}, folder)


# --------------------------------------------------------------------------------------------
# What is drawn: labels with units, series, points, integer round ticks
# --------------------------------------------------------------------------------------------

from rgprune.rg import plots  # noqa: E402
from rgprune.rg.plots import plot_lottery_ticket, plot_step_split  # noqa: E402


@pytest.fixture
def drawn(monkeypatch):
    """The Figure objects the plot functions save, to inspect what they draw."""
    figures = []
    save = plots._save

    def keep(figure, target):
        figures.append(figure)
        return save(figure, target)

    monkeypatch.setattr(plots, "_save", keep)
    return figures


def visible_ticks(axis, low, high):
    return [t for t in axis.get_majorticklocs() if low <= t <= high]


def assert_integer_ticks(axis, low, high):
    ticks = visible_ticks(axis, low, high)
    assert ticks and all(float(t).is_integer() for t in ticks), ticks


def test_step_sizes_are_indexed_by_the_round_they_arrive_at(tmp_path, drawn):
    plot_step_sizes({"a": [0.3, 0.1, 0.03], "b": [0.2, 0.2]}, tmp_path / "steps.png")
    axes = drawn[0].axes[0]
    lines = [line for line in axes.get_lines() if line.get_label() in ("a", "b")]
    assert [list(line.get_xdata()) for line in lines] == [[1, 2, 3], [1, 2]]  # step n: round n - 1 -> n
    assert "round n" in axes.get_xlabel() and "‖g(n) − g(n−1)‖" in axes.get_ylabel()
    assert axes.get_yscale() == "log"
    assert_integer_ticks(axes.xaxis, 1, 3)


def test_step_split_draws_total_pruning_and_training(tmp_path, drawn):
    plot_step_split(
        [1, 2, 3, 4],
        [0.3, 0.2, 0.1, 0.1],
        [0.3, 0.1, 0.1, 0.05],
        [0.0, 0.1, 0.01, 0.05],
        tmp_path / "split.png",
        observable="excess",
    )
    axes = drawn[0].axes[0]
    lines = axes.get_lines()
    assert [line.get_label() for line in lines] == ["step", "pruning alone", "training"]
    assert all(list(line.get_xdata()) == [1, 2, 3, 4] for line in lines)
    assert list(lines[2].get_ydata()) == [0.0, 0.1, 0.01, 0.05]
    assert "excess" in axes.get_title() and "round n" in axes.get_xlabel()
    assert_integer_ticks(axes.xaxis, 1, 4)
    with pytest.raises(ValueError, match="3 values for 4 rounds"):
        plot_step_split([1, 2, 3, 4], [0.3] * 4, [0.3] * 3, [0.0] * 4, tmp_path / "bad.png")
    with pytest.raises(ValueError, match="whole numbers"):
        plot_step_split([1.5], [0.3], [0.3], [0.0], tmp_path / "bad.png")


def test_eigenvalue_intervals_are_radial_bars_through_each_eigenvalue(tmp_path, drawn):
    eigs = np.array([1.2, 0.5 + 0.5j, 0.5 - 0.5j])
    bounds = np.array([[1.1, 1.3], [0.6, 0.8], [0.3, 1.05]])
    plot_eigenvalues({"flow": eigs, "other": [0.9]}, tmp_path / "eigs.png", intervals={"flow": bounds})
    axes = drawn[0].axes[0]
    bars = [line for line in axes.get_lines() if line.get_gid() == "interval of flow"]
    assert len(bars) == 3
    for bar, eig, (lower, upper) in zip(bars, eigs, bounds):
        ends = np.array(bar.get_xdata()) + 1j * np.array(bar.get_ydata())
        np.testing.assert_allclose(np.abs(ends), [lower, upper])
        np.testing.assert_allclose(np.angle(ends), np.angle(eig))
    assert "interval" in axes.get_title()
    assert len(axes.collections) == 2  # one scatter per flow
    assert axes.get_xlim()[1] >= 1.1 * 1.3


@pytest.mark.parametrize(
    "intervals, message",
    [
        ({"flow": np.ones((2, 2))}, "shape \\(3, 2\\)"),
        ({"flow": [[1.0, 0.5]] * 3}, "lower <= upper"),
        ({"nope": np.ones((3, 2))}, "not a flow"),
        ([[0.1, 0.2]], "dict mapping flow names"),
    ],
)
def test_bad_intervals_are_rejected(tmp_path, intervals, message):
    with pytest.raises(ValueError, match=message):
        plot_eigenvalues({"flow": [1.2, 0.5, 0.1]}, tmp_path / "eigs.png", intervals=intervals)
    assert list(tmp_path.iterdir()) == []


def test_heatmaps_name_units_and_when_they_are_measured(tmp_path, drawn):
    plot_histogram_heatmap(np.ones((5, 8)), np.linspace(-8, 0, 9), tmp_path / "h.png", "flow")
    plot_layer_densities(0.8 ** np.arange(6)[:, None] * np.ones((6, 3)), ["a", "b", "c"], tmp_path / "d.png")
    hist_axes, hist_bar = drawn[0].axes
    assert hist_axes.get_xlabel() == "log2 |w|" and "before its prune" in hist_axes.get_ylabel()
    assert hist_bar.get_ylabel() == "survivors per bin"
    assert_integer_ticks(hist_axes.yaxis, 0, 4)
    density_axes, density_bar = drawn[1].axes
    assert "after each round's prune" in density_axes.get_title()
    assert "fraction" in density_bar.get_ylabel() and density_axes.get_ylabel() == "round n"
    assert_integer_ticks(density_axes.yaxis, 0, 5)
    plot_histogram_heatmap(
        np.ones((2, 4)),
        np.arange(5.0),
        tmp_path / "x.png",
        "t",
        xlabel="excess / mean",
        value_label="fraction of survivors",
    )
    assert drawn[2].axes[0].get_xlabel() == "excess / mean"
    assert drawn[2].axes[1].get_ylabel() == "fraction of survivors"


def test_lottery_ticket_figure_draws_every_series(tmp_path, drawn):
    density = [1.0, 0.8, 0.64, 0.512]
    ticket = [0.90, 0.91, [0.90, 0.92, 0.88], 0.85]  # seeds at one density
    reinit = [0.90, 0.85, 0.80, None]  # not measured at the last density
    written = plot_lottery_ticket(density, ticket, reinit, [0.9, 0.84, 0.79, 0.70], 0.90, tmp_path / "lt.png")
    assert_png(written)
    axes = drawn[0].axes[0]
    assert axes.get_xlabel() == "density (fraction of weights remaining)" and axes.get_ylabel() == "accuracy"
    assert axes.get_xscale() == "log" and axes.xaxis_inverted()
    drawn[0].canvas.draw()
    labels = {t.get_text() for t in axes.get_xticklabels() if t.get_text()}
    assert labels == {"1", "0.8", "0.64", "0.512"}, labels  # a labelled tick at every round's density, no other
    legend = [t.get_text() for t in axes.get_legend().get_texts()]
    assert legend == ["dense", "ticket (IMP, rewound)", "random re-init", "random mask"]
    data = {c.get_label(): c for c in axes.containers}
    np.testing.assert_allclose(data["ticket (IMP, rewound)"].lines[0].get_ydata(), [0.90, 0.91, 0.90, 0.85])
    assert list(data["random re-init"].lines[0].get_xdata()) == [1.0, 0.8, 0.64]
    low_high = data["ticket (IMP, rewound)"].lines[2][0].get_segments()[2]
    np.testing.assert_allclose([low_high[0][1], low_high[1][1]], [0.88, 0.92])  # the seeds' range
    dense_line = [line for line in axes.get_lines() if line.get_label() == "dense"]
    assert len(dense_line) == 1 and list(dense_line[0].get_ydata()) == [0.90, 0.90]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(density=[1.0, 0.0]), "\\(0, 1\\]"),
        (dict(ticket=[0.9]), "list of 2 entries"),
        (dict(ticket=[0.9, "x"]), "numeric"),
        (dict(ticket=[None, None], random_reinit=[None, None], random_mask=[None, None]), "no accuracy"),
        (dict(dense=float("nan")), "non-finite"),
    ],
)
def test_lottery_ticket_rejects_bad_input(tmp_path, kwargs, message):
    args = (
        dict(density=[1.0, 0.5], ticket=[0.9, 0.8], random_reinit=[0.9, 0.7], random_mask=[0.9, 0.6], dense=0.9)
        | kwargs
    )
    with pytest.raises(ValueError, match=message):
        plot_lottery_ticket(path=tmp_path / "lt.png", **args)
    assert list(tmp_path.iterdir()) == []


def test_eigenvalues_of_a_fit_that_resolved_nothing_and_unbounded_intervals(tmp_path, drawn):
    """A fit of rank 0 has no eigenvalues (its legend says so); an interval [0, inf), no information, is a dotted
    bar to the edge of the plot."""
    plot_eigenvalues(
        {"flow": [0.9], "nothing": []},
        tmp_path / "e.png",
        intervals={"flow": [[0.0, np.inf]], "nothing": np.zeros((0, 2))},
    )
    axes = drawn[0].axes[0]
    assert "nothing (nothing resolved)" in [t.get_text() for t in axes.get_legend().get_texts()]
    (bar,) = [line for line in axes.get_lines() if line.get_gid() == "interval of flow"]
    assert bar.get_linestyle() == ":" and max(bar.get_xdata()) == pytest.approx(axes.get_xlim()[1])
    assert_png(plot_eigenvalues({"empty": []}, tmp_path / "empty.png"))
    with pytest.raises(ValueError, match="only an upper bound may be inf"):
        plot_eigenvalues({"flow": [0.9]}, tmp_path / "bad.png", intervals={"flow": [[np.inf, np.inf]]})


def test_tail_flow_draws_each_flow_with_its_intervals(tmp_path, drawn):
    """Rounds without an estimate (NaN) are left out, an unbounded interval side gets no bar beyond the point."""
    inf, nan = float("inf"), float("nan")
    plots.plot_tail_flow(
        {
            "run": ([0, 1, 2], [-0.05, -0.07, nan], [[-0.06, -0.04], [-0.08, inf], [nan, nan]]),
            "pruning alone": ([0, 1, 2], [-0.05, -0.04, -0.03], [[-0.06, -0.04], [-0.05, -0.03], [-0.04, -0.02]]),
        },
        tmp_path / "tail.png",
    )
    axes = drawn[0].axes[0]
    bars = {c.get_label(): c for c in axes.containers}
    assert list(bars) == ["run", "pruning alone"]
    assert [list(bars[k].lines[0].get_xdata()) for k in bars] == [[0, 1], [0, 1, 2]]
    assert "ξ" in axes.get_ylabel()
    with pytest.raises(ValueError, match="one entry per round"):
        plots.plot_tail_flow({"run": ([0, 1], [0.1], [[0, 0.2]])}, tmp_path / "bad.png")


def test_magnitude_histograms_count_zeros_and_non_finite_apart(tmp_path, drawn):
    """On the kernels' float32 bins: the zero bin and the Inf/NaN bins are counted in words under the axis, not
    drawn; the x axis (log10 |w|) is a decade around the one occupied bin; a histogram with nothing but zeros
    draws nothing and says so. Guards against: log10 0 = -inf on the axis, Inf bins drawn, zeros dropped silently."""
    from rgprune.rg.observables import magnitude_bin_edges

    edges = magnitude_bin_edges("float32")
    hist = np.zeros((2, edges.size - 1))
    hist[0, 0], hist[1, 0], hist[0, 2032], hist[1, 2032], hist[0, 4090] = 2, 1, 100, 80, 2  # 1 <= |w| < 1.0625; Inf/NaN
    plots.plot_magnitude_histograms(hist, edges, tmp_path / "h.png", "run: |w|")
    axes = drawn[0].axes[0]
    (mesh,) = axes.collections
    assert mesh.get_array().count() == 2 and mesh.get_array().sum() == 180  # the one bin, both rounds
    np.testing.assert_allclose(mesh.get_coordinates()[0, [0, -1], 0], np.log10([1.0, 1.0625]))
    low, high = axes.get_xlim()
    assert high - low == pytest.approx(plots.MIN_DECADES) and low < 0 < np.log10(1.0625) < high
    (note,) = [t.get_text() for t in axes.texts if t.get_gid() == "not drawn"]
    assert "3 exact zeros (|w| < 7.3e-40): not drawn" in note and "2 Inf/NaN: not drawn" in note
    assert axes.get_xlabel().startswith("log10 |w|") and axes.get_title() == "run: |w|"

    only_zeros = np.zeros((1, edges.size - 1))
    only_zeros[0, 0] = 5
    plots.plot_magnitude_histograms(only_zeros, edges, tmp_path / "z.png", "zeros")
    axes = drawn[1].axes[0]
    assert len(axes.collections) == 0 and np.isfinite(axes.get_xlim()).all()
    (note,) = [t.get_text() for t in axes.texts if t.get_gid() == "not drawn"]
    assert "nothing to draw" in note and "5 exact zeros" in note

    for bad, message in (
        (dict(edges=edges[:-1]), "edges must hold"),
        (dict(edges=edges[::-1]), "strictly increasing"),
        (dict(hist=-hist), "non-negative"),
        (dict(left_out=1.0), "left_out"),
    ):
        args = dict(hist=hist, edges=edges, path=tmp_path / "bad.png", title="t") | bad
        with pytest.raises(ValueError, match=message):
            plots.plot_magnitude_histograms(**args)
    assert not (tmp_path / "bad.png").exists()
