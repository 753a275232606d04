"""`rgprune flow` / `rgprune compare` and the flow report every finished IMP run gets."""

import json

import pytest
import torch

from rgprune.cli import main
from rgprune.imp import IMPConfig, run_imp

TINY = IMPConfig(model="resnet20", task="digits", rounds=2, epochs=1, image_size=8, batch_size=128, lr=0.05)


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        base = tmp_path_factory.mktemp("runs")
        runs = [base / "seed0", base / "seed1"]
        for seed, out in enumerate(runs):
            run_imp(TINY.replace(seed=seed), out, progress=False)
        return runs
    finally:
        torch.set_num_threads(threads)


def test_finished_run_gets_its_flow_report(two_runs):
    run = two_runs[0]
    for name in (
        "trace.json",
        "flow.json",
        "report.md",
        "eigenvalues.png",
        "histograms.png",
        "step_sizes.png",
        "layer_density.png",
    ):
        assert (run / name).is_file(), name
    for name in ("step_split.png", "lottery_ticket.png", "observable.png"):
        assert (run / name).is_file(), name
    flow = json.loads((run / "flow.json").read_text())
    # 3 rounds are 2 snapshot pairs: too short for the held-out rank rule, in the trace's and in parameter space
    # (the Gram matrix of the round checkpoints); no exact fit is reported as a measurement
    for fit in (flow["analysis"], flow["parameter_space"]["analysis"]):
        assert fit["status"] == "too short" and fit["dmd_rank"] == 0 and fit["eigenvalues"] == []
    lottery = flow["lottery_ticket"]
    assert lottery["density"][0] == 1.0 and lottery["dense"] == lottery["ticket"][0]
    report = (run / "report.md").read_text()
    assert "| round | density after prune | step size | pruning alone | training | accuracy |" in report
    assert "too short to resolve anything" in report


def test_flow_cli_on_run_and_on_checkpoints_agree(two_runs, tmp_path, capsys):
    run = two_runs[0]
    assert main(["flow", str(run), "--out", str(tmp_path / "a")]) == 0
    printed = capsys.readouterr().out
    assert "RG flow over 3 rounds (excess observable)" in printed
    assert "DMD rank 0: too short to resolve anything (2 snapshot pairs" in printed and "pruning alone" in printed
    checkpoints = sorted(str(p) for p in run.glob("round-*/weights.safetensors"))
    assert main(["flow", *checkpoints, "--fraction", "0.2", "--out", str(tmp_path / "b")]) == 0
    recorded = json.loads((tmp_path / "a" / "trace.json").read_text())
    streamed = json.loads((tmp_path / "b" / "trace.json").read_text())
    assert [r["histogram"] for r in recorded["rounds"]] == [r["histogram"] for r in streamed["rounds"]]


def test_flow_cli_errors(two_runs, tmp_path, capsys):
    checkpoints = sorted(str(p) for p in two_runs[0].glob("round-*/weights.safetensors"))
    assert main(["flow", *checkpoints[:2], "--out", str(tmp_path / "c")]) == 2
    assert "at least 3" in capsys.readouterr().err
    assert main(["flow", *checkpoints]) == 2
    assert "--out DIR is required" in capsys.readouterr().err
    assert main(["flow", str(tmp_path / "missing")]) == 2
    assert "no such run directory" in capsys.readouterr().err


def test_compare_cli(two_runs, tmp_path, capsys):
    assert main(["compare", *map(str, two_runs), "--out", str(tmp_path / "cmp")]) == 0
    printed = capsys.readouterr().out
    assert "compare: 2 flows" in printed and "seed0 DMD rank 0: too short to resolve anything" in printed
    result = json.loads((tmp_path / "cmp" / "compare.json").read_text())
    assert result["runs"] == ["seed0", "seed1"] and result["observable"] == "excess"
    assert main(["compare", *map(str, two_runs), "--observable", "histogram", "--out", str(tmp_path / "h")]) == 0
    assert "flow distance, trajectory (histogram observable" in capsys.readouterr().out
    assert result["trajectory_distance"][0][1] == result["trajectory_distance"][1][0] > 0
    # 3 rounds resolve no direction: there are no eigenvalues to compare, and the file says null, not NaN
    assert result["eigenvalue_distance"] == [[None, None], [None, None]] and "total" not in result
    assert (tmp_path / "cmp" / "eigenvalues.png").is_file()
    assert main(["compare", str(two_runs[0]), "--out", str(tmp_path / "cmp1")]) == 2
    assert "at least two" in capsys.readouterr().err


def test_flow_and_compare_cli_reject_unusable_inputs(two_runs, tmp_path, capsys):
    """Files that are no checkpoints, a directory without rounds, a path without a trace: usage errors (exit 2)
    that say what is wrong, not tracebacks."""
    checkpoints = sorted(str(p) for p in two_runs[0].glob("round-*/weights.safetensors"))
    bogus = tmp_path / "notes.safetensors"
    bogus.write_text("notes")
    assert main(["flow", *checkpoints[:2], str(bogus), "--out", str(tmp_path / "d")]) == 2
    assert "is not a safetensors file" in capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["flow", str(empty), "--out", str(tmp_path / "e")]) == 2
    assert "without IMP round checkpoints" in capsys.readouterr().err
    assert main(["compare", str(two_runs[0]), str(empty), "--out", str(tmp_path / "f")]) == 2
    assert "no trace.json" in capsys.readouterr().err
    # a run directory is expanded into its checkpoints, in round order
    assert main(["flow", str(two_runs[0]), "--from-checkpoints", "--out", str(tmp_path / "g")]) == 0
    assert json.loads((tmp_path / "g" / "trace.json").read_text())["source"] == ", ".join(checkpoints)
    # checkpoints do not say the last round's threshold: without --fraction the rescaled observables are
    # undefined, and the report falls back to the fixed-bin histogram and says so
    assert "note: excess is unavailable" in capsys.readouterr().out


def test_every_run_report_starts_with_training_against_pruning_alone_from_its_round0_weights(two_runs):
    """A finished run's report: its first line is the verdict with its interval, the reference is exact (pruned from
    the run's own round-0 checkpoint) and per tensor, and flow.json holds both ξ flows and both step sizes. Guards
    against the run's report falling back to the trace-alone reference or dropping the comparison."""
    run = two_runs[0]
    flow = json.loads((run / "flow.json").read_text())
    ref = flow["pruning_reference"]
    assert ref["exact"] and str(run) not in json.dumps(flow)  # no path: flow.json is the same wherever the run is
    first = (run / "report.md").read_text().splitlines()[0]
    assert first == f"**{ref['sentence']}**" and "interval over 2 steps" in first
    assert len(ref["step_sizes"]["pruning_only"]) == 2 and len(ref["tail_flow"]["pruning_only"]["xi"]) == 3
    assert ref["tail_flow"]["run"]["xi"][0] == ref["tail_flow"]["pruning_only"]["xi"][0]  # the same round 0
    assert len(flow["tail_flow"]["tensors"]["names"]) == len(flow["tensor_names"]) > 1  # ξ per tensor too
    assert all(x is not None for x in flow["tail_flow"]["xi"])


def test_flow_cli_prints_the_verdict_first_and_the_xi_flow_beside_pruning_alone(two_runs, tmp_path, capsys):
    """`rgprune flow` on a run and on its checkpoints: the printed summary starts with the verdict, shows the
    pruning-only flow's steps, both ξ flows and pruning alone's DMD; from checkpoints the reference is exact too
    (the first checkpoint's weights). Guards against the CLI losing the wiring."""
    run = two_runs[0]
    assert main(["flow", str(run), "--out", str(tmp_path / "a")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("Training ") and "pruning alone" in lines[0] and "interval over 2 steps" in lines[0]
    text = "\n".join(lines)
    for label in ("pruning-only flow", "ξ pruning alone", "pruning alone, excess:", "pruning alone, parameter space:"):
        assert label in text, label
    checkpoints = sorted(str(p) for p in run.glob("round-*/weights.safetensors"))
    assert main(["flow", *checkpoints, "--fraction", "0.2", "--out", str(tmp_path / "b")]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("Training ") and "note:" not in printed
    flow = json.loads((tmp_path / "b" / "flow.json").read_text())
    assert flow["pruning_reference"]["exact"]
    recorded = json.loads((tmp_path / "a" / "flow.json").read_text())["pruning_reference"]
    # the same round-0 weights, pruned on the same schedule: the same pruning-only flow
    assert flow["pruning_reference"]["tail_flow"]["pruning_only"]["xi"][:2] == pytest.approx(
        recorded["tail_flow"]["pruning_only"]["xi"][:2], abs=1e-6
    )


def test_the_demo_prints_the_verdict_and_the_xi_flow(two_runs, tmp_path, monkeypatch, capsys):
    """`rgprune demo` (make demo) ends with the run's flow summary: its first line the verdict against pruning alone
    from the run's round-0 weights, then the ξ flows. The IMP run itself is stood in for by a finished run (the
    report every run gets is tested above), so this checks the demo's own wiring in seconds."""
    import shutil

    import rgprune.imp

    class Finished:
        def table(self):
            return "(accuracy table)"

    def fake_run_imp(config, out, progress=True):
        shutil.copytree(two_runs[0], out)
        return Finished()

    monkeypatch.setattr(rgprune.imp, "run_imp", fake_run_imp)
    assert main(["demo", "--out", str(tmp_path / "demo"), "--quiet"]) == 0
    printed = capsys.readouterr().out
    flow = json.loads((tmp_path / "demo" / "flow.json").read_text())
    assert flow["pruning_reference"]["exact"]
    summary = printed.split("run directory: ")[1].splitlines()[1:]
    assert summary[0] == flow["pruning_reference"]["sentence"]
    assert any(line.strip().startswith("ξ pruning alone") for line in summary)
