"""Runs you can watch (issue 25, point 4): ``rgprune imp`` prints a line per epoch (loss, training accuracy, time,
approximate ETA of the round and of the run) and per round also when stdout is not a terminal, appends the same
lines to ``run.log`` in the run directory (a resume continues it), ends with the report's path, and prints nothing
with ``--quiet`` (run.log still written), which changes neither the run's name nor its config hash.

Planted bugs these tests were seen to fail on (one at a time):

- per-epoch lines printed only when bars are drawn (a terminal): ``test_a_run_written_to_a_file_prints_...``;
- run.log opened with ``"w"`` instead of ``"a"`` (a resume loses the interrupted run's lines):
  ``test_a_resumed_run_appends_to_its_log``;
- ``--quiet`` also skipping run.log: ``test_quiet_prints_nothing_and_still_writes_run_log``;
- the default run directory of ``--quiet`` suffixed ``-quiet``:
  ``test_quiet_changes_neither_the_run_name_nor_its_hash``;
- the ETA counting the ticket's training only, not the baselines': ``test_the_eta_counts_every_training_left``.
- bars (tqdm.write) whenever something is printed, terminal or not: ``test_bars_only_on_a_terminal``;
- ``_run_rounds`` not logging the error that stopped a round:
  ``test_a_failed_round_says_so_in_the_log_and_the_resume_continues_it``.

Tiny sizes: TINY_ARGS (ResNet-20 on the 8x8 digits, two rounds of one epoch, both baselines), one CPU thread.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from run_helpers import TINY_ARGS

from rgprune.cli import main
from rgprune.imp import BASELINES, IMPConfig, load_result
from rgprune.imp.progress import RunProgress, duration
from rgprune.train import EpochStats

LOUD = [a for a in TINY_ARGS if a != "--quiet"]
EPOCH_LINE = re.compile(
    r"^round (\d+)( dense| random-reinit| random-mask)? epoch 1/1  loss \d+\.\d{4}  train acc [01]\.\d{4}  "
    r"\d[\dhms.]*s?  ETA round ~\S+, run ~\S+$"
)
STAMP = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ  ")
#: the trainings of a TINY run, in order: round 0 dense, then each round's ticket and its two baselines
TRAININGS = [("0", " dense")] + [(n, b) for n in ("1", "2") for b in ("", " random-reinit", " random-mask")]


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def log_lines(out: Path) -> list[str]:
    """run.log's lines less their time stamps (each line must have one)."""
    lines = (out / "run.log").read_text().splitlines()
    assert all(STAMP.match(line) for line in lines), lines
    return [STAMP.sub("", line) for line in lines]


def epoch_lines(lines: list[str]) -> list[tuple[str, str]]:
    return [(m[1], m[2] or "") for m in map(EPOCH_LINE.match, lines) if m]


@pytest.fixture(scope="module")
def loud_run(tmp_path_factory, one_thread) -> tuple[Path, str]:
    """A TINY run without --quiet, its stdout captured (not a terminal): (run directory, what it printed)."""
    import contextlib
    import io

    out = tmp_path_factory.mktemp("progress") / "run"
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert main([*LOUD, "--out", str(out)]) == 0
    assert not printed.isatty()
    return out, printed.getvalue()


def test_a_run_written_to_a_file_prints_a_line_per_epoch_and_round_and_ends_with_the_report(loud_run):
    out, printed = loud_run
    lines = printed.splitlines()
    assert epoch_lines(lines) == TRAININGS  # every training's epoch, in order, with loss, accuracy, time and ETA
    rounds = [line for line in lines if re.match(r"^round \d/2  density ", line)]
    assert [r.split()[1] for r in rounds] == ["0/2", "1/2", "2/2"]
    assert "ETA run ~" in rounds[0] and "ETA run" not in rounds[-1]  # nothing left after the last round
    assert lines[-1] == f"report: {out / 'report.md'}" and (out / "report.md").is_file()
    assert load_result(out).table() in printed
    assert not any("\r" in line for line in lines)  # no progress bar off a terminal


def test_run_log_holds_the_printed_lines(loud_run):
    out, printed = loud_run
    printed_lines = [line for line in printed.splitlines() if line and not line.startswith("IMP ")]  # the header
    assert log_lines(out) == printed_lines  # comes before the run directory exists
    assert log_lines(out)[0].startswith("started resnet20-digits-")


def test_quiet_prints_nothing_and_still_writes_run_log(tmp_path, capsys):
    out = tmp_path / "run"
    assert main([*TINY_ARGS, "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""
    lines = log_lines(out)
    assert epoch_lines(lines) == TRAININGS and lines[-1] == f"report: {out / 'report.md'}"


def test_a_resumed_run_appends_to_its_log(loud_run, tmp_path, capsys):
    """A run whose last round was interrupted (its folder gone, as prepare() leaves it) resumes: run.log keeps the
    interrupted run's lines and continues after them."""
    ref, _ = loud_run
    out = tmp_path / "run"
    shutil.copytree(ref, out)
    shutil.rmtree(out / "round-02")
    before = log_lines(out)
    assert main([*LOUD, "--out", str(out)]) == 0
    printed = capsys.readouterr().out.splitlines()
    after = log_lines(out)
    assert after[: len(before)] == before
    added = after[len(before) :]
    assert added[0] == "resumed at round 2 (rounds 0-1 complete)" and added[0] in printed
    assert epoch_lines(added) == TRAININGS[-3:]  # round 2 only
    assert added[-1] == printed[-1] == f"report: {out / 'report.md'}"


def test_quiet_changes_neither_the_run_name_nor_its_hash(tmp_path, monkeypatch):
    """--quiet is how the run talks, not what it computes: the same config, name and hash, hence the same default
    run directory (a resume with or without it continues the same run)."""
    import rgprune.imp

    seen = []

    class Finished:
        def table(self):
            return "(table)"

    def fake_run_imp(config, out_dir, progress=True, **kwargs):
        seen.append((config, config.name, config.digest, str(out_dir)))
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        return Finished()

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(rgprune.imp, "run_imp", fake_run_imp)
    assert main(LOUD) == 0 and main(TINY_ARGS) == 0
    assert seen[0] == seen[1] and seen[0][3] == str(Path("runs") / seen[0][1])


def test_the_eta_counts_every_training_left(capsys):
    """Round 1 of 2 trains the ticket and two baselines from the rewind step 2 of 10 steps (8 steps each, 24 in
    all; round 2 as many): after the ticket's first 3 steps in 3 s, 21 steps are left in the round and 45 in the
    run, at 1 s a step."""
    config = IMPConfig(model="resnet20", task="digits", rounds=2, epochs=2, rewind_step=2, baselines=BASELINES)
    progress = RunProgress(config, total_steps=10, stream=None)
    assert [progress.round_steps(n) for n in (0, 1, 2)] == [10, 24, 24]
    progress.start_round(1)
    lines = []
    progress.line = lines.append
    progress.epoch("round 1", EpochStats(0, 2, 3, 5, 10, 0.5, 0.75, 3.0))
    assert lines == ["round 1 epoch 1/2  loss 0.5000  train acc 0.7500  3.0s  ETA round ~21.0s, run ~45.0s"]
    assert [duration(s) for s in (12.34, 245, 7380, float("nan"))] == ["12.3s", "4m05s", "2h03m", "?"]


def test_bars_only_on_a_terminal(monkeypatch):
    """tqdm draws on stderr: bars (and the lines through tqdm.write) only when it is a terminal and something is
    printed at all; otherwise plain lines."""
    import io
    import sys

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    config = IMPConfig(model="resnet20", task="digits")
    monkeypatch.setattr(sys, "stderr", Terminal())
    shown = io.StringIO()
    progress = RunProgress(config, 10, shown)
    assert progress.bars and not RunProgress(config, 10, None).bars
    progress.line("a line")
    assert shown.getvalue() == "a line\n"
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    assert not RunProgress(config, 10, io.StringIO()).bars


def test_a_failed_round_says_so_in_the_log_and_the_resume_continues_it(tmp_path):
    """A write that fails in round 1 (ENOSPC, injected): run.log ends with the reason; the rerun appends after it
    (the Python API with progress=False prints nothing and still logs)."""
    from run_helpers import TinyConvNet, WriteFaults, blobs

    from rgprune.imp import run_imp

    config = IMPConfig(
        model="given:tinyconv", task="given-vision:blobs", rounds=2, epochs=1, batch_size=8, rewind_step=2
    )
    out = tmp_path / "run"

    def run():
        return run_imp(config, out, progress=False, model_fn=TinyConvNet, train=blobs(40, 0), test=blobs(12, 1))

    with WriteFaults(out, at=("round-01/metrics.json", 0)), pytest.raises(OSError, match="injected"):
        run()
    before = log_lines(out)
    assert before[-1].startswith("stopped in round 1: OSError: [Errno 28] No space left on device")
    assert run().complete
    after = log_lines(out)
    assert after[: len(before)] == before and after[len(before)] == "resumed at round 1 (round 0 complete)"
