"""``imagefolder:ROOT``: images read from class folders, one file per item.

``imagefolder:ROOT`` is the ImageNet / Places365 layout: ``ROOT/train/<class>/...`` and
``ROOT/val/<class>/...`` (files at any depth below a class folder). Classes are the train folder's
subfolder names in sorted order (label ``i`` is the ``i``-th name, as in torchvision's ``ImageFolder``);
``val`` may lack classes but may not add any. Images are read one per item (nothing is held in memory),
converted to RGB, and prepared as :class:`~rgprune.data.options.ImageOptions` says.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch.utils.data import Dataset

from .options import CROP_FRACTION, IMAGENET_MEAN, IMAGENET_STD, ImageOptions
from .task import DataLayoutError, Fingerprint, Task

#: File endings read as images (torchvision's ``IMG_EXTENSIONS``), compared case-insensitively.
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
DEFAULT_IMAGE_SIZE = 224  # imagefolder's default crop, ImageNet's
IMAGEFOLDER_LAYOUT = (
    "imagefolder:ROOT expects ROOT/train/<class>/<image> and ROOT/val/<class>/<image> "
    f"(one folder per class; images ending in {', '.join(IMAGE_EXTENSIONS)})"
)


def folder_transform(*, train: bool, options: ImageOptions, image_size: int, mean, std):
    """The per-item transform from a uint8 ``[C, H, W]`` image to a normalized float32 one (ImageNet's recipe:
    random resized crop to augment; resize and center crop otherwise)."""
    from torchvision.transforms import v2

    if train and options.augment:
        steps = [v2.RandomResizedCrop(image_size, antialias=True), v2.RandomHorizontalFlip()]
    elif options.center_crop:
        steps = [
            v2.Resize(options.resize or round(image_size / CROP_FRACTION), antialias=True),
            v2.CenterCrop(image_size),
        ]
    else:
        steps = [v2.Resize((image_size, image_size), antialias=True)]
    return v2.Compose([*steps, v2.ToDtype(torch.float32, scale=True), v2.Normalize(list(mean), list(std))])


def folder_transform_description(options: ImageOptions, image_size: int) -> str:
    train = f"train: random resized crop to {image_size} + horizontal flip" if options.augment else "train: as test"
    if options.center_crop:
        test = (
            f"test: shorter side to {options.resize or round(image_size / CROP_FRACTION)}, center {image_size}x"
            f"{image_size} crop"
        )
    else:
        test = f"test: resized to {image_size}x{image_size}"
    return f"{test}; {train}"


class ImageFileDataset(Dataset):
    """Images read from files one per item (converted to RGB), as ``(float32 image, label)``."""

    def __init__(self, samples: list[tuple[str, int]], transform) -> None:
        self.samples, self.transform = samples, transform

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        from PIL import Image
        from torchvision.transforms.v2 import functional as F

        path, label = self.samples[index]
        with Image.open(path) as image:
            rgb = image.convert("RGB")
        return self.transform(F.pil_to_tensor(rgb)).as_subclass(torch.Tensor), label


def _image_files(folder: str) -> list[os.DirEntry]:
    """Image files at any depth below ``folder``, in sorted path order (symlinked folders followed)."""
    found = []
    with os.scandir(folder) as entries:
        for entry in sorted(entries, key=lambda e: e.name):
            if entry.is_dir():
                found += _image_files(entry.path)
            elif entry.name.lower().endswith(IMAGE_EXTENSIONS) and entry.is_file():
                found.append(entry)
    return found


def scan_split(split_dir: Path, fingerprint: Fingerprint) -> dict[str, list[str]]:
    """Class name -> image paths of one split folder; each file's path, size and mtime go into
    ``fingerprint`` (cheap: the files themselves are not read)."""
    if not split_dir.is_dir():
        raise DataLayoutError(f"{split_dir} is missing or not a folder; {IMAGEFOLDER_LAYOUT}")
    classes = sorted(e.name for e in os.scandir(split_dir) if e.is_dir() and not e.name.startswith("."))
    if not classes:
        raise DataLayoutError(f"{split_dir} has no class folders; {IMAGEFOLDER_LAYOUT}")
    files = {}
    for name in classes:
        entries = _image_files(os.path.join(split_dir, name))
        for entry in entries:
            stat = entry.stat()
            fingerprint.add_json([os.path.relpath(entry.path, split_dir.parent), stat.st_size, stat.st_mtime_ns])
        files[name] = [entry.path for entry in entries]
    return files


def load_imagefolder_task(spec: str, root: Path, image_size: int | None, options: ImageOptions) -> Task:
    """Load ``imagefolder:ROOT`` (see the module docstring)."""
    image_size = image_size or DEFAULT_IMAGE_SIZE
    if not root.is_dir():
        raise DataLayoutError(f"{root} is not a folder; {IMAGEFOLDER_LAYOUT}")
    fingerprint = Fingerprint("imagefolder").add_json({"image_size": image_size, "options": options.as_dict()})
    train_files = scan_split(root / "train", fingerprint)
    val_files = scan_split(root / "val", fingerprint)
    empty = [name for name, paths in train_files.items() if not paths]
    if empty:
        raise DataLayoutError(f"{root / 'train'}: class folder(s) {empty[:10]} hold no images; {IMAGEFOLDER_LAYOUT}")
    extra = sorted(set(val_files) - set(train_files))
    if extra:
        raise DataLayoutError(
            f"{root / 'val'} has class folder(s) {extra[:10]} that {root / 'train'} lacks; "
            "val classes must be train classes"
        )
    if len(train_files) < 2:
        raise DataLayoutError(
            f"{root / 'train'} has {len(train_files)} class folder; a classification task needs "
            f"at least 2; {IMAGEFOLDER_LAYOUT}"
        )
    classes = tuple(train_files)
    index = {name: i for i, name in enumerate(classes)}
    train = [(path, index[name]) for name, paths in train_files.items() for path in paths]
    test = [(path, index[name]) for name, paths in val_files.items() for path in paths]
    if not test:
        raise DataLayoutError(f"{root / 'val'} holds no images; {IMAGEFOLDER_LAYOUT}")
    mean, std = (options.mean, options.std) if options.mean is not None else (IMAGENET_MEAN, IMAGENET_STD)
    datasets = [
        ImageFileDataset(
            samples, folder_transform(train=is_train, options=options, image_size=image_size, mean=mean, std=std)
        )
        for samples, is_train in ((train, True), (test, False))
    ]
    description = (
        f"image folders {root}/train and {root}/val: {len(train)} train / {len(test)} test RGB images, "
        f"{len(classes)} classes; {folder_transform_description(options, image_size)}; "
        f"normalized by mean {tuple(mean)} std {tuple(std)}"
    )
    return Task(
        name="imagefolder",
        kind="vision",
        num_classes=len(classes),
        in_channels=3,
        train=datasets[0],
        test=datasets[1],
        description=description,
        spec=spec,
        fingerprint=fingerprint.hexdigest(),
        class_names=classes,
    )
