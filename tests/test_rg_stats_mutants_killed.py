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
