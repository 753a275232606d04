"""The tail-index flow (rgprune.rg.tail) on known answers, with the records built by the real kernels.

Every trace here is what a run records: static weights drawn with torch, pruned by ``prune_global_`` on the
CPU, each round's threshold histogram, key and kept-survivor sums recorded by ``FlowTrace.record_prune``.
Known answers (the excess of the kept survivors over the round's threshold t):

* Laplace weights: |w| ~ Exp(1) is memoryless, the excess is Exp(1) at every threshold: ξ = 0.
* Pareto(α) magnitudes (scale 1 < t): the excess over t is GPD(1/α, t/α) exactly: ξ = 1/α.
* uniform magnitudes on [0, a]: the excess over t is uniform on [0, a − t] = GPD(−1, a − t): ξ = −1.
* Student-t(ν): ξ → 1/ν as t rises, from below, within the second-order bias (ν + 1)/((ν + 2) t²).
* Gaussian: in the Gumbel domain, approached from below and slowly (local shape ≈ −1/t²).
* a flow: pruning alone keeps ξ (a fixed point); |w| → |w|^γ between rounds multiplies a Pareto ξ by γ.

Coverage of the 90% intervals is measured over repeated draws and must lie within 3 binomial standard
deviations of 0.9. Each test's docstring names the bug it guards against.
"""

import json
import math

import numpy as np
import pytest
import scipy.stats
import torch

import rgprune
from rgprune.masks import MaskSet
from rgprune.rg.observables import magnitude_bin_edges
from rgprune.rg.tail import (
    MIN_SURVIVORS,
    describe_tail_flow,
    excess_cells,
    fit_gpd_binned,
    tail_domain,
    tail_flow,
    tail_flow_json,
)
from rgprune.rg.trace import FlowTrace

LEVEL = 0.9
Z90 = scipy.stats.norm.ppf(0.95)


def magnitudes(dist: str, n: int, g: torch.Generator, **kw) -> torch.Tensor:
    """|w| for ``dist``, in float64 (cast to float32 with a random sign by ``weights``)."""
    u = torch.rand(n, generator=g, dtype=torch.float64)
    if dist == "laplace":
        return -torch.log1p(-u)
    if dist == "pareto":
        return (1.0 - u).pow(-1.0 / kw["alpha"])
    if dist == "uniform":
        return kw.get("low", 0.0) + (kw.get("high", 1.0) - kw.get("low", 0.0)) * u
    if dist == "gaussian":
        return torch.randn(n, generator=g, dtype=torch.float64).abs()
    if dist == "t":  # Z / sqrt(χ²_ν / ν), χ²_ν as a sum of ν squared normals (integer ν)
        chi2 = torch.randn(kw["nu"], n, generator=g, dtype=torch.float64).pow(2).sum(0)
        return (torch.randn(n, generator=g, dtype=torch.float64) / (chi2 / kw["nu"]).sqrt()).abs()
    raise ValueError(dist)


def weights(dist: str, n: int, g: torch.Generator, **kw) -> torch.Tensor:
    sign = torch.where(torch.rand(n, generator=g) < 0.5, -1.0, 1.0)
    return (sign * magnitudes(dist, n, g, **kw)).float()


def pruned_flow(tensors, prune_counts, transform=None) -> FlowTrace:
    """Prune ``tensors`` by ``prune_counts[r]`` in round r with the kernels, recording each round (no training);
    ``transform(r, tensors)`` may change the weights in place before round r's prune."""
    masks = MaskSet.ones(tensors)
    trace = FlowTrace([f"w{i}" for i in range(len(tensors))], [t.numel() for t in tensors])
    for r, k in enumerate(prune_counts):
        if transform is not None:
            transform(r, tensors)
        trace.record_prune(r, rgprune.prune_global_(tensors, masks.words, k))
    return trace


def flow(dist: str, n: int, rounds: int, seed: int = 0, fraction: float = 0.2, **kw) -> FlowTrace:
    """``n`` static weights of law ``dist`` in three tensors, pruned ``fraction`` of the survivors per round."""
    g = torch.Generator().manual_seed(seed)
    tensors = [weights(dist, s, g, **kw) for s in (n // 2, n // 4, n // 4)]
    left, counts = n, []
    for _ in range(rounds):
        counts.append(round(fraction * left))
        left -= counts[-1]
    return pruned_flow(tensors, counts)


def standard_errors(intervals: np.ndarray) -> np.ndarray:
    """The normal-equivalent standard error of a 90% interval: its width / (2 z₀.₉₅)."""
    return (intervals[:, 1] - intervals[:, 0]) / (2 * Z90)


def assert_near(result, xi, k: float = 3.0, moments: bool = True):
    """Every round's ξ within k standard errors of ``xi`` (binned fit; and the moments, where valid)."""
    se = standard_errors(result.xi_intervals)
    assert np.all(np.abs(result.xi - xi) <= k * se), (result.xi, se)
    if moments:
        mse = standard_errors(result.moments_intervals)
        assert np.all(result.moments_valid) and np.all(np.abs(result.moments_xi - xi) <= k * mse), result.moments_xi


# ---------------------------------------------------------------------------------------------------------
# The domain rule
# ---------------------------------------------------------------------------------------------------------


def test_domain_rule():
    """Guards against a domain rule that labels an interval by its centre (or by the sign of ξ) rather than by
    where the whole interval lies, or calls "gumbel" an interval that excludes 0 or leaves the band."""
    assert tail_domain((-1.2, -0.8))[0] == "weibull"
    assert tail_domain((-math.inf, -0.11))[0] == "weibull"
    assert tail_domain((0.11, math.inf))[0] == "frechet"
    assert tail_domain((-0.1, 0.1))[0] == "gumbel"
    assert tail_domain((-0.02, 0.0))[0] == "gumbel"
    label, why = tail_domain((-0.08, -0.03))  # in the band but excludes 0: a shape near 0, not 0
    assert label == "unresolved" and "excludes 0" in why
    for straddling in ((-0.2, 0.05), (0.05, 0.3), (-0.5, 0.5), (0.09, 0.11), (-math.inf, math.inf)):
        label, why = tail_domain(straddling)
        assert label == "unresolved" and "straddles" in why, straddling
    assert tail_domain((math.nan, math.nan))[0] == "unresolved"
    assert tail_domain((0.15, 0.3), band=0.2)[0] == "unresolved"  # the band is a parameter
    assert tail_domain((0.25, 0.3), band=0.2)[0] == "frechet"


# ---------------------------------------------------------------------------------------------------------
# Known answers
# ---------------------------------------------------------------------------------------------------------


def test_laplace_excess_is_exponential_at_every_round():
    """ξ = 0 exactly at every threshold (memorylessness). Guards against an excess measured from the wrong
    origin (e.g. from the threshold's bin edge instead of t) and a misfit that rejects a correct model."""
    result = tail_flow(flow("laplace", 1 << 17, rounds=5))
    assert_near(result, 0.0)
    assert set(result.domains) <= {"gumbel", "unresolved"} and result.domains.count("gumbel") >= 4
    assert np.all(result.misfit_p > 1e-3) and np.all(result.misfit_distance < 0.01)
    tensors = np.asarray(result.tensor_domains)
    assert tensors.shape == (5, 3) and np.mean(tensors == "gumbel") >= 0.8


def test_uniform_excess_is_bounded():
    """ξ = −1 (uniform excess on [0, a − t]). Guards against the moments estimator's sign (ξ = ½(m²/v − 1)
    gives +1 here; at ξ = 0 both signs agree, so Laplace alone cannot catch it)."""
    result = tail_flow(flow("uniform", 1 << 16, rounds=4, high=2.0))
    assert_near(result, -1.0)
    assert result.domains == ("weibull",) * 4
    assert np.all(np.asarray(result.tensor_domains) == "weibull")
    assert np.all(result.sigma == pytest.approx(2.0 - result.thresholds, rel=0.02))  # GPD(−1, a − t)


def test_partial_threshold_bin_is_counted_exactly():
    """Uniform magnitudes on [1, 2) span 16 kernel bins, so the bin holding t holds ~6% of the weights and the
    prune splits it. Guards against using the survivors before the prune (the whole bin in the first cell),
    ignoring the position of t in its bin (excess from the bin's lower edge), and dropping that bin."""
    g = torch.Generator().manual_seed(5)
    n = 1 << 16
    for cut in (0.27, 0.47, 0.71):  # t at different places inside its bin
        tensors = [weights("uniform", n // 2, g, low=1.0, high=2.0) for _ in range(2)]
        trace = pruned_flow(tensors, [round(cut * n)])
        cells = excess_cells(trace, 0)
        b = int(np.searchsorted(magnitude_bin_edges(), cells.threshold, side="right")) - 1
        assert cells.total == sum(trace.rounds[0].counts) < sum(trace.rounds[0].histogram)
        assert 0 < cells.counts[0] < trace.rounds[0].histogram[b]  # a part of the bin, not all of it
        assert cells.lower[0] == 0 and np.all(cells.upper[:-1] == cells.lower[1:])
        result = tail_flow(trace)
        assert_near(result, -1.0)
        assert result.sigma[0] == pytest.approx(2.0 - cells.threshold, rel=0.02)


def test_pareto_is_a_fixed_point_of_pruning_and_a_power_moves_it():
    """Pareto(α = 2) magnitudes: pruning alone keeps ξ = 1/α round after round (a fixed point of the excess);
    |w| → |w|^γ before round 3 makes them Pareto(α/γ), so ξ → γ/α. Guards against an excess that is not
    taken after each round's own prune (ξ would drift with the rounds) and a fit that cannot follow a move;
    the moments estimator must flag itself invalid at ξ = 1/2 and be valid at 1/5."""
    alpha, gamma = 2.0, 0.4
    g = torch.Generator().manual_seed(7)
    tensors = [weights("pareto", s, g, alpha=alpha) for s in (1 << 16, 1 << 15, 1 << 15)]

    def power(r, ts):
        if r == 3:
            for t in ts:
                t.copy_(t.sign() * t.abs().pow(gamma))

    left, counts = 1 << 17, []
    for _ in range(6):
        counts.append(round(0.2 * left))
        left -= counts[-1]
    result = tail_flow(pruned_flow(tensors, counts, power))
    se = standard_errors(result.xi_intervals)
    assert np.all(np.abs(result.xi[:3] - 1 / alpha) <= 3 * se[:3]), result.xi
    assert np.all(np.abs(result.xi[3:] - gamma / alpha) <= 3 * se[3:]), result.xi
    assert np.ptp(result.xi[:3]) < 0.02 and np.ptp(result.xi[3:]) < 0.02  # fixed points: no drift
    assert result.domains == ("frechet",) * 6
    assert not np.any(result.moments_valid[:3]) and np.all(result.moments_xi[:3] < 0.5)  # biased, and says so
    assert np.all(result.moments_valid[3:])
    mse = standard_errors(result.moments_intervals[3:])
    assert np.all(np.abs(result.moments_xi[3:] - gamma / alpha) <= 3 * mse)


def test_student_t_approaches_one_over_nu_from_below():
    """Student-t(3): ξ(t) → 1/ν from below as t rises, within the second-order bias B(t) = (ν+1)/((ν+2) t²)
    (the local shape d/dt[(1 − F)/f] = 1/ν − B(t) + O(t⁻⁴) is the lower envelope of what a fit above t sees).
    Checked twice: the binned fit of the exact t probabilities (the estimator's large-sample limit) must lie in
    [1/ν − B(t), 1/ν] and rise with t; the fits of 2^18 drawn weights within 3 standard errors of that band.
    Guards against reading ξ off at a fixed bin instead of the round's threshold, and a bias tolerance that
    would hide a wrong limit."""
    nu = 3
    n = 1 << 18
    keep = [0.1, 0.05, 0.02, 0.01]
    counts = [round((1 - keep[0]) * n)] + [round((a - b) * n) for a, b in zip(keep, keep[1:])]
    g = torch.Generator().manual_seed(11)
    result = tail_flow(pruned_flow([weights("t", n // 2, g, nu=nu) for _ in range(2)], counts))
    bias = (nu + 1) / ((nu + 2) * result.thresholds**2)
    se = standard_errors(result.xi_intervals)
    assert np.all(result.xi >= 1 / nu - bias - 3 * se) and np.all(result.xi <= 1 / nu + 3 * se), result.xi
    assert result.domains == ("frechet",) * 4

    edges = magnitude_bin_edges()
    limits = []
    for t in result.thresholds:  # the noise-free fit at the same thresholds
        b = int(np.searchsorted(edges, t, side="right")) - 1
        cut = np.concatenate([[t], edges[b + 1 : np.searchsorted(edges, 1e5)]])
        sf = 2 * scipy.stats.t.sf(cut, nu)
        limits.append(fit_gpd_binned(cut[:-1] - t, cut[1:] - t, (sf[:-1] - sf[1:]) / sf[0] * 1e6).xi)
    limits = np.array(limits)
    assert np.all(limits <= 1 / nu) and np.all(limits >= 1 / nu - bias) and np.all(np.diff(limits) > 0), limits


def test_gaussian_approaches_zero_from_below():
    """Gaussian weights are in the Gumbel domain, approached from below and slowly (local shape ≈ −1/t²):
    ξ < 0 at every round, for both estimators, rising round after round, never called "frechet". Guards
    against a sign error in either estimator and against a fit that ignores the threshold's rise."""
    result = tail_flow(flow("gaussian", 1 << 18, rounds=10))
    assert np.all(result.xi < 0) and np.all(result.moments_xi < 0)
    assert result.xi[-1] - result.xi[0] > 0.05 and result.moments_xi[-1] - result.moments_xi[0] > 0.1
    assert np.all(np.diff(result.xi) > -standard_errors(result.xi_intervals)[1:])
    assert np.all(np.diff(result.moments_xi) > 0)
    assert "frechet" not in result.domains
    assert "misfit" in result.reasons[0]  # a half-normal is not generalized Pareto above a low threshold


def test_per_tensor_moments_use_each_tensors_sums():
    """Two tensors of different laws share the global threshold t: Laplace (excess Exp: ξ = 0) and uniform on
    [0, 3] (excess uniform on [0, 3 − t]: ξ = −1). Guards against per-tensor estimates computed from the
    global sums, or from another tensor's, and a global fit that hides a mixture (its misfit must show)."""
    g = torch.Generator().manual_seed(3)
    n = 1 << 16
    tensors = [weights("laplace", n, g), weights("uniform", n, g, high=3.0)]
    result = tail_flow(pruned_flow(tensors, [round(0.2 * 2 * n), round(0.16 * 2 * n)]))
    xi, se = result.tensor_xi, standard_errors(result.tensor_intervals.reshape(-1, 2)).reshape(2, 2)
    assert np.all(np.abs(xi[:, 0]) <= 3 * se[:, 0]) and np.all(np.abs(xi[:, 1] + 1) <= 3 * se[:, 1]), xi
    assert [d[1] for d in result.tensor_domains] == ["weibull", "weibull"]
    assert all(d[0] in ("gumbel", "unresolved") for d in result.tensor_domains)
    assert np.all(result.misfit_p < 1e-3)


# ---------------------------------------------------------------------------------------------------------
# Coverage of the intervals
# ---------------------------------------------------------------------------------------------------------

#: (law, its parameters, ξ, whether the moments estimator is checked, and whether its coverage must not exceed
#: the band: near ξ = 1/4 its interval is conservative by construction, an end reaching 1/4 becomes +inf)
COVERAGE_CASES = [
    ("laplace", {}, 0.0, True, True),
    ("uniform", {}, -1.0, True, True),
    ("pareto", {"alpha": 10.0}, 0.1, True, True),
    ("pareto", {"alpha": 2.0}, 0.5, False, False),
]
SEEDS = 150


@pytest.mark.parametrize("dist,kw,xi,moments,upper", COVERAGE_CASES, ids=lambda v: str(v))
def test_interval_coverage(dist, kw, xi, moments, upper):
    """Over 150 independent draws of 2^15 weights pruned by 20%, the 90% intervals (binned fit: profile
    likelihood; moments, global and per tensor: the inverted asymptotic test) cover ξ at a rate within 3
    binomial standard deviations of 0.9, and their width matches the estimates' spread over the draws.
    Guards against intervals that undercover (e.g. a χ² cut halved, a one-sided z) or overcover (e.g. a
    wrong variance formula for the moments: (1 − 2ξ)² instead of (1 − 2ξ) makes it 3× too large at
    ξ = −1)."""
    band = 3 * math.sqrt(LEVEL * (1 - LEVEL) / SEEDS)
    hits = {"binned": [], "moments": [], "tensors": []}
    fits = {"binned": [], "moments": []}  # (estimate, interval width)
    for seed in range(SEEDS):
        result = tail_flow(flow(dist, 1 << 15, rounds=1, seed=1000 + seed, **kw), level=LEVEL)
        for key, estimate, (lo, hi) in (
            ("binned", result.xi[0], result.xi_intervals[0]),
            ("moments", result.moments_xi[0], result.moments_intervals[0]),
        ):
            hits[key].append(lo <= xi <= hi)
            fits[key].append((estimate, hi - lo))
        hits["tensors"] += [lo <= xi <= hi for lo, hi in result.tensor_intervals[0]]
    rates = {k: float(np.mean(v)) for k, v in hits.items()}
    # The intervals' width must also match the estimates' spread over the draws (a sharper check of the
    # calibration than 150 hits: the spread's relative error is ~6%, the ratio's band is 0.8-1.25).
    spread = {k: np.median(np.array(v)[:, 1]) / (2 * Z90) / np.std(np.array(v)[:, 0]) for k, v in fits.items()}
    assert abs(rates["binned"] - LEVEL) <= band and 0.8 <= spread["binned"] <= 1.25, (rates, spread)
    if moments:
        for key in ("moments", "tensors"):
            assert rates[key] >= LEVEL - band and (not upper or rates[key] <= LEVEL + band), rates
        assert not upper or 0.8 <= spread["moments"] <= 1.25, spread


def _large_sample_limit(survival, t: float) -> float:
    """The binned fit of the exact excess probabilities over ``t`` (cells of the kernels' bins up to 1e5): what the
    fit converges to at this threshold, ξ∞(t), as the survivors grow (for a law with an unbounded tail whose
    excess only approaches a GPD; at ξ∞ ≥ 0 the far cells do not constrain an endpoint)."""
    edges = magnitude_bin_edges()
    b = int(np.searchsorted(edges, t, side="right")) - 1
    cut = np.concatenate([[t], edges[b + 1 : np.searchsorted(edges, 1e5)]])
    sf = survival(cut)
    return fit_gpd_binned(cut[:-1] - t, cut[1:] - t, (sf[:-1] - sf[1:]) / sf[0] * 1e6).xi


def test_interval_coverage_where_the_excess_only_approaches_a_gpd():
    """Student-t(4) and Gaussian weights, 2^15 per draw, 90% pruned in one round (6554 survivors), 150 draws.
    Their excess is generalized Pareto only in the limit t → ∞, so at a finite threshold the interval estimates
    the best GPD fit there, not the limit, and the coverage of each must be measured apart:

    * Student-t(4): the intervals cover ξ∞(t) (the fit of the exact probabilities at the draw's own threshold)
      at 0.9 within 3 binomial standard deviations, and 1/ν = 1/4 far less often (the second-order bias;
      measured: ~0.1 of draws).
    * Gaussian: the limit 0 is never covered at this size (ξ̂ ≈ −0.15: the approach from below is slow), while
      the intervals are calibrated around the estimator's own centre (the mean over the draws): they cover it
      at 0.9 within the band and their width matches the spread. Here ξ∞(t) is no target: a finite sample has a
      finite largest survivor, the exact law has none, so the limit fit only sits at the largest cell's edge.

    Guards against an interval that claims the limit where it only has the finite-threshold fit (a test that
    covered 1/ν or 0 would hide the bias), and against intervals miscalibrated away from an exact GPD."""
    band = 3 * math.sqrt(LEVEL * (1 - LEVEL) / SEEDS)
    cases = {"t": (lambda x: 2 * scipy.stats.t.sf(x, 4), {"nu": 4}), "gaussian": (None, {})}
    estimates = {}
    for dist, (survival, kw) in cases.items():
        rows = []
        for seed in range(SEEDS):
            result = tail_flow(flow(dist, 1 << 15, rounds=1, seed=2000 + seed, fraction=0.9, **kw), level=LEVEL)
            target = _large_sample_limit(survival, result.thresholds[0]) if survival else math.nan
            rows.append((result.xi[0], *result.xi_intervals[0], target))
        estimates[dist] = np.array(rows)
    xi, lo, hi, target = estimates["t"].T
    assert abs(np.mean((lo <= target) & (target <= hi)) - LEVEL) <= band, np.mean((lo <= target) & (target <= hi))
    assert np.mean((lo <= 0.25) & (0.25 <= hi)) < 0.4 and np.all(target < 0.25)
    xi, lo, hi, _ = estimates["gaussian"].T
    assert np.mean((lo <= 0.0) & (0.0 <= hi)) == 0 and np.all(hi < 0)
    centre = np.mean(xi)
    assert abs(np.mean((lo <= centre) & (centre <= hi)) - LEVEL) <= band
    assert 0.8 <= np.median(hi - lo) / (2 * Z90) / np.std(xi) <= 1.25


# ---------------------------------------------------------------------------------------------------------
# Rounds without an estimate, the report's helpers
# ---------------------------------------------------------------------------------------------------------


def test_too_few_survivors_are_unresolved():
    """Guards against labelling a round from a handful of survivors: below ``MIN_SURVIVORS`` nothing is
    estimated (NaN, with the reason); 150 give an interval too wide to name a domain."""
    g = torch.Generator().manual_seed(2)
    tensors = [weights("laplace", 2048, g)]
    result = tail_flow(pruned_flow(tensors, [2048 - 150, 150 - 40]))
    assert result.survivors.tolist() == [150, 40]
    assert result.domains[0] == "unresolved" and "straddles" in result.reasons[0]
    assert math.isnan(result.xi[1]) and np.all(np.isnan(result.xi_intervals[1]))
    assert result.domains[1] == "unresolved" and f"fewer than {MIN_SURVIVORS}" in result.reasons[1]
    assert result.tensor_domains[1] == ("unresolved",) and math.isnan(result.tensor_xi[1, 0])


def test_rounds_without_a_threshold_and_the_report_helpers():
    """A round that did not prune (``record_stats``) and one that pruned but kept no threshold key (a version-1
    trace) have no excess: NaN, "unresolved", and the reason; the JSON has no NaN or inf (None instead), and
    the text has one line per round. Guards against inventing a threshold for such rounds."""
    w = [weights("pareto", 1 << 14, torch.Generator().manual_seed(1), alpha=3.0)]
    masks = MaskSet.ones(w)
    trace = FlowTrace(["w"], [1 << 14])
    trace.record_prune(0, rgprune.prune_global_(w, masks.words, 1 << 12))
    trace.record_stats(1, rgprune.magnitude_histogram(w, masks.words))
    res = rgprune.prune_global_(w, masks.words, 1 << 12)
    trace.record(2, res.threshold.histogram, res.stats.counts, res.stats.abs_sums, res.stats.sq_sums)  # no key
    result = tail_flow(trace)
    assert result.domains[0] == "frechet"
    assert np.all(np.isnan(result.xi[1:])) and result.domains[1:] == ("unresolved", "unresolved")
    assert "did not prune" in result.reasons[1] and "no threshold key" in result.reasons[2]
    assert math.isnan(result.thresholds[1]) and math.isnan(result.tensor_xi[2, 0])

    data = tail_flow_json(result)
    text = json.dumps(data, allow_nan=False)  # raises on NaN or inf
    assert data["xi"][1] is None and data["xi_intervals"][1] == [None, None]
    assert data["rounds"] == [0, 1, 2] and data["domains"] == list(result.domains)
    assert data["tensors"]["names"] == ["w"] and len(data["tensors"]["xi_intervals"][0]) == 1
    assert json.loads(text)["moments"]["valid"][0] is False  # ξ = 1/3 > 1/4

    lines = describe_tail_flow(result)
    assert len(lines) == 4 and "frechet" in lines[1] and "did not prune" in lines[2]


def test_fit_needs_cells_that_start_at_the_threshold():
    """Guards against fitting cells that leave out the threshold's partial bin: the likelihood conditions on
    the excess being ≥ 0, so the cells must start at 0 and tile."""
    with pytest.raises(ValueError, match="tile"):
        fit_gpd_binned([0.1, 0.2], [0.2, 0.3], [5, 5])
    with pytest.raises(ValueError, match="tile"):
        fit_gpd_binned([0.0, 0.25], [0.2, 0.3], [5, 5])
    assert "occupied cells" in fit_gpd_binned([0.0, 0.2], [0.2, 0.3], [5, 5]).reason
    trace = flow("laplace", 1 << 12, rounds=1)
    for bad, match in (({"level": 1.5}, "level"), ({"band": -0.1}, "band"), ({"min_survivors": 2}, "min_survivors")):
        with pytest.raises(ValueError, match=match):
            tail_flow(trace, **bad)
    with pytest.raises(TypeError, match="FlowTrace"):
        tail_flow({"rounds": trace.rounds})
    with pytest.raises(TypeError, match="per_tensor"):
        tail_flow(trace, per_tensor="yes")
    with pytest.raises(ValueError, match="no rounds"):
        tail_flow(FlowTrace(["w"], [10]))


def test_json_round_trip_and_the_package_exports():
    """flow.json stores ``tail_flow_json``; ``tail_flow_from_json`` gives back the same TailFlow (None back to NaN, an
    unbounded side back to ∓inf), so the report's text is the same from the file as from the result. Guards
    against an unbounded interval side read back as NaN (the report would say "no interval")."""
    import rgprune.rg
    from rgprune.rg.tail import tail_flow_from_json

    for name in ("tail_flow", "TailFlow", "describe_tail_flow", "tail_flow_json"):
        assert getattr(rgprune.rg, name) is getattr(rgprune.rg.tail, name) and name in rgprune.rg.__all__
    g = torch.Generator().manual_seed(4)
    tensors = [weights("pareto", 1 << 14, g, alpha=0.5), weights("laplace", 1 << 14, g)]  # ξ = 2: moments unbounded
    result = tail_flow(pruned_flow(tensors, [1 << 13, 1 << 12, (1 << 15) - (1 << 13) - (1 << 12) - 20]))
    back = tail_flow_from_json(json.loads(json.dumps(tail_flow_json(result), allow_nan=False)))
    assert math.isnan(result.xi[2]) and np.isinf(result.moments_intervals[0, 1])
    for field in ("xi", "sigma", "xi_intervals", "moments_xi", "moments_intervals", "tensor_xi", "tensor_intervals"):
        np.testing.assert_array_equal(getattr(back, field), getattr(result, field), err_msg=field)
    assert back.domains == result.domains and back.tensor_domains == result.tensor_domains
    assert describe_tail_flow(back) == describe_tail_flow(result)
