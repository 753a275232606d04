"""The outcome of an IMP run: ``RoundResult`` per round, ``IMPResult`` per run, ``load_result`` from disk."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from rgprune.imp.config import IMPConfig
from rgprune.imp.rundir import RunDir

__all__ = ["IMPResult", "RoundResult", "load_result"]


@dataclass
class RoundResult:
    """One complete round: the ticket's accuracy at its density, and the baselines' accuracies."""

    round: int
    density: float
    accuracy: float
    baselines: dict[str, float] = field(default_factory=dict)
    threshold: float | None = None
    seconds: float = 0.0
    layer_densities: dict[str, float] = field(default_factory=dict)

    @classmethod
    def from_metrics(cls, m: Mapping) -> RoundResult:
        """From a round's metrics (as ``run_imp`` writes them into the run directory)."""
        th = m.get("threshold")
        return cls(
            round=m["round"],
            density=m["density"],
            accuracy=m["accuracy"],
            baselines={k: v["accuracy"] for k, v in m.get("baselines", {}).items()},
            threshold=th.get("magnitude") if th else None,
            seconds=m.get("timings", {}).get("total_s", 0.0),
            layer_densities=dict(m.get("layer_densities", {})),
        )


@dataclass
class IMPResult:
    """The outcome of ``run_imp``: the config, the run directory and one ``RoundResult`` per round.

    ``resumed_from`` is the last complete round found in ``out_dir`` when the call started (None for a
    fresh run). ``table()`` formats the accuracy/density table."""

    config: IMPConfig
    out_dir: str
    rounds: list[RoundResult]
    resumed_from: int | None = None

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def complete(self) -> bool:
        return len(self.rounds) == self.config.rounds + 1

    @property
    def densities(self) -> list[float]:
        return [r.density for r in self.rounds]

    @property
    def accuracies(self) -> list[float]:
        return [r.accuracy for r in self.rounds]

    def baseline_accuracies(self, name: str) -> list[float | None]:
        return [r.baselines.get(name) for r in self.rounds]

    def table(self) -> str:
        """The accuracy/density table, one line per round."""
        names = list(self.config.baselines)
        head = f"{'round':>5} {'density':>8} {'accuracy':>9}" + "".join(f" {n:>13}" for n in names) + f" {'time':>8}"
        lines = [head]
        for r in self.rounds:
            cells = "".join(f" {r.baselines[n]:>13.4f}" if n in r.baselines else f" {'-':>13}" for n in names)
            lines.append(f"{r.round:>5} {r.density:>8.4f} {r.accuracy:>9.4f}{cells} {r.seconds:>7.1f}s")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "out_dir": self.out_dir,
            "config": self.config.to_dict(),
            "complete": self.complete,
            "resumed_from": self.resumed_from,
            "rounds": [dataclasses.asdict(r) for r in self.rounds],
        }

    def __str__(self) -> str:
        return f"IMP run {self.name} in {self.out_dir}\n{self.table()}"


def load_result(out_dir: str | os.PathLike) -> IMPResult:
    """The ``IMPResult`` of the complete rounds in a run directory, without running anything.

    Raises ``RunNotFoundError`` (a FileNotFoundError) when ``out_dir`` holds no IMP run."""
    run = RunDir(out_dir)
    config = run.read_config()
    last = run.complete_rounds(config.rounds)
    rounds = [RoundResult.from_metrics(run.read_round_metrics(n)) for n in range(last + 1)]
    return IMPResult(config, str(run.path), rounds, last if last >= 0 else None)
