"""``RunProgress``: what an IMP run tells its user while it runs, on a stream and in the run's ``run.log``.

Lines, whether or not the stream is a terminal (a long run written to a file must not be silent for hours):

* a start line (``started NAME: ...``) or, on a resume, ``resumed at round N (rounds 0-M complete)`` (or
  ``resumed after round N: nothing left to train, ...``);
* one line per epoch of every training of a round (the ticket's, then each baseline's)::

      round 1 random-mask epoch 2/4  loss 0.4123  train acc 0.8750  3.1s  ETA round ~9.4s, run ~1m02s

  ``loss`` and ``train acc``: the epoch's mean training loss and training accuracy (counted on its batches as
  they were trained, in training mode: no extra pass over any data); the epoch's seconds; the ETA of the round
  and of the run, estimated from the mean time per optimizer step so far in this round (the mean epoch time)
  times the steps left: the rest of this training, the round's other trainings (its baselines) and every later
  round's. Approximate (``~``): evaluation, pruning and checkpoints are not counted, and round 0, dense, may
  run at another speed than the pruned rounds;
* one line per round (density, test accuracy, baselines' accuracies, seconds, and the run's ETA from this
  round's seconds per step).

On a terminal (stderr, where tqdm draws) the bars of ``rgprune.train`` are drawn as well, and the lines are
written through ``tqdm.write`` so that they do not break the bars. Every line also goes to ``run.log``
(``RunDir.append_log``: appended, each line prefixed with its UTC time), once the run directory is prepared,
whether or not anything is printed; a failing log write warns once and the run goes on.
"""

from __future__ import annotations

import math
import warnings
from typing import TextIO

from rgprune.imp.config import IMPConfig
from rgprune.imp.rundir import RunDir
from rgprune.train import EpochStats, progress_enabled

__all__ = ["RunProgress", "duration"]


def duration(seconds: float) -> str:
    """``12.3s``, ``4m05s`` or ``2h03m``."""
    if not math.isfinite(seconds):
        return "?"
    seconds = max(seconds, 0.0)
    if seconds < 60:
        return f"{seconds:.1f}s"
    whole = round(seconds)
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    minutes = round(seconds / 60)
    return f"{minutes // 60}h{minutes % 60:02d}m"


class RunProgress:
    """The lines of one IMP run (module docstring): printed on ``stream`` (None: nothing printed) and appended to
    ``run.log`` once ``attach(run_dir)`` is called. ``total_steps``: the optimizer steps of one full training
    (``RoundTrainer.total_steps``), for the ETA."""

    def __init__(self, config: IMPConfig, total_steps: int, stream: TextIO | None):
        self.config, self.total_steps, self.stream = config, total_steps, stream
        self.bars = stream is not None and progress_enabled(True)
        self.run_dir: RunDir | None = None
        self.round = 0
        self.round_steps_done, self.round_seconds = 0, 0.0

    # ---- output ----------------------------------------------------------------------------------------------
    def attach(self, run_dir: RunDir) -> None:
        """Start appending to ``run_dir``'s run.log (after ``RunDir.prepare``: a refused run writes nothing)."""
        self.run_dir = run_dir

    def log(self, text: str) -> None:
        """``text`` to run.log only."""
        if self.run_dir is None:
            return
        try:
            self.run_dir.append_log(text.splitlines() or [""])
        except OSError as exc:
            warnings.warn(
                f"cannot write {self.run_dir.log_path} ({exc}); the run goes on without its log",
                RuntimeWarning,
                stacklevel=3,
            )
            self.run_dir = None

    def line(self, text: str) -> None:
        """``text`` on the stream (unless quiet) and in run.log."""
        if self.stream is not None:
            if self.bars:
                from tqdm.auto import tqdm

                tqdm.write(text, file=self.stream)
            else:
                print(text, file=self.stream, flush=True)
        self.log(text)

    # ---- the ETA -----------------------------------------------------------------------------------------------
    def round_steps(self, n: int) -> int:
        """The optimizer steps round n trains: round 0 the whole schedule once; a pruning round its ticket and
        each baseline from the rewind step."""
        if n == 0:
            return self.total_steps
        return (1 + len(self.config.baselines)) * (self.total_steps - self.config.rewind_step)

    def steps_after(self, n: int) -> int:
        """The optimizer steps of the rounds after round n."""
        return sum(self.round_steps(m) for m in range(n + 1, self.config.rounds + 1))

    # ---- events ------------------------------------------------------------------------------------------------
    def started(self, name: str, steps_per_epoch: int, device) -> None:
        c = self.config
        self.line(
            f"started {name}: {c.model} on {c.task}, rounds 0-{c.rounds}, {c.epochs} epoch(s) of {steps_per_epoch} "
            f"steps per training, on {device}"
        )

    def resumed(self, last: int) -> None:
        if last >= self.config.rounds:
            self.line(f"resumed after round {last}: nothing left to train, all {last + 1} rounds are complete")
        else:
            complete = f"rounds 0-{last}" if last else "round 0"
            self.line(f"resumed at round {last + 1} ({complete} complete)")

    def start_round(self, n: int) -> None:
        self.round, self.round_steps_done, self.round_seconds = n, 0, 0.0

    def epoch(self, desc: str, e: EpochStats) -> None:
        """One epoch of one of the round's trainings (``desc``: ``round 1``, ``round 1 random-mask``)."""
        self.round_steps_done += e.steps
        self.round_seconds += e.seconds
        per_step = self.round_seconds / self.round_steps_done if self.round_steps_done else math.nan
        round_left = max(self.round_steps(self.round) - self.round_steps_done, 0)
        run_left = round_left + self.steps_after(self.round)
        self.line(
            f"{desc} epoch {e.epoch + 1}/{e.epochs}  loss {e.loss:.4f}  train acc {e.accuracy:.4f}  "
            f"{duration(e.seconds)}  ETA round ~{duration(round_left * per_step)}, run ~{duration(run_left * per_step)}"
        )

    def round_done(self, metrics: dict) -> None:
        """Round n's line, from its metrics."""
        c, m = self.config, metrics
        parts = [f"round {m['round']}/{c.rounds}", f"density {m['density']:.4f}", f"accuracy {m['accuracy']:.4f}"]
        parts += [f"{name} {b['accuracy']:.4f}" for name, b in m.get("baselines", {}).items()]
        total = m["timings"]["total_s"]
        parts.append(duration(total))
        left = self.steps_after(m["round"])
        if left:
            steps = self.round_steps(m["round"])
            parts.append(f"ETA run ~{duration(left * total / steps) if steps else '?'}")
        self.line("  ".join(parts))

    def stopped(self, n: int, exc: BaseException) -> None:
        """A round that did not finish (an error, or the user's interrupt): said in run.log (the error itself is
        the caller's to report)."""
        reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        self.log(f"stopped in round {n}: {reason}")
