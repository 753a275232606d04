"""The tail-index flow: the generalized-Pareto shape ξ_n of the survivors' excess over each round's threshold.

What is measured. Round n's prune keeps the survivors with |w| > t_n; their excess Y = |w| − t_n over the round's
threshold has, for each round, a law whose shape is summarized by fitting the generalized Pareto law GPD(ξ, σ),
P(Y > y) = (1 + ξ y/σ)^(−1/ξ) (e^(−y/σ) at ξ = 0). ``tail_flow(trace)`` gives, per round, ξ_n, σ_n, a ``level``
interval of ξ_n (``xi_intervals``, shape (rounds, 2)), the fit's misfit and the domain the interval puts ξ_n in.

Why the GPD laws are the fixed points of prune-and-rescale. One IMP round, read as a coarse-graining step, keeps the
weights above a threshold (conditioning on |w| > t) and the observable rescales the kept excess to unit scale. The
excess over u of a GPD(ξ, σ) excess is GPD(ξ, σ + ξu): the same shape, only the scale moves, so after rescaling the
law is unchanged, whatever the threshold; and the GPD laws are the only laws with that stability. Conversely
(Pickands, Balkema and de Haan), for any law in the domain of attraction of an extreme-value law, the rescaled excess
over t converges to a GPD as t rises, with the shape ξ of that domain. So ξ labels the fixed point a flow of pruning
approaches, and its domain is the universality class: "weibull" (ξ < 0: a bounded tail, e.g. uniform → −1),
"gumbel" (ξ = 0: exponential-like tails: Laplace exactly at every threshold, Gaussian only as t → ∞, from below and
slowly, the local shape being ≈ −1/t²), "frechet" (ξ > 0: power laws, Pareto(α) → 1/α exactly, Student-t(ν) → 1/ν
from below). Pruning alone on static weights moves ξ_n only through the rise of t_n (not at all for an exact GPD);
what else moves it is training (``rgprune.rg.reference`` puts the two side by side).

Estimators, from what the trace already holds (no pass over the weights):

* binned maximum likelihood (the reported ξ): the global radix histogram of round n (the kernels' bins, 16 per
  octave of |w|) above t_n, its threshold's bin split exactly: the kept survivors in it are the round's kept count
  less everything above the bin (``excess_cells``). The multinomial likelihood of those cell counts under GPD(ξ, σ)
  is maximized (σ profiled out), the interval is the profile likelihood's χ²₁ cut, and the misfit is Pearson's χ² on
  cells merged until each expects ≥ 5 (with its p-value) and the largest CDF error D. A misfit p below ``MISFIT_P``
  puts a caveat in the round's reason: the excess is not GPD at this threshold, ξ is only the closest fit.
* moments (the check, globally and per tensor, since the histogram is global): from each tensor's kept count,
  Σ|w| and Σw², m = mean excess, v = variance, ξ = ½(1 − m²/v), σ = ½ m (1 + m²/v); its interval inverts the
  asymptotic normal test with the delta-method variance, finite only for ξ < 1/4 (``moments_valid``); consistent for
  ξ < 1/2 only and never above 1/2, so a heavy tail (Pareto α = 2) reads biased low, and says so.

Domains (``tail_domain``): from the whole interval, never the point estimate: "weibull" when it lies below −β,
"frechet" above β, "gumbel" when it holds 0 and lies within ±β (β = ``band``, 0.1), otherwise "unresolved" with the
reason (too wide, within the band but excluding 0, too few survivors, no threshold recorded).

Where the intervals hold (tests/test_rg_tail.py measures coverage over 150 draws of 2^15 weights, pruned 20% in one
round, of the 90% intervals): where the excess is exactly GPD (Laplace ξ = 0, uniform −1, Pareto 1/10 and 1/2) the
profile interval covers at 0.91-0.93, the moments' at 0.91-0.93 (global) and 0.88-0.90 (per tensor), conservative
near and above 1/4 (1.0 at ξ = 1/2). Where the excess only approaches a GPD (2^15 weights, 90% pruned) the interval
covers the best GPD fit at that threshold, not the limit: for Student-t(4) the large-sample fit at the draw's own
threshold at 0.84-0.92, 1/ν = 1/4 at ~0.12-0.14; for Gaussian weights 0 never (ξ̂ ≈ −0.12 to −0.15 at t ≈ 1.64),
while the intervals are calibrated around the estimator's own mean (0.88). The intervals are asymptotic and assume
independent weights; misfit p-values are meaningful only where the histogram has enough survivors per cell.
Rounds with fewer than ``MIN_SURVIVORS`` kept survivors get no estimate, and a trace of checkpoints (no threshold
keys) none either: the excess needs the exact threshold.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import scipy.optimize
import scipy.stats
import torch

from rgprune.kernels.format import KEY_BITS, key_to_magnitude
from rgprune.rg.observables import magnitude_bin_edges

if TYPE_CHECKING:  # pragma: no cover
    from rgprune.rg.trace import FlowTrace

__all__ = [
    "DEFAULT_BAND",
    "DEFAULT_LEVEL",
    "DOMAINS",
    "MIN_SURVIVORS",
    "MISFIT_P",
    "MOMENTS_LIMIT",
    "XI_SEARCH",
    "ExcessCells",
    "GPDFit",
    "TailFlow",
    "describe_tail_flow",
    "excess_cells",
    "fit_gpd_binned",
    "fit_gpd_moments",
    "gpd_log_survival",
    "tail_domain",
    "tail_flow",
    "tail_flow_from_json",
    "tail_flow_json",
]

#: default coverage of the ξ intervals
DEFAULT_LEVEL = 0.9
#: half-width β of the Gumbel band: an interval inside [−β, β] that contains 0 reads "gumbel"
DEFAULT_BAND = 0.1
#: fewer kept survivors than this (globally, or in a tensor) leave ξ unestimated
MIN_SURVIVORS = 50
#: the moments estimator's variance is finite only for ξ < 1/4 (the excess needs a finite 4th moment)
MOMENTS_LIMIT = 0.25
#: the binned maximum-likelihood fit searches ξ here; an interval end that reaches an end is unbounded
XI_SEARCH = (-2.0, 4.0)
#: a binned fit with a misfit p-value below this gets a caveat in its round's reason
MISFIT_P = 1e-3
#: the domain labels, from the interval of ξ (``tail_domain``)
DOMAINS = ("weibull", "gumbel", "frechet", "unresolved")


class NoExcess(ValueError):
    """A round whose excess cannot be observed (it did not prune, recorded no threshold, kept nothing, ...)."""


@dataclass(frozen=True)
class GPDFit:
    """One generalized-Pareto fit of an excess: shape ``xi``, scale ``sigma``, a ``level`` interval of ξ.

    ``method``: ``"binned-mle"`` or ``"moments"``. ``count``: the excesses it used. The misfit fields are the
    binned fit's (NaN for the moments): ``misfit_chi2`` (Pearson, on the kernels' cells merged until each
    expects ≥ 5 survivors), ``misfit_dof`` (merged cells − 3), ``misfit_p`` (its χ² p-value) and
    ``misfit_distance`` (largest |empirical − fitted| excess CDF at the cells' edges). ``reason``: why the fit
    is NaN, or a caveat ("" when none).
    """

    method: str
    xi: float
    sigma: float
    xi_interval: tuple[float, float]
    count: float
    misfit_chi2: float = math.nan
    misfit_dof: int = 0
    misfit_p: float = math.nan
    misfit_distance: float = math.nan
    reason: str = ""


def _no_fit(method: str, count: float, reason: str) -> GPDFit:
    return GPDFit(method, math.nan, math.nan, (math.nan, math.nan), count, reason=reason)


def gpd_log_survival(y: np.ndarray, xi: float, sigma: float) -> np.ndarray:
    """log P(Y > y) of the generalized Pareto law GPD(ξ, σ): −log1p(ξ y/σ)/ξ, −y/σ at ξ = 0; −inf past the
    upper endpoint −σ/ξ of a negative shape."""
    z = np.asarray(y, dtype=np.float64) / sigma
    if abs(xi) < 1e-12:
        return -z
    arg = np.maximum(xi * z, -1.0)  # arg = -1 is the endpoint: log1p gives -inf there, and beyond it
    with np.errstate(divide="ignore"):
        return -np.log1p(arg) / xi


def _cell_log_probs(lower: np.ndarray, upper: np.ndarray, xi: float, sigma: float) -> np.ndarray:
    """log P(lower ≤ Y < upper) per cell, computed as log S(lower) + log(1 − S(upper)/S(lower)) so that cells
    far in the tail, where both survivals are tiny, keep their precision."""
    la, lb = gpd_log_survival(lower, xi, sigma), gpd_log_survival(upper, xi, sigma)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = la + np.log(-np.expm1(lb - la))
    return np.where(np.isneginf(la), -np.inf, out)


class _BinnedLikelihood:
    """Multinomial log-likelihood of excess counts on cells under GPD(ξ, e^s), and its profile in ξ.

    Only occupied cells enter (an empty cell contributes n log p = 0); the cells' probabilities over all
    cells up to infinity sum to 1, so this is the exact likelihood of the binned counts, the multinomial
    coefficient aside.
    """

    #: a stand-in for −log 0 that keeps the bounded optimizers finite
    _PENALTY = 1e300

    def __init__(self, lower: np.ndarray, upper: np.ndarray, counts: np.ndarray):
        occupied = counts > 0
        self.lower, self.upper, self.counts = lower[occupied], upper[occupied], counts[occupied]
        self.total = float(self.counts.sum())
        # A negative shape must put its endpoint −σ/ξ past the lowest excess of the last occupied cell.
        self.top = float(self.lower[-1])
        self._cum = np.cumsum(self.counts)

    def quantile(self, p: float) -> float:
        """The excess below which a share p of the counts lies (linear within a cell)."""
        j = int(np.searchsorted(self._cum, p * self.total))
        before = self._cum[j - 1] if j else 0.0
        share = (p * self.total - before) / self.counts[j]
        return float(self.lower[j] + share * (self.upper[j] - self.lower[j]))

    def start(self) -> float:
        """A consistent first guess of ξ from two quantiles: a GPD has q(3/4)/q(1/2) = 2^ξ + 1."""
        ratio = self.quantile(0.75) / max(self.quantile(0.5), 1e-300)
        return math.log2(ratio - 1.0) if ratio > 1.0 + 2.0**-20 else -20.0

    def __call__(self, xi: float, s: float) -> float:
        value = float(self.counts @ _cell_log_probs(self.lower, self.upper, xi, math.exp(s)))
        return value if math.isfinite(value) else -self._PENALTY

    def slope(self, xi: float, s: float) -> float:
        """d(log-likelihood)/ds: with z = y/σ, d log S(y)/ds = z/(1 + ξz), so a cell's d log p/ds is
        (g(lower) − r g(upper))/(1 − r), r = S(upper)/S(lower)."""
        sigma = math.exp(s)
        la, lb = gpd_log_survival(self.lower, xi, sigma), gpd_log_survival(self.upper, xi, sigma)
        za, zb = self.lower / sigma, self.upper / sigma
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            ratio = np.exp(lb - la)
            gb = np.where(ratio > 0, ratio * zb / (1.0 + xi * zb), 0.0)  # past the endpoint S(upper) = 0
            value = float(self.counts @ ((za / (1.0 + xi * za) - gb) / -np.expm1(lb - la)))
        return value if not math.isnan(value) else math.inf  # at the endpoint's bound: raise σ

    def profile(self, xi: float) -> tuple[float, float]:
        """max over s of the log-likelihood at shape ξ, and the maximizing s = log σ."""
        # The GPD's median is σ (2^ξ − 1)/ξ: matching it puts s within a few per cent of the optimum at
        # any ξ, so a narrow bracket of the slope's root, widened when needed, is all the search it takes.
        median = self.quantile(0.5)
        guess = math.log(median * (xi / math.expm1(xi * math.log(2.0)) if abs(xi) > 1e-12 else 1 / math.log(2.0)))
        floor = math.log(-xi * self.top) + 1e-9 if xi < 0 else -math.inf  # the endpoint must pass the data
        lo, hi, width = max(guess - 0.1, floor), max(guess + 0.1, floor + 0.1), 0.1
        for _ in range(8):
            up, down = self.slope(xi, lo) > 0, self.slope(xi, hi) < 0
            if up and down:
                s = scipy.optimize.brentq(lambda x: self.slope(xi, x), lo, hi, xtol=1e-10)
                return self(xi, s), s
            width *= 2.0
            lo, hi = (lo if up else max(lo - width, floor)), (hi if down else hi + width)
        res = scipy.optimize.minimize_scalar(
            lambda x: -self(xi, x), bounds=(lo, hi), method="bounded", options={"xatol": 1e-7}
        )
        return -float(res.fun), float(res.x)


def _profile_bound(like: _BinnedLikelihood, xi: float, cut: float, side: int, limit: float) -> float:
    """Where the profile log-likelihood falls to ``cut`` on one side of ξ̂ (``side`` −1 or +1): steps of
    0.02, 0.04, ... outwards until it does (then Brent's root), ∓inf when it has not by ``limit``."""
    inner, step = xi, 0.02
    while side * (limit - inner) > 0:
        outer = inner + side * step if side * (limit - inner - side * step) > 0 else limit
        if like.profile(outer)[0] < cut:
            return scipy.optimize.brentq(
                lambda x: like.profile(x)[0] - cut, min(inner, outer), max(inner, outer), xtol=1e-6
            )
        inner, step = outer, 2.0 * step
    return -math.inf if side < 0 else math.inf


def _maximize(like: _BinnedLikelihood, xi_search: tuple[float, float]) -> tuple[float, float]:
    """ξ̂ and the profile's maximum: Brent's method within ±0.25 of the quantile guess, the window moved
    while the maximum sits on its edge (the profile log-likelihood is unimodal in every case tested)."""
    centre = min(max(like.start(), xi_search[0]), xi_search[1])
    for _ in range(24):
        lo, hi = max(centre - 0.25, xi_search[0]), min(centre + 0.25, xi_search[1])
        res = scipy.optimize.minimize_scalar(
            lambda x: -like.profile(x)[0], bounds=(lo, hi), method="bounded", options={"xatol": 1e-6}
        )
        x = float(res.x)
        at_edge = (x - lo < 1e-3 and lo > xi_search[0]) or (hi - x < 1e-3 and hi < xi_search[1])
        if not at_edge:
            break
        centre = x
    return x, -float(res.fun)


def fit_gpd_binned(
    lower, upper, counts, level: float = DEFAULT_LEVEL, xi_search: tuple[float, float] = XI_SEARCH
) -> GPDFit:
    """Binned maximum-likelihood GPD fit of excess counts on cells [lower_i, upper_i), with a profile
    likelihood interval of ξ at ``level`` and the misfit (``GPDFit``).

    The cells must tile [0, upper[-1]) (lower[0] = 0, upper[i] = lower[i+1]; empty cells included): the
    likelihood conditions on the excess being ≥ 0, so a left-out cell would bias it. Counts may be
    fractional (expected counts: the fit then gives the estimator's large-sample limit). The profile is
    maximized by Brent's method from a quantile guess (``_maximize``) within ``xi_search``; an interval end
    that does not fall below the χ²₁ cut within that range is ∓inf.
    """
    lower, upper = np.asarray(lower, dtype=np.float64), np.asarray(upper, dtype=np.float64)
    counts = np.asarray(counts, dtype=np.float64)
    if not (len(lower) == len(upper) == len(counts) > 0 and lower[0] == 0 and np.all(upper[:-1] == lower[1:])):
        raise ValueError("the cells must tile [0, upper[-1]): lower[0] = 0 and upper[i] = lower[i + 1]")
    if not (np.all(upper > lower) and np.all(np.isfinite(upper)) and np.all(counts >= 0)):
        raise ValueError("cells need finite upper > lower and counts >= 0")
    total = float(counts.sum())
    if np.count_nonzero(counts) < 3:
        return _no_fit("binned-mle", total, f"{np.count_nonzero(counts)} occupied cells: a 2-parameter fit needs 3")
    like = _BinnedLikelihood(lower, upper, counts)
    xi, top = _maximize(like, xi_search)
    sigma = math.exp(like.profile(xi)[1])
    cut = top - scipy.stats.chi2.ppf(level, 1) / 2.0
    interval = (_profile_bound(like, xi, cut, -1, xi_search[0]), _profile_bound(like, xi, cut, +1, xi_search[1]))
    reason = "ξ at the end of the search range" if min(xi - xi_search[0], xi_search[1] - xi) < 1e-3 else ""
    chi2, dof, p, distance = _misfit(lower, upper, counts, xi, sigma)
    return GPDFit("binned-mle", xi, sigma, interval, total, chi2, dof, p, distance, reason)


def _misfit(lower, upper, counts, xi: float, sigma: float) -> tuple[float, int, float, float]:
    """Pearson χ² of the counts against the fit (adjacent cells merged from the threshold up until each
    expects ≥ 5; the tail past the last cell is one more, empty, cell), its degrees of freedom (merged cells
    − 1 − 2 fitted parameters), p-value, and the largest |empirical − fitted| CDF at the cells' upper edges."""
    total = counts.sum()
    probs = np.exp(_cell_log_probs(lower, upper, xi, sigma))
    observed = np.append(counts, 0.0)
    expected = total * np.append(probs, math.exp(gpd_log_survival(upper[-1:], xi, sigma)[0]))
    groups_o, groups_e, acc_o, acc_e = [], [], 0.0, 0.0
    for o, e in zip(observed, expected):
        acc_o, acc_e = acc_o + o, acc_e + e
        if acc_e >= 5.0:
            groups_o.append(acc_o), groups_e.append(acc_e)
            acc_o = acc_e = 0.0
    if groups_e:  # what is left over joins the last group
        groups_o[-1] += acc_o
        groups_e[-1] += acc_e
    o, e = np.array(groups_o), np.array(groups_e)
    chi2 = float(np.sum((o - e) ** 2 / e)) if len(e) else math.nan
    dof = len(e) - 3
    p = float(scipy.stats.chi2.sf(chi2, dof)) if dof > 0 else math.nan
    fitted_cdf = -np.expm1(gpd_log_survival(upper, xi, sigma))
    distance = float(np.max(np.abs(np.cumsum(counts) / total - fitted_cdf)))
    return chi2, dof, p, distance


def _moments_variance(xi: np.ndarray) -> np.ndarray:
    """n · Var(ξ̂) of the moments estimator, asymptotically: the delta method on (mean y, mean y²) with the
    GPD's moments E y^r = σ^r r! / Π_{j ≤ r} (1 − jξ); finite only for ξ < 1/4. 1 at ξ = 0 (as the MLE's),
    4.8 at ξ = −1, 5.0 at ξ = 0.2, → ∞ as ξ → 1/4."""
    xi = np.asarray(xi, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = (1 - xi) ** 2 * (1 - 2 * xi) * (1 - xi + 6 * xi**2) / ((1 - 3 * xi) * (1 - 4 * xi))
    return np.where(xi < MOMENTS_LIMIT, out, np.inf)


def _moments_interval(xi: float, n: float, z: float) -> tuple[float, float]:
    """The ξ₀ < 1/4 not rejected by the asymptotic test |ξ̂ − ξ₀| ≤ z sd(ξ₀) (variance at ξ₀, not at ξ̂:
    the test inverted), the connected part around ξ̂; an end that reaches 1/4 is +inf (values ≥ 1/4 cannot
    be tested, the variance being infinite there) and one that is never rejected is −inf."""

    def rejected(x):
        return np.abs(xi - x) - z * np.sqrt(_moments_variance(x) / n)

    start = min(xi, MOMENTS_LIMIT - 1e-9)  # just below 1/4 nothing is rejected (sd → ∞)
    below = start - np.geomspace(1e-7, 50.0, 600)
    hit = np.flatnonzero(rejected(below) > 0)
    if hit.size:
        i = hit[0]
        inner = start if i == 0 else below[i - 1]
        low = scipy.optimize.brentq(rejected, below[i], inner, xtol=1e-9)
    else:
        low = -math.inf
    if xi >= MOMENTS_LIMIT:
        return low, math.inf
    above = np.linspace(xi, MOMENTS_LIMIT, 602)[1:-1]
    hit = np.flatnonzero(rejected(above) > 0)
    if not hit.size:
        return low, math.inf
    i = hit[0]
    return low, scipy.optimize.brentq(rejected, xi if i == 0 else above[i - 1], above[i], xtol=1e-9)


def fit_gpd_moments(count: float, abs_sum: float, sq_sum: float, threshold: float, level: float = DEFAULT_LEVEL):
    """Method-of-moments GPD fit of the excess |w| − t of ``count`` survivors with Σ|w| = ``abs_sum`` and
    Σw² = ``sq_sum`` above ``threshold``: m = Σ|w|/count − t, v = the sample variance of |w| (a shift does not
    change it), ξ = ½(1 − m²/v), σ = ½ m (1 + m²/v); ξ's interval inverts the asymptotic normal test
    (``_moments_interval``). Never above 1/2 (m²/v > 0): inconsistent for ξ ≥ 1/2, see the module docstring."""
    if not count >= 2:
        return _no_fit("moments", count, f"{count:g} survivors: the moments need at least 2")
    mean = abs_sum / count
    excess = mean - threshold
    var = (sq_sum - count * mean * mean) / (count - 1)
    if not (excess > 0 and var > 0):
        return _no_fit("moments", count, "the survivors' excess has no spread (all equal to the threshold?)")
    ratio = excess * excess / var
    xi, sigma = 0.5 * (1.0 - ratio), 0.5 * excess * (1.0 + ratio)
    z = float(scipy.stats.norm.ppf(0.5 + level / 2.0))
    reason = "" if xi < MOMENTS_LIMIT else "ξ ≥ 1/4: the moments estimator's variance is infinite there"
    return GPDFit("moments", xi, sigma, _moments_interval(xi, count, z), count, reason=reason)


@dataclass(frozen=True)
class ExcessCells:
    """Round n's kept survivors as excess counts over its threshold t: cell 0 is [0, e − t) for the kernels'
    bin that holds t (upper edge e), holding the survivors of that bin the prune kept (exact: the kept count
    less everything above the bin), then one cell per kernel bin up to the last occupied one (empty cells
    included). Within a cell the positions are unknown; the counts are exact."""

    threshold: float
    lower: np.ndarray
    upper: np.ndarray
    counts: np.ndarray

    @property
    def total(self) -> float:
        return float(self.counts.sum())


def excess_cells(trace: FlowTrace, n: int) -> ExcessCells:
    """Round ``trace.rounds[n]``'s ``ExcessCells``: from its histogram (θ_n's survivors, before the prune), its
    threshold key and the kept survivor counts. NoExcess (a ValueError) when the round has no excess."""
    r = trace.rounds[n]
    kept, before = sum(r.counts), sum(r.histogram)
    if r.threshold_key is None:
        later = trace.rounds[n + 1] if n + 1 < len(trace.rounds) else None
        if kept == before and later is not None and sum(later.histogram) < before:
            raise NoExcess(
                f"round {r.round} holds its survivors before its prune, with no threshold key (a trace of "
                f"checkpoints): the excess needs the exact threshold"
            )
        if kept == before:
            raise NoExcess(f"round {r.round} did not prune: no threshold, so no excess over it")
        raise NoExcess(
            f"round {r.round} pruned but recorded no threshold key (a version-1 trace, or checkpoints): the "
            f"excess needs the exact threshold"
        )
    if kept == 0:
        raise NoExcess(f"round {r.round} pruned every survivor: no excess left")
    dtype = getattr(torch, trace.dtype)
    threshold = key_to_magnitude(r.threshold_key, dtype)
    b = r.threshold_key >> (KEY_BITS[dtype] - trace.bits)  # the kernels' bin that holds t
    hist = np.asarray(r.histogram, dtype=np.float64)
    partial = kept - hist[b + 1 :].sum()  # kept survivors in [t, e): exact counts, unknown positions
    if not 0 <= partial <= hist[b]:
        raise ValueError(
            f"round {r.round}: {kept} kept survivors do not fit its histogram and threshold key "
            f"({hist[b + 1 :].sum():g} above the threshold's bin, {hist[b]:g} in it)"
        )
    occupied = np.flatnonzero(hist[b + 1 :])
    last = b + 1 + int(occupied[-1]) if occupied.size else b
    edges = magnitude_bin_edges(trace.dtype, trace.bits)
    if not np.isfinite(edges[last + 1]):
        raise NoExcess(f"round {r.round} has infinite survivors: their excess has no law")
    lower = np.concatenate([[threshold], edges[b + 1 : last + 1]]) - threshold
    upper = edges[b + 1 : last + 2] - threshold
    return ExcessCells(threshold, lower, upper, np.concatenate([[partial], hist[b + 1 : last + 1]]))


def tail_domain(interval, band: float = DEFAULT_BAND) -> tuple[str, str]:
    """The domain of attraction an interval [lo, hi] of ξ supports, and why when it supports none.

    With β = ``band``: "weibull" if hi < −β (a bounded tail), "frechet" if lo > β (a heavy, power-law tail),
    "gumbel" if −β ≤ lo ≤ 0 ≤ hi ≤ β (exponential-like: 0 is in the interval and every value in it is within
    β of 0), else "unresolved": the interval straddles −β or β (too wide to tell), or lies within the band
    but excludes 0 (a shape near 0 at this threshold that is not yet 0, like Gaussian weights, ξ ≈ −1/t²),
    or is undefined.
    """
    lo, hi = float(interval[0]), float(interval[1])
    if math.isnan(lo) or math.isnan(hi):
        return "unresolved", "no interval of ξ"
    if hi < -band:
        return "weibull", ""
    if lo > band:
        return "frechet", ""
    if -band <= lo and hi <= band:
        if lo <= 0.0 <= hi:
            return "gumbel", ""
        return "unresolved", f"within ±{band:g} of 0 but excludes 0: not (yet) an exponential tail"
    return "unresolved", f"the interval straddles ±{band:g}, the edge of the Gumbel band: too wide to tell"


@dataclass(frozen=True)
class TailFlow:
    """ξ_n, σ_n and their checks for every round of a trace (the module docstring has the estimators).

    Per round (arrays of length R = rounds; NaN where a round has no estimate, with its reason):
    ``rounds`` (the rounds' numbers), ``thresholds`` (t_n), ``survivors`` (kept by round n's prune),
    ``xi``, ``sigma``, ``xi_intervals`` (R, 2): the reported estimate, the binned maximum-likelihood fit of
    the global histogram, with its profile-likelihood interval at ``level``; ``domains`` and ``reasons``:
    ``tail_domain`` of that interval, and why a round is "unresolved" or NaN ("" when not);
    ``misfit_chi2``, ``misfit_dof``, ``misfit_p``, ``misfit_distance``: the fit's goodness of fit (GPDFit).
    The check: ``moments_xi``, ``moments_sigma``, ``moments_intervals`` (R, 2), the moments estimator on all
    survivors (exact sums), trustworthy where ξ < 1/4 (``moments_valid``). Per tensor (the moments only: the
    histogram is global; shape (R, T), T = 0 when ``per_tensor`` was False): ``tensor_xi``, ``tensor_sigma``,
    ``tensor_intervals`` (R, T, 2), ``tensor_domains`` and ``tensor_reasons`` (R tuples of T strings).
    """

    rounds: np.ndarray
    thresholds: np.ndarray
    survivors: np.ndarray
    level: float
    band: float
    xi: np.ndarray
    sigma: np.ndarray
    xi_intervals: np.ndarray
    domains: tuple[str, ...]
    reasons: tuple[str, ...]
    misfit_chi2: np.ndarray
    misfit_dof: np.ndarray
    misfit_p: np.ndarray
    misfit_distance: np.ndarray
    moments_xi: np.ndarray
    moments_sigma: np.ndarray
    moments_intervals: np.ndarray
    moments_valid: np.ndarray
    tensor_names: tuple[str, ...]
    tensor_xi: np.ndarray
    tensor_sigma: np.ndarray
    tensor_intervals: np.ndarray
    tensor_domains: tuple[tuple[str, ...], ...]
    tensor_reasons: tuple[tuple[str, ...], ...]


def _round_fits(trace: FlowTrace, n: int, level: float, min_survivors: int, per_tensor: bool):
    """(threshold, kept, binned fit, moments fit, tensor fits) of one round; fits are NaN with a reason where
    the round has no excess or too few survivors."""
    r = trace.rounds[n]
    kept = sum(r.counts)
    tensors = range(len(r.counts)) if per_tensor else range(0)
    try:
        cells = excess_cells(trace, n)
    except NoExcess as exc:
        reason = str(exc)
        none = [_no_fit("moments", r.counts[i], reason) for i in tensors]
        return math.nan, kept, _no_fit("binned-mle", kept, reason), _no_fit("moments", kept, reason), none
    t = cells.threshold

    def moments(count, abs_sum, sq_sum):
        if count < min_survivors:
            return _no_fit("moments", count, f"{count} survivors (fewer than {min_survivors})")
        return fit_gpd_moments(count, abs_sum, sq_sum, t, level)

    if kept < min_survivors:
        binned = _no_fit("binned-mle", kept, f"{kept} survivors (fewer than {min_survivors})")
    else:
        binned = fit_gpd_binned(cells.lower, cells.upper, cells.counts, level)
    overall = moments(kept, sum(r.abs_sums), sum(r.sq_sums))
    per = [moments(r.counts[i], r.abs_sums[i], r.sq_sums[i]) for i in tensors]
    return t, kept, binned, overall, per


def tail_flow(
    trace: FlowTrace,
    *,
    level: float = DEFAULT_LEVEL,
    per_tensor: bool = True,
    band: float = DEFAULT_BAND,
    min_survivors: int = MIN_SURVIVORS,
) -> TailFlow:
    """The tail-index flow of ``trace``: per round, the GPD shape ξ_n of the kept survivors' excess over the
    round's threshold, its scale, a ``level`` interval, the domain it supports and the fit's misfit; the
    moments estimator as a check, globally and (``per_tensor``) per tensor. From the trace's records only.

    ``band``: the Gumbel band's half-width (``tail_domain``); ``min_survivors``: fewer kept survivors (in the
    round, or in a tensor) give NaN and "unresolved".
    """
    from rgprune.rg.trace import FlowTrace

    if not isinstance(trace, FlowTrace):
        raise TypeError(f"trace must be a FlowTrace (rgprune.rg.FlowTrace), got {type(trace).__name__}")
    if not isinstance(per_tensor, bool):
        raise TypeError(f"per_tensor must be True or False, got {per_tensor!r}")
    if isinstance(level, bool) or not isinstance(level, (int, float)) or not 0.0 < level < 1.0:
        raise ValueError(f"level must be a coverage probability strictly between 0 and 1, got {level!r}")
    if not (isinstance(band, (int, float)) and band >= 0):
        raise ValueError(f"band must be a non-negative number (the Gumbel band's half-width), got {band!r}")
    if isinstance(min_survivors, bool) or not isinstance(min_survivors, int) or min_survivors < 3:
        raise ValueError(f"min_survivors must be an int >= 3, got {min_survivors!r}")
    if not trace.rounds:
        raise ValueError("the trace has no rounds yet")
    fits = [_round_fits(trace, n, level, min_survivors, per_tensor) for n in range(len(trace.rounds))]
    return _assemble(trace, fits, level, band, per_tensor)


def _labels(fit: GPDFit, band: float) -> tuple[str, str]:
    """The domain of a fit's interval, and the reason: the fit's own when it has no estimate."""
    if math.isnan(fit.xi):
        return "unresolved", fit.reason
    domain, why = tail_domain(fit.xi_interval, band)
    notes = [fit.reason, why]
    if fit.misfit_p < MISFIT_P:  # NaN (the moments, or no dof) compares False
        notes.append(
            f"misfit p = {fit.misfit_p:.1g}, D = {fit.misfit_distance:.3f}: the excess is not generalized "
            f"Pareto at this threshold, ξ is only the closest fit"
        )
    return domain, "; ".join(x for x in notes if x)


def _assemble(trace: FlowTrace, fits: list, level: float, band: float, per_tensor: bool) -> TailFlow:
    binned = [f[2] for f in fits]
    overall = [f[3] for f in fits]
    tensors = [f[4] for f in fits]
    labels = [_labels(f, band) for f in binned]
    tensor_labels = [[_labels(f, band) for f in row] for row in tensors]
    width = len(trace.tensor_names) if per_tensor else 0

    def grid(attr, rows):
        return np.array([[getattr(f, attr) for f in row] for row in rows], dtype=np.float64).reshape(len(fits), -1)

    return TailFlow(
        rounds=np.array([r.round for r in trace.rounds]),
        thresholds=np.array([f[0] for f in fits], dtype=np.float64),
        survivors=np.array([f[1] for f in fits], dtype=np.int64),
        level=float(level),
        band=float(band),
        xi=np.array([f.xi for f in binned]),
        sigma=np.array([f.sigma for f in binned]),
        xi_intervals=np.array([f.xi_interval for f in binned], dtype=np.float64).reshape(-1, 2),
        domains=tuple(d for d, _ in labels),
        reasons=tuple(w for _, w in labels),
        misfit_chi2=np.array([f.misfit_chi2 for f in binned]),
        misfit_dof=np.array([f.misfit_dof for f in binned], dtype=np.int64),
        misfit_p=np.array([f.misfit_p for f in binned]),
        misfit_distance=np.array([f.misfit_distance for f in binned]),
        moments_xi=np.array([f.xi for f in overall]),
        moments_sigma=np.array([f.sigma for f in overall]),
        moments_intervals=np.array([f.xi_interval for f in overall], dtype=np.float64).reshape(-1, 2),
        moments_valid=np.array([f.xi < MOMENTS_LIMIT for f in overall]),
        tensor_names=tuple(trace.tensor_names) if per_tensor else (),
        tensor_xi=grid("xi", tensors).reshape(len(fits), width),
        tensor_sigma=grid("sigma", tensors).reshape(len(fits), width),
        tensor_intervals=np.array([[f.xi_interval for f in row] for row in tensors], dtype=np.float64).reshape(
            len(fits), width, 2
        ),
        tensor_domains=tuple(tuple(d for d, _ in row) for row in tensor_labels),
        tensor_reasons=tuple(tuple(w for _, w in row) for row in tensor_labels),
    )


def _number(x: float, digits: int = 3) -> str:
    return "nan" if math.isnan(x) else "∞" if x == math.inf else "−∞" if x == -math.inf else f"{x:.{digits}f}"


def _interval_text(bounds) -> str:
    lo, hi = float(bounds[0]), float(bounds[1])
    if math.isnan(lo) or math.isnan(hi):
        return "[no interval]"
    return f"{'(' if lo == -math.inf else '['}{_number(lo)}, {_number(hi)}{')' if hi == math.inf else ']'}"


def describe_tail_flow(result: TailFlow) -> list[str]:
    """Plain-text lines for a report: a header, then per round ξ [interval], domain, misfit, the moments
    check and (when computed) the tensors' domains."""
    lines = [
        f"Tail index ξ of the kept survivors' excess over each round's threshold (binned GPD maximum "
        f"likelihood, {result.level:.0%} profile intervals; gumbel = interval within ±{result.band:g} "
        f"containing 0; misfit: χ²/dof, p and the largest CDF error D; moments: the check, valid for ξ < 1/4)"
    ]
    for i, n in enumerate(result.rounds):
        head = f"round {n}: "
        if math.isnan(result.xi[i]):
            lines.append(head + f"ξ = nan, unresolved ({result.reasons[i]})")
            continue
        misfit = (
            f"χ² {result.misfit_chi2[i]:.1f}/{result.misfit_dof[i]} (p {_number(result.misfit_p[i])}), "
            f"D {result.misfit_distance[i]:.4f}"
        )
        moments = f"moments {_number(result.moments_xi[i])} {_interval_text(result.moments_intervals[i])}"
        if not result.moments_valid[i]:
            moments += " (not valid: ≥ 1/4)"
        text = (
            f"ξ = {_number(result.xi[i])} {_interval_text(result.xi_intervals[i])} {result.domains[i]}, "
            f"σ = {result.sigma[i]:.4g}, t = {result.thresholds[i]:.4g}, {result.survivors[i]} survivors; "
            f"misfit {misfit}; {moments}"
        )
        if result.reasons[i]:
            text += f" [{result.reasons[i]}]"
        if result.tensor_domains and result.tensor_domains[i]:
            counts = {d: result.tensor_domains[i].count(d) for d in DOMAINS if d in result.tensor_domains[i]}
            text += "; tensors (moments): " + ", ".join(f"{c} {d}" for d, c in counts.items())
        lines.append(head + text)
    return lines


def _json_value(x):
    """A JSON number, or None for NaN and ±inf (an unbounded interval side reads ∓∞ by its position)."""
    x = float(x)
    return x if math.isfinite(x) else None


def _json_list(values) -> list:
    return [_json_list(v) if np.ndim(v) else _json_value(v) for v in values]


def tail_flow_json(result: TailFlow) -> dict:
    """The result as JSON-safe data (NaN and ±inf → None: an interval [lo, None] is unbounded above)."""
    return {
        "estimator": "binned-mle",
        "level": result.level,
        "band": result.band,
        "rounds": [int(n) for n in result.rounds],
        "thresholds": _json_list(result.thresholds),
        "survivors": [int(n) for n in result.survivors],
        "xi": _json_list(result.xi),
        "sigma": _json_list(result.sigma),
        "xi_intervals": _json_list(result.xi_intervals),
        "domains": list(result.domains),
        "reasons": list(result.reasons),
        "misfit": {
            "chi2": _json_list(result.misfit_chi2),
            "dof": [int(d) for d in result.misfit_dof],
            "p": _json_list(result.misfit_p),
            "distance": _json_list(result.misfit_distance),
        },
        "moments": {
            "xi": _json_list(result.moments_xi),
            "sigma": _json_list(result.moments_sigma),
            "xi_intervals": _json_list(result.moments_intervals),
            "valid": [bool(v) for v in result.moments_valid],
        },
        "tensors": {
            "names": list(result.tensor_names),
            "xi": _json_list(result.tensor_xi),
            "sigma": _json_list(result.tensor_sigma),
            "xi_intervals": _json_list(result.tensor_intervals),
            "domains": [list(row) for row in result.tensor_domains],
            "reasons": [list(row) for row in result.tensor_reasons],
        },
    }


def _from_json(values, shape) -> np.ndarray:
    """Numbers back from ``_json_list``: None → NaN."""
    flat = np.array(values, dtype=object).reshape(shape)
    return np.where(flat == None, np.nan, flat).astype(np.float64)  # noqa: E711


def _intervals_from_json(values, estimates: np.ndarray) -> np.ndarray:
    """Intervals back from JSON: None is −inf below and +inf above, NaN both where there is no estimate."""
    raw = np.array(values, dtype=object).reshape(*estimates.shape, 2)
    lo = np.where(raw[..., 0] == None, -np.inf, raw[..., 0]).astype(np.float64)  # noqa: E711
    hi = np.where(raw[..., 1] == None, np.inf, raw[..., 1]).astype(np.float64)  # noqa: E711
    out = np.stack([lo, hi], axis=-1)
    out[np.isnan(estimates)] = np.nan
    return out


def tail_flow_from_json(data: dict) -> TailFlow:
    """The ``TailFlow`` of ``tail_flow_json(result)`` (what flow.json stores), for ``describe_tail_flow``."""
    rounds = len(data["rounds"])
    tensors = data["tensors"]
    width = len(tensors["names"])
    xi, moments_xi = _from_json(data["xi"], (rounds,)), _from_json(data["moments"]["xi"], (rounds,))
    tensor_xi = _from_json(tensors["xi"], (rounds, width))
    return TailFlow(
        rounds=np.array(data["rounds"], dtype=np.int64),
        thresholds=_from_json(data["thresholds"], (rounds,)),
        survivors=np.array(data["survivors"], dtype=np.int64),
        level=float(data["level"]),
        band=float(data["band"]),
        xi=xi,
        sigma=_from_json(data["sigma"], (rounds,)),
        xi_intervals=_intervals_from_json(data["xi_intervals"], xi),
        domains=tuple(data["domains"]),
        reasons=tuple(data["reasons"]),
        misfit_chi2=_from_json(data["misfit"]["chi2"], (rounds,)),
        misfit_dof=np.array(data["misfit"]["dof"], dtype=np.int64),
        misfit_p=_from_json(data["misfit"]["p"], (rounds,)),
        misfit_distance=_from_json(data["misfit"]["distance"], (rounds,)),
        moments_xi=moments_xi,
        moments_sigma=_from_json(data["moments"]["sigma"], (rounds,)),
        moments_intervals=_intervals_from_json(data["moments"]["xi_intervals"], moments_xi),
        moments_valid=np.array(data["moments"]["valid"], dtype=bool),
        tensor_names=tuple(tensors["names"]),
        tensor_xi=tensor_xi,
        tensor_sigma=_from_json(tensors["sigma"], (rounds, width)),
        tensor_intervals=_intervals_from_json(tensors["xi_intervals"], tensor_xi),
        tensor_domains=tuple(tuple(row) for row in tensors["domains"]),
        tensor_reasons=tuple(tuple(row) for row in tensors["reasons"]),
    )
