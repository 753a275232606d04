"""Known-answer tests of the flow estimators (dmd, affine_fixed_point) on short, noisy histogram flows.

Each flow here has eigenvalues derived exactly (see the docstrings); the tests check that the estimators
recover them from exact densities and from finite samples, with intervals that contain them, and that
they report nothing (rank 0) where there is nothing: noise, and flows too short to tell.
"""

import numpy as np
import pytest
from scipy.special import ndtr
from scipy.stats import binom

from rgprune.rg import affine_fixed_point, classify_directions, dmd

SQRT2 = np.sqrt(2.0)
# Linearized eigenvalues of the central-limit map around a Gaussian: 2^(1 - k/2), k = 1, 2, 3, 4.
CLT_EIGENVALUES = 2.0 ** (1.0 - np.arange(1, 5) / 2.0)


def plain_exact_dmd_moduli(trajectories):
    """|λ| of plain DMD as rgprune computed it before centring: uncentred, every direction kept (an exact fit).

    Kept here to show that each flow below really has the artefact the estimators must avoid.
    """
    x = np.concatenate([t[:-1] for t in trajectories]).T
    y = np.concatenate([t[1:] for t in trajectories]).T
    u, s, vh = np.linalg.svd(x, full_matrices=False)
    keep = s > 1e-10 * s[0]
    u, s, v = u[:, keep], s[keep], vh[keep].T
    return np.abs(np.linalg.eigvals(u.T @ y @ v / s))


def count_near_one(moduli, half_width=0.1):
    return int(np.sum(np.abs(np.asarray(moduli) - 1.0) < half_width))


def nearest(result, target):
    """Index of the estimated eigenvalue whose modulus is nearest ``target``."""
    return int(np.argmin(np.abs(np.abs(result.eigenvalues) - target)))


# ---------------------------------------------------------------------------------------------
# (a) The central-limit histogram flow
# ---------------------------------------------------------------------------------------------


def clt_start(rng, separation=1.0, mean_scale=0.04, variance_scale=0.1):
    """A start near the Gaussian: w N(m0, s^2) + (1 - w) N(m1, s^2), as (w, (m0, m1), s).

    Skewed and kurtotic (two components |m1 - m0| ~ separation apart), with mean ~ U(-mean_scale,
    mean_scale) and variance 1 + U(-variance_scale, variance_scale): every eigendirection is excited, all
    of them weakly enough that the flow stays near its linearization for a few rounds.
    """
    w = rng.uniform(0.6, 0.85)
    gap = separation * rng.uniform(0.6, 1.2) * rng.choice([-1.0, 1.0])
    means = np.array([0.0, gap]) - (1.0 - w) * gap + mean_scale * rng.uniform(-1.0, 1.0)
    between = w * (1.0 - w) * gap**2
    s = np.sqrt(1.0 + variance_scale * rng.uniform(-1.0, 1.0) - between)
    return w, means, s


def clt_law(start, rounds_done):
    """Exact law after n rounds of p -> law of (X1 + X2)/sqrt(2), from a two-component start.

    After n rounds X_n = 2^(-n/2) (X_1 + ... + X_M), M = 2^n independent draws of the start. Given that
    K ~ Binomial(M, w) of them come from the first component, X_n ~ N((K m0 + (M - K) m1) / sqrt(M), s^2).
    So p_n is a binomial mixture of M + 1 Gaussians of variance s^2: returns (weights, means, s).
    """
    w, (m0, m1), s = start
    draws = 2**rounds_done
    k = np.arange(draws + 1)
    weights = binom.pmf(k, draws, w)
    keep = weights > 1e-300
    return weights[keep], ((k * m0 + (draws - k) * m1) / np.sqrt(draws))[keep], s


def clt_exact_flow(start, rounds, edges):
    """Normalized histograms (bin fractions on fixed ``edges``) of p_0 .. p_{rounds-1}, exactly."""
    rows = []
    for n in range(rounds):
        weights, means, s = clt_law(start, n)
        cdf = weights @ ndtr((edges[None, :] - means[:, None]) / s)
        rows.append(np.diff(cdf) / (cdf[-1] - cdf[0]))
    return np.array(rows)


def clt_sampled_flow(start, rounds, edges, draws, rng):
    """The same flow, each histogram built from ``draws`` independent draws of the exact law."""
    rows = []
    for n in range(rounds):
        weights, means, s = clt_law(start, n)
        component = rng.choice(weights.size, size=draws, p=weights / weights.sum())
        counts = np.histogram(means[component] + s * rng.standard_normal(draws), edges)[0]
        rows.append(counts / counts.sum())
    return np.array(rows)


def test_clt_laws_follow_the_cumulant_map():
    """The generator itself: mean x sqrt(2) per round, variance fixed, third cumulant x 2^(-1/2) per round."""
    start = clt_start(np.random.default_rng(0))
    cumulants = []
    for n in range(4):
        weights, means, s = clt_law(start, n)
        mean = weights @ means
        centred = means - mean
        variance = weights @ centred**2 + s**2
        third = weights @ (centred**3 + 3 * centred * s**2)
        cumulants.append((mean, variance, third))
    cumulants = np.array(cumulants)
    np.testing.assert_allclose(cumulants[1:, 0] / cumulants[:-1, 0], SQRT2, rtol=1e-9)
    np.testing.assert_allclose(cumulants[:, 1], cumulants[0, 1], rtol=1e-9)
    np.testing.assert_allclose(cumulants[1:, 2] / cumulants[:-1, 2], 1 / SQRT2, rtol=1e-9)


def check_clt_estimate(result, tolerance, intervals_cover):
    """Leading eigenvalues within ``tolerance``, one direction (not a row) near |λ| = 1, and the relevant one
    classified relevant from its interval. With ``intervals_cover``, both intervals contain the truth."""
    moduli = np.abs(result.eigenvalues)
    assert result.rank >= 2, result.selection
    relevant, marginal = nearest(result, SQRT2), nearest(result, 1.0)
    assert abs(moduli[relevant] - SQRT2) < tolerance
    assert abs(moduli[marginal] - 1.0) < tolerance
    for index, truth in ((relevant, SQRT2), (marginal, 1.0)):
        lower, upper = result.eigenvalue_intervals[index]
        assert lower <= moduli[index] <= upper
        assert not intervals_cover or lower <= truth <= upper, (index, truth, lower, upper)
    assert count_near_one(moduli) == 1
    # The interval alone says relevant; the result's class does too unless the pool is worth fewer than 5
    # independent trajectories (then every class is withheld, and the result says why).
    assert classify_directions(result.eigenvalues, intervals=result.eigenvalue_intervals)[relevant] == "relevant"
    expected = "relevant" if result.selection.classes_withheld is None else "unresolved"
    assert classify_directions(result)[relevant] == expected
    assert (result.selection.effective_trajectories >= 5) == (result.selection.classes_withheld is None)


CLT_EXACT_CASES = [  # (bins, trajectories, rounds, seed)
    (64, 8, 5, 1),
    (32, 6, 6, 2),
    (128, 10, 4, 3),
]
# Exact data: starts close enough to the Gaussian that terms of second order (kappa_1^2 grows as 2, into the
# variance direction) stay below the tolerance; the estimate is then the linearization's.
NEAR_GAUSSIAN = {"separation": 0.7, "mean_scale": 0.01, "variance_scale": 0.05}


@pytest.mark.parametrize("bins, count, rounds, seed", CLT_EXACT_CASES)
def test_clt_flow_from_exact_densities(bins, count, rounds, seed):
    """Central-limit map p -> law of (X1 + X2)/sqrt(2) on fixed bins, from exact densities.

    Its characteristic function is phi'(t) = phi(t / sqrt 2)^2, so cumulants map as
    kappa_k' = 2 kappa_k / 2^(k/2) = 2^(1 - k/2) kappa_k: linear and diagonal. The fixed points are the
    Gaussians N(0, sigma^2), one per sigma. Near one, p = phi + sum_k delta kappa_k (-D)^k phi / k! + O(delta^2)
    (Gram-Charlier), so the linearized map has eigenfunctions D^k phi with eigenvalues 2^(1 - k/2):
    1.414 (the mean, relevant), 1 (the variance: marginal, the line of fixed points), 0.707, 0.5, ...
    (k = 0, the total mass, is not a direction of normalized histograms). Binning is linear, so the
    histograms' flow has these eigenvalues. Second-order terms (e.g. kappa_1^2, growing as 2) stay small
    because every start is close to a Gaussian. The intervals here measure how much the trajectories
    disagree, which exact data makes tiny: the check is the tolerance.
    """
    rng = np.random.default_rng(seed)
    edges = np.linspace(-6.0, 6.0, bins + 1)
    starts = [clt_start(rng, **NEAR_GAUSSIAN) for _ in range(count)]
    flows = [clt_exact_flow(start, rounds, edges) for start in starts]
    assert count_near_one(plain_exact_dmd_moduli(flows)) >= 2  # the artefact this test guards against
    result = dmd(flows)
    check_clt_estimate(result, tolerance=0.015, intervals_cover=False)
    assert result.rank >= 3
    assert abs(np.abs(result.eigenvalues[nearest(result, CLT_EIGENVALUES[2])]) - CLT_EIGENVALUES[2]) < 0.05
    affine = affine_fixed_point(flows)
    np.testing.assert_allclose(affine.eigenvalues, result.eigenvalues, atol=1e-12)
    np.testing.assert_allclose(affine.eigenvalue_intervals, result.eigenvalue_intervals, atol=1e-12)


CLT_SAMPLED_CASES = [  # (bins, trajectories, rounds, draws per histogram, seed)
    (64, 8, 5, 100_000, 1),
    (32, 10, 4, 100_000, 2),
    (128, 12, 4, 100_000, 3),
]


@pytest.mark.parametrize("bins, count, rounds, draws, seed", CLT_SAMPLED_CASES)
def test_clt_flow_from_finite_samples(bins, count, rounds, draws, seed):
    """The same flow with each histogram built from ~1e5 draws (multinomial noise in every bin).

    The noise makes the exact fit of plain DMD return a row of |λ| ≈ 1 modes. The centred fit with
    the held-out rank keeps only directions that predict held-out trajectories, so it reports the
    relevant 1.414 and the marginal 1, each inside its bootstrap interval, and nothing else near 1.
    """
    rng = np.random.default_rng(seed)
    edges = np.linspace(-6.0, 6.0, bins + 1)
    starts = [clt_start(rng) for _ in range(count)]
    flows = [clt_sampled_flow(start, rounds, edges, draws, rng) for start in starts]
    assert count_near_one(plain_exact_dmd_moduli(flows)) >= 3
    result = dmd(flows)
    check_clt_estimate(result, tolerance=0.06, intervals_cover=True)
    assert not result.selection.exact_fit


# ---------------------------------------------------------------------------------------------
# (b) A normalized-histogram flow with a known contraction
# ---------------------------------------------------------------------------------------------


def binned(cdf, edges):
    fractions = np.diff(cdf(edges))
    return fractions / fractions.sum()


def contraction_flows(count, rounds, edges, rng, rates=(0.6, 0.3), draws=None):
    """p_n = q + a^n c_1 d_1 + b^n c_2 d_2: normalized histograms contracting to q at rates a and b.

    q is a standard Gaussian binned, d_1 = (Laplace - q) and d_2 = (Gaussian of variance 2 - q) sum to 0,
    so every p_n sums to 1, and per-trajectory coefficients c ~ U(0.2, 1) (with c_1 + c_2 <= 1 every
    p_n is a mixture, nonnegative). The map p -> q + A (p - q) with A = a on d_1, b on d_2 has eigenvalues
    exactly {a, b} and fixed point q; nothing in it has |λ| = 1. With ``draws``, each histogram is
    sampled from p_n.
    """
    q = binned(lambda x: ndtr(x), edges)
    laplace = binned(
        lambda x: np.where(x < 0, 0.5 * np.exp(np.minimum(x, 0)), 1 - 0.5 * np.exp(-np.maximum(x, 0))), edges
    )
    wide = binned(lambda x: ndtr(x / SQRT2), edges)
    directions = np.stack([laplace - q, wide - q])
    flows = []
    for _ in range(count):
        c = rng.uniform(0.2, 0.5, size=2)
        rows = np.array([q + (np.power(rates, n) * c) @ directions for n in range(rounds)])
        if draws is not None:
            rows = np.array([rng.multinomial(draws, row / row.sum()) / draws for row in rows])
        flows.append(rows)
    return flows, q


def test_contraction_of_normalized_histograms_has_no_unit_mode():
    edges = np.linspace(-8.0, 8.0, 65)
    flows, q = contraction_flows(count=5, rounds=6, edges=edges, rng=np.random.default_rng(0))
    assert count_near_one(plain_exact_dmd_moduli(flows), 0.02) == 1  # uncentred: the sum-to-1 mode at 1.000
    result = dmd(flows)
    assert result.rank == 2
    np.testing.assert_allclose(np.abs(result.eigenvalues), [0.6, 0.3], atol=1e-8)
    assert classify_directions(result).tolist() == ["irrelevant", "irrelevant"]
    affine = affine_fixed_point(flows)
    np.testing.assert_allclose(affine.fixed_point, q, atol=1e-10)


def test_contraction_from_finite_samples_has_no_unit_mode():
    edges = np.linspace(-8.0, 8.0, 65)
    flows, q = contraction_flows(count=8, rounds=6, edges=edges, rng=np.random.default_rng(1), draws=100_000)
    result = dmd(flows)
    moduli = np.abs(result.eigenvalues)
    assert count_near_one(moduli, 0.2) == 0
    lead = nearest(result, 0.6)
    assert abs(moduli[lead] - 0.6) < 0.05
    assert result.eigenvalue_intervals[lead, 0] <= 0.6 <= result.eigenvalue_intervals[lead, 1]
    assert set(classify_directions(result)) <= {"irrelevant", "unresolved"}
    affine = affine_fixed_point(flows)
    assert np.abs(affine.fixed_point - q).max() < 0.01 * q.max()


# ---------------------------------------------------------------------------------------------
# (d) Noise becomes no eigenvalues; (e) exact fits are not measurements
# ---------------------------------------------------------------------------------------------


def test_histograms_resampled_at_a_fixed_point_resolve_nothing():
    """Every round re-samples the same law: the flow sits at its fixed point and only the noise moves.

    The right answer is that no direction has dynamics: rank 0 ("nothing resolved"), no eigenvalues,
    and the fixed point is the law. Plain exact DMD turns the same noise into a row of modes near 1.
    """
    rng = np.random.default_rng(2)
    edges = np.linspace(-6.0, 6.0, 65)
    law = binned(ndtr, edges)
    flows = [np.array([rng.multinomial(100_000, law) / 100_000 for _ in range(6)]) for _ in range(6)]
    assert count_near_one(plain_exact_dmd_moduli(flows), 0.2) >= 5
    result = dmd(flows)
    assert result.rank == 0 and result.status == "nothing resolved"
    assert result.eigenvalues.size == 0 and classify_directions(result).size == 0
    assert affine_fixed_point(flows).fixed_point == pytest.approx(law, abs=0.002)


@pytest.mark.parametrize("seed", range(5))
def test_white_noise_trajectories_resolve_nothing(seed):
    rng = np.random.default_rng(10 + seed)
    result = dmd(list(rng.normal(size=(4, 6, 200))))
    assert result.rank == 0 and result.status == "nothing resolved"


def test_many_observables_few_pairs_is_not_fitted_exactly():
    """24 pairs of a 4096-bin observable: any rank-23 centred fit reproduces them whatever the map.

    The held-out rule never chooses that rank (a held-out fold has 22 centred pairs), so the default is
    not an exact fit; asking for rank 23 gives one, and the result says so.
    """
    rng = np.random.default_rng(3)
    trajectory = np.cumsum(rng.normal(size=(25, 4096)), axis=0)  # a random walk: no fixed linear map
    result = dmd(trajectory)
    assert result.rank < 23 and not result.selection.exact_fit
    exact = dmd(trajectory, rank=23, n_boot=0)
    assert exact.selection.exact_fit and exact.reconstruction_error < 1e-10


def test_a_flow_too_short_to_resolve_anything_says_so():
    rng = np.random.default_rng(4)
    edges = np.linspace(-6.0, 6.0, 33)
    flow = clt_exact_flow(clt_start(rng), 3, edges)  # 3 rounds: 2 pairs, 2 held-out folds
    result = dmd(flow)
    assert result.rank == 0 and result.status == "too short"
    assert affine_fixed_point(flow).status == "too short"
