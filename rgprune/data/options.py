"""How local data is prepared: :class:`ImageOptions` for image tasks, :class:`TextOptions` for text tasks.

Both are frozen and validate themselves on construction, so a bad option fails before any file is read.

Errors name an option as the Python API spells it (``TextOptions.text_columns``) through :func:`option_name`;
inside ``with naming_options(names)`` they use the names given there instead: ``rgprune imp`` maps each option
to its flag (``--text-columns``), so what the command line prints names what the user typed.
"""

from __future__ import annotations

import contextlib
import contextvars
import math
import types
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass

_OPTION_NAMES: contextvars.ContextVar[Mapping[str, str]] = contextvars.ContextVar(
    "rgprune_option_names", default=types.MappingProxyType({})
)


def option_name(name: str) -> str:
    """How an error names the option the Python API calls ``name`` (``"TextOptions.text_columns"``, or an
    ``IMPConfig`` field such as ``"text_columns"``): ``name`` itself, or its name in the innermost
    ``naming_options`` that gives one (``"--text-columns"`` under ``rgprune imp``)."""
    return _OPTION_NAMES.get().get(name, name)


@contextlib.contextmanager
def naming_options(names: Mapping[str, str]) -> Iterator[None]:
    """Within the block (this thread or task), errors name the options of ``names`` (Python name -> name to
    print) as given there, the others as before."""
    token = _OPTION_NAMES.set({**_OPTION_NAMES.get(), **names})
    try:
        yield
    finally:
        _OPTION_NAMES.reset(token)


#: ImageNet's per-channel RGB mean and std (of [0, 1] pixels): the default normalization of ``imagefolder``.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
#: ``imagefolder`` evaluation resizes the shorter side to ``image_size / CROP_FRACTION`` (224 -> 256) before
#: the center crop, the usual ImageNet protocol.
CROP_FRACTION = 0.875


def _check_int(what: str, value: object, minimum: int) -> None:
    what = option_name(what)
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{what} must be an int, got {type(value).__name__} ({value!r})")
    if value < minimum:
        raise ValueError(f"{what} must be >= {minimum}, got {value}")


def _check_bool(what: str, value: object) -> None:
    what = option_name(what)
    if not isinstance(value, bool):
        raise TypeError(f"{what} must be True or False, got {value!r}")


def _check_names(what: str, value: object, *, sizes: tuple[int, ...] | None = None) -> None:
    what = option_name(what)
    if not isinstance(value, tuple) or not all(isinstance(v, str) and v for v in value):
        raise TypeError(f"{what} must be a tuple of non-empty strs, got {value!r}")
    if sizes is not None and len(value) not in sizes:
        raise ValueError(f"{what} must name {' or '.join(map(str, sizes))} columns, got {len(value)}: {value!r}")
    if len(set(value)) != len(value):
        raise ValueError(f"{what} repeats a name: {value!r}")


@dataclass(frozen=True)
class ImageOptions:
    """Preprocessing of ``cifar10``/``cifar100``/``imagefolder`` images (the output size is ``image_size``,
    an argument of ``load_task``).

    Attributes:
        resize: ``imagefolder``: shorter side in pixels before the center crop; None: ``image_size / 0.875``
            (256 for 224). Not used by CIFAR (32x32 images are resized straight to ``image_size``).
        center_crop: ``imagefolder``: True resizes the shorter side to ``resize`` then crops the central
            ``image_size x image_size``; False resizes the whole image to ``image_size x image_size``
            (the aspect ratio is not kept).
        mean, std: per-channel normalization of [0, 1] RGB pixels; None: CIFAR uses its train set's
            per-channel statistics, ``imagefolder`` ImageNet's (:data:`IMAGENET_MEAN`, :data:`IMAGENET_STD`).
        augment: random augmentation of the training set (the test set never is): CIFAR: 4-pixel
            zero-padded random 32x32 crop and horizontal flip; ``imagefolder``: ``RandomResizedCrop`` to
            ``image_size`` and horizontal flip. Draws come from torch's global RNG, which
            ``rgprune.train.train_epochs(seed=...)`` reseeds every epoch.
    """

    resize: int | None = None
    center_crop: bool = True
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    augment: bool = False

    def __post_init__(self) -> None:
        if self.resize is not None:
            _check_int("ImageOptions.resize", self.resize, 1)
        _check_bool("ImageOptions.center_crop", self.center_crop)
        _check_bool("ImageOptions.augment", self.augment)
        if (self.mean is None) != (self.std is None):
            mean, std = option_name("ImageOptions.mean"), option_name("ImageOptions.std")
            raise ValueError(f"{mean} and {std} go together: give both or neither")
        if self.mean is not None:
            for what, values in (("mean", self.mean), ("std", self.std)):
                if (
                    not isinstance(values, tuple)
                    or len(values) != 3
                    or not all(
                        isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in values
                    )
                ):
                    raise ValueError(
                        f"{option_name('ImageOptions.' + what)} must be a tuple of 3 finite numbers (R, G, B), "
                        f"got {values!r}"
                    )
            if min(self.std) <= 0:
                raise ValueError(f"{option_name('ImageOptions.std')} must be > 0 for every channel, got {self.std!r}")

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class TextOptions:
    """Tokenization and columns of text tasks.

    Attributes:
        max_length: tokens per example, special tokens included; longer examples are truncated (a sentence
            pair: the longer sentence first), shorter ones padded. Batches are always ``[B, max_length]``.
        text_columns: ``csv``/``hf-disk``: one column (single sentences) or two (sentence pairs); None:
            ``("text",)``. GLUE tasks have fixed columns and refuse this option.
        label_column: ``csv``/``hf-disk``: the label column; None: ``"label"``. GLUE tasks refuse it.
        labels: ``csv``/``hf-disk``: every label value in id order (label ``labels[i]`` gets id ``i``);
            None: the distinct labels of the training set, sorted as numbers when all are integers, else
            as strings. Labels of ``hf-disk`` ``ClassLabel`` columns are already ids and refuse this option.
        test_split: ``hf-disk``: the split to evaluate on; None: ``"validation"`` when the dataset has one
            (GLUE-style datasets hide their test labels), else ``"test"``.
    """

    max_length: int = 128
    text_columns: tuple[str, ...] | None = None
    label_column: str | None = None
    labels: tuple[str, ...] | None = None
    test_split: str | None = None

    def __post_init__(self) -> None:
        _check_int("TextOptions.max_length", self.max_length, 4)
        if self.text_columns is not None:
            _check_names("TextOptions.text_columns", self.text_columns, sizes=(1, 2))
        if self.labels is not None:
            _check_names("TextOptions.labels", self.labels)
            if len(self.labels) < 2:
                raise ValueError(f"{option_name('TextOptions.labels')} must list >= 2 labels, got {self.labels!r}")
        for what in ("label_column", "test_split"):
            value = getattr(self, what)
            if value is not None and (not isinstance(value, str) or not value):
                raise TypeError(f"{option_name('TextOptions.' + what)} must be a non-empty str or None, got {value!r}")

    def as_dict(self) -> dict:
        return asdict(self)
