"""Datasets a program builds itself, as a :class:`~rgprune.data.task.Task` under a ``given-vision:NAME`` or
``given-text:NAME`` spec (``rgprune.imp.run_imp(config, out, train=..., test=...)`` calls :func:`given_task`).

Items must have the layout of :mod:`rgprune.data.task`: ``(image, label)`` with a float ``[C, H, W]`` image for
vision, ``(input_ids, attention_mask, label)`` with ``[L]`` integer tensors for text; a label is an int or a
0-d integer tensor.

The fingerprint cannot hash data it would have to read whole (a lazy dataset of image files may hold millions):
it hashes the spec, the class count, both splits' lengths and :data:`FINGERPRINT_ITEMS` evenly spaced items of
each split, read with torch's RNG seeded so that a randomly augmented item hashes alike every time. A resumed
run is refused when any of these differ; a change confined to items outside the sample goes unnoticed.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .specs import parse_task_spec
from .task import Fingerprint, Task

#: items hashed per split (evenly spaced, the first and the last included)
FINGERPRINT_ITEMS = 64


def _check_dataset(what: str, dataset) -> int:
    if not hasattr(dataset, "__getitem__") or not hasattr(dataset, "__len__"):
        raise TypeError(
            f"{what} must be a map-style dataset (with __len__ and __getitem__, e.g. a "
            f"torch.utils.data.Dataset), got {type(dataset).__name__}"
        )
    n = len(dataset)
    if n < 1:
        raise ValueError(f"{what} is empty; it needs at least one example")
    return n


def _as_tensor(what: str, value) -> torch.Tensor:
    try:
        return torch.as_tensor(value)
    except (TypeError, ValueError, RuntimeError):
        raise TypeError(
            f"{what} is a {type(value).__name__}; items must hold tensors or numbers (convert images and "
            "texts to tensors in the dataset)"
        ) from None


def _check_item(what: str, item, kind: str) -> list[torch.Tensor]:
    """The item's elements as tensors, after checking the layout of ``kind``."""
    size = 2 if kind == "vision" else 3
    layout = (
        "(image, label): a float [C, H, W] image"
        if kind == "vision"
        else "(input_ids, attention_mask, label): [L] integer tensors"
    )
    if not isinstance(item, (tuple, list)) or len(item) != size:
        count = f" of {len(item)}" if isinstance(item, (tuple, list)) else ""
        raise ValueError(
            f"{what} is a {type(item).__name__}{count}; a {kind} task's items are {layout} and an integer label"
        )
    tensors = [_as_tensor(f"{what}[{i}]", value) for i, value in enumerate(item)]
    label = tensors[-1]
    if label.dim() != 0 or label.dtype.is_floating_point or label.dtype == torch.bool:
        raise ValueError(
            f"{what}: the label must be an int or a 0-d integer tensor, got {label.dtype} of shape {tuple(label.shape)}"
        )
    if kind == "vision" and (tensors[0].dim() != 3 or not tensors[0].dtype.is_floating_point):
        raise ValueError(
            f"{what}: the image must be a float [C, H, W] tensor, got {tensors[0].dtype} of shape "
            f"{tuple(tensors[0].shape)}"
        )
    if kind == "text" and any(t.dim() != 1 or t.dtype.is_floating_point for t in tensors[:2]):
        raise ValueError(
            f"{what}: input_ids and attention_mask must be [L] integer tensors, got shapes "
            f"{[tuple(t.shape) for t in tensors[:2]]} ({[str(t.dtype) for t in tensors[:2]]})"
        )
    return tensors


def _known_labels(dataset) -> torch.Tensor | None:
    """Every label of ``dataset`` when it keeps them apart (``targets``/``labels``, a TensorDataset's last tensor)."""
    if isinstance(dataset, torch.utils.data.TensorDataset):
        return dataset.tensors[-1]
    for attribute in ("targets", "labels"):
        values = getattr(dataset, attribute, None)
        if values is not None:
            try:
                return torch.as_tensor(values)
            except (TypeError, ValueError, RuntimeError):
                return None
    return None


def _num_classes(train, test, num_classes: int | None) -> int:
    if num_classes is not None:
        if isinstance(num_classes, bool) or not isinstance(num_classes, int):
            raise TypeError(f"num_classes must be an int, got {type(num_classes).__name__}")
        if num_classes < 2:
            raise ValueError(f"num_classes must be >= 2, got {num_classes}")
        return num_classes
    labels = [_known_labels(d) for d in (train, test)]
    if any(lab is None or lab.numel() == 0 or lab.dtype.is_floating_point for lab in labels):
        raise ValueError(
            "the datasets do not list their labels (no .targets, .labels or TensorDataset): pass num_classes"
        )
    return max(int(lab.max()) for lab in labels) + 1


def _sample_indices(n: int) -> list[int]:
    if n <= FINGERPRINT_ITEMS:
        return list(range(n))
    return sorted({round(i * (n - 1) / (FINGERPRINT_ITEMS - 1)) for i in range(FINGERPRINT_ITEMS)})


def _read_item(dataset, index: int):
    # seeded, and without touching the caller's RNG: a randomly augmented item hashes alike on every call
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return dataset[index]


def given_task(
    spec: str, train, test, *, num_classes: int | None = None, class_names: Sequence[str] | None = None
) -> Task:
    """A :class:`Task` of datasets built by the program (see the module docstring).

    Args:
        spec: ``given-vision:NAME`` or ``given-text:NAME``; NAME says what the data is (runs record it).
        train, test: map-style datasets whose items have the task kind's layout.
        num_classes: labels are ``0 .. num_classes - 1``; None: one more than the largest label, when the datasets
            list their labels (``.targets``, ``.labels`` or a ``TensorDataset``).
        class_names: the name of each label id (default: the train set's ``.classes``, if it has them).

    Raises:
        ValueError: a spec that is not ``given-*:NAME``, an empty dataset, items or labels of the wrong layout,
            no way to know ``num_classes``.
        TypeError: a dataset that is not map-style, items that are not tensors or numbers.
    """
    parsed = parse_task_spec(spec)
    if not parsed.is_given:
        raise ValueError(f"given_task takes a spec given-vision:NAME or given-text:NAME, got {spec!r}")
    kind = parsed.task_kind
    sizes = [_check_dataset(what, d) for what, d in (("train", train), ("test", test))]
    k = _num_classes(train, test, num_classes)
    if class_names is None and isinstance(getattr(train, "classes", None), (list, tuple)) and len(train.classes) == k:
        class_names = train.classes
    fingerprint = Fingerprint("given").add_json({"spec": spec, "kind": kind, "num_classes": k, "lengths": sizes})
    first = None
    for what, dataset, n in (("train", train, sizes[0]), ("test", test, sizes[1])):
        for index in _sample_indices(n):
            tensors = _check_item(f"{what}[{index}]", _read_item(dataset, index), kind)
            label = int(tensors[-1])
            if not 0 <= label < k:
                raise ValueError(f"{what}[{index}] has label {label}, outside 0..{k - 1} (num_classes={k})")
            for tensor in tensors:
                fingerprint.add_tensor(tensor)
            first = tensors if first is None else first
    in_channels = int(first[0].shape[0]) if kind == "vision" else None
    described = "images" if kind == "vision" else "token sequences"
    description = f"datasets given as {spec}: {sizes[0]} train / {sizes[1]} test {described}, {k} classes" + (
        f", {in_channels}-channel {tuple(first[0].shape[1:])}"
        if kind == "vision"
        else f" of {first[0].shape[0]} tokens"
    )
    return Task(
        name=parsed.kind,
        kind=kind,
        num_classes=k,
        in_channels=in_channels,
        train=train,
        test=test,
        description=description,
        spec=spec,
        fingerprint=fingerprint.hexdigest(),
        class_names=tuple(class_names) if class_names is not None else (),
    )
