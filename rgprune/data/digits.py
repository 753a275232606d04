"""The sklearn digits tasks: 1797 real 8x8 handwritten digits and four tasks derived from them.

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

_DESCRIPTIONS = {
    "digits": "sklearn handwritten digits 0-9",
    "digits-inverted": "sklearn handwritten digits 0-9 with inverted intensities (1 - x)",
    "digits-rotated": "sklearn handwritten digits 0-9 rotated 90 degrees counter-clockwise",
    "digits-permuted": (
        f"sklearn handwritten digits with labels permuted (digit y -> {list(LABEL_PERMUTATION)}[y])"
    ),
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


def load_digits_task(name: str, image_size: int | None = None) -> Task:
    """Build the digits task ``name`` (see the module docstring for each step)."""
    if name not in _DESCRIPTIONS:
        raise ValueError(f"unknown digits task {name!r}; choose one of {list(_DESCRIPTIONS)}")
    x_train, y_train, x_test, y_test = digits_split()
    x_train, y_train = _transform(name, x_train, y_train)
    x_test, y_test = _transform(name, x_test, y_test)

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

    num_classes = FIVE_CLASS_DIGITS if name == "digits-5class" else 10
    side = x_train.shape[-1]
    description = (
        f"{_DESCRIPTIONS[name]}; {side}x{side} grayscale"
        f"{' (bilinear from 8x8)' if image_size is not None else ''}; fixed stratified split "
        f"{len(y_train)} train / {len(y_test)} test (seed {SPLIT_SEED}); "
        f"normalized by train mean {mean.item():.4f} and std {std.item():.4f} of [0, 1] pixels"
    )
    return Task(
        name=name,
        kind="vision",
        num_classes=num_classes,
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
