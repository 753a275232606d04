"""Embedded tasks: small, real data sets that ship with installed packages (no downloads).

=====================  ======  =======  ==========================================================
name                   kind    classes  what it is
=====================  ======  =======  ==========================================================
``digits``             vision  10       sklearn's 8x8 handwritten digits (1797 images)
``digits-inverted``    vision  10       the same images with intensities inverted (1 - x)
``digits-rotated``     vision  10       the same images rotated by 90 degrees
``digits-permuted``    vision  10       the same images, labels relabelled by a fixed permutation
``digits-5class``      vision  5        only the digits 0-4
``vader``              text    2        VADER lexicon words: positive vs negative sentiment
=====================  ======  =======  ==========================================================

The digits variants share one fixed train/test split, so a ticket found on one task can be
evaluated on another without test images leaking into training. Splits never depend on the
``seed`` argument: every run, whatever its seed, sees the same data.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from torch.utils.data import TensorDataset

TaskKind = Literal["vision", "text"]


@dataclass(frozen=True)
class Task:
    """A classification task with its train and test sets.

    Attributes:
        name: registry name (see :data:`TASK_NAMES`).
        kind: ``"vision"`` or ``"text"``; matches :func:`rgprune.models.model_kind`.
        num_classes: labels are ``0 .. num_classes - 1``.
        in_channels: image channels for vision tasks (pass it to ``build_model``); None for text.
        train, test: vision: ``TensorDataset(images, labels)`` with float32 images
            ``[N, C, H, W]`` normalized by the train-set mean/std and int64 labels ``[N]``.
            text: ``TensorDataset(input_ids, attention_mask, labels)``, all int64,
            ``[N, L]``, ``[N, L]``, ``[N]``.
        description: one paragraph saying what the task is, its split and class counts.
    """

    name: str
    kind: TaskKind
    num_classes: int
    in_channels: int | None
    train: TensorDataset
    test: TensorDataset
    description: str

    def __post_init__(self) -> None:
        if self.kind not in ("vision", "text"):
            raise ValueError(f"Task.kind must be 'vision' or 'text', got {self.kind!r}")
        if self.num_classes < 2:
            raise ValueError(f"Task.num_classes must be >= 2, got {self.num_classes}")
        if (self.kind == "vision") != (self.in_channels is not None):
            raise ValueError("Task.in_channels must be set for vision tasks and None for text tasks")


# Names only; the loaders are imported on demand so that `import rgprune.data` stays cheap
# (the text task pulls in transformers).
DIGITS_TASK_NAMES = (
    "digits",
    "digits-inverted",
    "digits-rotated",
    "digits-permuted",
    "digits-5class",
)
TEXT_TASK_NAMES = ("vader",)
TASK_NAMES: tuple[str, ...] = DIGITS_TASK_NAMES + TEXT_TASK_NAMES

__all__ = ["TASK_NAMES", "Task", "load_task"]


def load_task(name: str, *, image_size: int | None = None, seed: int = 0) -> Task:
    """Load the task called ``name``.

    Args:
        name: one of :data:`TASK_NAMES`.
        image_size: vision tasks only: resize the 8x8 images to ``image_size x image_size``
            (bilinear); None keeps 8x8. The ResNets are meant to be used with 32.
        seed: accepted so that callers can pass their run seed uniformly, but no built-in task
            uses it: splits and the label permutation are fixed on purpose, so runs with
            different seeds are compared on identical data. Must be a non-negative int.

    Returns a new :class:`Task` on every call (its tensors are not shared with other calls);
    the slow parts (reading files, tokenizing) are cached per process.

    Raises:
        ValueError: unknown name, ``image_size`` < 1 or given for a text task, negative seed.
        TypeError: an argument has the wrong type.
    """
    if not isinstance(name, str):
        raise TypeError(f"task name must be a str, got {type(name).__name__}")
    if name not in TASK_NAMES:
        raise ValueError(f"unknown task {name!r}; valid names are: {', '.join(TASK_NAMES)}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    if image_size is not None:
        if isinstance(image_size, bool) or not isinstance(image_size, int):
            raise TypeError(f"image_size must be an int or None, got {type(image_size).__name__}")
        if image_size < 1:
            raise ValueError(f"image_size must be >= 1 (or None to keep 8x8), got {image_size}")
    if name in DIGITS_TASK_NAMES:
        from .digits import load_digits_task

        return load_digits_task(name, image_size=image_size)
    if image_size is not None:
        raise ValueError(f"image_size applies to vision tasks only; {name!r} is a text task, pass None")
    from .vader import load_vader_task

    return load_vader_task()
