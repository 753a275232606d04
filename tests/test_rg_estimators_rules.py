"""The rules behind the flow estimators: held-out rank, bootstrap intervals, classes, Gram centring, distances."""

import numpy as np
import pytest

from rgprune.rg import (
    affine_fixed_point,
    classify_directions,
    dmd,
    flow_distance,
    gram_dmd,
    scaling_exponents,
)


def linear_flows(rng, count, rounds, eigenvalues, observables=30, observation_noise=0.0, process_noise=0.0):
    """g_n = E s_n + noise, s_{n+1} = diag(eigenvalues) s_n + noise: a linear map seen through ``observables``."""
    k = len(eigenvalues)
    embedding = np.linalg.qr(rng.normal(size=(observables, k)))[0]  # orthonormal: noise levels stay comparable
    flows = []
    for _ in range(count):
        state = rng.normal(size=k) * 2.0
        states = [state]
        for _ in range(rounds - 1):
            state = np.asarray(eigenvalues) * state + process_noise * rng.normal(size=k)
            states.append(state)
        flows.append(np.array(states) @ embedding.T + observation_noise * rng.normal(size=(rounds, observables)))
    return flows


# ---------------------------------------------------------------------------------------------
# The held-out rank rule
# ---------------------------------------------------------------------------------------------


def test_rank_rule_finds_the_dimension_of_a_noisy_linear_map():
    """Three directions (|λ| = 1.1, 0.8, 0.5) in 30 observables with noise: the rule keeps exactly three."""
    flows = linear_flows(np.random.default_rng(0), 6, 6, [1.1, 0.8, 0.5], observation_noise=0.02)
    result = dmd(flows)
    assert result.rank == 3 and result.status == "fitted"
    np.testing.assert_allclose(np.abs(result.eigenvalues), [1.1, 0.8, 0.5], atol=0.05)
    errors, se = result.selection.heldout_error, result.selection.heldout_error_se
    assert errors[0] == 1.0  # relative to rank 0, the mean step
    # The one-standard-error rule: rank 3 is within one SE of the best, ranks 0-2 are not.
    best = int(np.argmin(errors))
    assert errors[3] <= errors[best] + se[best]
    assert np.all(errors[:3] > errors[best] + se[best])


def test_units_of_the_rule_are_trajectories_from_five_effective_ones_on():
    """Trajectories are the units only when the pool is worth at least 5 independent ones; fewer are one
    series (units: rounds); one trajectory, or trajectories of one pair each, resample pairs."""
    rng = np.random.default_rng(1)
    eight = linear_flows(rng, 8, 5, [0.9, 0.5], observables=10, observation_noise=0.05, process_noise=0.1)
    pooled = dmd(eight)
    assert pooled.selection.units == "trajectories" and pooled.selection.effective_trajectories >= 5
    assert pooled.selection.trajectories == 8 and pooled.selection.classes_withheld is None
    three = dmd(eight[:3])
    assert three.selection.units == "rounds" and three.selection.effective_trajectories <= 3
    assert "independent" in three.selection.classes_withheld
    single = dmd(eight[0])
    assert single.selection.units == "pairs" and single.selection.classes_withheld.startswith("one trajectory")
    one_pair_each = dmd([flow[:2] for flow in eight])
    assert one_pair_each.selection.units == "pairs" and one_pair_each.selection.residual_correlation is None
    assert one_pair_each.selection.classes_withheld is not None


def test_explicit_rank_and_tol_are_reported_as_such():
    flows = linear_flows(np.random.default_rng(2), 4, 5, [0.9, 0.5])
    ranked = dmd(flows, rank=1)
    assert ranked.rank == 1 and ranked.selection.rule == "rank" and ranked.status == "rank given"
    assert ranked.selection.heldout_error.size == 0
    thresholded = dmd(flows, tol=1e-6)
    assert thresholded.selection.rule == "tol" and thresholded.rank == 2


def test_too_short_flows_return_rank_zero_and_say_why():
    line = np.array([[1.0], [0.5], [0.25]])  # 2 pairs: 2 held-out folds, fewer than the rule needs
    assert dmd(line).status == "too short"
    assert dmd(line, rank=1).eigenvalues[0] == pytest.approx(0.5)  # a caller may still ask for the exact fit
    assert dmd(line, rank=1).selection.exact_fit


def test_a_map_sending_everything_to_one_point_resolves_nothing():
    """y_n = const for every pair: rank 0, and the affine fixed point is that point."""
    rng = np.random.default_rng(3)
    flows = [np.vstack([rng.normal(size=(1, 3)), np.tile([[1.0, 2.0, 3.0]], (1, 1))]) for _ in range(5)]
    result = affine_fixed_point(flows)
    assert result.eigenvalues.size == 0 and result.rank == 0
    np.testing.assert_allclose(result.fixed_point, [1.0, 2.0, 3.0], atol=1e-12)


# ---------------------------------------------------------------------------------------------
# Bootstrap intervals
# ---------------------------------------------------------------------------------------------


def test_intervals_are_seeded_and_deterministic():
    flows = linear_flows(np.random.default_rng(4), 5, 5, [0.9, 0.5], observation_noise=0.05)
    first, again, other = dmd(flows, seed=7), dmd(flows, seed=7), dmd(flows, seed=8)
    np.testing.assert_array_equal(first.eigenvalue_intervals, again.eigenvalue_intervals)
    assert not np.array_equal(first.eigenvalue_intervals, other.eigenvalue_intervals)
    np.testing.assert_array_equal(first.eigenvalues, other.eigenvalues)  # only the intervals are random


def test_exact_data_gives_intervals_of_zero_width():
    flows = linear_flows(np.random.default_rng(5), 6, 5, [1.2, 0.6])
    result = dmd(flows)
    assert result.selection.effective_trajectories == 6  # exact data: the residuals are rounding, not shared
    np.testing.assert_allclose(result.eigenvalue_intervals[:, 0], np.abs(result.eigenvalues), atol=1e-9)
    np.testing.assert_allclose(result.eigenvalue_intervals[:, 1], np.abs(result.eigenvalues), atol=1e-9)
    assert classify_directions(result).tolist() == ["relevant", "irrelevant"]


def test_a_conjugate_pair_gets_one_interval():
    rotation = 0.8 * np.array([[np.cos(0.5), -np.sin(0.5)], [np.sin(0.5), np.cos(0.5)]])
    rng = np.random.default_rng(6)
    flows = []
    for _ in range(6):
        states = [rng.normal(size=2)]
        for _ in range(5):
            states.append(rotation @ states[-1] + 0.02 * rng.normal(size=2))
        flows.append(np.array(states))
    result = dmd(flows)
    assert result.rank == 2 and result.eigenvalues[0] == np.conj(result.eigenvalues[1])
    np.testing.assert_allclose(result.eigenvalue_intervals[0], result.eigenvalue_intervals[1], atol=0.02)
    assert result.eigenvalue_intervals[0, 0] <= 0.8 <= result.eigenvalue_intervals[0, 1]


def test_interval_coverage_is_near_nominal():
    """90% intervals contain the true |λ| in most of 40 independent noisy flows (guards against intervals
    that ignore the noise, e.g. replicates that do not resample)."""
    hits, count = 0, 0
    for seed in range(40):
        flows = linear_flows(
            np.random.default_rng(100 + seed),
            6,
            5,
            [0.9, 0.5],
            observables=10,
            observation_noise=0.05,
            process_noise=0.1,
        )
        result = dmd(flows, n_boot=100)
        for truth in (0.9, 0.5):
            index = int(np.argmin(np.abs(np.abs(result.eigenvalues) - truth))) if result.rank else None
            count += 1
            hits += (
                index is not None
                and result.eigenvalue_intervals[index, 0] <= truth <= result.eigenvalue_intervals[index, 1]
            )
    assert hits / count >= 0.8, hits / count


def test_no_bootstrap_means_no_information():
    flows = linear_flows(np.random.default_rng(7), 4, 5, [1.2, 0.6])
    result = dmd(flows, n_boot=0)
    assert np.all(result.eigenvalue_intervals[:, 0] == 0.0) and np.all(np.isinf(result.eigenvalue_intervals[:, 1]))
    assert set(classify_directions(result)) == {"unresolved"}


@pytest.mark.parametrize(
    "options, message",
    [
        ({"level": 1.0}, "level"),
        ({"level": 0.0}, "level"),
        ({"n_boot": 5}, "n_boot"),
        ({"n_boot": 100.0}, "n_boot"),
        ({"seed": -1}, "seed"),
        ({"seed": None}, "seed"),
    ],
)
def test_interval_options_are_validated(options, message):
    flows = linear_flows(np.random.default_rng(8), 4, 5, [0.9, 0.5])
    with pytest.raises(ValueError, match=message):
        dmd(flows, **options)


# ---------------------------------------------------------------------------------------------
# Classification with intervals
# ---------------------------------------------------------------------------------------------


def test_a_class_needs_the_whole_interval_inside_its_band():
    values = [1.5, 1.5, 1.0, 1.0, 0.5, 0.5]
    intervals = [[1.2, 1.8], [0.9, 1.8], [0.97, 1.03], [0.9, 1.03], [0.3, 0.7], [0.3, 0.96]]
    assert classify_directions(values, intervals=intervals).tolist() == [
        "relevant",
        "unresolved",
        "marginal",
        "unresolved",
        "irrelevant",
        "unresolved",
    ]
    assert classify_directions(values, tol=0.01, intervals=intervals)[2] == "unresolved"
    assert classify_directions([1.0], intervals=[[0.0, np.inf]]).tolist() == ["unresolved"]
    assert classify_directions([], intervals=np.zeros((0, 2))).size == 0 and scaling_exponents([], 2.0).size == 0


@pytest.mark.parametrize(
    "intervals, message",
    [
        ([[0.9, 1.1]], "shape \\(2, 2\\)"),
        ([[1.1, 0.9], [0.1, 0.2]], "lower <= upper"),
        ([[-0.1, 0.9], [0.1, 0.2]], "lower <= upper"),
        ([[np.nan, 0.9], [0.1, 0.2]], "lower <= upper"),
    ],
)
def test_classification_intervals_are_validated(intervals, message):
    with pytest.raises(ValueError, match=message):
        classify_directions([1.0, 0.1], intervals=intervals)


# ---------------------------------------------------------------------------------------------
# Parameter-space DMD from the Gram matrix, centred
# ---------------------------------------------------------------------------------------------


def test_gram_dmd_is_centred_so_a_constant_offset_adds_no_unit_mode():
    """theta_n = theta_base + 0.8^n v_1 + 0.4^n v_2 (+ small noise): a model that moves little around large weights.

    Uncentred DMD sees theta_base, which maps to itself, as a mode with λ = 1; centring (H G H) removes it,
    leaving {0.8, 0.4}. The Gram result equals dmd on the vectors, and its fixed point is affine_fixed_point's.
    """
    rng = np.random.default_rng(9)
    base, v1, v2 = rng.normal(size=(3, 500))
    thetas = np.array([5 * base + 0.8**n * v1 + 0.4**n * v2 for n in range(10)])
    thetas += 1e-6 * rng.normal(size=thetas.shape)
    gram = thetas @ thetas.T
    result = gram_dmd(gram)
    np.testing.assert_allclose(np.abs(result.eigenvalues), [0.8, 0.4], atol=1e-3)
    assert np.min(np.abs(np.abs(result.eigenvalues) - 1.0)) > 0.1
    x, y = thetas[:-1].T, thetas[1:].T  # plain uncentred DMD at rank 3 finds the offset as λ = 1
    u, s, vh = np.linalg.svd(x, full_matrices=False)
    plain = np.linalg.eigvals(u[:, :3].T @ y @ vh[:3].T / s[:3])
    assert np.min(np.abs(np.abs(plain) - 1.0)) < 1e-3
    direct = dmd(thetas)
    np.testing.assert_allclose(result.eigenvalues, direct.eigenvalues, atol=1e-6)
    np.testing.assert_allclose(result.eigenvalue_intervals, direct.eigenvalue_intervals, atol=1e-4)
    fixed_point = thetas.T @ result.fixed_point_coefficients
    np.testing.assert_allclose(fixed_point, affine_fixed_point(thetas).fixed_point, atol=1e-4)
    np.testing.assert_allclose(fixed_point, 5 * base, atol=1e-3)


def test_gram_dmd_of_noise_resolves_nothing():
    thetas = np.random.default_rng(10).normal(size=(12, 300))
    result = gram_dmd(thetas @ thetas.T)
    assert result.rank == 0 and result.status == "nothing resolved"


# ---------------------------------------------------------------------------------------------
# Flow distance with the data-chosen rank
# ---------------------------------------------------------------------------------------------


def test_flow_distance_compares_resolved_directions_and_none_where_nothing_is_resolved():
    rng = np.random.default_rng(11)
    decaying = linear_flows(rng, 4, 6, [0.9, 0.5])
    noise = list(rng.normal(size=(4, 6, 30)))
    same = flow_distance(decaying, decaying)
    assert same.ranks == (2, 2) and same.eigenvalue_distance == pytest.approx(0.0, abs=1e-9)
    versus_noise = flow_distance(decaying, noise)
    assert versus_noise.ranks == (2, 0)
    # Nothing resolved is not the eigenvalue set {0} (which would give W1 = 0.7 here): there is nothing to compare.
    assert versus_noise.eigenvalue_distance is None and versus_noise.total is None
    assert versus_noise.trajectory_distance > 0
    assert flow_distance(decaying, noise, trajectory_weight=1.0).total is None


def one_direction_pairs(rng, count=40, slope=0.7, noise=0.2):
    """Pairs x -> slope * x + noise of one observable, each pair its own resampling unit."""
    from rgprune.rg.snapshots import SnapshotPairs

    x = rng.normal(size=(1, count)) * 2.0
    y = slope * x + noise * rng.normal(size=(1, count))
    return SnapshotPairs(x=x, y=y, trajectory_blocks=(np.arange(count),), units="pairs", rank_cap=1, floor=1e-12)


def test_intervals_are_the_basic_bootstrap_band_shifted_by_tls():
    """Recompute the module's rule from the same seeded replicates: with q_lo, q_hi the (1 - level) / 2 and
    (1 + level) / 2 order statistics of the replicates' |λ| and m = |λ|: [max(0, 2m - q_hi), 2m - q_lo] (the
    basic interval, not the percentile one [q_lo, q_hi]), widened to hold m, then joined with itself moved by
    d = |λ_TLS| - m."""
    from rgprune.rg.intervals import eigenvalue_intervals
    from rgprune.rg.linear_fit import fit_centred, supported_rank, tls_eigenvalues

    pairs = one_direction_pairs(np.random.default_rng(11))
    point = fit_centred(pairs.x, pairs.y, 1).eigenvalues
    level, n_boot, seed, relative = 0.9, 200, 3, 1e-9
    got = eigenvalue_intervals(pairs, point, relative, level, n_boot, seed)

    rng, moduli = np.random.default_rng(seed), []
    while len(moduli) < n_boot:
        picks = rng.integers(pairs.count, size=pairs.count)
        x, y = pairs.x[:, picks], pairs.y[:, picks]
        if supported_rank(x, y, relative) >= 1:
            moduli.append(abs(fit_centred(x, y, 1).eigenvalues[0]))
    ordered, trim = np.sort(moduli), round(n_boot * (1 - level) / 2)
    q_lo, q_hi, m = ordered[trim], ordered[n_boot - 1 - trim], abs(point[0])
    lower, upper = min(max(0.0, 2 * m - q_hi), m), max(2 * m - q_lo, m)
    d = abs(tls_eigenvalues(pairs.x, pairs.y, 1)[0]) - m
    expected = [max(min(lower, lower + d), 0.0), max(upper, upper + d)]
    np.testing.assert_allclose(got[0], expected, rtol=1e-12)
    assert abs((2 * m - q_hi) - q_lo) > 1e-3  # the basic and percentile lower bounds differ here


def test_basic_band_reflects_the_replicates_about_the_estimate_and_stops_at_zero():
    """The band itself, on replicates whose order statistics are known: 200 values, level 0.9 -> trim 10."""
    from rgprune.rg.intervals import _basic

    replicates = (0.5 + 0.01 * np.arange(200.0) ** 1.5 / 200**0.5)[:, None]  # skewed: 0.5 .. ~2.49
    q_lo, q_hi = replicates[10, 0], replicates[189, 0]
    for m in (1.3, 0.6):  # 2m - q_hi > 0, then < 0 (the lower bound stops at 0)
        lower, upper = _basic(np.array([m]), replicates, 0.9)
        assert lower[0] == pytest.approx(min(max(0.0, 2 * m - q_hi), m), rel=1e-12, abs=1e-15)
        assert upper[0] == pytest.approx(max(2 * m - q_lo, m), rel=1e-12)
