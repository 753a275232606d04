"""Valid statistics for "tasks whose flows are closer transfer their tickets better".

Three pieces, each with its rule stated where it is defined:

* ``transfer_gain`` / ``transfer_gain_matrix``: transfer normalized by the random-mask baseline of the
  target task, so that a hard target task or a weak own ticket does not pass for (no) transfer.
* ``mantel_test``: a permutation test over task labels of the association between flow distance and
  transfer, each unordered pair once, seeds averaged, one-sided with the sign fixed in advance; with
  ``control=`` the partial version (e.g. controlling for the distance between the dense models).
* ``permanova``: are the distances between groups (tasks) larger than within them (seeds)? The go/no-go
  check before any test of transfer: without it the observable carries no task signal.
* ``permdisp``: do the groups differ in spread (distances to their own centroid)? PERMANOVA's pseudo-F also
  grows when one group is only more spread out, so a PERMANOVA is read as "groups sit apart" beside it.

Pairs of tasks share tasks, so pair-level tests (a Spearman p-value over ordered pairs, pooled over seeds)
treat dependent numbers as independent: under a simulated null with task effects they reject far more
often than their nominal level. Permuting task labels keeps that dependence in the null distribution.
"""

from __future__ import annotations

import functools
import itertools
import math
from dataclasses import dataclass

import numpy as np

ALTERNATIVES = ("less", "greater")
METHODS = ("pearson", "spearman")
#: statistics within this of the observed one count as at least as extreme (float noise of a reordered sum)
_TIE_TOLERANCE = 1e-12
_CHUNK = 4096


# --------------------------------------------------------------------------------------------
# Transfer gain
# --------------------------------------------------------------------------------------------


def _accuracy(value, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"{what} must be a number (an accuracy), got {value!r}")
    if not math.isfinite(float(value)):
        raise ValueError(f"{what} is {value}: pass the measured accuracy (finite)")
    return float(value)


def transfer_gain(
    ticket_accuracy: float, random_mask_accuracy: float, own_ticket_accuracy: float, *, min_gap: float = 0.01
) -> float | None:
    """(acc(A's ticket on B) − acc(random mask on B)) / (acc(B's own ticket) − acc(random mask on B)).

    All three are accuracies on target task B at the same density. 1: A's ticket is as good on B as B's
    own; 0: no better than a random mask of that density; negative: worse. ``None`` when B's own ticket
    beats the random mask by less than ``min_gap``: there is no ticket effect on B to normalize by, and the
    ratio would be noise divided by noise.

    >>> transfer_gain(0.80, 0.60, 0.90)
    0.6666666666666667
    >>> transfer_gain(0.80, 0.60, 0.605) is None
    True
    """
    ticket = _accuracy(ticket_accuracy, "ticket_accuracy")
    random = _accuracy(random_mask_accuracy, "random_mask_accuracy")
    own = _accuracy(own_ticket_accuracy, "own_ticket_accuracy")
    if _accuracy(min_gap, "min_gap") < 0:
        raise ValueError(f"min_gap must be >= 0, got {min_gap}")
    gap = own - random
    return None if gap < min_gap or gap <= 0 else (ticket - random) / gap


def transfer_gain_matrix(accuracy, random_mask_accuracy, *, min_gap: float = 0.01) -> np.ndarray:
    """Normalized transfer gain G[a, b] for every source task a and target task b.

    ``accuracy[a, b]``: accuracy of task a's ticket on task b (the diagonal: each task's own ticket);
    ``random_mask_accuracy[b]``: a random mask of the same density trained on b. Raises ``ValueError``
    naming the target tasks whose own ticket beats the random mask by less than ``min_gap`` (the gain is
    undefined there; drop those tasks or use a denser ticket). The diagonal of the result is 1.
    """
    if _accuracy(min_gap, "min_gap") < 0:
        raise ValueError(f"min_gap must be >= 0, got {min_gap}")
    acc = _finite_array(accuracy, "accuracy")
    rnd = _finite_array(random_mask_accuracy, "random_mask_accuracy")
    if acc.ndim != 2 or acc.shape[0] != acc.shape[1] or acc.shape[0] < 2:
        raise ValueError(f"accuracy must be a square (tasks, tasks) matrix of at least 2 tasks, got shape {acc.shape}")
    if rnd.shape != (acc.shape[0],):
        raise ValueError(
            f"random_mask_accuracy must hold one accuracy per task ({acc.shape[0]}), got shape {rnd.shape}"
        )
    gap = np.diag(acc) - rnd
    weak = np.flatnonzero(~(gap >= max(min_gap, np.finfo(float).tiny)))
    if weak.size:
        raise ValueError(
            f"target tasks {weak.tolist()}: own ticket beats the random mask by "
            f"{np.round(gap[weak], 4).tolist()} < min_gap={min_gap}; the normalized gain is undefined "
            f"there (drop those tasks or prune less)"
        )
    return (acc - rnd[None, :]) / gap[None, :]


def _finite_array(values, what: str) -> np.ndarray:
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{what} must be numeric ({error})") from None
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{what} contains NaN or infinite entries: fill in every measurement (or drop the task)")
    return array


# --------------------------------------------------------------------------------------------
# Mantel test
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MantelResult:
    """``statistic``: correlation (Pearson, or Pearson of ranks for Spearman) over the unordered task pairs
    between flow distance and transfer (partial on ``control`` when given). ``p_value``: one-sided in the
    direction ``alternative`` fixed in advance. ``exact``: every relabelling of the tasks was evaluated
    (``permutations`` of them, the identity included); otherwise ``permutations`` random relabellings and
    p = (1 + #as extreme) / (1 + permutations). ``smallest_p``: the least p-value this design can give
    (with few tasks a test may be unable to reject at all)."""

    statistic: float
    p_value: float
    alternative: str
    method: str
    partial: bool
    tasks: int
    pairs: int
    permutations: int
    exact: bool
    smallest_p: float


def _task_matrix(values, what: str, symmetric: bool) -> np.ndarray:
    """(tasks, tasks), averaged over seeds when given as (seeds, tasks, tasks)."""
    array = _finite_array(values, what)
    if array.ndim == 3:
        array = array.mean(axis=0)
    if array.ndim != 2 or array.shape[0] != array.shape[1]:
        raise ValueError(f"{what} must be (tasks, tasks) or (seeds, tasks, tasks), got shape {np.shape(values)}")
    if array.shape[0] < 3:
        raise ValueError(f"{what} has {array.shape[0]} tasks; a Mantel test needs at least 3 (3 pairs)")
    if symmetric and not np.allclose(array, array.T, rtol=1e-9, atol=1e-12):
        raise ValueError(f"{what} must be symmetric (a distance between tasks); symmetrize it first")
    return array


def _ranks(values: np.ndarray) -> np.ndarray:
    """Average ranks of the last axis (ties share their mean rank)."""
    order = np.argsort(values, kind="stable")
    ranks = np.empty_like(values)
    sorted_values = values[order]
    first = np.concatenate([[True], sorted_values[1:] != sorted_values[:-1]])
    group = np.cumsum(first) - 1
    starts = np.flatnonzero(first)
    ends = np.append(starts[1:], values.size)
    ranks[order] = ((starts + ends - 1) / 2.0)[group]
    return ranks


def _unit_rows(vectors: np.ndarray) -> np.ndarray:
    """Rows centred and scaled to unit norm, so a dot product is a correlation (a constant row stays 0)."""
    centred = vectors - vectors.mean(axis=-1, keepdims=True)
    norms = np.linalg.norm(centred, axis=-1, keepdims=True)
    return centred / np.maximum(norms, np.finfo(float).tiny)


def _check_varies(vector: np.ndarray, what: str) -> None:
    spread = np.linalg.norm(vector - vector.mean())
    if not spread > 1e-12 * max(float(np.abs(vector).max()), 1.0):
        raise ValueError(f"{what} is constant over the task pairs: its correlation with anything is undefined")


def _symmetric(upper: tuple[np.ndarray, np.ndarray], values: np.ndarray, tasks: int) -> np.ndarray:
    matrix = np.zeros((tasks, tasks))
    matrix[upper] = values
    return matrix + matrix.T


def _prepared(values: np.ndarray, method: str) -> np.ndarray:
    return _ranks(values) if method == "spearman" else values


def _residuals(vectors: np.ndarray, control: np.ndarray) -> np.ndarray:
    """Rows minus their least-squares fit on (1, control)."""
    basis, _ = np.linalg.qr(np.stack([np.ones_like(control), control], axis=1))
    return vectors - (vectors @ basis) @ basis.T


@functools.lru_cache(maxsize=4)
def _all_relabellings(tasks: int) -> np.ndarray:
    out = np.array(list(itertools.permutations(range(tasks))), dtype=np.intp)
    out.flags.writeable = False
    return out


def _relabellings(tasks: int, permutations: int, max_exact: int, seed) -> tuple[np.ndarray, bool]:
    """All task relabellings when there are at most ``max_exact``, else ``permutations`` random ones."""
    if math.factorial(tasks) <= max_exact:
        return _all_relabellings(tasks), True
    rng = np.random.default_rng(seed)
    return rng.permuted(np.tile(np.arange(tasks), (permutations, 1)), axis=1), False


def _count_extreme(statistics: np.ndarray, observed: float, alternative: str) -> int:
    if alternative == "less":
        return int(np.count_nonzero(statistics <= observed + _TIE_TOLERANCE))
    return int(np.count_nonzero(statistics >= observed - _TIE_TOLERANCE))


def _check_test_options(alternative: str, permutations: int, max_exact: int) -> None:
    if alternative not in ALTERNATIVES:
        raise ValueError(
            f"alternative must be one of {ALTERNATIVES} (fixed before looking at the data), got {alternative!r}"
        )
    for name, value in (("permutations", permutations), ("max_exact", max_exact)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")


def mantel_test(
    distance,
    transfer,
    control=None,
    *,
    alternative: str = "less",
    method: str = "pearson",
    permutations: int = 9999,
    max_exact: int = 100_000,
    seed: int | None = 0,
) -> MantelResult:
    """Mantel permutation test over task labels: does transfer rise as flows get closer?

    ``distance``: flow distances between tasks, symmetric, (tasks, tasks) or (seeds, tasks, tasks).
    ``transfer``: transfer[a, b] from task a's ticket to task b (e.g. ``transfer_gain_matrix``), same
    shapes, need not be symmetric. ``control``: a third distance matrix to partial out (e.g. between the
    dense models), same shapes as ``distance``.

    Rules: seeds are averaged first (every seed shares the task labels, so one relabelling applies to all
    and averaging loses no valid permutation). Transfer is symmetrized as (T + Tᵀ) / 2, the mean of the
    two directions, so each unordered pair {a, b} counts once; diagonals are ignored. ``method``:
    ``"pearson"`` (the classic Mantel r) correlates the pairs' values, ``"spearman"`` their ranks. The
    plain test is exact for either (any statistic). The null relabels the tasks of
    the distance matrix (rows and columns together), which keeps every task effect (a hard task, a strong
    ticket) intact. One-sided: ``alternative="less"`` (the default) expects a negative correlation between
    distance and transfer, closer flows transferring better; decide it before seeing the data. Exact
    enumeration of all tasks! relabellings when that is at most ``max_exact`` (8 tasks: 40320), otherwise
    ``permutations`` random relabellings drawn with ``seed``, p = (1 + #{r* as extreme as r}) / (1 +
    permutations).

    Partial test (``control`` given): the correlation between the residuals of distance and of transfer
    after a least-squares fit on the control (with intercept), tested by permuting the residuals of
    transfer on the control (Freedman & Lane), re-fitting them on the control each time; this is the
    variant whose level held best in Legendre's (2000) comparison. Unlike the plain test it is approximate:
    on simulated nulls with task effects and a linear confound (tests/test_rg_stats.py) it rejected 5.4%
    (6 tasks, 4000 nulls) and 5.6% (9 tasks) at nominal 5% with Pearson, but 7.6% and 6.2% with Spearman,
    whose rank regression does not remove a confound that is linear in the values: use Pearson (the
    default) for the partial test.
    """
    _check_test_options(alternative, permutations, max_exact)
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    dist = _task_matrix(distance, "distance", symmetric=True)
    trans = _task_matrix(transfer, "transfer", symmetric=False)
    if trans.shape != dist.shape:
        raise ValueError(f"distance has {dist.shape[0]} tasks but transfer {trans.shape[0]}: same tasks, same order")
    trans = (trans + trans.T) / 2.0
    tasks = dist.shape[0]
    upper = np.triu_indices(tasks, k=1)
    d_vec, t_vec = _prepared(dist[upper], method), _prepared(trans[upper], method)
    _check_varies(d_vec, "distance")
    _check_varies(t_vec, "transfer")
    relabel, exact = _relabellings(tasks, permutations, max_exact, seed)
    if control is None:  # relabel the distances, correlate with the fixed transfer
        z = None
        fixed, moving_vec = _unit_rows(t_vec), d_vec
    else:  # relabel the residuals of transfer on the control, re-fit each (Freedman & Lane)
        ctrl = _task_matrix(control, "control", symmetric=True)
        if ctrl.shape != dist.shape:
            raise ValueError(f"control has {ctrl.shape[0]} tasks but distance {tasks}: same tasks, same order")
        z = _prepared(ctrl[upper], method)
        _check_varies(z, "control")
        residual = _residuals(d_vec, z)
        _check_varies(residual, "distance after partialling out the control")
        fixed, moving_vec = _unit_rows(residual), _residuals(t_vec, z)
        _check_varies(moving_vec, "transfer after partialling out the control")
    observed = float(_unit_rows(moving_vec) @ fixed)
    moving = _symmetric(upper, moving_vec, tasks)
    extreme = 0
    for start in range(0, len(relabel), _CHUNK):
        p = relabel[start : start + _CHUNK]
        vectors = moving[p[:, upper[0]], p[:, upper[1]]]
        if z is not None:
            vectors = _residuals(vectors, z)
        extreme += _count_extreme(_unit_rows(vectors) @ fixed, observed, alternative)
    count = len(relabel)
    p_value = extreme / count if exact else (1 + extreme) / (1 + count)
    return MantelResult(
        observed,
        p_value,
        alternative,
        method,
        control is not None,
        tasks,
        len(d_vec),
        count,
        exact,
        1 / count if exact else 1 / (1 + count),
    )


# --------------------------------------------------------------------------------------------
# PERMANOVA
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PermanovaResult:
    """``statistic``: Anderson's pseudo-F, (SS_between / (groups − 1)) / (SS_within / (items − groups)), large
    when items of one group (e.g. the seeds of one task) are closer to each other than to other groups.
    ``p_value``: one-sided (F large), exact over every distinct relabelling when ``exact``, else
    (1 + #{F* ≥ F}) / (1 + permutations). ``mean_within`` / ``mean_between``: mean distance of the pairs
    inside a group / across groups. ``smallest_p``: the least p-value this design can give."""

    statistic: float
    p_value: float
    groups: int
    items: int
    mean_within: float
    mean_between: float
    permutations: int
    exact: bool
    smallest_p: float


def _labels(values, items: int, what: str) -> np.ndarray:
    """Integer codes 0..k-1 of ``items`` hashable labels."""
    values = list(values) if not isinstance(values, str) else None
    if values is None or len(values) != items:
        raise ValueError(f"{what} must be a sequence of one label per item ({items} items)")
    try:
        codes = {label: i for i, label in enumerate(dict.fromkeys(values))}
    except TypeError:
        raise ValueError(f"{what} must hold hashable labels (str or int)") from None
    return np.array([codes[v] for v in values], dtype=np.intp)


def _distinct_arrangements(values: np.ndarray):
    """Every distinct ordering of a multiset, in lexicographic order (Narayana's next permutation)."""
    a = np.sort(values)
    while True:
        yield a.copy()
        i = len(a) - 2
        while i >= 0 and a[i] >= a[i + 1]:
            i -= 1
        if i < 0:
            return
        j = len(a) - 1
        while a[j] <= a[i]:
            j -= 1
        a[i], a[j] = a[j], a[i]
        a[i + 1 :] = a[i + 1 :][::-1]


def _arrangement_count(groups: np.ndarray, strata: np.ndarray) -> int:
    count = 1
    for s in np.unique(strata):
        sizes = np.bincount(groups[strata == s])
        count *= math.factorial(int(sizes.sum())) // math.prod(math.factorial(int(n)) for n in sizes)
    return count


@functools.lru_cache(maxsize=8)
def _all_group_relabellings(groups: tuple[int, ...], strata: tuple[int, ...]) -> np.ndarray:
    """Every distinct relabelling of ``groups`` within ``strata`` (a product over the strata)."""
    groups_a, strata_a = np.array(groups), np.array(strata)
    cells = [np.flatnonzero(strata_a == s) for s in np.unique(strata_a)]
    options = [np.array(list(_distinct_arrangements(groups_a[c]))) for c in cells]
    choice = np.indices([len(o) for o in options]).reshape(len(options), -1)
    out = np.empty((choice.shape[1], len(groups)), dtype=np.intp)
    for c, o, pick in zip(cells, options, choice):
        out[:, c] = o[pick]
    out.flags.writeable = False
    return out


def _group_relabellings(
    groups: np.ndarray, strata: np.ndarray, permutations: int, max_exact: int, seed
) -> tuple[np.ndarray, bool]:
    """Group labels after relabelling within each stratum: all distinct ones, or ``permutations`` random ones."""
    if _arrangement_count(groups, strata) <= max_exact:
        return _all_group_relabellings(tuple(groups.tolist()), tuple(strata.tolist())), True
    rng = np.random.default_rng(seed)
    out = np.tile(groups, (permutations, 1))
    for s in np.unique(strata):
        cell = np.flatnonzero(strata == s)
        out[:, cell] = rng.permuted(out[:, cell], axis=1)
    return out, False


def _within_sums(
    squared_pairs: np.ndarray, pairs: tuple[np.ndarray, np.ndarray], labels: np.ndarray, sizes: np.ndarray
) -> np.ndarray:
    """SS_within = Σ_g (1/n_g) Σ_{i<j in g} d_ij² for each row of labels (``squared_pairs`` over ``pairs``)."""
    first = labels[:, pairs[0]]
    same = first == labels[:, pairs[1]]
    return (same / sizes[first]) @ squared_pairs


def permanova(
    distance, groups, *, strata=None, permutations: int = 9999, max_exact: int = 100_000, seed: int | None = 0
) -> PermanovaResult:
    """Permutation test that distances between groups exceed distances within groups (PERMANOVA).

    ``distance``: (items, items) symmetric distances, e.g. flow distances between runs; ``groups``: one
    label per item, e.g. the task of each run (its seeds form the group). Tests whether between-task
    flow distances are larger than between-seed ones: if not, the observable carries no task signal.
    ``strata``: optional label per item; labels are then permuted only within each stratum (e.g. a depth
    label permuted within each task × seed cell). Statistic: Anderson's (2001) pseudo-F; the null relabels
    items (within strata), exhaustively when there are at most ``max_exact`` distinct relabellings, else
    ``permutations`` random ones drawn with ``seed``.
    """
    _check_test_options("greater", permutations, max_exact)
    dist = _distance_matrix(distance)
    items = dist.shape[0]
    labels = _labels(groups, items, "groups")
    cells = np.zeros(items, dtype=np.intp) if strata is None else _labels(strata, items, "strata")
    sizes = np.bincount(labels).astype(np.float64)
    if len(sizes) < 2 or items <= len(sizes) or sizes.max() < 2:
        raise ValueError(
            f"permanova needs at least 2 groups and a group of at least 2 items (got group sizes "
            f"{sizes.astype(int).tolist()})"
        )
    _check_strata_mix_groups(labels, cells)
    iu = np.triu_indices(items, k=1)
    squared = dist[iu] ** 2
    total = squared.sum() / items
    within = float(_within_sums(squared, iu, labels[None, :], sizes)[0])
    if not within > 0:
        raise ValueError("every within-group distance is 0: the pseudo-F is infinite; check the distances")
    relabel, exact = _group_relabellings(labels, cells, permutations, max_exact, seed)
    extreme = 0
    for start in range(0, len(relabel), _CHUNK):
        sums = _within_sums(squared, iu, relabel[start : start + _CHUNK], sizes)
        extreme += int(np.count_nonzero(sums <= within * (1 + _TIE_TOLERANCE)))  # small SS_within = large F
    count = len(relabel)
    groups_n = len(sizes)
    same = labels[iu[0]] == labels[iu[1]]
    # Relabellings that only swap the names of equal-size groups give the observed partition again.
    smallest = 1 / (1 + count)
    if exact:
        smallest = int(np.count_nonzero(np.all((relabel[:, iu[0]] == relabel[:, iu[1]]) == same, axis=1))) / count
    return PermanovaResult(
        float(((total - within) / (groups_n - 1)) / (within / (items - groups_n))),
        extreme / count if exact else (1 + extreme) / (1 + count),
        groups_n,
        items,
        float(dist[iu][same].mean()),
        float(dist[iu][~same].mean()),
        count,
        exact,
        smallest,
    )


# --------------------------------------------------------------------------------------------
# PERMDISP
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PermdispResult:
    """``statistic``: the one-way ANOVA F of the items' distances to their own group's centroid (Anderson 2006),
    large when some group is more spread out than another. ``p_value``: one-sided (F large), exact over every
    distinct relabelling when ``exact``, else (1 + #{F* ≥ F}) / (1 + permutations). ``dispersions``: each group's
    mean distance to its centroid, in the order the labels first appear. ``smallest_p``: the least p-value this
    design can give (1 / (1 + permutations) for a random test)."""

    statistic: float
    p_value: float
    groups: int
    items: int
    dispersions: tuple[float, ...]
    permutations: int
    exact: bool
    smallest_p: float


def centroid_distances(distance, groups) -> np.ndarray:
    """Each item's distance to the centroid of its group, in the principal-coordinates space of ``distance``
    (Gower's centring of −d²/2; axes of negative eigenvalues enter with a minus sign, as in Anderson 2006, and a
    squared distance that this makes negative is set to 0). For Euclidean distances between points these are the
    Euclidean distances of the points to their group means."""
    dist = _distance_matrix(distance)
    labels = _labels(groups, dist.shape[0], "groups")
    n = dist.shape[0]
    centre = np.eye(n) - 1.0 / n
    gower = centre @ (-0.5 * dist**2) @ centre
    values, vectors = np.linalg.eigh((gower + gower.T) / 2)
    tol = 1e-10 * max(1.0, float(np.abs(values).max()))
    squared = np.zeros(n)
    for keep, sign in ((values > tol, 1.0), (values < -tol, -1.0)):
        coords = vectors[:, keep] * np.sqrt(np.abs(values[keep]))
        for g in np.unique(labels):
            members = labels == g
            squared[members] += sign * ((coords[members] - coords[members].mean(axis=0)) ** 2).sum(axis=1)
    return np.sqrt(np.maximum(squared, 0.0))


def _check_strata_mix_groups(labels: np.ndarray, cells: np.ndarray) -> None:
    """ValueError when no stratum holds two different groups (relabelling within strata would change nothing)."""
    if all(len(np.unique(labels[cells == s])) < 2 for s in np.unique(cells)):
        raise ValueError("no stratum holds two different groups: relabelling within strata changes nothing")


def _distance_matrix(distance) -> np.ndarray:
    """``distance`` as a finite, square, symmetric, non-negative float array; ValueError saying what is wrong."""
    dist = _finite_array(distance, "distance")
    if dist.ndim != 2 or dist.shape[0] != dist.shape[1]:
        raise ValueError(f"distance must be a square (items, items) matrix, got shape {dist.shape}")
    if not np.allclose(dist, dist.T, rtol=1e-9, atol=1e-12) or np.any(dist < 0):
        raise ValueError("distance must be symmetric and non-negative")
    return dist


def _group_square_sums(z: np.ndarray, labels: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """Σ_g (Σ_{i in g} z_i)² / n_g for each row of labels: with fixed group sizes, the ANOVA F grows with it."""
    out = np.zeros(labels.shape[0])
    for g, size in enumerate(sizes):
        out += ((labels == g) @ z) ** 2 / size
    return out


def permdisp(
    distance, groups, *, strata=None, permutations: int = 9999, max_exact: int = 100_000, seed: int | None = 0
) -> PermdispResult:
    """Permutation test that the groups differ in dispersion (PERMDISP, Anderson 2006).

    ``distance`` and ``groups`` as for ``permanova``. Each item's distance to its group's centroid
    (``centroid_distances``), then the one-way ANOVA F of those distances across groups; the null relabels the
    items' distances (within ``strata`` if given), exhaustively when there are at most ``max_exact`` distinct
    relabellings, else ``permutations`` random ones drawn with ``seed``. PERMANOVA's pseudo-F grows both when
    groups sit apart and when one group is more spread out; a PERMANOVA result is read as "the groups sit apart"
    only next to a PERMDISP that finds no difference in spread.
    """
    _check_test_options("greater", permutations, max_exact)
    dist = _distance_matrix(distance)
    items = dist.shape[0]
    labels = _labels(groups, items, "groups")
    cells = np.zeros(items, dtype=np.intp) if strata is None else _labels(strata, items, "strata")
    sizes = np.bincount(labels).astype(np.float64)
    if len(sizes) < 2 or items <= len(sizes) or sizes.min() < 2:
        raise ValueError(
            f"permdisp needs at least 2 groups of at least 2 items each (got group sizes {sizes.astype(int).tolist()})"
        )
    _check_strata_mix_groups(labels, cells)
    z = centroid_distances(dist, labels)
    k = len(sizes)
    total_sq, grand = float((z**2).sum()), float(z.sum()) ** 2 / items
    observed = float(_group_square_sums(z, labels[None, :], sizes)[0])
    within = total_sq - observed
    if not within > 1e-15 * max(total_sq, 1e-300):
        raise ValueError("every item is as far from its group's centroid as the rest of its group: F is infinite")
    relabel, exact = _group_relabellings(labels, cells, permutations, max_exact, seed)
    extreme = 0
    for start in range(0, len(relabel), _CHUNK):
        sums = _group_square_sums(z, relabel[start : start + _CHUNK], sizes)
        extreme += int(np.count_nonzero(sums >= observed - _TIE_TOLERANCE * max(abs(observed), 1.0)))
    count = len(relabel)
    dispersions = tuple(float(z[labels == g].mean()) for g in range(k))
    return PermdispResult(
        float(((observed - grand) / (k - 1)) / (within / (items - k))),
        extreme / count if exact else (1 + extreme) / (1 + count),
        k,
        items,
        dispersions,
        count,
        exact,
        1 / count if exact else 1 / (1 + count),
    )
