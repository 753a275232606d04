"""rgprune.experiments.power against published sample sizes and its own definitions."""

import pytest

from rgprune.experiments.power import correlation_units, paired_t_power, paired_t_units, slope_units


def test_paired_t_units_match_published_tables():
    # one-sided paired t, alpha 0.05, power 0.8 (G*Power / Cohen): d_z 0.5 -> 27, 0.8 -> 12, 1.0 -> 8
    assert paired_t_units(0.5) == 27
    assert paired_t_units(0.8) == 12
    assert paired_t_units(1.0) == 8
    assert paired_t_units(-1.0) == 8  # the direction tested is the effect's


def test_paired_t_units_are_the_first_with_enough_power():
    n = paired_t_units(1.6)
    assert paired_t_power(1.6, n) >= 0.8 > paired_t_power(1.6, n - 1)


def test_correlation_units_fisher_z():
    assert correlation_units(0.5) == 24  # ((1.645 + 0.842) / 0.549)^2 + 3 = 23.5
    assert correlation_units(-0.3, alpha=0.025) == 85


def test_slope_units_scale_as_the_squared_standard_error():
    assert slope_units(1.0, 1.0, 9) == 56  # 9 * 2.486^2 = 55.6
    assert slope_units(1.0, 0.1, 9) == 1


@pytest.mark.parametrize(
    "call", [lambda: paired_t_units(0.0), lambda: correlation_units(1.0), lambda: paired_t_power(1, 1)]
)
def test_rejects_impossible_requests(call):
    with pytest.raises(ValueError):
        call()
