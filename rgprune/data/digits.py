"""The sklearn digits tasks: 1797 real 8x8 handwritten digits and tasks derived from them.

Pipeline, in this order:

1. ``sklearn.datasets.load_digits`` (shipped with scikit-learn, no download); pixels 0..16 are
   scaled to [0, 1].
2. One fixed, stratified split: 80 % train / 20 % test (1437 / 360 images), drawn with
   ``SPLIT_SEED`` and never with the run's seed, so every run and every derived task sees the
   same split (a test image of one task is never a training image of another).
3. The task's transform, on the [0, 1] images:
   ``digits-inverted``: ``1 - x``; ``digits-rotated``: ``torch.rot90(x, 1, dims=(-2, -1))``
   (90 degrees counter-clockwise); ``digits-permuted``: label ``y`` becomes
   ``LABEL_PERMUTATION[y]``; ``digits-5class``: only the images of digits 0-4 are kept.
4. Optional bilinear resize of 8x8 to ``image_size x image_size``.
5. Normalization by the mean and std of this task's train images (one value each, as the
   images have one channel), applied to train and test alike.

The equal-size family ``digits700*`` (docs/findings.md, finding 1) trains every task on the same
number of images, ``EQUAL_TRAIN_SIZE``, so that every task trains the same optimizer steps per
epoch. Step 2 is followed by a fixed subsample of the train split: ``EQUAL_TRAIN_SIZE`` images
stratified by digit (``SUBSAMPLE_SEED``), the same images for every task that keeps all ten
digits; ``digits700-upper5`` draws its images from the digits 5-9 alone. Test sets are the whole
fixed test split (of digits 5-9 for ``upper5``). The variants, on [0, 1] images before step 4:
``digits700``: the digits as they are; ``-inverted``: ``1 - x``; ``-rotated``: 90 degrees
counter-clockwise; ``-mirrored``: flipped left-right; ``-permuted``: labels through
``LABEL_PERMUTATION``; ``-upper5``: digits 5-9 only, relabelled 0-4; ``-parity``: label ``y % 2``
(even 0, odd 1); ``-noisy``: ``clip(x + NOISE_STD * e, 0, 1)`` with one fixed Gaussian draw ``e``
per image (``NOISE_SEED``; the same noise in every epoch and every run); ``-shuffled``: the 64
pixels of every image moved by one fixed permutation (``PIXEL_SHUFFLE_SEED``), which keeps each
image's pixel values and destroys the spatial structure convolutions rely on (a negative control).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch
from torch.nn import functional as F
from torch.utils.data import TensorDataset

from .task import Task, tensors_fingerprint

SPLIT_SEED = 0
TEST_FRACTION = 0.2
MAX_PIXEL = 16.0  # load_digits pixels are integers 0..16

#: ``digits-permuted`` relabels digit ``y`` as ``LABEL_PERMUTATION[y]``. A derangement (no
#: digit keeps its label), so the task differs from ``digits`` for every class.
LABEL_PERMUTATION = (3, 7, 0, 9, 5, 1, 8, 2, 6, 4)

FIVE_CLASS_DIGITS = 5  # digits-5class keeps labels 0..4

#: Training images of every ``digits700*`` task: fewer than the digits 5-9 of the train split (717), so that
#: ``digits700-upper5`` has as many as the ten-digit tasks.
EQUAL_TRAIN_SIZE = 700
SUBSAMPLE_SEED = 0
NOISE_STD = 0.25  # in units of the [0, 1] pixel range
NOISE_SEED = 0
PIXEL_SHUFFLE_SEED = 0
EQUAL_PREFIX = "digits700"
#: variant -> what it is; the task name is EQUAL_PREFIX, or EQUAL_PREFIX + "-" + variant
_EQUAL_VARIANTS = {
    "": "the digits 0-9",
    "inverted": "the digits 0-9 with inverted intensities (1 - x)",
    "rotated": "the digits 0-9 rotated 90 degrees counter-clockwise",
    "mirrored": "the digits 0-9 flipped left-right",
    "permuted": f"the digits with labels permuted (digit y -> {list(LABEL_PERMUTATION)}[y])",
    "upper5": "the digits 5-9 only, relabelled 0-4",
    "parity": "the digits 0-9 labelled by parity (even 0, odd 1)",
    "noisy": f"the digits 0-9 with fixed Gaussian pixel noise (std {NOISE_STD} of the pixel range, clipped to [0, 1])",
    "shuffled": "the digits 0-9 with their 64 pixels moved by one fixed permutation (no spatial structure)",
}
EQUAL_TASK_NAMES = tuple(EQUAL_PREFIX + (f"-{v}" if v else "") for v in _EQUAL_VARIANTS)

_DESCRIPTIONS = {
    "digits": "sklearn handwritten digits 0-9",
    "digits-inverted": "sklearn handwritten digits 0-9 with inverted intensities (1 - x)",
    "digits-rotated": "sklearn handwritten digits 0-9 rotated 90 degrees counter-clockwise",
    "digits-permuted": (f"sklearn handwritten digits with labels permuted (digit y -> {list(LABEL_PERMUTATION)}[y])"),
    "digits-5class": "sklearn handwritten digits 0-4 only",
}


@lru_cache(maxsize=1)
def _fixed_split() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(train images, train labels, test images, test labels): [0, 1] float64 8x8, int64 labels.

    Cached and read-only; callers copy before changing anything.
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    images = digits.images.astype(np.float64) / MAX_PIXEL
    labels = digits.target.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(
        images, labels, test_size=TEST_FRACTION, stratify=labels, random_state=SPLIT_SEED
    )
    arrays = (x_train, y_train, x_test, y_test)
    for array in arrays:
        array.setflags(write=False)
    return arrays


def digits_split() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The fixed split before any task transform: ``(x_train, y_train, x_test, y_test)``.

    Images are float64 ``[N, 8, 8]`` in [0, 1], labels int64 ``[N]``; fresh tensors on each call.
    """
    return tuple(torch.tensor(array) for array in _fixed_split())  # type: ignore[return-value]


def _transform(name: str, images: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    if name == "digits-inverted":
        return 1.0 - images, labels
    if name == "digits-rotated":
        return torch.rot90(images, 1, dims=(-2, -1)).contiguous(), labels
    if name == "digits-permuted":
        return images, torch.tensor(LABEL_PERMUTATION, dtype=torch.int64)[labels]
    if name == "digits-5class":
        keep = labels < FIVE_CLASS_DIGITS
        return images[keep], labels[keep]
    return images, labels


def _variant(name: str) -> str:
    return name[len(EQUAL_PREFIX) + 1 :]


def equal_subsample(labels: torch.Tensor) -> torch.Tensor:
    """Indices (sorted) of ``EQUAL_TRAIN_SIZE`` of ``labels``' rows, stratified by label, drawn with
    ``SUBSAMPLE_SEED``: the same rows for the same labels."""
    from sklearn.model_selection import train_test_split

    if len(labels) < EQUAL_TRAIN_SIZE:
        raise ValueError(f"{len(labels)} rows cannot give a subsample of {EQUAL_TRAIN_SIZE}")
    rows = np.arange(len(labels))
    if len(labels) == EQUAL_TRAIN_SIZE:
        return torch.from_numpy(rows)
    kept, _ = train_test_split(rows, train_size=EQUAL_TRAIN_SIZE, stratify=labels.numpy(), random_state=SUBSAMPLE_SEED)
    return torch.from_numpy(np.sort(kept))


def pixel_shuffle_permutation() -> torch.Tensor:
    """The fixed permutation of the 64 pixel positions of ``digits700-shuffled`` (row-major 8x8)."""
    return torch.from_numpy(np.random.default_rng(PIXEL_SHUFFLE_SEED).permutation(64))


def fixed_noise(n_train: int, n_test: int) -> tuple[torch.Tensor, torch.Tensor]:
    """One standard Gaussian draw per pixel of every image of the fixed split (train rows, then test rows),
    from ``NOISE_SEED``: image i of the split always gets the same noise."""
    draw = np.random.default_rng(NOISE_SEED).standard_normal((n_train + n_test, 8, 8))
    return torch.from_numpy(draw[:n_train]), torch.from_numpy(draw[n_train:])


def _equal_images(variant: str, images: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    if variant == "inverted":
        return 1.0 - images
    if variant == "rotated":
        return torch.rot90(images, 1, dims=(-2, -1)).contiguous()
    if variant == "mirrored":
        return torch.flip(images, dims=(-1,))
    if variant == "noisy":
        return (images + NOISE_STD * noise).clamp(0.0, 1.0)
    if variant == "shuffled":
        return images.reshape(-1, 64)[:, pixel_shuffle_permutation()].reshape(-1, 8, 8)
    return images


def _equal_labels(variant: str, labels: torch.Tensor) -> torch.Tensor:
    if variant == "permuted":
        return torch.tensor(LABEL_PERMUTATION, dtype=torch.int64)[labels]
    if variant == "upper5":
        return labels - FIVE_CLASS_DIGITS
    if variant == "parity":
        return labels % 2
    return labels


def _equal_split(name: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The train subsample and test set of a ``digits700*`` task, transformed (module docstring)."""
    variant = _variant(name)
    x_train, y_train, x_test, y_test = digits_split()
    noise_train, noise_test = fixed_noise(len(y_train), len(y_test))
    keep_train = y_train >= FIVE_CLASS_DIGITS if variant == "upper5" else torch.ones_like(y_train, dtype=torch.bool)
    keep_test = y_test >= FIVE_CLASS_DIGITS if variant == "upper5" else torch.ones_like(y_test, dtype=torch.bool)
    rows = torch.nonzero(keep_train).squeeze(1)[equal_subsample(y_train[keep_train])]
    x_train, y_train, noise_train = x_train[rows], y_train[rows], noise_train[rows]
    x_test, y_test, noise_test = x_test[keep_test], y_test[keep_test], noise_test[keep_test]
    return (
        _equal_images(variant, x_train, noise_train),
        _equal_labels(variant, y_train),
        _equal_images(variant, x_test, noise_test),
        _equal_labels(variant, y_test),
    )


def _num_classes(name: str) -> int:
    if name == "digits-5class" or name == f"{EQUAL_PREFIX}-upper5":
        return FIVE_CLASS_DIGITS
    return 2 if name == f"{EQUAL_PREFIX}-parity" else 10


def load_digits_task(name: str, image_size: int | None = None) -> Task:
    """Build the digits task ``name`` (see the module docstring for each step)."""
    if name in EQUAL_TASK_NAMES:
        x_train, y_train, x_test, y_test = _equal_split(name)
        what = (
            f"sklearn handwritten digits: {_EQUAL_VARIANTS[_variant(name)]}, a fixed subsample of "
            f"{EQUAL_TRAIN_SIZE} train images stratified by digit (seed {SUBSAMPLE_SEED})"
        )
    elif name in _DESCRIPTIONS:
        x_train, y_train, x_test, y_test = digits_split()
        x_train, y_train = _transform(name, x_train, y_train)
        x_test, y_test = _transform(name, x_test, y_test)
        what = _DESCRIPTIONS[name]
    else:
        raise ValueError(f"unknown digits task {name!r}; choose one of {list(_DESCRIPTIONS) + list(EQUAL_TASK_NAMES)}")

    # [N, 8, 8] -> [N, 1, 8, 8]: one (grayscale) channel.
    x_train, x_test = x_train.unsqueeze(1), x_test.unsqueeze(1)
    if image_size is not None:
        x_train, x_test = _resize(x_train, image_size), _resize(x_test, image_size)

    # Statistics of the train set only (the test set must not inform preprocessing), computed
    # after the resize so that what the model sees is exactly zero-mean, unit-std on train.
    mean = x_train.mean()
    std = x_train.std()
    x_train = ((x_train - mean) / std).float()
    x_test = ((x_test - mean) / std).float()

    side = x_train.shape[-1]
    description = (
        f"{what}; {side}x{side} grayscale"
        f"{' (bilinear from 8x8)' if image_size is not None else ''}; fixed stratified split "
        f"{len(y_train)} train / {len(y_test)} test (seed {SPLIT_SEED}); "
        f"normalized by train mean {mean.item():.4f} and std {std.item():.4f} of [0, 1] pixels"
    )
    return Task(
        name=name,
        kind="vision",
        num_classes=_num_classes(name),
        in_channels=1,
        train=TensorDataset(x_train, y_train),
        test=TensorDataset(x_test, y_test),
        description=description,
        fingerprint=tensors_fingerprint(name, x_train, y_train, x_test, y_test),
    )


def _resize(images: torch.Tensor, image_size: int) -> torch.Tensor:
    # align_corners=False samples pixel centres, so the resize is symmetric and commutes with
    # the 90-degree rotation of the rotated task.
    return F.interpolate(images, size=(image_size, image_size), mode="bilinear", align_corners=False)
