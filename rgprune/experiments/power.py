"""Sample sizes for the findings' power analysis (docs/findings.md): how many units (seeds, tasks, cells) a test
needs to reach a given power against an effect of a measured size. Standard formulas, no simulation:

* ``paired_t_units``: one-sample / paired t-test on unit-level differences, exact power from the noncentral t.
* ``correlation_units``: a correlation test by Fisher's z (normal approximation).
* ``slope_units``: a trend whose standard error shrinks as 1/sqrt(units), from a measured standard error.
"""

from __future__ import annotations

import math

import scipy.stats

__all__ = ["correlation_units", "paired_t_power", "paired_t_units", "slope_units"]

_MAX_UNITS = 100_000


def _check(alpha: float, power: float) -> None:
    if not (0 < alpha < 0.5 and 0 < power < 1):
        raise ValueError(f"alpha must be in (0, 0.5) and power in (0, 1), got {alpha!r}, {power!r}")


def paired_t_power(effect: float, units: int, alpha: float = 0.05) -> float:
    """Power of the one-sided t-test at level ``alpha`` with ``units`` independent units, against a standardized
    effect ``effect`` = mean / SD of the unit-level differences (Cohen's d_z), in the direction tested."""
    if units < 2:
        raise ValueError(f"a t-test needs at least 2 units, got {units}")
    df = units - 1
    critical = scipy.stats.t.ppf(1 - alpha, df)
    return float(scipy.stats.nct.sf(critical, df, abs(effect) * math.sqrt(units)))


def paired_t_units(effect: float, alpha: float = 0.05, power: float = 0.8) -> int:
    """The fewest units (at least 2) at which the one-sided t-test reaches ``power`` against ``effect`` (d_z)."""
    _check(alpha, power)
    if effect == 0 or not math.isfinite(effect):
        raise ValueError(f"no number of units gives power against an effect of {effect!r}")
    n = 2
    while paired_t_power(effect, n, alpha) < power:
        n += 1
        if n > _MAX_UNITS:
            raise ValueError(f"more than {_MAX_UNITS} units needed for an effect of {effect!r}")
    return n


def correlation_units(rho: float, alpha: float = 0.05, power: float = 0.8) -> int:
    """The fewest independent pairs for a one-sided test of a correlation ``rho`` (Fisher's z approximation):
    ceil(((z_{1-α} + z_{power}) / atanh|ρ|)² + 3)."""
    _check(alpha, power)
    if not 0 < abs(rho) < 1:
        raise ValueError(f"rho must be in (-1, 1) and not 0, got {rho!r}")
    z = scipy.stats.norm.ppf(1 - alpha) + scipy.stats.norm.ppf(power)
    return math.ceil((z / math.atanh(abs(rho))) ** 2 + 3)


def slope_units(effect: float, standard_error: float, units: int, alpha: float = 0.05, power: float = 0.8) -> int:
    """The fewest units for a one-sided z-test of a slope ``effect`` whose standard error was ``standard_error``
    with ``units`` units (standard error ∝ 1/sqrt(units))."""
    _check(alpha, power)
    if effect == 0 or not standard_error > 0:
        raise ValueError("the effect must be nonzero and the standard error positive")
    z = scipy.stats.norm.ppf(1 - alpha) + scipy.stats.norm.ppf(power)
    return math.ceil(units * (z * standard_error / abs(effect)) ** 2)
