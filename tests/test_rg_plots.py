"""Tests of rgprune.rg.plots: valid PNGs written atomically, bad input rejected."""

import os

import numpy as np
import pytest

from rgprune.rg.plots import (
    plot_eigenvalues,
    plot_histogram_heatmap,
    plot_layer_densities,
    plot_step_sizes,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def assert_png(path):
    assert path.is_file()
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC
    assert len(data) > 1000  # a real figure, not an empty stub
    # Nothing left behind from the atomic write.
    assert [p.name for p in path.parent.iterdir() if p.name.endswith(".tmp")] == []


def test_plot_eigenvalues_writes_png(tmp_path):
    eigs = {"resnet20": np.array([1.2, 0.5 + 0.3j, 0.5 - 0.3j]), "resnet56": [0.9, -0.2]}
    written = plot_eigenvalues(eigs, tmp_path / "eigs.png")
    assert written == tmp_path / "eigs.png"
    assert_png(written)


def test_plot_step_sizes_writes_png_with_zero_steps_too(tmp_path):
    assert_png(plot_step_sizes({"a": [0.3, 0.1, 0.03], "b": np.array([0.2, 0.2])},
                               tmp_path / "steps.png"))
    assert_png(plot_step_sizes({"a": [0.3, 0.0]}, tmp_path / "steps_zero.png"))  # linear axis


def test_plot_histogram_heatmap_with_edges_and_centers(tmp_path):
    hist = np.random.default_rng(0).random((5, 16))
    edges = np.linspace(-8, 0, 17)
    centers = (edges[1:] + edges[:-1]) / 2
    assert_png(plot_histogram_heatmap(hist, edges, tmp_path / "edges.png", "log|w| per round"))
    assert_png(plot_histogram_heatmap(hist, centers, str(tmp_path / "centers.png"), "centers"))
    assert_png(plot_histogram_heatmap(hist[:, :1], [0.0], tmp_path / "one_bin.png", "one bin"))


def test_plot_layer_densities_writes_png_and_creates_directory(tmp_path):
    densities = 0.8 ** np.arange(6)[:, None] * np.ones((6, 60))  # many layers: thinned labels
    names = [f"layer{i}.weight" for i in range(60)]
    target = tmp_path / "sub" / "dir" / "densities.png"
    assert_png(plot_layer_densities(densities, names, target))


def test_existing_file_is_replaced(tmp_path):
    target = tmp_path / "eigs.png"
    target.write_bytes(b"old contents")
    plot_eigenvalues({"x": [0.5]}, target)
    assert_png(target)


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
