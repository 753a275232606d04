"""Every figure of a flow report rendered from adversarial weights, with its axis ranges checked (issue 25, point 5).

Real weights hold an exact 0.0 among millions, a few tiny magnitudes, all-equal tensors, runs of one round. The
figures must still show the data: the magnitude histogram on a log10 |w| axis that spans only the bulk of the
nonzero weights (the zeros counted apart, not at log10 0 = -inf), a lottery-ticket axis with a tick at every
round's density, an eigenvalue plot that says "nothing resolved" / "too short" when it has no point, and the run
named in every title. The traces are recorded from the pruner's own kernels (``record_prune``), as a run does.
"""

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from rgprune.pruner import GlobalMagnitudePruner
from rgprune.rg import plots
from rgprune.rg.analysis import lottery_ticket_series
from rgprune.rg.report import write_flow_report
from rgprune.rg.trace import FlowTrace


@pytest.fixture
def drawn(monkeypatch):
    """The Figures the plot functions save, by file name."""
    figures = {}
    save = plots._save

    def keep(figure, target):
        figures[Path(target).name] = figure
        return save(figure, target)

    monkeypatch.setattr(plots, "_save", keep)
    return figures


def pruned_trace(weights: torch.Tensor, rounds: int, source: str) -> FlowTrace:
    """The trace of ``rounds`` rounds of pruning 20% of one layer holding ``weights`` (no training in between),
    recorded from the pruner's reports, with a falling accuracy per round (for the lottery-ticket figure)."""
    module = nn.Module()
    module.layer = nn.Linear(1, 1, bias=False)
    module.layer.weight = nn.Parameter(weights.view(-1, 1000))
    pruner = GlobalMagnitudePruner(module)
    trace = FlowTrace(list(pruner.names), [weights.numel()], fraction=0.2, source=source)
    for n in range(rounds):
        trace.record_prune(n, pruner.prune(0.2), {"accuracy": 0.9 - 0.01 * n})
    return trace


def texts(axes, gid: str) -> list[str]:
    return [t.get_text() for t in axes.texts if t.get_gid() == gid]


def main_axes(figure):
    """The figure's plot (not its colour bar: the first axes)."""
    return figure.axes[0]


def assert_sane_limits(name: str, figure) -> None:
    """No axis of the figure's plot runs to ±1000 (log2 of the smallest double, where a 0 landed) or is empty (its
    colour bar, in counts, may run to millions)."""
    axes = main_axes(figure)
    for low, high in (axes.get_xlim(), axes.get_ylim()):
        assert np.isfinite([low, high]).all() and low != high, (name, low, high)
        assert max(abs(low), abs(high)) < 1e3, (name, low, high)


def assert_histogram_range(axes, magnitudes: np.ndarray, rounds: int) -> tuple[float, float]:
    """The x range (log10 |w|) lies within half a decade of the bulk of the nonzero magnitudes (from their 0.1%
    quantile to the largest) and covers it; one row per round."""
    nonzero = magnitudes[magnitudes > 0]
    bulk_low, top = np.log10(np.quantile(nonzero, 1e-3)), np.log10(nonzero.max())
    low, high = axes.get_xlim()
    assert bulk_low - 0.5 <= low <= bulk_low + 0.1, (low, bulk_low)
    assert top <= high <= top + 0.5, (high, top)
    assert axes.get_ylim() == (-0.5, rounds - 0.5)
    return low, high


def test_one_exact_zero_and_one_tiny_weight_among_10m(tmp_path, drawn):
    """10M Gaussian weights (σ = 0.02) with one exact 0.0 and one 1e-30, three rounds: the histogram's x axis
    spans the bulk (about 10^-4.6 to 10^-1), not −1000 or −30; the zero and what lies below the axis are counted
    in words; the lottery axis has a tick at 1, 0.8 and 0.64; the eigenvalue plot (too short to fit) says so."""
    count = 10_000_000
    weights = torch.randn(count, generator=torch.Generator().manual_seed(0)) * 0.02
    weights[count // 2] = 0.0
    weights[7] = 1e-30
    magnitudes = weights.abs().numpy().copy()
    run = "zero-in-10M"
    paths = write_flow_report(pruned_trace(weights, 3, "adversarial: one exact zero"), tmp_path / run, title=run)
    written = {p.name for key, p in paths.items() if key.endswith("png")}
    assert written == set(drawn) and {"histograms.png", "lottery_ticket.png", "eigenvalues.png"} <= written
    for name, figure in drawn.items():
        assert_sane_limits(name, figure)
        axes = main_axes(figure)
        assert axes.get_title().startswith(f"{run}: "), (name, axes.get_title())
        assert axes.get_xlabel() and axes.get_ylabel(), name

    histogram = main_axes(drawn["histograms.png"])
    assert_histogram_range(histogram, magnitudes, 3)
    assert histogram.get_xlabel().startswith("log10 |w|")
    (note,) = texts(histogram, "not drawn")
    assert "1 exact zero (|w| < " in note  # the zero survives round 0 only: once over the rounds
    below = [line for line in note.splitlines() if line.startswith(tuple("0123456789"))][0]
    assert "with |w| < 10^-4." in below and "from 10^-30." in below, below  # the 1e-30 weight, stated

    lottery = main_axes(drawn["lottery_ticket.png"])
    drawn["lottery_ticket.png"].canvas.draw()
    assert lottery.get_xscale() == "log" and lottery.xaxis_inverted()
    np.testing.assert_allclose(sorted(lottery.get_xticks()), [0.64, 0.8, 1.0])
    assert [t.get_text() for t in lottery.get_xticklabels()] == ["0.64", "0.8", "1"]
    right, left = lottery.get_xlim()
    assert 1.0 < right <= 1.5 and 0.64 / 1.5 <= left < 0.64, (right, left)

    eigen = main_axes(drawn["eigenvalues.png"])
    assert texts(eigen, "no eigenvalues") == ["too short"]
    assert eigen.get_xlim() == pytest.approx((-1.1, 1.1)) and eigen.get_ylim() == pytest.approx((-1.1, 1.1))


def test_all_equal_weights_in_a_single_round(tmp_path, drawn):
    """1M weights all 0.05, one round: one occupied bin, drawn on an axis a decade wide around log10 0.05 (not a
    single bin's width, not empty); one row and the tick 0; the lottery axis has its one tick at 1."""
    weights = torch.full((1_000_000,), 0.05)
    run = "all-equal"
    paths = write_flow_report(pruned_trace(weights, 1, "adversarial: all equal"), tmp_path / run, title=run)
    assert (
        {"histograms.png", "lottery_ticket.png"}
        <= {p.name for p in paths.values()}
        == set(drawn)
        | {
            "trace.json",
            "flow.json",
            "report.md",
        }
    )
    for name, figure in drawn.items():
        assert_sane_limits(name, figure)
        assert main_axes(figure).get_title().startswith(f"{run}: "), name

    histogram = main_axes(drawn["histograms.png"])
    low, high = histogram.get_xlim()
    assert high - low == pytest.approx(plots.MIN_DECADES) and low < np.log10(0.05) < high
    assert histogram.get_ylim() == (-0.5, 0.5)
    assert [t for t in histogram.get_yticks() if -0.5 <= t <= 0.5] == [0]
    assert texts(histogram, "not drawn") == []  # nothing left out
    (mesh,) = histogram.collections
    assert mesh.get_array().count() == 1 and mesh.get_array().sum() == 1_000_000  # one bin, every weight

    lottery = main_axes(drawn["lottery_ticket.png"])
    assert list(lottery.get_xticks()) == [1.0]
    right, left = lottery.get_xlim()
    assert left < 1.0 < right <= 1.5


def test_all_equal_weights_over_rounds_and_many_rounds(tmp_path, drawn):
    """All-equal weights pruned over three rounds (the flow analysis refuses them: nothing moves) still draw: the
    histogram, the lottery ticket at each round's density, the eigenvalue plot of a flow that resolved nothing.
    Twenty rounds of 0.8 get twenty labelled density ticks (a decade locator would label 1, 0.1 and 0.05)."""
    trace = pruned_trace(torch.full((1_000_000,), 0.05), 3, "adversarial: all equal")
    edges = np.append(trace.bin_lower_edges(), np.inf)
    plots.plot_magnitude_histograms(trace.histograms(), edges, tmp_path / "histograms.png", "all-equal: |w|")
    low, high = main_axes(drawn["histograms.png"]).get_xlim()
    assert high - low == pytest.approx(plots.MIN_DECADES) and low < np.log10(0.05) < high

    series = lottery_ticket_series(trace)
    plots.plot_lottery_ticket(
        series["density"], series["ticket"], [None] * 3, [None] * 3, series["dense"], tmp_path / "lottery_ticket.png"
    )
    np.testing.assert_allclose(sorted(main_axes(drawn["lottery_ticket.png"]).get_xticks()), [0.64, 0.8, 1.0])

    plots.plot_eigenvalues({"excess": []}, tmp_path / "eigenvalues.png", run="all-equal")
    eigen = main_axes(drawn["eigenvalues.png"])
    assert texts(eigen, "no eigenvalues") == ["nothing resolved"] and eigen.get_title().startswith("all-equal: ")
    assert eigen.get_xlim() == pytest.approx((-1.1, 1.1))

    density = 0.8 ** np.arange(20)
    plots.plot_lottery_ticket(
        density, list(0.9 - 0.01 * np.arange(20)), [None] * 20, [None] * 20, 0.9, tmp_path / "many.png"
    )
    many = main_axes(drawn["many.png"])
    drawn["many.png"].canvas.draw()
    np.testing.assert_allclose(sorted(many.get_xticks()), sorted(density))
    assert all(t.get_text() for t in many.get_xticklabels())
    right, left = many.get_xlim()
    assert density[0] < right < 2 * density[0] and density[-1] / 2 < left < density[-1]
