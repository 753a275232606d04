"""Rescaled observables (rgprune.rg.observables) on flows pruned by the real kernels, and the pruning/training split.

Known answers under pruning alone (static weights, never trained):
* ``"histogram"`` (fixed bins) moves every round: relative steps ≈ 0.34, 0.42, 0.46, 0.43 for Gaussian weights.
* ``"excess"``: Laplace magnitudes are exponential, and the excess of an exponential over any threshold is
  exponential with the same mean (memorylessness): the observable is Exp(1) binned, at every round.
  Uniform magnitudes on [0, a]: the excess over t is uniform on [0, a − t], i.e. uniform on [0, 2] in units
  of its mean, at every round. Gaussian magnitudes: the law approaches Exp(1) as the threshold rises.
* the pruning-only prediction equals the next round: training part 0 for ``"histogram"`` (the kernels' bin
  counts are reproduced exactly) and within ``QUANTIZATION`` for the rescaled kinds.
"""

import numpy as np
import pytest
import torch

import rgprune
from rgprune.kernels import format
from rgprune.masks import MaskSet
from rgprune.rg.flow import step_sizes
from rgprune.rg.observables import EXCESS_EDGES, LOG_RELATIVE_EDGES, magnitude_bin_edges, step_split
from rgprune.rg.trace import FlowTrace

#: bound on the training part of a pruning-only flow for the rescaled kinds. Its source: round n+1's
#: threshold is interpolated inside a kernel bin (1/16 octave, assuming survivors spread uniformly in |w|
#: within it; relative error ~3e-4) and the pruned slice's Σ|w| is estimated the same way. Measured: at most
#: 0.0023 over 10 rounds of 20% on 2^20 weights, 0.0038 over 4 rounds on 20k weights.
QUANTIZATION = 0.01


def sample(dist, n, generator):
    if dist == "gaussian":
        return torch.randn(n, generator=generator)
    u = torch.rand(n, generator=generator)
    if dist == "uniform":
        return 2 * u - 1
    u = u - 0.5  # Laplace(0, 1) by inversion
    return -torch.sign(u) * torch.log1p(-2 * u.abs())


def pruning_only_flow(dist, rounds=8, n=1 << 20, fraction=0.2, seed=0):
    """Static weights in three tensors pruned ``fraction`` per round by ``prune_global_``: no training."""
    g = torch.Generator().manual_seed(seed)
    sizes = [n // 2, n // 4, n // 4]
    weights = [sample(dist, s, g) for s in sizes]
    masks = MaskSet.ones(weights)
    trace = FlowTrace(["a", "b", "c"], sizes, fraction=fraction)
    for r in range(rounds):
        result = rgprune.prune_global_(weights, masks.words, round(fraction * sum(masks.survivor_counts())))
        trace.record(
            r,
            result.threshold.histogram,
            result.stats.counts,
            result.stats.abs_sums,
            result.stats.sq_sums,
            threshold_key=int(result.threshold.key),
        )
    return trace


def binned_exponential():
    """Exp(1) on the excess grid, with the last column for y ≥ 8."""
    cdf = 1 - np.exp(-EXCESS_EDGES)
    return np.append(np.diff(cdf), 1 - cdf[-1])


def test_bin_edges_are_the_kernels_key_boundaries():
    for dtype in (torch.float32, torch.float16, torch.bfloat16, torch.float64):
        edges = magnitude_bin_edges(dtype)
        shift = format.KEY_BITS[dtype] - 12
        for b in (0, 1, 7, 1000, 2047, 3000):
            expected = format.key_to_magnitude(b << shift, dtype)
            assert edges[b] == (expected if np.isfinite(expected) else np.inf)
        assert np.all(edges[1:] >= edges[:-1]) and edges[-1] == np.inf and len(edges) == 4097
    edges = magnitude_bin_edges("float32")
    for value in (0.3, 1.0, 1.0624, 1.0625, 5.0e-3, 3.0e-38):  # the kernels bin each weight between its edges
        w = torch.tensor([value])
        b = int(np.flatnonzero(rgprune.magnitude_histogram([w], MaskSet.ones([w]).words).histogram.numpy())[0])
        assert edges[b] <= value < edges[b + 1]
    with pytest.raises(ValueError, match="dtype must be one of"):
        magnitude_bin_edges("int8")


def test_fixed_bins_move_under_pruning_alone():
    steps = step_sizes(pruning_only_flow("gaussian", rounds=5).trajectory("histogram"))
    np.testing.assert_allclose(steps, [0.339, 0.420, 0.462, 0.428], atol=0.01)


def test_excess_of_laplace_weights_is_exponential_at_every_round():
    """Memorylessness: each row is binned Exp(1), up to sampling noise (2^20 → 2^20·0.8^8 = 176k survivors)
    and bin smoothing; steps are two orders of magnitude below the fixed bins' steps."""
    trace = pruning_only_flow("laplace")
    excess = trace.trajectory("excess")
    assert excess.shape == (8, len(EXCESS_EDGES))
    np.testing.assert_allclose(excess.sum(axis=1), 1.0)
    assert np.abs(excess - binned_exponential()).max() < 0.004
    assert step_sizes(excess).max() < 0.015
    assert step_sizes(trace.trajectory("histogram")).min() > 0.3


def test_excess_of_uniform_weights_is_uniform_on_0_2():
    excess = pruning_only_flow("uniform", rounds=6).trajectory("excess")
    np.testing.assert_allclose(excess[:, :8], 1 / 8, atol=0.004)  # 8 cells of 0.25 on [0, 2)
    assert excess[:, 8:].sum(axis=1).max() < 0.004


def test_excess_of_gaussian_weights_approaches_exponential():
    excess = pruning_only_flow("gaussian", rounds=10).trajectory("excess")
    gap = np.abs(excess - binned_exponential()).sum(axis=1)
    assert gap[-1] < 0.5 * gap[0]
    assert np.all(np.diff(gap) < 0.01)  # shrinking, up to sampling noise


def test_log_relative_is_the_histogram_shifted_by_the_threshold():
    trace = pruning_only_flow("laplace", rounds=3)
    rel = trace.trajectory("log-relative")
    assert rel.shape == (3, len(LOG_RELATIVE_EDGES) + 1)
    np.testing.assert_allclose(rel.sum(axis=1), 1.0)
    # Below the threshold (columns up to [-0.25, 0)): what the round pruned, up to part of the threshold's bin.
    np.testing.assert_allclose(rel[:, :33].sum(axis=1), 0.2, atol=0.005)
    # Scaling every weight by 2^k moves the fixed-bin histogram by 16k bins but leaves log-relative as it is.
    scaled = FlowTrace(trace.tensor_names, trace.tensor_sizes, fraction=0.2)
    for r in trace.rounds:
        scaled.record(
            r.round,
            torch.tensor(np.roll(r.histogram, 16 * 3)),
            torch.tensor(r.counts),
            torch.tensor(r.abs_sums, dtype=torch.float64) * 8,
            torch.tensor(r.sq_sums, dtype=torch.float64) * 64,
            threshold_key=r.threshold_key + (3 << 23),
        )
    np.testing.assert_allclose(scaled.trajectory("log-relative"), rel, atol=1e-12)
    assert scaled.rounds[0].abs_sums == [8 * a for a in trace.rounds[0].abs_sums]
    np.testing.assert_allclose(scaled.trajectory("excess"), trace.trajectory("excess"), atol=1e-12)
    assert not np.allclose(scaled.trajectory("histogram"), trace.trajectory("histogram"))


@pytest.mark.parametrize("dist", ["gaussian", "laplace"])
def test_pruning_only_flow_has_no_training_part(dist):
    trace = pruning_only_flow(dist)
    fixed = step_split(trace, "histogram")
    assert fixed.training.max() < 1e-12  # the kernels' next histogram is predicted bin for bin
    np.testing.assert_allclose(fixed.pruning, fixed.total, rtol=1e-9)
    for kind in ("excess", "log-relative"):
        split = step_split(trace, kind)
        assert split.training.max() < QUANTIZATION, (kind, split.training)
        np.testing.assert_allclose(split.pruning, split.total, atol=QUANTIZATION)


def test_step_split_rows_match_step_sizes_and_the_report_table():
    trace = pruning_only_flow("gaussian", rounds=4, n=1 << 16)
    split = step_split(trace, "excess")
    assert split.rounds.tolist() == [1, 2, 3]  # step n = from round n - 1 to round n
    np.testing.assert_allclose(split.total, step_sizes(trace.trajectory("excess")))
    assert np.all(split.total <= split.pruning + split.training + 1e-12)
    assert split.predicted.shape == (3, len(EXCESS_EDGES))


def trained_flow(steps, seed=0):
    """A two-layer regression net, Gaussian weights, Adam steps between prunes (masks kept by attach)."""
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(128, 128), torch.nn.Tanh(), torch.nn.Linear(128, 32))
    with torch.no_grad():
        for layer in (model[0], model[2]):
            layer.weight.normal_(0, 0.06)
    pruner = rgprune.GlobalMagnitudePruner(model, prune_head=True)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.003)
    pruner.attach(optimizer)
    x, y = torch.randn(128, 128), torch.randn(128, 32)
    trace = FlowTrace(pruner.names, pruner.masks.numels(), fraction=0.2)
    for r in range(4):
        for _ in range(steps if r else 0):
            optimizer.zero_grad()
            torch.nn.functional.mse_loss(model(x), y).backward()
            optimizer.step()
        trace.record_prune(r, pruner.prune(0.2))
    return trace


def test_training_shows_in_the_training_part_and_static_weights_do_not():
    """Same net through GlobalMagnitudePruner: no training → training part within quantization (measured ≤ 0.0038);
    5 Adam steps per round → at least 5x the bound at every step (measured 0.070-0.089 for excess, 0.28-0.33 for
    log-relative, 0.28-0.36 for the fixed bins)."""
    static, trained = trained_flow(0), trained_flow(5)
    for kind in ("excess", "log-relative"):
        assert step_split(static, kind).training.max() < QUANTIZATION
        assert step_split(trained, kind).training.min() > 5 * QUANTIZATION
    assert step_split(static, "histogram").training.max() < 1e-12


def test_density_profile_is_layer_density_over_global_density():
    """Two Gaussian tensors, the second with twice the scale: global pruning thins the first faster."""
    g = torch.Generator().manual_seed(0)
    weights = [torch.randn(1 << 15, generator=g), 2 * torch.randn(1 << 14, generator=g)]
    masks = MaskSet.ones(weights)
    trace = FlowTrace(["narrow", "wide"], [w.numel() for w in weights], fraction=0.2)
    for r in range(5):
        result = rgprune.prune_global_(weights, masks.words, round(0.2 * sum(masks.survivor_counts())))
        trace.record(
            r,
            result.threshold.histogram,
            result.stats.counts,
            result.stats.abs_sums,
            result.stats.sq_sums,
            threshold_key=int(result.threshold.key),
        )
    profile = trace.trajectory("density-profile")
    sizes = np.array(trace.tensor_sizes)
    np.testing.assert_allclose(profile @ sizes, sizes.sum())  # a size-weighted mean of 1
    density = np.array([r.density for r in trace.rounds])
    np.testing.assert_allclose(profile, trace.trajectory("layer-density") / density[:, None])
    assert np.all(profile[:, 0] < 1) and np.all(np.diff(profile[:, 0]) < 0)
    assert np.all(profile[:, 1] > 1) and np.all(np.diff(profile[:, 1]) > 0)


def test_observables_need_a_threshold_or_a_fraction():
    hist = pruning_only_flow("laplace", rounds=1, n=1 << 12).rounds[0].histogram
    total = sum(hist)
    unpruned = FlowTrace(["a", "b", "c"], [total - 2 * (total // 3), total // 3, total // 3])
    unpruned.record(0, torch.tensor(hist), torch.tensor(unpruned.tensor_sizes), torch.ones(3), torch.ones(3))
    with pytest.raises(ValueError, match="give the trace its pruning fraction"):
        unpruned.trajectory("excess")
    unpruned.fraction = 0.2  # the round is read as if it pruned 20%: its threshold is interpolated
    assert unpruned.trajectory("excess").shape == (1, len(EXCESS_EDGES))
    emptied = FlowTrace(["a"], [total])
    emptied.record(0, torch.tensor(hist), torch.zeros(1, dtype=torch.int64), torch.zeros(1), torch.zeros(1))
    with pytest.raises(ValueError, match="pruned all of its"):
        emptied.trajectory("excess")


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda t: step_split(t, "layer-density"), "per-layer histograms"),
        (lambda t: step_split(FlowTrace(t.tensor_names, t.tensor_sizes, rounds=t.rounds[:1])), "at least 2"),
        (lambda t: t.trajectory("excess", coarsen=2), "coarsen applies to the 'histogram'"),
        (lambda t: t.trajectory("histogram", coarsen=3), "coarsen must divide"),
    ],
)
def test_bad_requests_say_what_to_do(call, message):
    with pytest.raises(ValueError, match=message):
        call(pruning_only_flow("laplace", rounds=2, n=1 << 12))


def test_step_split_refuses_rounds_of_different_flows():
    a = pruning_only_flow("laplace", rounds=2, n=1 << 12)
    b = pruning_only_flow("laplace", rounds=1, n=1 << 13, seed=1)
    mixed = FlowTrace(a.tensor_names, a.tensor_sizes, fraction=0.2, rounds=[a.rounds[0], b.rounds[0]])
    mixed.rounds[1].round = 1
    with pytest.raises(ValueError, match="consecutive rounds of one flow"):
        step_split(mixed, "excess")
