"""What a benchmark run measures and how long: one object passed from the command line to every section."""

from __future__ import annotations

from dataclasses import dataclass, field

from rgprune.benchmark.methods import FRACTION, ROUNDS

SECTIONS = ("rounds", "memory", "trace", "training_step")


@dataclass
class Settings:
    """``reps`` repetitions per method (``slow_reps`` for slow methods: torch.prune and the reference on the
    CPU, and any method whose first run exceeds ``slow_after`` seconds); ``methods``: the methods asked for
    (None: every default method); ``skip``: sections (``SECTIONS``) not measured; ``rounds``: the IMP rounds
    timed, each pruning ``fraction`` of the survivors; ``dtype``: the weights' dtype (None: the model's);
    ``quick``: tiny weight sets; ``threads``: torch threads (None: torch's default); ``progress``: a progress
    bar over each round's repetitions (on a terminal); ``bandwidth_bytes``: the buffer the copy bandwidth is
    measured on (None: 256 MiB on the CPU, 1 GiB on a GPU, 64 MiB when ``quick``); ``command``: the command
    line, recorded in the JSON."""

    reps: int = 7
    slow_reps: int = 2
    slow_after: float = 10.0
    methods: list | None = None
    skip: list = field(default_factory=list)
    rounds: tuple = ROUNDS
    fraction: float = FRACTION
    dtype: str | None = None
    quick: bool = False
    threads: int | None = None
    progress: bool = False
    bandwidth_bytes: int | None = None
    command: str = ""
