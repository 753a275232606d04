"""rgprune.rg.stats.permdisp: distances to each group's own centroid, then an ANOVA F with a permutation p-value.

Known answers: for Euclidean points the distances are those to the group means and F is scipy's one-way ANOVA
F of them; under a null where the groups sit apart but are equally spread the test keeps its level (a version
measuring distances to the overall centroid does not: ``test_distances_to_the_overall_centroid_fail``); it
detects a group that is more spread out.
"""

import numpy as np
import pytest
from scipy import stats as scipy_stats
from scipy.spatial.distance import cdist

from rgprune.rg import stats as rg_stats
from rgprune.rg.stats import centroid_distances, permdisp

NULLS, BOUND = 400, 0.085  # 5% nominal; SE of the rate over 400 nulls 1.1%, bound 5% + 3 SE


def _points(rng, groups=3, per_group=8, dims=4, scales=None, shift=3.0):
    """Groups of Gaussian points, far apart (group g centred at g * shift on every axis), with ``scales``."""
    scales = scales or [1.0] * groups
    x = np.concatenate([g * shift + scales[g] * rng.standard_normal((per_group, dims)) for g in range(groups)])
    return x, np.repeat(np.arange(groups), per_group)


def _rejection_rate(test, rng, nulls=NULLS, level=0.05, **kwargs) -> float:
    rejected = 0
    for _ in range(nulls):
        x, labels = _points(rng, **kwargs)
        rejected += test(cdist(x, x), labels, permutations=199, seed=int(rng.integers(1 << 31))).p_value <= level
    return rejected / nulls


def test_centroid_distances_of_euclidean_points_are_distances_to_the_group_means():
    rng = np.random.default_rng(0)
    x, labels = _points(rng, groups=3, per_group=5, dims=3, scales=[1.0, 2.0, 0.5])
    expected = np.concatenate([np.linalg.norm(x[labels == g] - x[labels == g].mean(0), axis=1) for g in range(3)])
    np.testing.assert_allclose(centroid_distances(cdist(x, x), labels), expected, rtol=1e-8, atol=1e-10)


def test_f_is_the_anova_f_of_the_centroid_distances():
    rng = np.random.default_rng(1)
    x, labels = _points(rng, groups=3, per_group=6, scales=[1.0, 1.5, 3.0])
    result = permdisp(cdist(x, x), labels, permutations=999)
    z = np.concatenate([np.linalg.norm(x[labels == g] - x[labels == g].mean(0), axis=1) for g in range(3)])
    assert result.statistic == pytest.approx(scipy_stats.f_oneway(*(z[labels == g] for g in range(3))).statistic)
    assert result.dispersions == pytest.approx([z[labels == g].mean() for g in range(3)])
    assert not result.exact and result.permutations == 999 and result.smallest_p == pytest.approx(1 / 1000)


def test_exact_enumeration_for_small_designs():
    rng = np.random.default_rng(2)
    x, labels = _points(rng, groups=2, per_group=4, scales=[1.0, 4.0])
    result = permdisp(cdist(x, x), labels)
    assert result.exact and result.permutations == 70  # 8! / (4! 4!)
    z = centroid_distances(cdist(x, x), labels)
    f = [
        scipy_stats.f_oneway(z[list(c)], z[[i for i in range(8) if i not in c]]).statistic
        for c in __import__("itertools").combinations(range(8), 4)
    ]
    assert result.p_value == pytest.approx(np.mean(np.array(f) >= result.statistic - 1e-9))


def test_keeps_its_level_when_groups_sit_apart_with_equal_spread():
    rate = _rejection_rate(permdisp, np.random.default_rng(3))
    assert rate <= BOUND, rate


def test_detects_a_group_that_is_more_spread_out():
    rng = np.random.default_rng(4)
    x, labels = _points(rng, groups=3, per_group=8, scales=[1.0, 1.0, 3.0])
    assert permdisp(cdist(x, x), labels, permutations=999).p_value < 0.01
    rate = _rejection_rate(permdisp, rng, nulls=100, scales=[1.0, 1.0, 2.5])
    assert rate > 0.8, rate


def _overall_centroid_distances(distance, groups):
    """The planted bug: every item's distance to the centroid of all items, not to its group's."""
    return centroid_distances(distance, np.zeros(len(groups), dtype=int))


def test_distances_to_the_overall_centroid_fail(monkeypatch):
    """The level test above catches the bug: groups that sit apart are then 'more spread' by their location."""
    monkeypatch.setattr(rg_stats, "centroid_distances", _overall_centroid_distances)
    rate = _rejection_rate(rg_stats.permdisp, np.random.default_rng(3), nulls=100, groups=3, shift=3.0)
    assert rate > BOUND, rate


def test_permutes_only_within_strata():
    rng = np.random.default_rng(5)
    x, labels = _points(rng, groups=2, per_group=6, scales=[1.0, 3.0])
    strata = np.tile(np.arange(6), 2)  # one item of each group per stratum: 2**6 relabellings
    result = permdisp(cdist(x, x), labels, strata=strata)
    assert result.exact and result.permutations == 64


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"distance": [[0, 1], [1, 0]], "groups": [0, 1]}, "at least 2 items each"),
        ({"distance": [[0, 1, 1], [1, 0, 1], [1, 1, 0]], "groups": [0, 0, 1]}, "at least 2 items each"),
        ({"distance": np.ones((4, 3)), "groups": [0, 0, 1, 1]}, "square"),
        ({"distance": [[0, 1, 2, 3], [1, 0, 1, 1], [2, 1, 0, 1], [3, 1, 1, 0.0]], "groups": [0, 0, 1]}, "one label"),
        ({"distance": -np.ones((4, 4)), "groups": [0, 0, 1, 1]}, "non-negative"),
        ({"distance": np.full((4, 4), np.nan), "groups": [0, 0, 1, 1]}, "NaN"),
        ({"distance": np.ones((4, 4)) - np.eye(4), "groups": [0, 0, 1, 1], "permutations": 0}, "positive int"),
        ({"distance": np.ones((4, 4)) - np.eye(4), "groups": [0, 0, 1, 1], "strata": [0, 0, 1, 1]}, "stratum"),
    ],
)
def test_rejects_bad_input(kwargs, message):
    with pytest.raises(ValueError, match=message):
        permdisp(**kwargs)
