"""rgprune.rg.stats: normalized transfer gain, Mantel and partial Mantel tests over task labels, PERMANOVA.

The simulated nulls have task effects (a strong source ticket, a hard target task, a task whose flow is far
from every other) and no link between flow distance and transfer: the tests must keep their level there,
where a pair-level Spearman test does not.
"""

import itertools
import math

import numpy as np
import pytest
from scipy import stats as scipy_stats

from rgprune.rg.stats import mantel_test, permanova, transfer_gain, transfer_gain_matrix

# Level checks at nominal 5%. Fast: 1000 simulated nulls (standard error 0.7%), bound 6.5% = 5% + 2 SE, far
# below what an invalid test does here (the pooled pair test: 21%). Slow: 4000 nulls (SE 0.35%), bound 6%.
FAST_NULLS, FAST_BOUND = 1000, 0.065
LONG_NULLS, LONG_BOUND = 4000, 0.06


# --------------------------------------------------------------------------------------------
# Transfer gain
# --------------------------------------------------------------------------------------------


def test_transfer_gain_is_normalized_by_the_target_tasks_random_mask():
    assert transfer_gain(0.80, 0.60, 0.90) == pytest.approx(2 / 3)
    assert transfer_gain(0.90, 0.60, 0.90) == pytest.approx(1.0)  # as good as B's own ticket
    assert transfer_gain(0.60, 0.60, 0.90) == pytest.approx(0.0)  # no better than a random mask
    assert transfer_gain(0.50, 0.60, 0.90) == pytest.approx(-1 / 3)


def test_transfer_gain_is_none_without_a_ticket_effect_on_the_target():
    assert transfer_gain(0.8, 0.60, 0.605) is None  # gap 0.005 < min_gap 0.01
    assert transfer_gain(0.8, 0.60, 0.55) is None  # own ticket worse than a random mask
    assert transfer_gain(0.8, 0.60, 0.605, min_gap=0.001) == pytest.approx(40.0)


@pytest.mark.parametrize(
    "args, message",
    [
        ((float("nan"), 0.5, 0.9), "ticket_accuracy is nan"),
        ((0.7, None, 0.9), "random_mask_accuracy must be a number"),
        ((0.7, 0.5, True), "own_ticket_accuracy must be a number"),
    ],
)
def test_transfer_gain_rejects_bad_accuracies(args, message):
    with pytest.raises(ValueError, match=message):
        transfer_gain(*args)


def test_transfer_gain_matrix_uses_each_columns_own_ticket_and_random_mask():
    acc = np.array([[0.9, 0.7, 0.5], [0.8, 0.8, 0.6], [0.6, 0.6, 0.7]])
    random = np.array([0.5, 0.6, 0.4])
    gain = transfer_gain_matrix(acc, random)
    expected = [[transfer_gain(acc[a, b], random[b], acc[b, b]) for b in range(3)] for a in range(3)]
    np.testing.assert_allclose(gain, expected)
    np.testing.assert_allclose(np.diag(gain), 1.0)
    assert gain[0, 1] == pytest.approx((0.7 - 0.6) / (0.8 - 0.6))  # row effects do not leak into columns


def test_transfer_gain_matrix_names_the_tasks_without_a_ticket_effect():
    acc = np.array([[0.9, 0.7], [0.8, 0.605]])
    with pytest.raises(ValueError, match=r"target tasks \[1\]"):
        transfer_gain_matrix(acc, [0.5, 0.6])
    with pytest.raises(ValueError, match="NaN"):
        transfer_gain_matrix([[0.9, np.nan], [0.8, 0.9]], [0.5, 0.6])
    with pytest.raises(ValueError, match="one accuracy per task"):
        transfer_gain_matrix(acc, [0.5, 0.6, 0.7])
    with pytest.raises(ValueError, match="min_gap must be >= 0"):
        transfer_gain_matrix(acc, [0.5, 0.5], min_gap=-1)


# --------------------------------------------------------------------------------------------
# Mantel test: exactness and the stated rules
# --------------------------------------------------------------------------------------------


def random_tasks(rng, tasks):
    points = rng.normal(size=(tasks, 2))
    distance = np.linalg.norm(points[:, None] - points[None], axis=-1)
    transfer = -distance + rng.normal(scale=0.5, size=(tasks, tasks))
    return distance, transfer


def brute_force_p(distance, transfer, alternative, method):
    """Every relabelling of the tasks of the distance matrix, correlation over the unordered pairs."""
    tasks = len(distance)
    sym = (transfer + transfer.T) / 2
    iu = np.triu_indices(tasks, 1)

    def corr(a, b):
        return scipy_stats.spearmanr(a, b)[0] if method == "spearman" else np.corrcoef(a, b)[0, 1]

    observed = corr(distance[iu], sym[iu])
    stats = np.array([corr(distance[np.ix_(p, p)][iu], sym[iu]) for p in itertools.permutations(range(tasks))])
    extreme = stats <= observed + 1e-12 if alternative == "less" else stats >= observed - 1e-12
    return observed, extreme.mean()


@pytest.mark.parametrize("method", ["pearson", "spearman"])
@pytest.mark.parametrize("alternative", ["less", "greater"])
def test_mantel_exact_p_value_matches_brute_force(method, alternative):
    distance, transfer = random_tasks(np.random.default_rng(1), 5)
    result = mantel_test(distance, transfer, alternative=alternative, method=method)
    observed, p = brute_force_p(distance, transfer, alternative, method)
    assert result.exact and result.permutations == 120 and result.pairs == 10 and result.tasks == 5
    assert result.statistic == pytest.approx(observed)
    assert result.p_value == pytest.approx(p)
    assert result.smallest_p == pytest.approx(1 / 120)


def test_mantel_perfect_negative_association_reaches_the_smallest_p():
    distance, _ = random_tasks(np.random.default_rng(2), 5)
    result = mantel_test(distance, -distance)
    assert result.statistic == pytest.approx(-1.0)
    assert result.p_value == pytest.approx(1 / 120)
    assert mantel_test(distance, -distance, alternative="greater").p_value == pytest.approx(1.0)


def test_mantel_counts_each_unordered_pair_once_and_averages_seeds():
    rng = np.random.default_rng(3)
    distance, transfer = random_tasks(rng, 6)
    base = mantel_test(distance, transfer)
    assert mantel_test(distance, transfer.T).statistic == pytest.approx(base.statistic)
    assert mantel_test(distance, (transfer + transfer.T) / 2).p_value == pytest.approx(base.p_value)
    seeds_d = distance + rng.normal(scale=0.1, size=(3, 6, 6))
    seeds_d = (seeds_d + seeds_d.transpose(0, 2, 1)) / 2
    seeds_t = transfer + rng.normal(scale=0.1, size=(3, 6, 6))
    by_seed = mantel_test(seeds_d, seeds_t)
    averaged = mantel_test(seeds_d.mean(axis=0), seeds_t.mean(axis=0))
    assert by_seed.statistic == pytest.approx(averaged.statistic)
    assert by_seed.p_value == pytest.approx(averaged.p_value)


def test_mantel_monte_carlo_has_the_plus_one_correction_and_is_seeded():
    distance, _ = random_tasks(np.random.default_rng(4), 9)  # 9! > max_exact: Monte Carlo
    result = mantel_test(distance, -distance, permutations=199)
    assert not result.exact and result.permutations == 199
    assert result.p_value == pytest.approx(1 / 200)  # only the observed labelling is as extreme
    _, transfer = random_tasks(np.random.default_rng(5), 9)
    first = mantel_test(distance, transfer, permutations=299, seed=7)
    assert mantel_test(distance, transfer, permutations=299, seed=7).p_value == first.p_value
    assert mantel_test(distance, transfer, permutations=299, seed=8).p_value != first.p_value
    assert first.p_value in {(1 + k) / 300 for k in range(300)}


def test_partial_mantel_statistic_is_the_partial_correlation():
    rng = np.random.default_rng(6)
    distance, transfer = random_tasks(rng, 6)
    control = distance + rng.normal(scale=0.5, size=(6, 6))
    control = (control + control.T) / 2
    result = mantel_test(distance, transfer, control)
    iu = np.triu_indices(6, 1)
    r = np.corrcoef([distance[iu], ((transfer + transfer.T) / 2)[iu], control[iu]])
    partial = (r[0, 1] - r[0, 2] * r[1, 2]) / math.sqrt((1 - r[0, 2] ** 2) * (1 - r[1, 2] ** 2))
    assert result.partial and result.statistic == pytest.approx(partial)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(distance=np.ones((2, 2)) - np.eye(2)), "at least 3"),
        (dict(distance=np.arange(16.0).reshape(4, 4)), "symmetric"),
        (dict(transfer=np.ones((4, 4))), "transfer is constant"),
        (dict(transfer=np.full((4, 4), np.nan)), "NaN"),
        (dict(transfer=np.ones((4, 3))), "must be \\(tasks, tasks\\)"),
        (dict(alternative="two-sided"), "fixed before looking"),
        (dict(method="kendall"), "method must be"),
        (dict(permutations=0), "permutations must be a positive int"),
        (dict(control=np.ones((4, 4))), "control is constant"),
    ],
)
def test_mantel_rejects_bad_input(kwargs, message):
    distance, transfer = random_tasks(np.random.default_rng(7), 4)
    args = dict(distance=distance, transfer=transfer) | kwargs
    with pytest.raises(ValueError, match=message):
        mantel_test(args.pop("distance"), args.pop("transfer"), **args)


# --------------------------------------------------------------------------------------------
# Mantel test: level under nulls with task effects, power against a planted link
# --------------------------------------------------------------------------------------------


def simulated_study(rng, tasks, seeds, link=0.0, confound=0.0):
    """Flow distances with task effects (positions plus a per-task offset: a task far from every other) and
    transfer with row and column effects (source ticket strength, target difficulty) and seed noise.
    ``link`` plants transfer = ... − link · distance; ``confound`` adds a third distance (between dense
    models) to both, with no direct link."""
    points = rng.normal(size=(tasks, 2))
    offset = rng.exponential(size=tasks)
    flow = np.linalg.norm(points[:, None] - points[None], axis=-1) + offset[:, None] + offset[None, :]
    dense_points = rng.normal(size=(tasks, 2))
    dense = np.linalg.norm(dense_points[:, None] - dense_points[None], axis=-1)
    flow = flow + confound * dense
    source, target = rng.normal(size=tasks), rng.normal(size=tasks)
    noise = rng.normal(scale=0.3, size=(seeds, tasks, tasks))
    distance = flow + (noise + noise.transpose(0, 2, 1)) / 2
    distance[:, np.arange(tasks), np.arange(tasks)] = 0
    transfer = (
        source[:, None]
        + target[None, :]
        - link * flow
        - confound * dense
        + rng.normal(scale=0.5, size=(seeds, tasks, tasks))
    )
    return distance, transfer, dense


def pooled_pair_spearman_p(distance, transfer):
    """The invalid test of issue 12: Spearman over ordered pairs, seeds pooled (one-sided, negative)."""
    off = ~np.eye(distance.shape[1], dtype=bool)
    rho, p = scipy_stats.spearmanr(distance[:, off].ravel(), transfer[:, off].ravel())
    return p / 2 if rho < 0 else 1 - p / 2


def rejection_rates(simulations, tasks, seeds, seed, link=0.0, confound=0.0, partial=False, permutations=999):
    rng = np.random.default_rng(seed)
    mantel = naive = 0
    for i in range(simulations):
        distance, transfer, dense = simulated_study(rng, tasks, seeds, link, confound)
        result = mantel_test(distance, transfer, dense if partial else None, permutations=permutations, seed=i)
        mantel += result.p_value <= 0.05
        naive += pooled_pair_spearman_p(distance, transfer) <= 0.05
    return mantel / simulations, naive / simulations


def test_mantel_keeps_its_level_under_a_null_with_task_effects():
    """6 tasks x 3 seeds, exact enumeration. Measured: 4.7% (the pooled pair test: 21%); 4000 nulls: 5.0% at 6
    tasks (pair test 22%), 5.2% at 9 tasks by Monte Carlo (pair test 30%)."""
    level, naive = rejection_rates(FAST_NULLS, tasks=6, seeds=3, seed=0)
    assert level <= FAST_BOUND
    assert naive >= 0.15  # the null has teeth: the pair-level test is fooled by the task effects


def test_mantel_has_power_against_a_planted_link():
    """Transfer falls with flow distance (slope 1 against task effects of sd 1). Measured: 88% at 6 tasks."""
    level, _ = rejection_rates(200, tasks=6, seeds=3, seed=1, link=1.0)
    assert level >= 0.8


def test_partial_mantel_removes_a_confound_that_fools_the_plain_test():
    """Dense-model distance drives both flow distance and transfer; no direct link. Measured (400 nulls): plain
    Mantel 29%, partial 5.3% (4000 nulls: 5.4% at 6 tasks, 5.6% at 9)."""
    plain, _ = rejection_rates(400, tasks=6, seeds=3, seed=2, confound=1.0)
    partial, _ = rejection_rates(400, tasks=6, seeds=3, seed=2, confound=1.0, partial=True)
    assert plain >= 0.15
    assert partial <= 0.08


def test_partial_mantel_has_power_against_a_link_beyond_the_confound():
    """Measured: 88%."""
    level, _ = rejection_rates(200, tasks=6, seeds=3, seed=3, link=1.0, confound=1.0, partial=True)
    assert level >= 0.6


@pytest.mark.slow
@pytest.mark.parametrize("tasks", [6, 9])  # 9 tasks: Monte Carlo
def test_mantel_level_long(tasks):
    level, naive = rejection_rates(LONG_NULLS, tasks=tasks, seeds=3, seed=10 + tasks)
    assert level <= LONG_BOUND and naive >= 0.15


@pytest.mark.slow
@pytest.mark.parametrize("tasks", [6, 9])
def test_partial_mantel_level_long(tasks):
    """Freedman-Lane is approximate: bound 7% (measured in the report)."""
    level, _ = rejection_rates(LONG_NULLS, tasks=tasks, seeds=3, seed=20 + tasks, confound=1.0, partial=True)
    assert level <= 0.07


# --------------------------------------------------------------------------------------------
# PERMANOVA
# --------------------------------------------------------------------------------------------


def grouped_points(rng, groups, per_group, effect=0.0, dims=3):
    centres = rng.normal(size=(groups, dims)) * effect
    points = np.repeat(centres, per_group, axis=0) + rng.normal(size=(groups * per_group, dims))
    return points, np.repeat(np.arange(groups), per_group)


def euclidean(points):
    return np.linalg.norm(points[:, None] - points[None], axis=-1)


def test_permanova_f_is_the_anova_f_of_euclidean_points():
    """For Euclidean distances, SS_within and SS_total are the sums of squares about the group centroids and
    the grand centroid (Anderson 2001): compute F that way instead."""
    points, labels = grouped_points(np.random.default_rng(0), 3, 4, effect=1.0)
    total = ((points - points.mean(axis=0)) ** 2).sum()
    within = sum(((points[labels == g] - points[labels == g].mean(axis=0)) ** 2).sum() for g in range(3))
    expected = ((total - within) / 2) / (within / (12 - 3))
    result = permanova(euclidean(points), [f"task{g}" for g in labels])
    assert result.statistic == pytest.approx(expected)
    assert result.groups == 3 and result.items == 12


def test_permanova_exact_enumeration_and_its_smallest_p():
    points, labels = grouped_points(np.random.default_rng(1), 3, 3, effect=20.0)
    result = permanova(euclidean(points), labels)
    assert result.exact and result.permutations == math.factorial(9) // math.factorial(3) ** 3  # 1680
    assert result.smallest_p == pytest.approx(6 / 1680)  # renaming 3 groups of equal size: 3! labellings
    assert result.p_value == pytest.approx(result.smallest_p)
    assert result.mean_between > result.mean_within


def test_permanova_monte_carlo_with_plus_one_correction():
    points, labels = grouped_points(np.random.default_rng(2), 4, 3, effect=20.0)  # 369600 > max_exact
    result = permanova(euclidean(points), labels, permutations=499)
    assert not result.exact and result.permutations == 499
    assert result.p_value == pytest.approx(1 / 500)


def test_permanova_permutes_only_within_strata():
    """Two strata (e.g. seeds) far apart, each holding every group once; the group signal is nil. Relabelling
    across strata would not matter here, but counting does: (3!)^2 = 36 relabellings, not 6!/(2!)^3 = 90."""
    rng = np.random.default_rng(3)
    points = rng.normal(size=(6, 2)) + np.repeat([[0.0, 0.0], [50.0, 0.0]], 3, axis=0)
    result = permanova(euclidean(points), [0, 1, 2, 0, 1, 2], strata=[0, 0, 0, 1, 1, 1])
    assert result.exact and result.permutations == 36
    assert permanova(euclidean(points), [0, 1, 2, 0, 1, 2]).permutations == 90


def test_permanova_within_strata_detects_a_group_effect_hidden_by_strata():
    """Seeds shift all tasks together (a large stratum effect); tasks differ a little within each seed."""
    rng = np.random.default_rng(4)
    task = rng.normal(size=(4, 3)) * 1.5
    seed_shift = rng.normal(size=(5, 3)) * 10
    points = (task[:, None, :] + seed_shift[None, :, :] + rng.normal(scale=0.3, size=(4, 5, 3))).reshape(20, 3)
    groups, strata = np.repeat(np.arange(4), 5), np.tile(np.arange(5), 4)
    assert permanova(euclidean(points), groups, strata=strata, permutations=999).p_value <= 0.01


def permanova_rejections(simulations, groups, per_group, seed, effect=0.0, strata=False):
    rng = np.random.default_rng(seed)
    cells = np.tile(np.arange(per_group), groups) if strata else None
    hits = 0
    for i in range(simulations):
        points, labels = grouped_points(rng, groups, per_group, effect)
        hits += permanova(euclidean(points), labels, strata=cells, permutations=999, seed=i).p_value <= 0.05
    return hits / simulations


@pytest.mark.parametrize(
    "groups, per_group, strata",
    [(3, 3, False), (4, 3, False), (3, 3, True)],
    ids=["exact-1680", "monte-carlo", "within-strata-216"],
)
def test_permanova_keeps_its_level_without_a_group_effect(groups, per_group, strata):
    assert permanova_rejections(FAST_NULLS, groups, per_group, seed=groups + 10 * strata, strata=strata) <= FAST_BOUND


def test_permanova_has_power_against_a_group_effect():
    assert permanova_rejections(100, 4, 3, seed=3, effect=1.5) >= 0.8


@pytest.mark.slow
def test_permanova_level_long():
    for groups, per_group, strata in [(3, 3, False), (4, 3, False), (3, 3, True), (5, 2, False)]:
        assert permanova_rejections(LONG_NULLS, groups, per_group, seed=100 + groups, strata=strata) <= LONG_BOUND


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(groups=[0, 0, 0, 0, 0, 0]), "at least 2 groups"),
        (dict(groups=[0, 1, 2, 3, 4, 5]), "at least 2 items"),
        (dict(groups=[0, 1]), "one label per item"),
        (dict(groups="aabbcc"), "one label per item"),
        (dict(strata=[0, 0, 1, 1, 2, 2]), "no stratum holds two different groups"),
        (dict(distance=-np.ones((6, 6))), "non-negative"),
        (dict(distance=np.zeros((6, 6))), "within-group distance is 0"),
    ],
)
def test_permanova_rejects_bad_input(kwargs, message):
    points, labels = grouped_points(np.random.default_rng(5), 3, 2)
    args = dict(distance=euclidean(points), groups=labels) | kwargs
    with pytest.raises(ValueError, match=message):
        permanova(args.pop("distance"), args.pop("groups"), **args)
