"""rgprune.rg.dmd (DMD of trajectories and of a Gram matrix): the tests that kill the mutants `make mutation
AREA=rg_dmd` found alive (docs/mutation.md)."""

import numpy as np
import pytest

from rgprune.rg import dmd, gram_dmd


def test_the_amplitudes_rebuild_the_first_snapshot_from_the_modes():
    rounds = np.arange(6)[:, None]
    trajectory = np.hstack([2.0 * 0.9**rounds, -3.0 * 0.5**rounds])  # the first snapshot lies in the modes' span
    result = dmd(trajectory, n_boot=0)
    np.testing.assert_allclose(result.modes @ result.amplitudes, trajectory[0], atol=1e-12)


def test_a_flow_at_its_fixed_point_after_one_step_leaves_nothing_to_reconstruct():
    """Every image is the fixed point: the centred images are 0, and the share of them the fit misses is 0."""
    trajectory = np.vstack([[1.0, 3.0], np.tile([2.0, 2.0], (9, 1))])
    assert dmd(trajectory, n_boot=0).reconstruction_error == 0.0


def gram_of(states):
    embed = np.random.default_rng(0).normal(size=(states.shape[1], 50))
    thetas = states @ embed
    return thetas @ thetas.T


@pytest.mark.parametrize(
    "gram, match",
    [
        (np.eye(4)[0], r"gram must be a square \(N\+1\) x \(N\+1\) matrix; got shape \(4,\)"),
        (np.ones((2, 3, 3)), r"got shape \(2, 3, 3\)"),
        (np.ones((3, 4)), r"got shape \(3, 4\)"),
        (np.ones((4, 3)), r"got shape \(4, 3\)"),
        (np.eye(2), r"gram is 2x2: DMD needs at least 3 snapshots \(2 pairs\)"),
    ],
)
def test_a_gram_matrix_of_the_wrong_shape_is_refused(gram, match):
    with pytest.raises(ValueError, match=match):
        gram_dmd(gram, n_boot=0)


def test_three_snapshots_are_enough_for_a_gram_matrix():
    states = np.array([[0.9**n, 0.5**n] for n in range(3)])
    assert gram_dmd(gram_of(states), n_boot=0).status == "too short"


def test_a_slightly_asymmetric_or_indefinite_gram_matrix_is_refused():
    states = np.array([[0.9**n, 0.5**n] for n in range(7)])
    gram = gram_of(states)
    scale = np.abs(gram).max()
    asymmetric = gram.copy()
    asymmetric[0, 1] += 1e-6 * scale
    with pytest.raises(ValueError, match="gram is not symmetric"):
        gram_dmd(asymmetric, n_boot=0)
    null = np.linalg.eigh(gram)[1][:, 0]  # a direction of its null space (the Gram matrix has rank 2)
    indefinite = gram - 1e-6 * scale * np.outer(null, null)  # exactly one eigenvalue below 0
    with pytest.raises(ValueError, match="gram is not positive semidefinite"):
        gram_dmd(indefinite, n_boot=0)
    np.testing.assert_allclose(gram_dmd(gram, n_boot=0).eigenvalues.real, [0.9, 0.5], rtol=1e-6)


def test_rounding_level_asymmetry_and_negative_eigenvalues_of_a_large_gram_are_accepted():
    """Inner products accumulated in another order differ in the last bits, relative to the matrix's scale:
    at a scale of ~1e6 such a Gram matrix is accepted, with the same flow."""
    states = np.array([[0.9**n, 0.5**n] for n in range(7)]) * 100.0
    gram = gram_of(states)
    scale = np.abs(gram).max()
    assert scale > 1e5
    rounded = gram.copy()
    rounded[0, 1] += 1e-13 * scale
    rounded -= 1e-12 * scale * np.eye(7)  # the zero eigenvalues just below 0
    np.testing.assert_allclose(gram_dmd(rounded, n_boot=0).eigenvalues.real, [0.9, 0.5], rtol=1e-6)


def test_the_gram_route_gives_the_singular_values_of_the_vectors():
    states = np.array([[0.9**n, 0.5**n] for n in range(7)])
    thetas = states @ np.random.default_rng(0).normal(size=(2, 50))
    from_gram, from_vectors = gram_dmd(thetas @ thetas.T, n_boot=0), dmd(thetas, n_boot=0)
    np.testing.assert_allclose(from_gram.singular_values, from_vectors.singular_values[:2], rtol=1e-9)


def test_gram_dmd_takes_its_options_by_keyword():
    states = np.array([[0.9**n, 0.5**n] for n in range(7)])
    with pytest.raises(TypeError):
        gram_dmd(gram_of(states), None, None, 0.9)


def test_results_are_read_only_and_compare_by_identity_without_comparing_their_arrays():
    import dataclasses

    rounds = np.arange(6)[:, None]
    trajectory = np.hstack([0.9**rounds, 0.5**rounds])
    thetas = trajectory @ np.random.default_rng(0).normal(size=(2, 50))
    for run in (lambda: dmd(trajectory, n_boot=0), lambda: gram_dmd(thetas @ thetas.T, n_boot=0)):
        first, second = run(), run()
        assert first == first and first != second
        with pytest.raises(dataclasses.FrozenInstanceError):
            first.rank = 0


@pytest.mark.parametrize("depth, refused", [(0.7e-8, False), (1.3e-8, True)])
def test_the_definiteness_tolerance_is_1e_8_of_the_scale(depth, refused):
    """One eigenvalue moved to -depth * scale: accepted just inside the tolerance, refused just outside it."""
    states = np.array([[0.9**n, 0.5**n] for n in range(7)])
    gram = gram_of(states)
    null = np.linalg.eigh(gram)[1][:, 0]
    shifted = gram - depth * np.abs(gram).max() * np.outer(null, null)
    if refused:
        with pytest.raises(ValueError, match="gram is not positive semidefinite"):
            gram_dmd(shifted, n_boot=0)
    else:
        gram_dmd(shifted, n_boot=0)


def test_noisy_data_leave_a_share_of_the_change_unreconstructed():
    rng = np.random.default_rng(2)
    rounds = np.arange(10)[:, None]
    trajectory = np.hstack([0.9**rounds, 0.5**rounds]) + 0.01 * rng.normal(size=(10, 2))
    assert 0.0 < dmd(trajectory, n_boot=0).reconstruction_error < 1.0


def test_gram_dmd_seeds_its_bootstrap_with_0_by_default():
    rng = np.random.default_rng(3)
    states = np.array([[0.9**n, 0.5**n] for n in range(9)]) + 0.01 * rng.normal(size=(9, 2))
    gram = gram_of(states)
    default = gram_dmd(gram, n_boot=50).eigenvalue_intervals
    np.testing.assert_array_equal(default, gram_dmd(gram, n_boot=50, seed=0).eigenvalue_intervals)
    assert not np.array_equal(default, gram_dmd(gram, n_boot=50, seed=1).eigenvalue_intervals)
