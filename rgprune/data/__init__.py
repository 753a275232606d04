"""Classification tasks: the embedded ones (no files needed) and the user's own data on the local disk.

Embedded tasks: small, real data sets that ship with installed packages (no downloads).

=====================  ======  =======  ==========================================================
name                   kind    classes  what it is
=====================  ======  =======  ==========================================================
``digits``             vision  10       sklearn's 8x8 handwritten digits (1797 images)
``digits-inverted``    vision  10       the same images with intensities inverted (1 - x)
``digits-rotated``     vision  10       the same images rotated by 90 degrees
``digits-permuted``    vision  10       the same images, labels relabelled by a fixed permutation
``digits-5class``      vision  5        only the digits 0-4
``digits700*``         vision  10/5/2   nine tasks on 700 train images each: ``digits700``, ``-inverted``,
                                        ``-rotated``, ``-mirrored``, ``-permuted``, ``-upper5`` (digits 5-9,
                                        5 classes), ``-parity`` (2), ``-noisy``, ``-shuffled`` (pixels)
``vader``              text    2        VADER lexicon words: positive vs negative sentiment
``afinn``              text    2        AFINN-165 word list: positive vs negative valence
=====================  ======  =======  ==========================================================

The digits variants share one fixed train/test split, so a ticket found on one task can be
evaluated on another without test images leaking into training. Splits never depend on the
``seed`` argument: every run, whatever its seed, sees the same data.

Local data, ``KIND:PATH`` (read from disk, never downloaded; a missing or malformed file raises
:class:`DataLayoutError` naming the expected layout before anything is read into memory or written):

=====================  ======  =================================================================
spec                   kind    PATH
=====================  ======  =================================================================
``cifar10:ROOT``       vision  ``ROOT/cifar-10-batches-py/`` as torchvision's ``download=True`` leaves it
``cifar100:ROOT``      vision  ``ROOT/cifar-100-python/`` as torchvision's ``download=True`` leaves it
``imagefolder:ROOT``   vision  ``ROOT/train/<class>/*`` and ``ROOT/val/<class>/*`` (ImageNet layout)
``glue-TASK:ROOT``     text    GLUE's TSV folder of TASK: cola, sst2, mrpc, qqp, mnli, mnli-mm, qnli,
                               rte, wnli (see :mod:`rgprune.data.glue`)
``hf-disk:PATH``       text    a ``datasets.DatasetDict`` saved with ``save_to_disk`` (train + test or
                               validation split)
``csv:PATH``           text    ``PATH/train.csv`` and ``PATH/test.csv`` (or ``.tsv``) with a header
=====================  ======  =================================================================

Datasets a program builds itself (any ``torch.utils.data.Dataset`` of the batch formats below) become a
:class:`Task` with :func:`given_task` under the spec ``given-vision:NAME`` or ``given-text:NAME``; their
fingerprint hashes the lengths and a fixed sample of items (see :mod:`rgprune.data.given`).

Image preprocessing is set by :class:`ImageOptions`, tokenization and columns by :class:`TextOptions`;
text tasks are tokenized by the tokenizer passed in (the model's: ``rgprune.models.load_tokenizer(spec)``),
by default that of the built-in text models (MiniLM's). Batch formats: see :mod:`rgprune.data.task`.
"""

from __future__ import annotations

from .given import given_task
from .options import ImageOptions, TextOptions
from .specs import (
    DIGITS_TASK_NAMES,
    FILE_TASK_KINDS,
    GIVEN_TASK_KINDS,
    TASK_NAMES,
    TEXT_TASK_NAMES,
    TaskSpec,
    parse_task_spec,
    task_kind,
)
from .task import DataLayoutError, Task, TaskKind

__all__ = [
    "DIGITS_TASK_NAMES",
    "DataLayoutError",
    "FILE_TASK_KINDS",
    "GIVEN_TASK_KINDS",
    "ImageOptions",
    "TASK_NAMES",
    "TEXT_TASK_NAMES",
    "Task",
    "TaskKind",
    "TaskSpec",
    "TextOptions",
    "given_task",
    "load_task",
    "parse_task_spec",
    "task_kind",
]


def _check_arguments(parsed: TaskSpec, image_size, seed, image, text, tokenizer) -> None:
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    if image_size is not None:
        if isinstance(image_size, bool) or not isinstance(image_size, int):
            raise TypeError(f"image_size must be an int or None, got {type(image_size).__name__}")
        if image_size < 1:
            raise ValueError(f"image_size must be >= 1 (or None to keep 8x8), got {image_size}")
    if image is not None and not isinstance(image, ImageOptions):
        raise TypeError(f"image must be an ImageOptions or None, got {type(image).__name__}")
    if text is not None and not isinstance(text, TextOptions):
        raise TypeError(f"text must be a TextOptions or None, got {type(text).__name__}")
    kind = parsed.task_kind
    if kind == "text" and image_size is not None:
        raise ValueError(f"image_size applies to vision tasks only; {parsed.spec!r} is a text task, pass None")
    if kind == "text" and image is not None:
        raise ValueError(f"ImageOptions apply to image tasks; {parsed.spec!r} is a text task, pass image=None")
    if kind == "vision" and (text is not None or tokenizer is not None):
        raise ValueError(
            f"TextOptions and tokenizers apply to text tasks; {parsed.spec!r} is a vision task, pass "
            "text=None and tokenizer=None"
        )
    if parsed.path is None and (image is not None or text is not None):
        raise ValueError(
            f"{parsed.spec!r} is an embedded task with fixed preprocessing: ImageOptions and "
            "TextOptions apply to KIND:PATH tasks only"
        )


def load_task(
    spec: str,
    *,
    image_size: int | None = None,
    seed: int = 0,
    image: ImageOptions | None = None,
    text: TextOptions | None = None,
    tokenizer=None,
) -> Task:
    """Load the task named by ``spec``: an embedded name or ``KIND:PATH`` (see the module docstring).

    Args:
        spec: one of :data:`TASK_NAMES`, or ``KIND:PATH`` with ``KIND`` in :data:`FILE_TASK_KINDS`.
        image_size: vision tasks only: side of the square images the model sees. digits: bilinear resize
            of the 8x8 images (None keeps 8x8; the ResNets are meant to be used with 32); CIFAR: None keeps
            32x32; imagefolder: the crop size, None means 224.
        seed: accepted so that callers can pass their run seed uniformly, but no task uses it: splits
            (and the digits label permutation) are fixed on purpose, so runs with different seeds are
            compared on identical data. Must be a non-negative int.
        image: :class:`ImageOptions` for ``cifar10``/``cifar100``/``imagefolder`` (None: the defaults).
        text: :class:`TextOptions` for the GLUE, ``hf-disk`` and ``csv`` tasks (None: the defaults).
        tokenizer: text tasks: a Hugging Face tokenizer (the model's; see
            ``rgprune.models.load_tokenizer``); None: MiniLM's, the built-in text models' tokenizer.

    Returns a new :class:`Task` on every call (its data is not shared with other calls); the slow parts
    of the embedded tasks (reading files, tokenizing) are cached per process. ``Task.fingerprint``
    identifies the data it holds (see :class:`Task`).

    Raises:
        ValueError: unknown name or spec, ``image_size`` < 1 or given for a text task, an option that
            does not apply to the task, negative seed.
        DataLayoutError: (a ValueError) a file of a ``KIND:PATH`` task is missing or malformed; the
            message names the expected layout.
        TypeError: an argument has the wrong type.
    """
    parsed = parse_task_spec(spec)
    if parsed.is_given:
        raise ValueError(
            f"{spec!r} names datasets that a program passes in (rgprune.data.given_task, "
            "rgprune.imp.run_imp(train=..., test=...)); there is nothing to load: use an embedded name "
            "or a KIND:PATH spec"
        )
    _check_arguments(parsed, image_size, seed, image, text, tokenizer)
    if parsed.kind in DIGITS_TASK_NAMES:
        from .digits import load_digits_task

        return load_digits_task(parsed.kind, image_size=image_size)
    if parsed.kind == "vader":
        from .vader import load_vader_task

        return load_vader_task(tokenizer)
    if parsed.kind == "afinn":
        from .afinn import load_afinn_task

        return load_afinn_task(tokenizer)
    if parsed.kind in ("cifar10", "cifar100"):
        from .cifar import load_cifar_task

        return load_cifar_task(parsed.kind, spec, parsed.path, image_size, image or ImageOptions())
    if parsed.kind == "imagefolder":
        from .images import load_imagefolder_task

        return load_imagefolder_task(spec, parsed.path, image_size, image or ImageOptions())
    if parsed.kind.startswith("glue-"):
        from .glue import load_glue_task

        return load_glue_task(parsed.kind, spec, parsed.path, tokenizer, text or TextOptions())
    from .tables import load_csv_task, load_hf_disk_task

    loader = load_csv_task if parsed.kind == "csv" else load_hf_disk_task
    return loader(spec, parsed.path, tokenizer, text or TextOptions())
