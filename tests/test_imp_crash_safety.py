"""Crash safety of the real writer (``RunDir`` through ``rgprune._io.atomic_write``): every write of an IMP run
fails in turn, and a SIGKILL lands at every write (its temp file complete, not yet renamed into place); the round
being written is never taken as complete, and resuming gives the uninterrupted run bit for bit.

Planted bugs these tests were seen to fail on (one at a time):

- ``_finish_round`` writing round n's ``metrics.json`` (the completion marker) before its weights and masks: a
  failed or killed weights write leaves a round reported complete without weights, which resume trusts;
- ``RunDir.complete_rounds`` taking a round folder holding ``weights.safetensors`` as complete;
- ``RunDir._clean_partial`` not removing the temp files of atomic writes (a killed write's stays forever);
- ``atomic_write`` leaving its temp file behind when the write fails;
- ``_run_rounds`` skipping the summary files on a resume with nothing left to train (a failed write of the last
  round's summary, trace or flow report then stays failed);
- ``atomic_write`` writing in place instead of temp file + rename (a killed write leaves a half-written file);
- resume restarting from the round before the last complete one's checkpoint (θ_{n-1} instead of θ_n).

Tiny sizes: a 6-channel conv net on 40 random 6x6 images, two pruning rounds (well under a second a run); a
SIGKILL is delivered to a forked copy of the test process, so no interpreter starts per kill. The file takes about
30 s of CPU (about 65 s on the shared 2-core machine). One CPU thread, as every IMP test: results are
bit-identical only at a fixed thread count. ``make test-slow`` also kills ``rgprune imp`` itself at every write.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from run_helpers import (
    FAIL_OR_KILL,
    TINY_ARGS,
    TinyConvNet,
    WriteFaults,
    assert_same_run,
    blobs,
    kill_at,
    killed_at,
    without_timings,
)

from rgprune.imp import BASELINES, IMPConfig, RunDir, load_result, run_imp

ROUNDS = 2
CONFIG = IMPConfig(
    model="given:tinyconv",
    task="given-vision:blobs",
    rounds=ROUNDS,
    epochs=1,
    batch_size=8,
    rewind_step=2,
    baselines=BASELINES,
)
ROUND_FILES = ("weights.safetensors", "masks.safetensors", "observables.json", "metrics.json")


def run_layout(rounds: int) -> list[str]:
    """The writes of an uninterrupted run of ``rounds`` pruning rounds, in order, up to its flow report (the
    order rgprune.imp.rundir documents: config and inputs first, θ_init and θ_k once round 0 has trained, each
    round's files with its completion marker last, then the summary and trace rewritten)."""
    writes = ["config.json", "inputs.json", "init.safetensors", "rewind.safetensors"]
    for n in range(rounds + 1):
        writes += [f"round-{n:02d}/{name}" for name in ROUND_FILES] + ["metrics.json", "trace.json"]
    return writes


def numbered(writes: list[str]) -> list[tuple[str, int]]:
    """(file, i): the i-th write of that file."""
    return [(name, writes[:index].count(name)) for index, name in enumerate(writes)]


LAYOUT = run_layout(ROUNDS)
# the flow report of the complete run: trace.json once more, flow.json, report.md (and figures)
FLOW_REPORT_POINTS = [("trace.json", ROUNDS + 1), ("flow.json", 0), ("report.md", 0)]
POINTS = numbered(LAYOUT) + FLOW_REPORT_POINTS


def point_id(point: tuple[str, int]) -> str:
    name, i = point
    return name if i == 0 else f"{name}#{i}"


def last_complete_before(point: tuple[str, int]) -> int:
    """The last round n such that rounds 0..n are complete when the writes before ``point`` (in the documented
    layout) are the only ones done: all four files of each round, θ_init and θ_k written."""
    done = set(LAYOUT[: POINTS.index(point)]) if point in POINTS[: len(LAYOUT)] else set(LAYOUT)
    last = -1
    while (
        last < ROUNDS
        and {"init.safetensors", "rewind.safetensors"} <= done
        and all(f"round-{last + 1:02d}/{name}" in done for name in ROUND_FILES)
    ):
        last += 1
    return last


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


@pytest.fixture(scope="module", autouse=True)
def figures_unrendered():
    """The flow report's figures are still written, through atomic_write, but neither laid out nor rendered: that is
    most of a tiny run's time, and what they draw is rgprune.rg.plots' concern (tests/test_rg_plots.py)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    def print_png(self, path, *args, **kwargs):
        with open(path, "wb") as f:
            f.write(b"\x89PNG unrendered")

    real = FigureCanvasAgg.print_png, Figure.tight_layout
    FigureCanvasAgg.print_png, Figure.tight_layout = print_png, lambda self, *args, **kwargs: None
    yield
    FigureCanvasAgg.print_png, Figure.tight_layout = real


def run(out: Path, config: IMPConfig = CONFIG):
    return run_imp(config, out, progress=False, model_fn=TinyConvNet, train=blobs(40, 0), test=blobs(12, 1))


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> tuple[Path, list[str]]:
    """An uninterrupted run (its directory is named "run", as the faulted ones: the report's title) and the
    writes it made, in order."""
    out = tmp_path_factory.mktemp("reference") / "run"
    with WriteFaults(out) as faults:
        assert run(out).complete
    return out, faults.writes


def test_an_uninterrupted_run_writes_the_documented_layout_atomically(reference):
    """Guards against a round's completion marker written before its other files (metrics.json first: a failed
    weights write would leave a round reported complete), and against a write that bypasses atomic_write."""
    out, writes = reference
    assert writes[: len(LAYOUT)] == LAYOUT
    report = writes[len(LAYOUT) :]
    assert {"trace.json", "flow.json", "report.md"} <= set(report) and all("/" not in name for name in report)
    on_disk = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file() and p.name != ".lock"}
    # every file of the run came through a temp file renamed into place, but run.log: appended, and no part of the
    # result (resume never reads it; the comparisons of runs leave it out)
    assert "run.log" in on_disk and on_disk - {"run.log"} == set(writes) and "run.log" not in writes


def interrupted_by(action: str, point: tuple[str, int], out: Path, config: IMPConfig = CONFIG) -> None:
    """Run until the write ``point``, where ``action`` happens: "raise" (the write fails, in this process) or
    "kill" (SIGKILL of a forked copy of this process, at the rename of that write's complete temp file)."""
    if action == "raise":
        with WriteFaults(out, at=point, action="raise") as faults:
            with pytest.raises(OSError, match="injected at write"):
                run(out, config)
        assert faults.fired
        return
    killed_at(out, point, lambda: run(out, config))


def assert_resumes_to_the_uninterrupted_run(out: Path, ref: Path, last: int, config: IMPConfig = CONFIG) -> None:
    resumed = run(out, config)
    assert resumed.complete and resumed.resumed_from == (last if last >= 0 else None)
    assert_same_run(out, ref, ROUNDS)
    summary, ref_summary = (json.loads((d / "metrics.json").read_text()) for d in (out, ref))
    assert summary["complete"] is True
    assert [without_timings(m) for m in summary["rounds"]] == [without_timings(m) for m in ref_summary["rounds"]]
    trace, ref_trace = (json.loads((d / "trace.json").read_text()) for d in (out, ref))
    assert trace["rounds"] == ref_trace["rounds"]
    assert (out / "flow.json").read_bytes() == (ref / "flow.json").read_bytes()
    report, ref_report = ((d / "report.md").read_text().replace(str(d), "RUN") for d in (out, ref))  # its source
    assert report == ref_report
    files = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()}
    assert files == {p.relative_to(ref).as_posix() for p in ref.rglob("*") if p.is_file()}  # no leftovers


@pytest.mark.parametrize("action", FAIL_OR_KILL)
@pytest.mark.parametrize("point", POINTS, ids=[point_id(p) for p in POINTS])
def test_a_failed_or_killed_write_leaves_no_round_complete_that_resume_trusts(point, action, tmp_path, reference):
    """Each write of a run fails in turn, or the process is SIGKILLed at it: the rounds reported complete are
    exactly those whose four files (and θ_init, θ_k) were all written before it; a failed write leaves no temp file,
    a killed one leaves only its own; resuming gives the uninterrupted run bit for bit (rounds, summary, trace,
    flow report). Guards against the planted bugs of the module docstring."""
    ref, _ = reference
    out = tmp_path / "run"
    interrupted_by(action, point, out)

    last = last_complete_before(point)
    name, _ = point
    temp_files = [p.relative_to(out).as_posix() for p in out.rglob(".tmp-*")]
    if action == "raise":
        assert temp_files == []
    else:  # the killed write's complete temp file, beside its destination, and nothing else
        assert len(temp_files) == 1 and temp_files[0].endswith(Path(name).name), temp_files
        assert Path(temp_files[0]).parent == Path(name).parent
    assert (out / "config.json").is_file() == (point != ("config.json", 0))
    if point != ("config.json", 0):
        assert RunDir(out).complete_rounds(ROUNDS) == last
        assert [r.round for r in load_result(out).rounds] == list(range(last + 1))
    assert_resumes_to_the_uninterrupted_run(out, ref, last)


# rewind_step = 0: θ_k is θ_init, saved once (init.safetensors, marked as the rewind point too; no rewind.safetensors)
CONFIG_K0 = CONFIG.replace(rewind_step=0)
K0_POINTS = [("init.safetensors", 0), ("round-00/metrics.json", 0), ("round-01/weights.safetensors", 0)]


@pytest.fixture(scope="module")
def reference_k0(tmp_path_factory) -> tuple[Path, list[str]]:
    out = tmp_path_factory.mktemp("reference-k0") / "run"
    with WriteFaults(out) as faults:
        assert run(out, CONFIG_K0).complete
    return out, faults.writes


def test_rewind_step_0_saves_init_once(reference_k0):
    """Guards against θ_init written twice (a full copy as rewind.safetensors) when it is the rewind point."""
    out, writes = reference_k0
    layout = [name for name in LAYOUT if name != "rewind.safetensors"]
    assert writes[: len(layout)] == layout and not (out / "rewind.safetensors").exists()
    run_dir = RunDir(out)
    assert run_dir.rewind_is_init() and run_dir.complete_rounds(ROUNDS) == ROUNDS
    init, rewind = run_dir.load_init(), run_dir.load_rewind()
    assert init.keys() == rewind.keys() and all(torch.equal(init[k], rewind[k]) for k in init)


@pytest.mark.parametrize("action", FAIL_OR_KILL)
@pytest.mark.parametrize("point", K0_POINTS, ids=[point_id(p) for p in K0_POINTS])
def test_rewind_step_0_run_interrupted_resumes_to_the_uninterrupted_run(point, action, tmp_path, reference_k0):
    """A run with rewind_step 0 failed or killed at θ_init's write, at round 0's completion marker, or in round 1:
    no round is trusted without θ_init (which is θ_k), and resuming (θ_k read from init.safetensors) gives the
    uninterrupted run bit for bit. Guards against load_rewind reading only rewind.safetensors."""
    ref, _ = reference_k0
    out = tmp_path / "run"
    interrupted_by(action, point, out, CONFIG_K0)
    last = {"init.safetensors": -1, "round-00/metrics.json": -1, "round-01/weights.safetensors": 0}[point[0]]
    assert RunDir(out).complete_rounds(ROUNDS) == last
    assert_resumes_to_the_uninterrupted_run(out, ref, last, CONFIG_K0)


def test_an_old_rewind_step_0_run_with_both_files_loads_and_resumes(reference_k0, tmp_path):
    """A run made before θ_k = θ_init was saved once (init.safetensors unmarked, rewind.safetensors a copy of it),
    interrupted after round 0: it reads as before, and resumes to the uninterrupted run."""
    import shutil

    ref, _ = reference_k0
    out = tmp_path / "run"
    shutil.copytree(ref, out)
    old = RunDir(out)
    init = old.load_init()
    RunDir.save_state(old.init_path, init)  # the old layout: no marker, a second copy
    RunDir.save_state(old.rewind_path, init)
    for n in (1, 2):
        shutil.rmtree(old.round_dir(n))
    assert not old.rewind_is_init() and old.has_rewind() and old.complete_rounds(ROUNDS) == 0
    assert all(torch.equal(init[k], v) for k, v in old.load_rewind().items())
    resumed = run(out, CONFIG_K0)
    assert resumed.complete and resumed.resumed_from == 0
    assert_same_run(out, ref, ROUNDS)
    assert old.rewind_path.is_file()  # left as it was


@pytest.fixture(scope="module")
def cli_reference(tmp_path_factory) -> Path:
    """An uninterrupted ``rgprune imp`` run of TINY_ARGS."""
    from rgprune.cli import main

    out = tmp_path_factory.mktemp("cli-reference") / "run"
    assert main([*TINY_ARGS, "--out", str(out)]) == 0
    return out


@pytest.mark.slow
@pytest.mark.parametrize("point", numbered(LAYOUT), ids=[point_id(p) for p in numbered(LAYOUT)])
def test_rgprune_imp_killed_at_every_write_resumes_to_the_uninterrupted_run(point, tmp_path, cli_reference):
    """``rgprune imp`` (ResNet-20 on the digits) in a fresh interpreter, SIGKILLed at each write in turn, then
    resumed from the command line: the result of an uninterrupted run (about 20 s a point). The same planted bugs
    as above, on the command users run (seen failing on the completion marker written first)."""
    from rgprune.cli import main

    out = tmp_path / "run"
    kill_at(TINY_ARGS, out, point)
    last = last_complete_before(point)
    if point != ("config.json", 0):
        assert RunDir(out).complete_rounds(ROUNDS) == last
    assert main([*TINY_ARGS, "--out", str(out)]) == 0
    assert load_result(out).complete
    assert_same_run(out, cli_reference, ROUNDS)
    log = (out / "run.log").read_text().splitlines()  # continued, not replaced: the resume says so, once
    assert sum("resumed at round" in line for line in log) == (last >= 0)
    assert log[-1].endswith(f"report: {out / 'report.md'}")
