"""Task specs: the one place that says which strings name a task and what kind of task each is.

A spec is either an embedded task's name (``digits``, ``vader``, ...) or ``KIND:PATH`` for data on
the local disk; :func:`parse_task_spec` checks the syntax, the loaders check the files.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .glue import GLUE_FORMATS
from .task import TaskKind

DIGITS_TASK_NAMES = (
    "digits",
    "digits-inverted",
    "digits-rotated",
    "digits-permuted",
    "digits-5class",
)
TEXT_TASK_NAMES = ("vader",)
#: The embedded tasks, which ship with installed packages.
TASK_NAMES: tuple[str, ...] = DIGITS_TASK_NAMES + TEXT_TASK_NAMES

#: ``KIND`` of a ``KIND:PATH`` spec -> the kind of task it loads, and what ``PATH`` is.
FILE_TASK_KINDS: dict[str, tuple[TaskKind, str]] = {
    "cifar10": ("vision", "ROOT holding cifar-10-batches-py/ (torchvision's CIFAR10 folder)"),
    "cifar100": ("vision", "ROOT holding cifar-100-python/ (torchvision's CIFAR100 folder)"),
    "imagefolder": ("vision", "ROOT holding train/<class>/* and val/<class>/* images"),
    **{kind: ("text", f"the GLUE {fmt.title} folder ({fmt.train_file}, {fmt.test_file})")
       for kind, fmt in GLUE_FORMATS.items()},
    "hf-disk": ("text", "a DatasetDict saved with datasets' save_to_disk"),
    "csv": ("text", "a folder with train.csv and test.csv (or .tsv)"),
}


@dataclass(frozen=True)
class TaskSpec:
    """A parsed task spec: ``spec`` as given, its ``kind`` (an embedded name or a ``KIND``) and ``path``
    (None for an embedded task; ``~`` expanded, otherwise as given)."""

    spec: str
    kind: str
    path: Path | None

    @property
    def task_kind(self) -> TaskKind:
        """``"vision"`` or ``"text"``: the kind of model the task needs."""
        if self.path is None:
            return "text" if self.kind in TEXT_TASK_NAMES else "vision"
        return FILE_TASK_KINDS[self.kind][0]


def spec_help() -> str:
    """The accepted specs, one per line, for error messages and ``--help``."""
    lines = [f"  {name}" for name in TASK_NAMES]
    lines += [f"  {kind}:PATH  ({what})" for kind, (_, what) in FILE_TASK_KINDS.items()]
    return "\n".join(lines)


def parse_task_spec(spec: str) -> TaskSpec:
    """Parse a task spec (an embedded name or ``KIND:PATH``); the files are not looked at.

    Raises:
        TypeError: ``spec`` is not a str.
        ValueError: an unknown name or ``KIND``, or an empty ``PATH``; the message lists every valid form.
    """
    if not isinstance(spec, str):
        raise TypeError(f"task name must be a str, got {type(spec).__name__}")
    if spec in TASK_NAMES:
        return TaskSpec(spec=spec, kind=spec, path=None)
    kind, colon, path = spec.partition(":")
    if not colon:
        raise ValueError(f"unknown task {spec!r}; valid names are: {', '.join(TASK_NAMES)}; or a spec KIND:PATH "
                         f"for local data, one of:\n{spec_help()}")
    if kind not in FILE_TASK_KINDS:
        raise ValueError(f"unknown task kind {kind!r} in {spec!r}; valid specs are:\n{spec_help()}")
    if not path.strip():
        raise ValueError(f"task spec {spec!r} has no path: write {kind}:PATH with PATH "
                         f"{FILE_TASK_KINDS[kind][1]}")
    return TaskSpec(spec=spec, kind=kind, path=Path(path).expanduser())


def task_kind(spec: str) -> TaskKind:
    """``"vision"`` or ``"text"`` for a task spec, without loading anything."""
    return parse_task_spec(spec).task_kind
