"""CIFAR-10 and CIFAR-100 read from torchvision's folders, exactly as ``download=True`` leaves them.

``cifar10:ROOT``: ``ROOT/cifar-10-batches-py/`` with ``data_batch_1`` .. ``data_batch_5`` (train),
``test_batch`` and ``batches.meta``. ``cifar100:ROOT``: ``ROOT/cifar-100-python/`` with ``train``,
``test`` and ``meta`` (the 100 fine labels are the classes). ``ROOT`` may also be that folder itself.
Each file is the Python pickle of the original distribution (a dict with ``data``: uint8
``[N, 3072]`` = 3 x 32 x 32 channel-major, and the labels); it is unpickled with only NumPy's array
classes allowed, so a file that tries to build any other object is refused instead of run.

Images stay uint8 in memory (150 MB for the 60k images) and are converted per item: [0, 1] floats,
optional augmentation and resize, then normalization (by default with the train set's exact
per-channel mean and std, computed from a histogram of the pixel values).
"""

from __future__ import annotations

import io
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F
from torch.utils.data import Dataset

from .options import ImageOptions, option_name
from .task import DataLayoutError, Fingerprint, Task

SIDE = 32
PIXELS = 3 * SIDE * SIDE
PADDING = 4  # augmentation: a random 32x32 crop of the image zero-padded by 4 pixels on each side


@dataclass(frozen=True)
class CifarFormat:
    title: str
    torchvision_class: str
    folder: str
    train_files: tuple[str, ...]
    test_files: tuple[str, ...]
    meta_file: str
    label_key: str
    names_key: str
    num_classes: int

    def layout(self, kind: str) -> str:
        files = ", ".join(self.train_files + self.test_files + (self.meta_file,))
        return (
            f"{kind}:ROOT expects torchvision's {self.title} folder as "
            f"torchvision.datasets.{self.torchvision_class}(ROOT, download=True) leaves it: "
            f"ROOT/{self.folder}/ holding {files} (the python pickle version)"
        )


CIFAR_FORMATS = {
    "cifar10": CifarFormat(
        "CIFAR-10",
        "CIFAR10",
        "cifar-10-batches-py",
        tuple(f"data_batch_{i}" for i in range(1, 6)),
        ("test_batch",),
        "batches.meta",
        "labels",
        "label_names",
        10,
    ),
    "cifar100": CifarFormat(
        "CIFAR-100",
        "CIFAR100",
        "cifar-100-python",
        ("train",),
        ("test",),
        "meta",
        "fine_labels",
        "fine_label_names",
        100,
    ),
}

# What a CIFAR pickle may construct: NumPy arrays (both module paths NumPy has used) and the bytes codec
# that protocol-2 pickles of byte strings go through.
_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),
}


class _ArrayUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) not in _ALLOWED_GLOBALS:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}: a CIFAR batch holds only arrays")
        return super().find_class(module, name)


def _unpickle(path: Path, layout: str) -> dict:
    try:
        # latin1: the batches were pickled by Python 2, whose str fields (keys, names) become str here.
        content = _ArrayUnpickler(io.BytesIO(path.read_bytes()), encoding="latin1").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError) as exc:
        raise DataLayoutError(f"{path} is not a CIFAR python pickle ({type(exc).__name__}: {exc}); {layout}") from exc
    if not isinstance(content, dict):
        raise DataLayoutError(f"{path} holds a {type(content).__name__}, not a CIFAR batch dict; {layout}")
    return content


def _read_batch(path: Path, fmt: CifarFormat, layout: str) -> tuple[np.ndarray, np.ndarray]:
    batch = _unpickle(path, layout)
    for key in ("data", fmt.label_key):
        if key not in batch:
            raise DataLayoutError(f"{path} has no {key!r} entry (it has {sorted(batch)}); {layout}")
    data, labels = np.asarray(batch["data"]), np.asarray(batch[fmt.label_key])
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != PIXELS:
        raise DataLayoutError(f"{path}: 'data' is {data.dtype} {data.shape}, expected uint8 [N, {PIXELS}]; {layout}")
    if labels.shape != (len(data),) or not np.issubdtype(labels.dtype, np.integer):
        raise DataLayoutError(
            f"{path}: {fmt.label_key!r} has shape {labels.shape} ({labels.dtype}), expected "
            f"{len(data)} integer labels; {layout}"
        )
    if len(labels) and (labels.min() < 0 or labels.max() >= fmt.num_classes):
        raise DataLayoutError(
            f"{path}: labels must be in 0..{fmt.num_classes - 1}, found {labels.min()}..{labels.max()}; {layout}"
        )
    return data, labels.astype(np.int64)


def _read_split(folder: Path, files: tuple[str, ...], fmt: CifarFormat, layout: str):
    parts = [_read_batch(folder / name, fmt, layout) for name in files]
    data = np.concatenate([p[0] for p in parts]).reshape(-1, 3, SIDE, SIDE)
    return torch.from_numpy(data), torch.from_numpy(np.concatenate([p[1] for p in parts]))


def _class_names(path: Path, fmt: CifarFormat, layout: str) -> tuple[str, ...]:
    names = _unpickle(path, layout).get(fmt.names_key)
    if not isinstance(names, list) or len(names) != fmt.num_classes or not all(isinstance(n, str) for n in names):
        raise DataLayoutError(f"{path}: {fmt.names_key!r} must list {fmt.num_classes} class names; {layout}")
    return tuple(names)


class CifarTransform:
    """uint8 ``[3, 32, 32]`` -> float32 ``[3, S, S]``: [0, 1] pixels, augmentation (training set only: zero-pad by
    :data:`PADDING`, random 32x32 crop, horizontal flip with probability 1/2, drawn from torch's global RNG),
    bilinear resize to ``S`` if it is not 32, then per-channel normalization.

    Plain tensor operations: ~10x cheaper per item than a torchvision.transforms.v2 pipeline on such small images.
    """

    def __init__(self, mean, std, image_size: int, augment: bool) -> None:
        self.mean = torch.tensor(mean, dtype=torch.float32).view(3, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(3, 1, 1)
        self.image_size, self.augment = image_size, augment

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        if self.augment:
            top, left = torch.randint(0, 2 * PADDING + 1, (2,)).tolist()
            image = F.pad(image, (PADDING,) * 4)[:, top : top + SIDE, left : left + SIDE]
            if torch.rand(()) < 0.5:
                image = image.flip(-1)
        x = image.float().div_(255)  # float() copies, so the in-place ops never touch the held images
        if self.image_size != SIDE:
            x = F.interpolate(x[None], size=(self.image_size,) * 2, mode="bilinear", antialias=True)[0]
        return x.sub_(self.mean).div_(self.std)

    def describe(self) -> str:
        size = f"{self.image_size}x{self.image_size}" + (" (resized from 32x32)" if self.image_size != SIDE else "")
        return f"{size}; " + (
            f"train: {PADDING}-pixel pad random crop + horizontal flip" if self.augment else "no augmentation"
        )


class CifarDataset(Dataset):
    """uint8 images ``[N, 3, 32, 32]`` held in memory, transformed per item into ``(float32 image, label)``."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, transform: CifarTransform) -> None:
        self.images, self.labels, self.transform = images, labels, transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.transform(self.images[index]), self.labels[index]


def channel_stats(images: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Exact per-channel mean and std (population) of uint8 images ``[N, C, H, W]`` scaled to [0, 1]."""
    values = torch.arange(256, dtype=torch.float64) / 255
    means, stds = [], []
    for channel in range(images.shape[1]):
        counts = torch.bincount(images[:, channel].reshape(-1), minlength=256).to(torch.float64)
        mean = float((counts * values).sum() / counts.sum())
        means.append(mean)
        stds.append(float(((counts * (values - mean) ** 2).sum() / counts.sum()).sqrt()))
    return tuple(means), tuple(stds)


def find_cifar_folder(kind: str, root: Path) -> Path:
    """``ROOT/<folder>`` (or ``ROOT`` when it is that folder), after checking every expected file is there."""
    fmt = CIFAR_FORMATS[kind]
    layout = fmt.layout(kind)
    folder = root if root.name == fmt.folder else root / fmt.folder
    if not folder.is_dir():
        raise DataLayoutError(f"{folder} is missing; {layout}")
    missing = [name for name in fmt.train_files + fmt.test_files + (fmt.meta_file,) if not (folder / name).is_file()]
    if missing:
        raise DataLayoutError(f"{folder} lacks {', '.join(missing)}; {layout}")
    return folder


def load_cifar_task(kind: str, spec: str, root: Path, image_size: int | None, options: ImageOptions) -> Task:
    """Load ``cifar10:ROOT`` or ``cifar100:ROOT`` (see the module docstring)."""
    fmt = CIFAR_FORMATS[kind]
    if options.resize is not None or not options.center_crop:
        raise ValueError(
            f"{kind}: {option_name('ImageOptions.resize')} and {option_name('ImageOptions.center_crop')} apply "
            "to imagefolder tasks; CIFAR's 32x32 "
            "images are resized straight to image_size"
        )
    layout = fmt.layout(kind)
    folder = find_cifar_folder(kind, root)
    classes = _class_names(folder / fmt.meta_file, fmt, layout)
    x_train, y_train = _read_split(folder, fmt.train_files, fmt, layout)
    x_test, y_test = _read_split(folder, fmt.test_files, fmt, layout)
    image_size = image_size or SIDE
    mean, std = (options.mean, options.std) if options.mean is not None else channel_stats(x_train)
    datasets = [
        CifarDataset(x, y, CifarTransform(mean, std, image_size, augment=options.augment and is_train))
        for x, y, is_train in ((x_train, y_train, True), (x_test, y_test, False))
    ]
    fingerprint = Fingerprint(kind).add_json(
        {"image_size": image_size, "options": options.as_dict(), "mean": mean, "std": std, "classes": classes}
    )
    for tensor in (x_train, y_train, x_test, y_test):
        fingerprint.add_tensor(tensor)
    source = "train set per-channel" if options.mean is None else "given"
    description = (
        f"{fmt.title} from {folder}: {len(y_train)} train / {len(y_test)} test RGB images, "
        f"{fmt.num_classes} classes; {datasets[0].transform.describe()}; "
        f"normalized by {source} mean {tuple(round(m, 4) for m in mean)} std "
        f"{tuple(round(s, 4) for s in std)}"
    )
    return Task(
        name=kind,
        kind="vision",
        num_classes=fmt.num_classes,
        in_channels=3,
        train=datasets[0],
        test=datasets[1],
        description=description,
        spec=spec,
        fingerprint=fingerprint.hexdigest(),
        class_names=classes,
    )
