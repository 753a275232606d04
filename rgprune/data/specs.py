"""Task specs: the one place that says which strings name a task and what kind of task each is.

A spec is an embedded task's name (``digits``, ``vader``, ...), ``KIND:PATH`` for data on the local disk, or
``given-vision:NAME`` / ``given-text:NAME`` for datasets a program hands over itself (``rgprune.data.given_task``,
``rgprune.imp.run_imp(train=..., test=...)``); :func:`parse_task_spec` checks the syntax, the loaders check the
files.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .digits import EQUAL_TASK_NAMES
from .glue import GLUE_FORMATS
from .task import TaskKind

DIGITS_TASK_NAMES = (
    "digits",
    "digits-inverted",
    "digits-rotated",
    "digits-permuted",
    "digits-5class",
) + EQUAL_TASK_NAMES
TEXT_TASK_NAMES = ("vader", "afinn")
#: The embedded tasks, which ship with installed packages.
TASK_NAMES: tuple[str, ...] = DIGITS_TASK_NAMES + TEXT_TASK_NAMES

#: ``KIND`` of a ``KIND:PATH`` spec -> the kind of task it loads, and what ``PATH`` is.
FILE_TASK_KINDS: dict[str, tuple[TaskKind, str]] = {
    "cifar10": ("vision", "ROOT holding cifar-10-batches-py/ (torchvision's CIFAR10 folder)"),
    "cifar100": ("vision", "ROOT holding cifar-100-python/ (torchvision's CIFAR100 folder)"),
    "imagefolder": ("vision", "ROOT holding train/<class>/* and val/<class>/* images"),
    **{
        kind: ("text", f"the GLUE {fmt.title} folder ({fmt.train_file}, {fmt.test_file})")
        for kind, fmt in GLUE_FORMATS.items()
    },
    "hf-disk": ("text", "a DatasetDict saved with datasets' save_to_disk"),
    "csv": ("text", "a folder with train.csv and test.csv (or .tsv)"),
}
#: ``KIND`` of a ``KIND:NAME`` spec naming datasets passed in by the program (Python API only) -> the kind of task.
GIVEN_TASK_KINDS: dict[str, TaskKind] = {"given-vision": "vision", "given-text": "text"}


@dataclass(frozen=True)
class TaskSpec:
    """A parsed task spec: ``spec`` as given, its ``kind`` (an embedded name or a ``KIND``) and ``path``
    (None for an embedded or given task; ``~`` expanded, otherwise as given)."""

    spec: str
    kind: str
    path: Path | None

    @property
    def task_kind(self) -> TaskKind:
        """``"vision"`` or ``"text"``: the kind of model the task needs."""
        if self.kind in GIVEN_TASK_KINDS:
            return GIVEN_TASK_KINDS[self.kind]
        if self.path is None:
            return "text" if self.kind in TEXT_TASK_NAMES else "vision"
        return FILE_TASK_KINDS[self.kind][0]

    @property
    def is_embedded(self) -> bool:
        """An embedded task (fixed data and preprocessing, no files)."""
        return self.kind in TASK_NAMES

    @property
    def is_given(self) -> bool:
        """``given-vision:NAME`` / ``given-text:NAME``: datasets passed in by the program, not loaded from a spec."""
        return self.kind in GIVEN_TASK_KINDS


def spec_help() -> str:
    """The accepted specs, one per line, for error messages and ``--help``."""
    lines = [f"  {name}" for name in TASK_NAMES]
    lines += [f"  {kind}:PATH  ({what})" for kind, (_, what) in FILE_TASK_KINDS.items()]
    return "\n".join(lines)


def parse_task_spec(spec: str) -> TaskSpec:
    """Parse a task spec (an embedded name, ``KIND:PATH`` or ``given-KIND:NAME``); the files are not looked at.

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
        kinds = "\n".join(line for line in spec_help().splitlines() if ":PATH" in line)
        raise ValueError(
            f"unknown task {spec!r}; valid tasks are: {', '.join(TASK_NAMES)}; or a spec KIND:PATH "
            f"for local data, one of:\n{kinds}"
        )
    if kind in GIVEN_TASK_KINDS:
        if not path.strip():
            raise ValueError(f"task spec {spec!r} has no name: write {kind}:NAME, NAME saying what the datasets are")
        return TaskSpec(spec=spec, kind=kind, path=None)
    if kind not in FILE_TASK_KINDS:
        raise ValueError(f"unknown task kind {kind!r} in {spec!r}; valid specs are:\n{spec_help()}")
    if not path.strip():
        raise ValueError(f"task spec {spec!r} has no path: write {kind}:PATH with PATH {FILE_TASK_KINDS[kind][1]}")
    return TaskSpec(spec=spec, kind=kind, path=Path(path).expanduser())


def task_kind(spec: str) -> TaskKind:
    """``"vision"`` or ``"text"`` for a task spec, without loading anything."""
    return parse_task_spec(spec).task_kind
