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
    assert "flow distance (histogram observable)" in capsys.readouterr().out
    assert result["total"][0][1] == result["total"][1][0] > 0
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
