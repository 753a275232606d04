"""Pruning alone as the reference of a run's flow (rgprune.rg.reference): the pruning-only flow from a trace alone has
the exact histograms and counts of a real pruning-only run, from the run's round-0 weights it is that run, and
training_beyond_pruning tells a trained flow from one that was only pruned."""

import json

import numpy as np
import pytest
import torch

import rgprune
import rgprune.rg
from rgprune import ops
from rgprune.rg.dmd import gram_dmd
from rgprune.rg.reference import (
    REFERENCE_TENSOR,
    pruning_only_gram,
    pruning_only_trace,
    synthetic_round0_weights,
    training_beyond_pruning,
)
from rgprune.rg.trace import FlowTrace

SIZES = ((60_000, 0.05), (30_000, 0.1), (9_000, 0.02))


def imp_like_run(seed: int, train: float = 0.0, rounds: int = 7, laplace: bool = False):
    """A flow of 20% prunes; between rounds the survivors are multiplied by (1 + train·N(0, 1)) (a stand-in for
    training; 0: pruning alone). Returns the trace and the round-0 weights."""
    gen = torch.Generator().manual_seed(seed)
    draw = (
        (lambda n: torch.empty(n).exponential_(generator=gen) * torch.sign(torch.randn(n, generator=gen)))
        if (laplace)
        else (lambda n: torch.randn(n, generator=gen))
    )
    weights = [draw(n) * scale for n, scale in SIZES]
    round0 = [w.clone() for w in weights]
    masks = rgprune.MaskSet.ones(weights).words
    trace = FlowTrace(["a", "b", "c"], [n for n, _ in SIZES], fraction=0.2, source=f"seed {seed}")
    for n in range(rounds):
        survivors = int(ops.magnitude_histogram(weights, masks).counts.sum())
        result = ops.prune_global_(weights, masks, round(0.2 * survivors))
        trace.record(n, result.threshold.histogram, *result.stats[1:4], threshold_key=result.threshold.key)
        if train:
            for w in weights:
                w.mul_(1 + train * torch.randn(w.shape, generator=gen))
            ops.apply_masks_(weights, masks)
    return trace, round0


def test_from_the_trace_alone_the_histograms_and_counts_are_a_real_pruning_only_runs():
    """Guards against the reference's bookkeeping: a cut bin kept whole or emptied, another round's count pruned,
    survivors that change bin without training. A run that was only pruned is its own pruning-only flow."""
    trace, _ = imp_like_run(seed=1)
    reference = pruning_only_trace(trace)
    assert reference.tensor_names == [REFERENCE_TENSOR] and reference.tensor_sizes == [sum(n for n, _ in SIZES)]
    for got, want in zip(reference.rounds, trace.rounds):
        assert got.histogram == want.histogram, got.round
        assert got.counts == [sum(want.counts)]
        np.testing.assert_allclose(got.abs_sums, [sum(want.abs_sums)], rtol=2e-3)
        np.testing.assert_allclose(got.sq_sums, [sum(want.sq_sums)], rtol=4e-3)
    np.testing.assert_allclose(reference.trajectory("excess"), trace.trajectory("excess"), atol=0.01)


def test_from_the_round0_weights_the_reference_is_the_pruning_only_run_bit_for_bit():
    """Guards against the exact reference pruning another k than the run's, or per-tensor statistics lost."""
    trace, round0 = imp_like_run(seed=2)
    reference = pruning_only_trace(trace, weights=round0)
    assert reference.tensor_names == trace.tensor_names
    assert [r.__dict__ for r in reference.rounds] == [r.__dict__ for r in trace.rounds]
    assert all(torch.equal(a, b) for a, b in zip(round0, imp_like_run(seed=2)[1])), "the weights given were modified"


def test_weights_that_are_not_the_runs_round0_are_refused():
    """Guards against a reference silently built from the wrong checkpoint (say round 3's)."""
    trace, round0 = imp_like_run(seed=3)
    with pytest.raises(ValueError, match="not the run's round-0 weights"):
        pruning_only_trace(trace, weights=[w * 1.5 for w in round0])
    with pytest.raises(ValueError, match="sizes"):
        pruning_only_trace(trace, weights=round0[:2])
    with pytest.raises(TypeError, match="FlowTrace"):
        pruning_only_trace({"rounds": []})


def test_synthetic_round0_weights_have_the_round0_histogram_exactly():
    """Guards against drawn weights that leave their bins (rounding to float32 at an upper edge)."""
    trace, _ = imp_like_run(seed=4, rounds=1)
    weights = synthetic_round0_weights(trace, seed=9)
    stats = ops.magnitude_histogram([weights], rgprune.MaskSet.ones([weights]).words)
    assert stats.histogram.tolist() == trace.rounds[0].histogram
    assert not torch.equal(weights, synthetic_round0_weights(trace, seed=10))


@pytest.mark.parametrize("laplace", [False, True], ids=["gaussian", "laplace"])
def test_pruning_alone_is_not_called_training_and_training_is(laplace):
    """Guards against a floor of 0 for pruning alone (the split's bin quantization, ~5e-4 a step, would read as
    training: the first version of this comparison called every pruning-only run trained) and against a
    comparison too weak to see a perturbation of 2% per round."""
    verdicts = [training_beyond_pruning(imp_like_run(seed, laplace=laplace)[0]).verdict for seed in range(5)]
    assert verdicts.count("beyond pruning alone") <= 1, verdicts
    trained = training_beyond_pruning(imp_like_run(seed=7, train=0.02, laplace=laplace)[0])
    assert trained.verdict == "beyond pruning alone" and trained.interval[0] > 0
    assert trained.sentence().startswith("Training moved the flow beyond pruning alone")
    exact = training_beyond_pruning(*imp_like_run(seed=7, train=0.02, laplace=laplace)[:1], weights=None)
    assert exact.difference == trained.difference


def test_exact_reference_of_a_pruning_only_run_has_nothing_beyond_it():
    """Guards against the exact reference comparing the run with another schedule: a pruning-only run against its own
    round-0 weights differs by exactly 0 in every step."""
    trace, round0 = imp_like_run(seed=5)
    result = training_beyond_pruning(trace, weights=round0)
    assert np.array_equal(result.run, result.reference) and result.difference == 0.0
    assert result.verdict == "not beyond pruning alone"


def test_too_short_and_bad_arguments():
    """Guards against an interval from one step (t with 0 degrees of freedom) and unchecked options."""
    trace, _ = imp_like_run(seed=6, rounds=2)
    short = training_beyond_pruning(trace)
    assert short.verdict == "too short" and "too short" in short.sentence()
    for bad in ({"level": 1.0}, {"level": True}, {"references": 0}):
        with pytest.raises(ValueError):
            training_beyond_pruning(trace, **bad)


def test_pruning_only_gram_is_the_gram_of_the_pruned_weights_and_its_dmd_grows():
    """Guards against the pruning-only Gram matrix (nested masks: <θ_i, θ_j> = ‖θ_max(i,j)‖²) and records what a
    parameter-space DMD of pure pruning finds: a leading |λ| above 1 (finding 2 read 1.27 as training)."""
    trace, round0 = imp_like_run(seed=8)
    weights, masks, thetas = [w.clone() for w in round0], rgprune.MaskSet.ones(round0).words, []
    for r in trace.rounds:
        thetas.append(torch.cat([w.flatten().double() for w in weights]))
        ops.prune_global_(weights, masks, sum(r.histogram) - sum(r.counts))
    exact = torch.stack(thetas) @ torch.stack(thetas).T
    np.testing.assert_allclose(pruning_only_gram(trace), exact.numpy(), rtol=1e-3)  # sums estimated within bins
    leading = abs(gram_dmd(pruning_only_gram(trace), n_boot=0).eigenvalues[0])
    assert 1.1 < leading < 1.3


# ---------------------------------------------------------------------------------------------------------
# pruning_reference: one call for any run (a trace, checkpoints, a run directory: tests/test_cli_flow.py)
# ---------------------------------------------------------------------------------------------------------


def save_checkpoints(tmp_path, seed: int, train: float, rounds: int = 6):
    """θ_n of ``imp_like_run``'s flow saved before each prune (torch.save state dicts), and its trace."""
    gen = torch.Generator().manual_seed(seed)
    weights = [torch.randn(n, generator=gen).reshape(-1, 100) * s for n, s in SIZES]
    masks, paths = rgprune.MaskSet.ones(weights).words, []
    for n in range(rounds):
        paths.append(tmp_path / f"theta-{n}.pt")
        torch.save({f"layer{i}.weight": w.clone() for i, w in enumerate(weights)}, paths[-1])
        survivors = int(ops.magnitude_histogram(weights, masks).counts.sum())
        ops.prune_global_(weights, masks, round(0.2 * survivors))
        for w in weights:
            w.mul_(1 + train * torch.randn(w.shape, generator=gen))
        ops.apply_masks_(weights, masks)
    return paths


def test_a_pruning_only_run_is_its_own_reference_in_every_estimate():
    """The known answer of the one call: a run that was only pruned, given its round-0 weights, has the same step
    sizes, ξ flow and DMD eigenvalues as its reference, bit for bit, and nothing beyond it. Guards against any of the
    reported estimates being computed on another flow than the reference's (e.g. the run's trace twice)."""
    trace, round0 = imp_like_run(seed=5)
    result = rgprune.rg.pruning_reference(trace, weights=round0)
    assert result.exact and result.kind == "excess" and result.beyond.verdict == "not beyond pruning alone"
    assert result.beyond.difference == 0.0
    np.testing.assert_array_equal(result.run_tail.xi, result.reference_tail.xi)
    np.testing.assert_array_equal(result.run_tail.tensor_xi, result.reference_tail.tensor_xi)
    assert result.run_flow["step_sizes"] == result.reference_flow["step_sizes"]
    assert result.run_flow["analysis"]["eigenvalues"] == result.reference_flow["analysis"]["eigenvalues"]
    data = result.to_json()
    json.dumps(data, allow_nan=False)
    assert data["sentence"] == result.sentence() and data["exact"] is True


def test_training_moves_the_run_away_from_its_reference():
    """A perturbation of 5% per round moves the run beyond pruning alone, and its ξ flow away from the reference's:
    Gaussian weights multiplied by (1 + 0.05 N(0, 1)) grow a heavier tail than pruning alone gives. Guards against a
    reference that follows the run (built from each round's weights instead of round 0's)."""
    trace, round0 = imp_like_run(seed=7, train=0.05)
    result = rgprune.rg.pruning_reference(trace, weights=round0)
    assert result.beyond.verdict == "beyond pruning alone" and result.sentence().startswith("Training moved")
    assert result.run_tail.xi[0] == result.reference_tail.xi[0]  # the same round-0 weights
    gap = result.run_tail.xi[1:] - result.reference_tail.xi[1:]  # both fits on the same weights' survivors
    assert np.all(gap > 0) and gap[2:].min() > 2 * gap[0], gap  # and it accumulates: ~0.002 to ~0.01
    assert result.reference.source.startswith("pruning alone, from the round-0 weights")


def test_one_call_from_checkpoints_is_exact_and_matches_the_trace_call(tmp_path):
    """From checkpoint files the one call reads round 0's weights from the first file: exact, per tensor, the same
    reference as the trace call given those weights. Guards against checkpoints falling back to the histogram-only
    reference (or refusing) and against a mismatch of the tensors' order."""
    from rgprune.rg.checkpoints import trace_from_checkpoints

    paths = save_checkpoints(tmp_path, seed=3, train=0.05)
    result = rgprune.rg.pruning_reference(paths, fraction=0.2)
    assert result.exact and result.reference.tensor_names == ["layer0.weight", "layer1.weight", "layer2.weight"]
    trace = trace_from_checkpoints(paths, fraction=0.2)
    state = torch.load(paths[0])
    same = rgprune.rg.pruning_reference(trace, weights=[state[n] for n in trace.tensor_names])
    assert [r.histogram for r in same.reference.rounds] == [r.histogram for r in result.reference.rounds]
    assert same.beyond.difference == result.beyond.difference
    assert np.all(np.isnan(result.run_tail.xi)) and not np.any(np.isnan(result.reference_tail.xi))
    assert result.beyond.verdict == "beyond pruning alone"


def test_one_call_refuses_what_is_not_a_run():
    trace, round0 = imp_like_run(seed=6, rounds=3)
    with pytest.raises(TypeError, match="FlowTrace, a run directory or a list of checkpoint paths"):
        rgprune.rg.pruning_reference({"rounds": []})
    with pytest.raises(TypeError, match="no such directory"):
        rgprune.rg.pruning_reference("/no/such/run")
    with pytest.raises(ValueError, match="kind must be one of"):
        rgprune.rg.pruning_reference(trace, kind="density-profile")
    with pytest.raises(ValueError, match="at least 2"):
        rgprune.rg.pruning_reference(imp_like_run(seed=6, rounds=1)[0])
    with pytest.raises(ValueError, match="level"):
        rgprune.rg.pruning_reference(trace, level=0.0)
