"""rgprune.rg.stats (the Mantel, PERMANOVA and PERMDISP tests): the tests that kill the mutants `make mutation
AREA=rg_stats` found alive (docs/mutation.md). That area's run has only begun."""

import numpy as np
import pytest
import scipy.stats

from rgprune.rg import stats


@pytest.mark.parametrize(
    "values",
    [[3.0, 1.0, 3.0, 2.0], [5.0, 5.0, 5.0], [0.5, -1.0, 2.0, -1.0, 0.5, 0.5, 7.0], [1.0]],
    ids=["one-tie", "all-tied", "two-tie-groups", "one-value"],
)
def test_spearman_ranks_are_scipys_average_ranks_from_zero(values):
    """Ties share their mean rank (Spearman's rule), counted from 0."""
    values = np.array(values)
    np.testing.assert_array_equal(stats._ranks(values), scipy.stats.rankdata(values, method="average") - 1)


def distances(points):
    return np.linalg.norm(points[:, None] - points[None], axis=-1)


def test_the_smallest_p_value_each_design_can_give():
    """Random relabellings: 1 / (1 + permutations). Every distinct relabelling (exact): 1 / their count for
    PERMDISP; for PERMANOVA the relabellings that only swap two equal-size groups' names give the observed
    partition again, so 2 / count for two groups of 3."""
    rng = np.random.default_rng(0)
    points = rng.normal(size=(12, 3))
    points[6:] *= 3.0  # the second group is more spread out
    groups = [0] * 6 + [1] * 6
    for test in (stats.permanova, stats.permdisp):
        random = test(distances(points), groups, permutations=199, max_exact=10)
        assert not random.exact and random.permutations == 199 and random.smallest_p == 1 / 200
    six = distances(points[[0, 1, 2, 6, 7, 8]])
    exact = stats.permdisp(six, [0, 0, 0, 1, 1, 1], max_exact=100)
    assert exact.exact and exact.permutations == 20 and exact.smallest_p == 1 / 20
    exact = stats.permanova(six, [0, 0, 0, 1, 1, 1], max_exact=100)
    assert exact.exact and exact.permutations == 20 and exact.smallest_p == 2 / 20


def test_the_smallest_p_value_of_a_mantel_test():
    """4 tasks: all 24 relabellings (exact), 1 / 24; 7 tasks with max_exact below 7! = 5040: 1 / (1 + 99)."""
    rng = np.random.default_rng(1)
    for tasks, kwargs, exact, smallest in (
        (4, {}, True, 1 / 24),
        (7, {"permutations": 99, "max_exact": 100}, False, 1 / 100),
    ):
        points = rng.normal(size=(tasks, 2))
        distance = distances(points)
        transfer = -distance + 0.1 * rng.normal(size=(tasks, tasks))
        result = stats.mantel_test(distance, transfer, **kwargs)
        assert result.exact is exact and result.smallest_p == smallest


@pytest.mark.parametrize("test", [stats.permanova, stats.permdisp])
def test_the_group_tests_take_their_options_by_keyword(test):
    dist = distances(np.random.default_rng(2).normal(size=(6, 2)))
    with pytest.raises(TypeError):
        test(dist, [0, 0, 0, 1, 1, 1], None, 99)


def test_a_negative_min_gap_is_refused():
    with pytest.raises(ValueError, match="min_gap must be >= 0, got -0.5"):
        stats.transfer_gain(0.8, 0.6, 0.7, min_gap=-0.5)


def test_a_distance_that_is_not_numbers_is_refused_as_not_numeric():
    with pytest.raises(ValueError, match="distance must be numeric"):
        stats.permdisp([[0, {}], [{}, 0]], [0, 1])


def test_a_distance_asymmetric_beyond_rounding_is_refused():
    dist = distances(np.random.default_rng(3).normal(size=(6, 2)))
    dist[0, 1] *= 1.01
    with pytest.raises(ValueError, match="distance must be symmetric and non-negative"):
        stats.permdisp(dist, [0, 0, 0, 1, 1, 1])


def test_a_single_random_relabelling_is_allowed():
    rng = np.random.default_rng(4)
    dist = distances(rng.normal(size=(7, 2)))
    result = stats.mantel_test(dist, -dist, permutations=1, max_exact=1)
    assert not result.exact and result.permutations == 1 and result.smallest_p == 0.5


def test_a_distance_asymmetric_at_rounding_level_is_accepted():
    dist = distances(np.random.default_rng(3).normal(size=(6, 2)))
    dist[0, 1] *= 1 + 1e-13  # distances computed in another order
    assert stats.permdisp(dist, [0, 0, 0, 1, 1, 1]).items == 6
