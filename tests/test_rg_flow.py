"""Tests of rgprune.rg.flow against systems whose answers are known exactly."""

import math

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from scipy.optimize import brentq

from rgprune.rg.flow import (
    DEFAULT_TOL,
    affine_fixed_point,
    classify_directions,
    density_profiles,
    dmd,
    eigenvalue_wasserstein,
    flow_distance,
    gram_dmd,
    rescaling_factor,
    scaling_exponents,
    step_sizes,
    trajectory_distance,
)

# ---------------------------------------------------------------------------------------------
# Known systems
# ---------------------------------------------------------------------------------------------

# Real eigenvalues above and below 1, and complex-conjugate pairs inside and outside the circle.
REAL_EIGENVALUES = [1.2, 0.7, -0.4]
COMPLEX_PAIRS = [0.8 + 0.5j, 1.05 + 0.2j]  # |.| = 0.943 and 1.069
TRUE_EIGENVALUES = np.array(REAL_EIGENVALUES + [z for pair in COMPLEX_PAIRS for z in (pair, pair.conjugate())])


def real_map_with_eigenvalues(real, pairs, rng):
    """Real A = V B V^-1, B block-diagonal: real entries and 2x2 blocks [[a, -b], [b, a]]."""
    size = len(real) + 2 * len(pairs)
    block = np.zeros((size, size))
    for i, value in enumerate(real):
        block[i, i] = value
    for k, z in enumerate(pairs):
        i = len(real) + 2 * k
        block[i : i + 2, i : i + 2] = [[z.real, -z.imag], [z.imag, z.real]]
    basis = rng.normal(size=(size, size)) + 3 * np.eye(size)  # well conditioned
    return basis @ block @ np.linalg.inv(basis)


def iterate(step, start, rounds):
    states = [np.asarray(start, dtype=float)]
    for _ in range(rounds - 1):
        states.append(step(states[-1]))
    return np.array(states)


def sort_complex(values):
    values = np.asarray(values, dtype=complex)
    return values[np.lexsort((values.imag, values.real))]


@pytest.fixture
def linear_system():
    rng = np.random.default_rng(0)
    a = real_map_with_eigenvalues(REAL_EIGENVALUES, COMPLEX_PAIRS, rng)
    starts = rng.normal(size=(3, a.shape[0]))
    trajectories = [iterate(lambda g: a @ g, start, 6) for start in starts]
    return a, trajectories


def test_constructed_map_has_the_chosen_eigenvalues(linear_system):
    a, _ = linear_system
    np.testing.assert_allclose(sort_complex(np.linalg.eigvals(a)), sort_complex(TRUE_EIGENVALUES), atol=1e-10)


# ---------------------------------------------------------------------------------------------
# Exact DMD on linear maps
# ---------------------------------------------------------------------------------------------


def test_dmd_recovers_real_and_complex_eigenvalues(linear_system):
    _, trajectories = linear_system
    result = dmd(trajectories)
    assert result.rank == 7
    np.testing.assert_allclose(sort_complex(result.eigenvalues), sort_complex(TRUE_EIGENVALUES), atol=1e-8)
    assert result.reconstruction_error < 1e-10


def test_dmd_eigenvalues_sorted_by_decreasing_modulus_and_readonly(linear_system):
    result = dmd(linear_system[1])
    moduli = np.abs(result.eigenvalues)
    assert np.all(np.diff(moduli) <= 1e-12)
    assert result.eigenvalues.dtype == np.complex128
    with pytest.raises(ValueError):
        result.eigenvalues[0] = 0.0  # results are read-only


def test_dmd_modes_are_eigenvectors_and_amplitudes_rebuild_the_start(linear_system):
    a, trajectories = linear_system
    result = dmd(trajectories)
    for value, mode in zip(result.eigenvalues, result.modes.T):
        np.testing.assert_allclose(a @ mode, value * mode, atol=1e-8)
        assert abs(np.linalg.norm(mode) - 1.0) < 1e-12
    np.testing.assert_allclose(result.modes @ result.amplitudes, trajectories[0][0], atol=1e-8)


# The documented order of every fit's eigenvalues (rgprune.rg.linalg.by_decreasing_modulus): decreasing |λ|, a
# conjugate pair adjacent with its positive imaginary part first. A system where that order differs from the
# order by real part, by increasing modulus and by imaginary part: |-0.95| > |0.3 ± 0.85j| = 0.901 > |0.6| >
# |0.5 ± 0.2j| = 0.539 > |0.1|.
ORDERED_EIGENVALUES = np.array([-0.95, 0.3 + 0.85j, 0.3 - 0.85j, 0.6, 0.5 + 0.2j, 0.5 - 0.2j, 0.1])


def assert_documented_order(eigenvalues, atol):
    """``eigenvalues`` equal ORDERED_EIGENVALUES position by position, each conjugate pair exactly conjugate."""
    np.testing.assert_allclose(eigenvalues, ORDERED_EIGENVALUES, atol=atol)
    for i in np.flatnonzero(ORDERED_EIGENVALUES.imag > 0):
        assert eigenvalues[i].imag > 0 and eigenvalues[i + 1] == np.conj(eigenvalues[i])


def test_every_fit_orders_eigenvalues_by_modulus_with_conjugate_pairs_positive_imaginary_first():
    """dmd, gram_dmd and affine_fixed_point list the eigenvalues in the documented order, and the modes and
    intervals of dmd follow it (mode i is the eigenvector of eigenvalue i, interval i brackets |λ_i|). Guards
    against a pair with its negative imaginary part first (the sign of the tie-break key), an order by real part or
    by increasing modulus, and eigenvectors left in LAPACK's order while the eigenvalues are sorted; the other tests
    compare sorted copies or moduli only, and pass the first two."""
    rng = np.random.default_rng(11)
    a = real_map_with_eigenvalues([-0.95, 0.6, 0.1], [0.3 + 0.85j, 0.5 + 0.2j], rng)
    trajectories = [iterate(lambda g: a @ g, start, 8) for start in rng.normal(size=(4, 7))]
    result = dmd(trajectories, rank=7)
    assert_documented_order(result.eigenvalues, atol=1e-8)
    for value, mode in zip(result.eigenvalues, result.modes.T):
        np.testing.assert_allclose(a @ mode, value * mode, atol=1e-8)
    np.testing.assert_allclose(
        result.eigenvalue_intervals, np.abs(ORDERED_EIGENVALUES)[:, None].repeat(2, 1), atol=1e-8
    )  # exact data: every replicate agrees
    assert_documented_order(affine_fixed_point(trajectories, rank=7).eigenvalues, atol=1e-8)
    snapshots = iterate(lambda g: a @ g, rng.normal(size=7), 12) @ rng.normal(size=(300, 7)).T  # one long flow
    assert_documented_order(gram_dmd(snapshots @ snapshots.T, rank=7).eigenvalues, atol=1e-6)


def test_by_decreasing_modulus_is_stable_and_puts_the_positive_imaginary_part_first():
    """The sort itself: pairs given negative part first come out positive part first; equal moduli that are not
    a pair keep their input order. Guards against the planted bugs above, and against ties broken by another key
    (e.g. by real part: 0.5 before -0.5 whatever their order), which breaks the documented stable order."""
    from rgprune.rg.linalg import by_decreasing_modulus

    values = np.array([0.2 - 0.1j, -0.9, 0.6 - 0.3j, 0.5, 0.6 + 0.3j, 0.2 + 0.1j])
    assert values[by_decreasing_modulus(values)].tolist() == [-0.9, 0.6 + 0.3j, 0.6 - 0.3j, 0.5, 0.2 + 0.1j, 0.2 - 0.1j]
    ties = np.array([0.5, -0.5, 0.25, -0.5, 0.5, -0.25])
    assert by_decreasing_modulus(ties).tolist() == [0, 1, 3, 4, 2, 5]


def test_dmd_accepts_a_3d_batch_like_a_list(linear_system):
    _, trajectories = linear_system
    from_list = dmd(trajectories).eigenvalues
    from_batch = dmd(np.stack(trajectories)).eigenvalues
    np.testing.assert_allclose(from_batch, from_list, atol=1e-12)


def test_default_rank_drops_duplicates_and_tiny_noise_but_keeps_real_eigenvalues():
    rng = np.random.default_rng(1)
    a = real_map_with_eigenvalues([1.1, 0.6], [0.7 + 0.4j], rng)
    starts = rng.normal(size=(3, 4))
    clean = [iterate(lambda g: a @ g, start, 5) for start in starts]
    # Observables: the 4 true ones, 3 duplicates, and 3 directions of noise ~1e-13 of the signal.
    noisy = [np.hstack([t, t[:, :3], 1e-13 * rng.normal(size=(t.shape[0], 3))]) for t in clean]
    result = dmd(noisy)
    assert result.rank == 4
    assert result.singular_values[4] < DEFAULT_TOL * result.singular_values[0]
    np.testing.assert_allclose(
        sort_complex(result.eigenvalues), sort_complex([1.1, 0.6, 0.7 + 0.4j, 0.7 - 0.4j]), atol=1e-8
    )
    # Keeping the noise directions (explicitly) would add eigenvalues the data does not support.
    assert dmd(noisy, rank=7).eigenvalues.size == 7


def test_explicit_rank_and_tol_truncate(linear_system):
    _, trajectories = linear_system
    assert dmd(trajectories, rank=3).rank == 3
    assert dmd(trajectories, tol=0.5).rank < 7


def test_rank_beyond_the_data_is_rejected():
    trajectory = np.outer(0.5 ** np.arange(6), [1.0, 2.0, 3.0])  # rank-1 data, 3 observables
    assert dmd(trajectory).rank == 1
    with pytest.raises(ValueError, match="numerical rank"):
        dmd(trajectory, rank=2)
    with pytest.raises(ValueError, match="between 1 and"):
        dmd(trajectory, rank=4)
    with pytest.raises(ValueError, match="not both"):
        dmd(trajectory, rank=1, tol=1e-3)


def test_reconstruction_error_detects_a_nonlinear_map():
    rng = np.random.default_rng(2)
    starts = rng.uniform(0.2, 0.9, size=(4, 2))
    logistic = [iterate(lambda g: 3.7 * g * (1 - g), start, 8) for start in starts]
    assert dmd(logistic).reconstruction_error > 1e-3


# ---------------------------------------------------------------------------------------------
# Affine DMD and fixed points
# ---------------------------------------------------------------------------------------------


def test_affine_fixed_point_of_a_linear_affine_map(linear_system):
    a, _ = linear_system
    rng = np.random.default_rng(3)
    c = rng.normal(size=a.shape[0])
    true_fixed_point = np.linalg.solve(np.eye(a.shape[0]) - a, c)
    starts = true_fixed_point + rng.normal(size=(4, a.shape[0]))
    trajectories = [iterate(lambda g: a @ g + c, start, 5) for start in starts]
    result = affine_fixed_point(trajectories)
    np.testing.assert_allclose(result.fixed_point, true_fixed_point, atol=1e-8)
    np.testing.assert_allclose(sort_complex(result.eigenvalues), sort_complex(TRUE_EIGENVALUES), atol=1e-8)
    np.testing.assert_allclose(result.A, a, atol=1e-8)
    np.testing.assert_allclose(result.c, c, atol=1e-8)
    assert result.residual < 1e-10


def test_affine_fixed_point_in_many_observables_uses_the_data_subspace():
    # A 2-D affine map seen through 50 observables (a fixed linear embedding).
    rng = np.random.default_rng(4)
    a = np.array([[0.6, 0.3], [-0.2, 0.5]])
    c = np.array([1.0, -2.0])
    embedding = rng.normal(size=(50, 2))
    starts = rng.normal(size=(3, 2))
    trajectories = [iterate(lambda g: a @ g + c, s, 4) @ embedding.T for s in starts]
    result = affine_fixed_point(trajectories)
    true_fixed_point = embedding @ np.linalg.solve(np.eye(2) - a, c)
    np.testing.assert_allclose(result.fixed_point, true_fixed_point, atol=1e-8)
    np.testing.assert_allclose(sort_complex(result.eigenvalues), sort_complex(np.linalg.eigvals(a)), atol=1e-8)
    assert result.basis.shape == (50, 2)  # the operator was never formed in 50 dimensions


def test_affine_fixed_point_of_normalized_observables_is_gauge_free():
    # A Markov chain on 4 states: every snapshot sums to 1, like a normalized histogram. The
    # constraint makes [A c] non-unique; the fixed point (stationary distribution) and the
    # eigenvalues of the deviations (the chain's eigenvalues other than 1) are still determined.
    rng = np.random.default_rng(9)
    chain = rng.random((4, 4))
    chain /= chain.sum(axis=0)
    values, vectors = np.linalg.eig(chain)
    stationary_index = np.argmin(np.abs(values - 1))
    stationary = np.real(vectors[:, stationary_index])
    stationary /= stationary.sum()
    deviation_eigenvalues = np.delete(values, stationary_index)

    starts = rng.dirichlet(np.ones(4), size=3)
    trajectories = [iterate(lambda g: chain @ g, start, 5) for start in starts]
    result = affine_fixed_point(trajectories)
    np.testing.assert_allclose(result.fixed_point, stationary, atol=1e-8)
    np.testing.assert_allclose(sort_complex(result.eigenvalues), sort_complex(deviation_eigenvalues), atol=1e-8)


def test_affine_fixed_point_rejects_a_flow_that_does_not_move():
    with pytest.raises(ValueError, match="does not move"):
        affine_fixed_point(np.ones((5, 3)))


def test_affine_fixed_point_doc_example_values():
    result = affine_fixed_point(np.array([[0.0], [1.0], [1.5], [1.75]]))
    assert result.fixed_point[0] == pytest.approx(2.0, abs=1e-12)
    assert result.eigenvalues.shape == (1,)  # no spurious eigenvalue from the constant term
    assert result.rank == 1 == dmd(np.array([[0.0], [1.0], [1.5], [1.75]])).rank  # k, as in dmd


# ---------------------------------------------------------------------------------------------
# Real-space RG: Migdal-Kadanoff for the 2D Ising model, decimation for 1D
# ---------------------------------------------------------------------------------------------


def migdal_kadanoff_2d(coupling):
    """b = 2 bond moving then decimation: tanh K' = tanh^2(2K)."""
    return np.arctanh(np.tanh(2 * coupling) ** 2)


def decimation_1d(coupling):
    """b = 2 decimation of the 1D chain: tanh K' = tanh^2 K."""
    return np.arctanh(np.tanh(coupling) ** 2)


def test_migdal_kadanoff_fixed_point_and_thermal_exponent():
    exact_fixed_point = brentq(lambda k: migdal_kadanoff_2d(k) - k, 0.1, 1.0)
    # Analytic derivative of K' = artanh(t^2), t = tanh 2K: dK'/dK = 4 t sech^2(2K) / (1 - t^4).
    t = math.tanh(2 * exact_fixed_point)
    exact_eigenvalue = 4 * t / math.cosh(2 * exact_fixed_point) ** 2 / (1 - t**4)
    assert exact_fixed_point == pytest.approx(0.3047, abs=1e-4)
    assert exact_eigenvalue == pytest.approx(1.68, abs=0.005)

    # Several short flows of the scalar coupling, started on a grid around (not at) K*.
    trajectories = [iterate(migdal_kadanoff_2d, [k0], 3) for k0 in np.linspace(0.300, 0.310, 6)]
    fit = affine_fixed_point(trajectories)
    assert fit.fixed_point[0] == pytest.approx(exact_fixed_point, rel=0.01)
    assert fit.eigenvalues.size == 1
    assert fit.eigenvalues[0].real == pytest.approx(exact_eigenvalue, rel=0.01)

    # Linear DMD of the deviations from the estimated fixed point sees the same eigenvalue.
    deviations = [t - fit.fixed_point for t in trajectories]
    eigenvalue = dmd(deviations).eigenvalues
    assert eigenvalue.size == 1
    assert abs(eigenvalue[0].imag) < 1e-12
    assert eigenvalue[0].real == pytest.approx(exact_eigenvalue, rel=0.01)

    y = scaling_exponents(eigenvalue, b=2.0)[0]
    exact_y = math.log(exact_eigenvalue) / math.log(2)
    assert y == pytest.approx(exact_y, rel=0.01)
    assert y == pytest.approx(0.75, abs=0.01)
    assert 1 / y == pytest.approx(1 / exact_y, rel=0.01)  # nu ~ 1.34
    with pytest.warns(RuntimeWarning, match="without intervals"):  # deterministic data: knowingly
        assert classify_directions(eigenvalue).tolist() == ["relevant"]


def test_1d_ising_decimation_flows_to_an_irrelevant_fixed_point_at_zero():
    trajectories = [iterate(decimation_1d, [k0], 4) for k0 in np.linspace(0.05, 0.3, 6)]
    fit = affine_fixed_point(trajectories)
    assert abs(fit.fixed_point[0]) < 0.01
    with pytest.warns(RuntimeWarning, match="without intervals"):  # deterministic data: knowingly
        assert classify_directions(fit.eigenvalues).tolist() == ["irrelevant"]
    assert scaling_exponents(fit.eigenvalues, 2.0)[0] < -1
    # K' ~ K^2 near 0: the linearized eigenvalue is 0, so data closer to 0 gives a smaller estimate (at the
    # fitted rank: so close to 0 the held-out rule may find the slope indistinguishable from none).
    closer = [iterate(decimation_1d, [k0], 4) for k0 in np.linspace(0.005, 0.03, 6)]
    assert abs(affine_fixed_point(closer, rank=fit.rank).eigenvalues[0]) < abs(fit.eigenvalues[0]) / 5


# ---------------------------------------------------------------------------------------------
# Parameter-space DMD from the Gram matrix
# ---------------------------------------------------------------------------------------------


def test_gram_dmd_matches_dmd_on_tall_random_data():
    rng = np.random.default_rng(5)
    snapshots = rng.normal(size=(9, 400))  # 9 rounds of a 400-parameter "model"
    gram = snapshots @ snapshots.T
    # Independent random snapshots: no rank predicts a held-out round better than the mean.
    assert gram_dmd(gram).rank == dmd(snapshots).rank == 0
    assert gram_dmd(gram).status == dmd(snapshots).status == "nothing resolved"
    from_gram = gram_dmd(gram, rank=6)
    direct = dmd(snapshots, rank=6)
    assert from_gram.rank == direct.rank == 6
    np.testing.assert_allclose(from_gram.eigenvalues, direct.eigenvalues, atol=1e-8)
    # 8 centred pairs span 7 directions; the Gram coordinates drop the rounding-level 8th.
    np.testing.assert_allclose(from_gram.singular_values[:7], direct.singular_values[:7], rtol=1e-8)
    assert direct.singular_values[7:].max() < 1e-12 * direct.singular_values[0]
    # The modes rebuilt from the coefficients are dmd's modes up to a phase.
    modes = snapshots.T @ from_gram.mode_coefficients
    overlaps = np.abs(np.sum(modes.conj() * direct.modes, axis=0))
    np.testing.assert_allclose(overlaps, 1.0, atol=1e-8)


def test_gram_dmd_matches_dmd_on_a_low_rank_flow(linear_system):
    a, _ = linear_system
    rng = np.random.default_rng(6)
    embedding = rng.normal(size=(300, a.shape[0]))
    snapshots = iterate(lambda g: a @ g, rng.normal(size=a.shape[0]), 12) @ embedding.T
    from_gram = gram_dmd(snapshots @ snapshots.T)
    assert from_gram.rank == 7
    np.testing.assert_allclose(sort_complex(from_gram.eigenvalues), sort_complex(TRUE_EIGENVALUES), atol=1e-6)


def test_gram_dmd_rank_rule_drops_noise_and_refuses_noise_ranks():
    rng = np.random.default_rng(7)
    a = np.diag([0.9, 0.6, 0.3])
    states = iterate(lambda g: a @ g, rng.normal(size=3), 9)  # rank-3 flow, 9 snapshots
    snapshots = states @ rng.normal(size=(3, 200))
    gram = snapshots @ snapshots.T
    result = gram_dmd(gram)
    assert result.rank == 3
    np.testing.assert_allclose(np.sort(result.eigenvalues.real), [0.3, 0.6, 0.9], atol=1e-6)
    with pytest.raises(ValueError, match="numerical rank"):
        gram_dmd(gram, rank=5)


def test_gram_dmd_reconstruction_error_matches_dmd_on_a_nonlinear_flow():
    rng = np.random.default_rng(8)
    states = iterate(lambda g: 3.7 * g * (1 - g), [0.3, 0.6], 10)  # logistic map: not linear
    snapshots = states @ rng.normal(size=(2, 100))
    direct, from_gram = dmd(snapshots), gram_dmd(snapshots @ snapshots.T)
    assert direct.reconstruction_error > 1e-3
    assert from_gram.reconstruction_error == pytest.approx(direct.reconstruction_error, rel=1e-6)


@pytest.mark.parametrize(
    "gram, message",
    [
        (np.eye(2), "at least 3"),
        (np.ones((3, 4)), "square"),
        (np.array([[1.0, 2.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]), "symmetric"),
        (np.diag([1.0, -1.0, 1.0]), "positive semidefinite"),
        (np.diag([1.0, np.nan, 1.0]), "non-finite"),
    ],
)
def test_gram_dmd_rejects_bad_gram_matrices(gram, message):
    with pytest.raises(ValueError, match=message):
        gram_dmd(gram)


# ---------------------------------------------------------------------------------------------
# Step sizes, exponents, classification
# ---------------------------------------------------------------------------------------------


def test_step_sizes_values_single_and_list():
    trajectory = np.array([[3.0, 4.0], [3.0, 0.0], [0.0, 0.0]])
    np.testing.assert_allclose(step_sizes(trajectory), [4.0 / 5.0, 3.0 / 3.0])
    both = step_sizes([trajectory, 2 * trajectory[:2]])
    assert isinstance(both, list) and len(both) == 2
    np.testing.assert_allclose(both[1], [0.8])


def test_step_sizes_shrink_geometrically_near_a_fixed_point():
    n = np.arange(7)
    trajectory = 1.0 + 0.5 ** np.arange(8)[:, None]  # g_n = 1 + 2^-n approaches g* = 1
    steps = step_sizes(trajectory)
    np.testing.assert_allclose(steps, 0.5 ** (n + 1) / (1 + 0.5**n), rtol=1e-12)
    assert np.all(np.diff(steps) < 0)


def test_step_sizes_errors():
    with pytest.raises(ValueError, match="= 0 at round 1"):
        step_sizes(np.array([[1.0], [0.0], [1.0]]))
    with pytest.raises(ValueError, match="at least 2"):
        step_sizes(np.array([[1.0, 2.0]]))


def test_rescaling_factor_and_exponents():
    assert rescaling_factor(0.2) == pytest.approx(1.25)
    assert rescaling_factor(0.5) == pytest.approx(2.0)
    for bad in (0.0, 1.0, -0.1, 1.5, float("nan")):
        with pytest.raises(ValueError, match="0 < p < 1"):
            rescaling_factor(bad)
    b = rescaling_factor(0.2)
    np.testing.assert_allclose(scaling_exponents([b**2, 1.0, 1j / b], b), [2.0, 0.0, -1.0])
    assert scaling_exponents([0.0], 2.0)[0] == -np.inf
    for bad_b in (1.0, 0.0, -2.0, np.inf):
        with pytest.raises(ValueError, match="rescaling factor b"):
            scaling_exponents([2.0], bad_b)


@pytest.mark.filterwarnings("ignore:classify_directions without intervals:RuntimeWarning")
def test_classify_directions_bands():
    values = [1.2, 1.04, 1.0, 0.96, 0.94, 0.5j, -1.3]
    assert classify_directions(values).tolist() == [
        "relevant",
        "marginal",
        "marginal",
        "marginal",
        "irrelevant",
        "irrelevant",
        "relevant",
    ]
    assert classify_directions([1.04], tol=0.01).tolist() == ["relevant"]
    with pytest.raises(ValueError, match="tol"):
        classify_directions([1.0], tol=1.5)
    with pytest.raises(ValueError, match="non-finite"):
        classify_directions([np.nan])


# ---------------------------------------------------------------------------------------------
# Distances
# ---------------------------------------------------------------------------------------------


def test_eigenvalue_wasserstein_known_values():
    assert eigenvalue_wasserstein([0.5, 0.2j], [0.2j, 0.5]) == pytest.approx(0.0, abs=1e-12)
    assert eigenvalue_wasserstein([0.0], [3 + 4j]) == pytest.approx(5.0)
    assert eigenvalue_wasserstein([0.0], [1.0, -1.0]) == pytest.approx(1.0)
    assert eigenvalue_wasserstein([0.0], [0.0, 0.0, 3.0]) == pytest.approx(1.0)
    # Uniform {0, 1} vs {0, 1, 2} on a line: W1 = integral of |F_a - F_b| = 1/6 + 1/3.
    assert eigenvalue_wasserstein([0.0, 1.0], [0.0, 1.0, 2.0]) == pytest.approx(0.5)


def _wasserstein_by_repetition(a, b):
    """Independent check: repeat both sets to a common size and solve an assignment."""
    from scipy.optimize import linear_sum_assignment

    size = math.lcm(len(a), len(b))
    big_a = np.repeat(np.asarray(a), size // len(a))
    big_b = np.repeat(np.asarray(b), size // len(b))
    cost = np.abs(big_a[:, None] - big_b[None, :])
    rows, cols = linear_sum_assignment(cost)
    return cost[rows, cols].mean()


complex_points = st.lists(
    st.complex_numbers(max_magnitude=3, allow_nan=False, allow_infinity=False),
    min_size=1,
    max_size=5,
)


def _transport_tolerance(*point_sets) -> float:
    """How far two exact solutions of the same transport problem may differ: sets of unequal size go through
    HiGHS' linear program, solved to its feasibility tolerance (1e-7 on the plan's masses), so its cost is
    exact only to about 1e-7 times the costs' magnitude, 1 + the largest |z| (measured: up to 8e-9 times it)."""
    return 1e-7 * (1.0 + max(float(np.abs(np.asarray(s)).max()) for s in point_sets))


@settings(max_examples=40, deadline=None)
@given(complex_points, complex_points, st.complex_numbers(max_magnitude=2, allow_nan=False, allow_infinity=False))
@example(a=[0j, 1 + 0j], b=[0j, 2.2e-8 + 0j, 0j], shift=0j)  # HiGHS: 0.5, exactly 0.5 - 2.2e-8 / 3
def test_eigenvalue_wasserstein_properties(a, b, shift):
    distance, tolerance = eigenvalue_wasserstein(a, b), _transport_tolerance(a, b)
    assert distance == pytest.approx(_wasserstein_by_repetition(a, b), abs=tolerance)
    assert distance == pytest.approx(eigenvalue_wasserstein(b, a), abs=tolerance)
    # Translating one set by t moves every unit of mass by exactly |t| when the sets coincide (equal sizes: an
    # assignment, exact to the rounding of a + t).
    translated = np.asarray(a) + shift
    assert eigenvalue_wasserstein(a, translated) == pytest.approx(
        abs(shift), abs=1e-12 * (1.0 + abs(shift) + max(map(abs, a)))
    )


def test_eigenvalue_wasserstein_rejects_bad_input():
    with pytest.raises(ValueError, match="empty"):
        eigenvalue_wasserstein([], [1.0])
    with pytest.raises(ValueError, match="non-finite"):
        eigenvalue_wasserstein([np.inf], [1.0])
    with pytest.raises(ValueError, match="1-D"):
        eigenvalue_wasserstein(np.ones((2, 2)), [1.0])


def test_trajectory_distance_values_and_errors():
    a = np.zeros((4, 2))
    b = np.array([[3.0, 4.0], [0.0, 1.0], [0.0, 0.0]])
    assert trajectory_distance(a, b) == pytest.approx((5.0 + 1.0 + 0.0) / 3)  # common length 3
    assert trajectory_distance([a, a], [b, a]) == pytest.approx(6.0 / 7)
    with pytest.raises(ValueError, match="same observables"):
        trajectory_distance(a, np.zeros((4, 3)))
    with pytest.raises(ValueError, match="same number"):
        trajectory_distance([a, a], [a])
    with pytest.raises(ValueError, match="empty"):
        trajectory_distance(np.zeros((0, 2)), a)


def test_flow_distance_separates_different_dynamics():
    rounds = np.arange(6)[:, None]
    slow = np.hstack([0.9**rounds, 0.5**rounds])
    same = flow_distance(slow, slow.copy())
    assert same.eigenvalue_distance == pytest.approx(0.0, abs=1e-10)
    assert same.total is None  # no weight given: a dimensionless and an observable-unit distance are not added
    fast = np.hstack([0.6**rounds, 0.5**rounds])
    different = flow_distance(slow, fast)
    assert different.eigenvalue_distance == pytest.approx(0.15, abs=1e-8)  # (|0.9-0.6| + 0) / 2
    assert different.trajectory_distance == pytest.approx(trajectory_distance(slow, fast))
    weighted = flow_distance(slow, fast, trajectory_weight=1.0)
    assert weighted.total == pytest.approx(different.eigenvalue_distance + different.trajectory_distance)
    only_dynamics = flow_distance(slow, fast, trajectory_weight=0.0)
    assert only_dynamics.total == pytest.approx(different.eigenvalue_distance)


# ---------------------------------------------------------------------------------------------
# Density profiles
# ---------------------------------------------------------------------------------------------


def test_density_profiles_values():
    counts = [[100, 10], [80, 8], [64, 6]]
    densities = density_profiles(counts, [100, 10])
    np.testing.assert_allclose(densities, [[1.0, 1.0], [0.8, 0.8], [0.64, 0.6]])
    assert densities.dtype == np.float64


@pytest.mark.parametrize(
    "counts, sizes, message",
    [
        ([1, 2], [2, 2], "2-D"),
        ([[1, 2]], [2], "one entry per layer"),
        ([[1, 3]], [2, 2], "outside"),
        ([[1, -1]], [2, 2], "outside"),
        ([[1.5, 1]], [2, 2], "whole numbers"),
        ([[1, np.nan]], [2, 2], "whole numbers"),
        ([[0, 0]], [2, 0], "positive"),
    ],
)
def test_density_profiles_validation(counts, sizes, message):
    with pytest.raises(ValueError, match=message):
        density_profiles(counts, sizes)


# ---------------------------------------------------------------------------------------------
# Input validation shared by the flow analyses
# ---------------------------------------------------------------------------------------------

ANALYSES = [dmd, affine_fixed_point, lambda t: flow_distance(t, t)]


@pytest.mark.parametrize("analyse", ANALYSES)
def test_flows_shorter_than_three_rounds_are_rejected(analyse):
    with pytest.raises(ValueError, match="too short.*at least 2 pairs"):
        analyse(np.array([[1.0, 2.0], [0.5, 1.0]]))


def test_a_nested_list_is_one_trajectory():
    nested = [[1.0, 0.0], [0.5, 0.0], [0.25, 0.0], [0.125, 0.0]]
    assert dmd(nested).eigenvalues[0] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="too short"):
        dmd([[1.0]])


def test_several_two_round_trajectories_are_enough():
    result = dmd([np.array([[1.0], [0.5]]), np.array([[2.0], [1.0]]), np.array([[4.0], [2.0]])])
    assert result.eigenvalues[0] == pytest.approx(0.5)
    # Two pairs with an intercept are fitted exactly by any slope: too short to resolve anything.
    two = dmd([np.array([[1.0], [0.5]]), np.array([[2.0], [1.0]])])
    assert two.rank == 0 and two.status == "too short"


def test_one_round_trajectory_in_a_list_is_rejected():
    with pytest.raises(ValueError, match="trajectory #1 has only 1 round"):
        dmd([np.ones((4, 2)), np.ones((1, 2))])


@pytest.mark.parametrize("analyse", ANALYSES + [step_sizes])
def test_non_finite_values_are_rejected(analyse):
    trajectory = np.ones((5, 2))
    trajectory[3, 1] = np.nan
    with pytest.raises(ValueError, match="non-finite.*round 3, observable 1"):
        analyse(trajectory)


@pytest.mark.parametrize(
    "bad, message",
    [
        (np.ones(5), "reshape\\(-1, 1\\)"),
        (np.ones((2, 3, 4, 5)), "ndim=4"),
        ([np.ones((4, 2)), np.ones((4, 3))], "mismatched observable counts"),
        ([np.ones((4, 2)), np.ones(3)], "trajectory #1 must be a 2-D array"),
        ([], "empty list"),
        (np.ones((4, 2)) + 1j, "real-valued"),
        (np.ones((5, 0)), "empty"),
    ],
)
def test_wrong_shapes_are_rejected_with_a_hint(bad, message):
    with pytest.raises(ValueError, match=message):
        dmd(bad)


def test_all_zero_flow_is_rejected():
    with pytest.raises(ValueError, match="all snapshots are zero"):
        dmd(np.zeros((4, 2)))
