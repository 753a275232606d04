"""What a benchmark run measures and how long: one object passed from the command line to every section."""
from __future__ import annotations

from dataclasses import dataclass, field

SECTIONS = ("rounds", "memory", "trace", "training_step")


@dataclass
class Settings:
    """``reps`` repetitions per method (``slow_reps`` for slow methods: torch.prune and the reference on the
    CPU, and any method whose first run exceeds ``slow_after`` seconds); ``methods``: the methods asked for
    (None: every default method); ``skip``: sections (``SECTIONS``) not measured; ``quick``: tiny weight sets;
    ``threads``: torch threads (None: torch's default); ``command``: the command line, recorded in the JSON."""

    reps: int = 7
    slow_reps: int = 2
    slow_after: float = 10.0
    methods: list | None = None
    skip: list = field(default_factory=list)
    quick: bool = False
    threads: int | None = None
    command: str = ""
