"""rgprune.rg.intervals (the bootstrap intervals of the flow's eigenvalues and the checks before a fit): the tests
that kill the mutants `make mutation AREA=rg_intervals` found alive (docs/mutation.md)."""

import numpy as np
import pytest

from rgprune.rg import dmd, intervals
from rgprune.rg.intervals import check_interval_options


@pytest.mark.parametrize("n_boot", [0, 20, 21, np.int64(20)])
def test_zero_or_at_least_20_replicates_are_accepted(n_boot):
    check_interval_options(0.9, n_boot, 0)


@pytest.mark.parametrize("n_boot", [-1, 1, 19])
def test_fewer_than_20_replicates_are_refused(n_boot):
    with pytest.raises(ValueError, match=rf"n_boot must be an int >= 20 .*got {n_boot}\."):
        check_interval_options(0.9, n_boot, 0)


def test_a_low_level_band_may_shrink_to_the_median():
    """The trim runs up to the middle: at level 0.01 the 21 replicates' band is their median, the one replicate
    of depth 10 being 1/21 > 1 % of them."""
    replicates = np.arange(21.0)[::-1, None] ** 2
    low, high = intervals._band(replicates, 0.01)
    assert low[0] == high[0] == 100.0
    low, high = intervals._band(replicates, 0.9)  # trim 1: 19 of 21 inside, 90.5 % >= 90 %
    assert (low[0], high[0]) == (1.0, 361.0)


def test_the_lower_bound_stays_at_zero_however_far_the_tls_shift_moves_it(monkeypatch):
    """The errors-in-variables shift (|λ_TLS| - |λ|) can pull the band below 0; a modulus cannot be negative."""
    from test_rg_estimators_rules import one_direction_pairs

    from rgprune.rg.linear_fit import fit_centred

    pairs = one_direction_pairs(np.random.default_rng(11))
    point = fit_centred(pairs.x, pairs.y, 1).eigenvalues
    monkeypatch.setattr(intervals, "tls_eigenvalues", lambda x, y, rank: np.zeros(rank))  # shift = -|λ|
    lower, upper = intervals.eigenvalue_intervals(pairs, point, 1e-9, 0.9, 50, 3)[0]
    assert lower == 0.0 and upper >= abs(point[0])


def test_equal_snapshots_of_unequal_observables_are_refused():
    trajectory = np.tile([1.0, 2.0, 3.0], (6, 1))  # 6 rounds of 3 observables, every round the same
    with pytest.raises(ValueError, match="all input snapshots are equal"):
        dmd(trajectory, n_boot=0)


def test_snapshots_equal_up_to_rounding_at_a_large_scale_are_refused():
    trajectory = 1e6 * np.tile([1.0, 2.0, 3.0], (6, 1))
    trajectory[3, 1] += 1e-9  # a few units in the last place of 2e6
    with pytest.raises(ValueError, match="all input snapshots are equal"):
        dmd(trajectory, n_boot=0)


def test_the_intervals_take_200_replicates_and_level_0_9_by_default():
    """docs/DESIGN.md: 200 replicates (n_boot) and coverage 0.9 unless asked otherwise. The data's seed (27) was
    searched for: on most data, 199, 200 and 201 replicates give the same order statistics, so the band could
    not tell the default from its neighbours."""
    rng = np.random.default_rng(27)
    decay = np.cumprod(np.full((8, 2), 0.8), axis=0)
    trajectories = [decay * rng.normal(size=2) + 0.01 * rng.normal(size=(8, 2)) for _ in range(6)]
    default = dmd(trajectories)
    assert default.interval_level == 0.9 and np.isfinite(default.eigenvalue_intervals).all()
    np.testing.assert_array_equal(default.eigenvalue_intervals, dmd(trajectories, n_boot=200).eigenvalue_intervals)
    for neighbour in (199, 201):
        assert not np.array_equal(
            default.eigenvalue_intervals, dmd(trajectories, n_boot=neighbour).eigenvalue_intervals
        )


def test_a_given_rank_is_bootstrapped_down_to_the_rounding_floor():
    """A caller's rank keeps a direction 1e-12 of the largest (checked against the rounding floor only); its
    replicates are held to the same floor, so that direction gets a finite interval (held to the default
    tolerance, 1e-10, every replicate would be refused and the interval would be [0, inf))."""
    rng = np.random.default_rng(0)
    rounds = np.arange(8)[:, None]

    def trajectory():
        clean = np.hstack([0.9**rounds * rng.normal(), 1e-12 * 0.5**rounds * rng.normal()])
        return clean + np.hstack([1e-3 * rng.normal(size=(8, 1)), 1e-14 * rng.normal(size=(8, 1))])

    trajectories = [trajectory() for _ in range(6)]
    assert dmd(trajectories, n_boot=50).rank == 1  # the held-out rule does not keep the weak direction
    given = dmd(trajectories, rank=2, n_boot=50)
    assert given.status == "rank given" and np.isfinite(given.eigenvalue_intervals).all()
    low, high = given.eigenvalue_intervals[1]
    assert low <= abs(given.eigenvalues[1]) <= high < 1


def test_all_zero_snapshots_are_refused_as_zero_and_a_unit_scale_is_fitted():
    with pytest.raises(ValueError, match="all snapshots are zero"):
        dmd(np.zeros((6, 3)), n_boot=0)
    rounds = np.arange(6)[:, None]
    result = dmd(np.hstack([0.9**rounds, 0.5**rounds]), n_boot=0)  # its largest value is exactly 1.0
    np.testing.assert_allclose(result.eigenvalues.real, [0.9, 0.5], rtol=1e-9)


def test_resamples_without_a_direction_are_skipped_not_the_end_of_the_bootstrap():
    """Only the first trajectory moves the second observable: a resample without it cannot fit rank 2 and is
    drawn again, and the other replicates still make a finite interval."""
    rng = np.random.default_rng(1)
    rounds = np.arange(8)[:, None]
    trajectories = []
    for i in range(6):
        second = 0.5**rounds * rng.normal() if i == 0 else np.zeros((8, 1))
        trajectories.append(np.hstack([0.9**rounds * rng.normal() + 1e-3 * rng.normal(size=(8, 1)), second]))
    result = dmd(trajectories, rank=2, n_boot=50)
    assert np.isfinite(result.eigenvalue_intervals).all()


@pytest.mark.parametrize("level", ["0.9", None, True, 0.0, 1.0])
def test_a_level_that_is_not_a_probability_strictly_inside_0_1_is_refused(level):
    with pytest.raises(ValueError, match=r"level must be a coverage probability strictly between 0 and 1"):
        check_interval_options(level, 200, 0)
