"""The flow report (rgprune.rg.analysis / rgprune.rg.report): the estimators' default rules, intervals stored
JSON-safe, classes only from intervals, "too short" said plainly, the pruning/training split and the
lottery-ticket series in every report."""

import json

import numpy as np
import pytest
import torch

import rgprune
from rgprune.cli.flow import flow_summary
from rgprune.rg.analysis import analyse_flow, describe_directions, format_interval
from rgprune.rg.checkpoints import trace_from_checkpoints
from rgprune.rg.report import compare_flows, write_flow_report
from rgprune.rg.trace import FlowTrace


def pruned_flow(rounds, seed=0, training=0.0, laplace=False, metrics=None, tmp_path=None):
    """A FlowTrace of 2^18 weights pruned 20% per round; ``training`` scales a random change of the survivors
    between rounds (0: static weights, a pruning-only flow). With ``tmp_path``, θ_n is saved before each prune."""
    g = torch.Generator().manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(512, 256, bias=False), torch.nn.Linear(256, 512, bias=False))
    with torch.no_grad():
        for layer in model:
            w = torch.randn(layer.weight.shape, generator=g)
            if laplace:
                w = torch.sign(w) * -torch.log(torch.rand(layer.weight.shape, generator=g))
            layer.weight.copy_(w)
    pruner = rgprune.GlobalMagnitudePruner(model)
    trace = FlowTrace(pruner.names, pruner.masks.numels(), fraction=0.2)
    paths = []
    for n in range(rounds):
        if n and training:
            with torch.no_grad():
                for p in pruner.params:
                    p.mul_(1 + training * torch.randn(p.shape, generator=g))
            pruner.apply_masks()
        if tmp_path is not None:
            paths.append(tmp_path / f"theta-{n}.pt")
            torch.save({f"{i}.weight": layer.weight.detach().clone() for i, layer in enumerate(model)}, paths[-1])
        trace.record_prune(n, pruner.prune(0.2), None if metrics is None else metrics[n])
    return (trace, paths) if tmp_path is not None else trace


def band(lower, upper, tol=0.05):
    """The class the intervals rule gives a direction with this interval (upper None: unbounded)."""
    upper = np.inf if upper is None else upper
    if lower > 1 + tol:
        return "relevant"
    if upper < 1 - tol:
        return "irrelevant"
    return "marginal" if lower >= 1 - tol and upper <= 1 + tol else "unresolved"


def strict_json(path):
    """flow.json parsed so that NaN or Infinity (not JSON) fail."""

    def refuse(token):
        raise AssertionError(f"{token} in {path.name}")

    return json.loads(path.read_text(), parse_constant=refuse)


def test_a_three_round_flow_is_too_short_and_every_output_says_so(tmp_path):
    trace = pruned_flow(3, training=0.05)
    paths = write_flow_report(trace, tmp_path)
    flow = strict_json(paths["flow"])
    for fit in (flow["analysis"], *(f["analysis"] for f in flow["by_observable"].values())):
        assert fit["status"] == "too short" and fit["dmd_rank"] == 0 and fit["eigenvalues"] == []
        assert "too short to resolve anything: 2 snapshot pairs" in fit["summary"]
    assert "too short to resolve anything" in paths["report"].read_text()
    summary = flow_summary(paths["flow"], paths["report"])
    assert "DMD rank 0: too short to resolve anything (2 snapshot pairs" in summary
    assert summary.splitlines()[-1] == f"flow report: {paths['report']}"
    assert paths["eigen_png"].read_bytes()[:4] == b"\x89PNG"  # rank 0 still gets its (empty) eigenvalue figure


def test_intervals_are_stored_json_safe_and_decide_the_classes(tmp_path):
    trace = pruned_flow(7, training=0.05)
    uninformed = analyse_flow(trace, n_boot=0)["analysis"]  # no bootstrap: every interval is [0, inf)
    assert uninformed["dmd_rank"] >= 1
    assert uninformed["intervals"] == [[0.0, None]] * uninformed["dmd_rank"]
    assert uninformed["classes"] == ["unresolved"] * uninformed["dmd_rank"]  # not the point estimates' classes
    assert format_interval(uninformed["intervals"][0]) == "[0.000, ∞)"
    assert all(low is None for low, _ in uninformed["exponent_intervals"])  # y of |λ| = 0 is −∞: null
    json.dumps(uninformed, allow_nan=False)

    flow = strict_json(write_flow_report(trace, tmp_path)["flow"])
    assert flow["intervals_note"].count("null") >= 1 and flow["interval_level"] == 0.9
    for fit in [f["analysis"] for f in flow["by_observable"].values()]:
        assert len(fit["eigenvalues"]) == len(fit["intervals"]) == len(fit["classes"]) == fit["dmd_rank"]
        for modulus, (low, high), cls in zip(fit["eigenvalue_moduli"], fit["intervals"], fit["classes"]):
            assert low <= modulus and (high is None or modulus <= high)
            # one run is one trajectory, and fits on few effective trajectories withhold every class
            # (rgprune.rg.linear_fit): a class is its interval's band or unresolved, never another
            assert cls in (band(low, high), "unresolved")
        assert describe_directions(fit).count("[") + describe_directions(fit).count("(") >= fit["dmd_rank"]


def test_the_report_never_fits_every_pair_exactly(tmp_path):
    """The old rule kept one direction per snapshot pair of the 1024-bin histogram: reconstruction error ~1e-16
    and classes for every direction. The held-out rule keeps fewer directions than pairs."""
    trace = pruned_flow(6, training=0.05)
    flow = analyse_flow(trace, ("histogram", "excess"))
    for fit in (f["analysis"] for f in flow["by_observable"].values()):
        assert fit["rank_rule"] == "held-out" and not fit["exact_fit"]
        assert fit["dmd_rank"] < fit["snapshot_pairs"] - 1 and fit["reconstruction_error"] > 1e-6
        assert len(fit["heldout_error"]) >= 2 and fit["heldout_error"][0] == 1.0


@pytest.mark.parametrize("laplace", [False, True])
def test_a_pruning_only_flow_shows_no_training_part_in_the_report(tmp_path, laplace):
    """Static weights: every step of the excess observable is what pruning does (training part ≈ 0), and the
    fixed-bin histogram moves far more per round than the rescaled observable, from pruning alone."""
    flow = analyse_flow(pruned_flow(5, laplace=laplace), n_boot=0)
    split = flow["step_split"]
    assert flow["observable"] == split["observable"] == "excess" and split["rounds"] == [1, 2, 3, 4]
    np.testing.assert_allclose(split["total"], flow["step_sizes"])  # the table's step column is the split's total
    assert max(split["training"]) < 0.01
    np.testing.assert_allclose(split["pruning"], split["total"], atol=0.01)
    assert min(flow["by_observable"]["histogram"]["step_sizes"]) > 0.2 > 0.1 > max(flow["step_sizes"])
    trained = analyse_flow(pruned_flow(5, training=0.2, laplace=laplace), n_boot=0)["step_split"]
    assert min(trained["training"]) > 5 * max(split["training"])  # training shows where there is some


def test_lottery_ticket_series_come_from_the_recorded_metrics(tmp_path):
    metrics = [{"accuracy": 0.9, "train_density": 1.0}] + [
        {
            "accuracy": 0.9 - n / 100,
            "train_density": 0.8**n,
            "random-mask_accuracy": 0.8 - n / 50,
            "random-reinit_accuracy": 0.85 - n / 50,
        }
        for n in range(1, 4)
    ]
    paths = write_flow_report(pruned_flow(4, metrics=metrics, training=0.05), tmp_path / "run")
    lottery = strict_json(paths["flow"])["lottery_ticket"]
    assert lottery["density"] == [1.0, 0.8, 0.8**2, 0.8**3] and lottery["dense"] == 0.9
    assert lottery["ticket"] == [m["accuracy"] for m in metrics]
    assert lottery["random-mask"] == [None] + [m["random-mask_accuracy"] for m in metrics[1:]]  # none at round 0
    assert lottery["random-reinit"] == [None] + [m["random-reinit_accuracy"] for m in metrics[1:]]
    assert paths["lottery_png"].read_bytes()[:4] == b"\x89PNG"
    assert "![lottery_ticket.png](lottery_ticket.png)" in paths["report"].read_text()
    bare = write_flow_report(pruned_flow(3), tmp_path / "bare")  # no accuracies recorded
    assert strict_json(bare["flow"])["lottery_ticket"] is None and "lottery_png" not in bare
    assert "no lottery-ticket figure" in bare["report"].read_text()


def test_checkpoints_without_a_fraction_fall_back_to_the_histogram_and_say_why(tmp_path):
    _, paths = pruned_flow(4, training=0.05, tmp_path=tmp_path)
    trace = trace_from_checkpoints(paths)  # the last round's threshold is unknown without the fraction
    written = write_flow_report(trace, tmp_path / "report")
    flow = strict_json(written["flow"])
    assert flow["observable"] == "histogram" and flow["observables"] == ["histogram", "density-profile"]
    assert set(flow["unavailable"]) == {"excess", "log-relative"}
    assert "pruning fraction" in flow["unavailable"]["excess"]
    assert "excess is unavailable" in flow["observable_fallback"]
    assert "Note: excess is unavailable" in written["report"].read_text()
    assert "note: excess is unavailable" in flow_summary(written["flow"], written["report"])
    with_fraction = analyse_flow(trace_from_checkpoints(paths, fraction=0.2), n_boot=0)
    assert with_fraction["observable"] == "excess" and with_fraction["unavailable"] == {}


def test_reports_are_reproducible_and_the_parameter_space_fit_uses_the_same_rule(tmp_path):
    trace, paths = pruned_flow(5, training=0.05, tmp_path=tmp_path)
    from rgprune.rg.checkpoints import parameter_gram

    gram = parameter_gram(paths)
    first = write_flow_report(trace, tmp_path / "a", gram=gram)["flow"].read_text()
    assert write_flow_report(trace, tmp_path / "b", gram=gram)["flow"].read_text() == first  # seeded bootstrap
    space = json.loads(first)["parameter_space"]["analysis"]
    assert space["rank_rule"] == "held-out" and space["snapshot_pairs"] == 4 and not space["exact_fit"]
    with pytest.raises(ValueError, match="Gram matrix of the same rounds"):
        analyse_flow(trace, gram=gram[:4, :4])
    still = write_flow_report(trace, tmp_path / "c", gram=np.ones((5, 5)))  # checkpoints that never move
    assert "does not move" in json.loads(still["flow"].read_text())["parameter_space"]["reason"]
    assert "**No fit:** all input snapshots are equal" in still["report"].read_text()


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(observables=("excess", "excess")), "distinct names"),
        (dict(observables=("nope",)), "distinct names"),
        (dict(observables=()), "distinct names"),
        (dict(marginal_tol=1.5), "marginal_tol"),
        (dict(n_boot=5), "n_boot"),
        (dict(level=1.0), "level"),
    ],
)
def test_analyse_flow_validates_its_options(kwargs, message):
    trace = pruned_flow(3)
    with pytest.raises(ValueError, match=message):
        analyse_flow(trace, **kwargs)
    with pytest.raises(ValueError, match="FlowTrace"):
        analyse_flow({"rounds": []})


def test_compare_reports_each_flows_fit_with_intervals(tmp_path):
    a, b = pruned_flow(6, seed=0, training=0.05), pruned_flow(6, seed=1, training=0.05)
    short = pruned_flow(3, seed=2, training=0.05)
    paths = compare_flows({"a": a, "b": b, "short": short}, tmp_path)
    result = strict_json(paths["compare"])
    assert result["observable"] == "excess" and list(result["flows"]) == ["a", "b", "short"]
    assert result["flows"]["short"]["status"] == "too short"
    for fit in result["flows"].values():
        assert all(c in (band(*bounds), "unresolved") for bounds, c in zip(fit["intervals"], fit["classes"]))
    eig, traj = result["eigenvalue_distance"], np.array(result["trajectory_distance"])
    assert np.allclose(traj, traj.T) and np.all(np.diag(traj) == 0) and traj[0, 1] > 0
    assert eig[2] == [None, None, None] and [row[2] for row in eig] == [None] * 3  # "short" resolved nothing
    text = paths["report"].read_text()
    assert "**short**: too short to resolve anything" in text and "| short | — | — | — |" in text
    _, checkpoints = pruned_flow(4, training=0.05, tmp_path=tmp_path)
    no_fraction = trace_from_checkpoints(checkpoints)  # the last round's threshold is unknown
    with pytest.raises(ValueError, match="the excess observable is undefined"):
        compare_flows({"a": a, "b": no_fraction}, tmp_path / "x")
    assert compare_flows({"a": a, "b": no_fraction}, tmp_path / "y", observable="histogram")["compare"].is_file()


# ---------------------------------------------------------------------------------------------------------
# Pruning alone as the reference, and the ξ flow, in every report
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("training", [0.0, 0.05])
def test_the_reports_first_line_says_whether_training_moved_the_flow_beyond_pruning_alone(tmp_path, training):
    """report.md's first line is the verdict with its interval: a flow of static weights is not moved beyond pruning
    alone, a trained one is; flow.json holds the numbers, the pruning-only flow's step sizes, ξ flow and DMD beside
    the run's. Guards against the wiring being dropped (no first line, no reference in flow.json) and against a
    verdict that ignores the training."""
    trace = pruned_flow(6, training=training)
    paths = write_flow_report(trace, tmp_path)
    first = paths["report"].read_text().splitlines()[0]
    flow = strict_json(paths["flow"])
    ref = flow["pruning_reference"]
    assert first == f"**{ref['sentence']}**" and "interval over 5 steps" in first
    lo, hi = ref["interval"]
    assert lo <= ref["difference"] <= hi and f"[{lo:.4f}, {hi:.4f}]" in first
    if training:
        assert first.startswith("**Training moved the flow beyond pruning alone") and lo > 0
    else:
        assert first.startswith("**Training did not move the flow beyond pruning alone") and lo <= 0
    assert not ref["exact"] and ref["observable"] == "excess"
    assert len(ref["step_sizes"]["run"]) == len(ref["step_sizes"]["pruning_only"]) == 5
    assert ref["step_sizes"]["run"] == pytest.approx(flow["step_sizes"])
    assert ref["dmd"]["pruning_only"]["snapshot_pairs"] == 5 and ref["parameter_space_pruning_only"] is not None
    tails = ref["tail_flow"]
    assert tails["run"] == flow["tail_flow"] and len(tails["pruning_only"]["xi"]) == 6
    assert tails["run"]["xi"][0] == pytest.approx(tails["pruning_only"]["xi"][0], abs=0.01)  # same round 0
    if not training:  # a pruning-only flow is its own reference: the ξ flows agree round after round
        np.testing.assert_allclose(tails["run"]["xi"], tails["pruning_only"]["xi"], atol=0.01)


def test_the_report_shows_the_xi_flow_and_pruning_alone_beside_the_run(tmp_path):
    """Gaussian weights: the ξ flow is negative and rises towards 0 (Gumbel from below), in report.md's table beside
    pruning alone's and in its own section. Guards against the sections being dropped from the report."""
    text = write_flow_report(pruned_flow(5, training=0.05), tmp_path)["report"].read_text()
    assert "## Against pruning alone" in text and "## Tail index ξ of the survivors" in text
    assert "| round | step size | step of the pruning-only flow | ξ of the run | ξ of pruning alone |" in text
    assert "- DMD of pruning alone:" in text and "- Parameter-space DMD of pruning alone" in text
    assert text.count("weibull") >= 10  # 5 rounds × (run, pruning alone), ξ ≈ −0.2 to −0.13 with tight intervals
    assert "![tail_flow.png](tail_flow.png)" in text and (tmp_path / "tail_flow.png").is_file()
    assert "- round 4: ξ = -0." in text


def test_a_trace_that_cannot_give_a_reference_says_why_on_the_first_line(tmp_path):
    """Checkpoints without a pruning fraction: nothing says how much the last round would prune, so there is no
    pruning-only flow; the first line says so, and flow.json stores null with the reason."""
    _, checkpoints = pruned_flow(4, training=0.05, tmp_path=tmp_path)
    paths = write_flow_report(trace_from_checkpoints(checkpoints), tmp_path / "r")
    flow = strict_json(paths["flow"])
    assert flow["pruning_reference"] is None and "pruning fraction" in flow["pruning_reference_reason"]
    first = paths["report"].read_text().splitlines()[0]
    assert first.startswith("**Training against pruning alone: no pruning-only reference (")
    assert all(x is None for x in flow["tail_flow"]["xi"])  # checkpoints record no threshold key
    assert "no threshold key (a trace of checkpoints)" in flow["tail_flow"]["reasons"][0]
    with pytest.raises(TypeError, match="PruningReference"):
        write_flow_report(pruned_flow(3), tmp_path / "bad", reference="no")
