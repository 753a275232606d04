"""The :class:`Task` interface every loader returns, and the fingerprint that identifies its data.

Batch formats (what ``torch.utils.data.DataLoader(task.train, batch_size=B)`` yields, and what
``rgprune.train.forward_batch`` takes):

* vision: ``(images, labels)``: float32 ``[B, C, H, W]`` normalized images, int64 ``[B]`` labels;
* text: ``(input_ids, attention_mask, labels)``: int64 ``[B, L]``, ``[B, L]``, ``[B]``; sentence pairs tokenized
  for a model that takes token types (BERT) add them: ``(input_ids, attention_mask, token_type_ids, labels)``.

A task's datasets may be ``TensorDataset``s (the embedded tasks), in-memory arrays decoded per item
(CIFAR, tokenized text) or lazy datasets that read one file per item (ImageFolder); each item is one
example in the layout above without the batch dimension.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Literal

import torch
from torch.utils.data import Dataset

TaskKind = Literal["vision", "text"]


class DataLayoutError(ValueError):
    """Files of a task are missing or do not have the layout its loader expects; the message names it."""


@dataclass(frozen=True)
class Task:
    """A classification task with its train and test sets.

    Attributes:
        name: what the task is called: an embedded name (see ``rgprune.data.TASK_NAMES``) or the
            kind of a spec (``"cifar10"``, ``"glue-sst2"``, ...).
        kind: ``"vision"`` or ``"text"``; matches ``rgprune.models.model_kind``.
        num_classes: labels are ``0 .. num_classes - 1``.
        in_channels: image channels for vision tasks (pass it to ``build_model``); None for text.
        train, test: datasets whose items are one example in the layout of the module docstring.
        description: one paragraph saying what the task is, its split and class counts.
        spec: the spec the task was loaded from, as given (an embedded name is its own spec).
        fingerprint: hex SHA-256 of the data the task holds and of how it was prepared (see
            :class:`Fingerprint`); two loads agree on it exactly when a model would see the same
            examples, so a run resumed on other data can be refused by comparing it.
        class_names: the name of each label id (``class_names[i]`` is label ``i``), when known.
    """

    name: str
    kind: TaskKind
    num_classes: int
    in_channels: int | None
    train: Dataset
    test: Dataset
    description: str
    spec: str = ""
    fingerprint: str = ""
    class_names: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.kind not in ("vision", "text"):
            raise ValueError(f"Task.kind must be 'vision' or 'text', got {self.kind!r}")
        if self.num_classes < 2:
            raise ValueError(f"Task.num_classes must be >= 2, got {self.num_classes}")
        if (self.kind == "vision") != (self.in_channels is not None):
            raise ValueError("Task.in_channels must be set for vision tasks and None for text tasks")
        if self.class_names and len(self.class_names) != self.num_classes:
            raise ValueError(
                f"Task.class_names has {len(self.class_names)} names for {self.num_classes} classes; "
                "give one name per class or none"
            )
        if not self.spec:
            object.__setattr__(self, "spec", self.name)  # frozen dataclass

    @property
    def identity(self) -> dict[str, str]:
        """``{"spec": ..., "fingerprint": ...}``: what a run records to recognize its data on resume."""
        return {"spec": self.spec, "fingerprint": self.fingerprint}


class Fingerprint:
    """An incremental SHA-256 over the parts that decide what a task's examples are.

    Each part is framed by its type and length, so that different sequences of parts never hash alike.
    """

    def __init__(self, kind: str) -> None:
        self._hash = hashlib.sha256()
        self.add_json({"task": kind})

    def _add(self, tag: bytes, payload: bytes) -> None:
        self._hash.update(tag + len(payload).to_bytes(8, "little"))
        self._hash.update(payload)

    def add_json(self, value: object) -> Fingerprint:
        """A JSON-serializable value (options, class names, ...); key order does not matter."""
        self._add(b"J", json.dumps(value, sort_keys=True, separators=(",", ":")).encode())
        return self

    def add_tensor(self, tensor: torch.Tensor) -> Fingerprint:
        """A tensor's dtype, shape and contents."""
        tensor = tensor.detach().cpu().contiguous()
        self.add_json({"dtype": str(tensor.dtype), "shape": list(tensor.shape)})
        # Through uint8 so that every dtype (bf16, bool) has a byte view numpy can hand over.
        self._add(b"T", tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
        return self

    def add_bytes(self, data: bytes) -> Fingerprint:
        self._add(b"B", data)
        return self

    def hexdigest(self) -> str:
        return self._hash.hexdigest()


def tensors_fingerprint(kind: str, *tensors: torch.Tensor) -> str:
    """Fingerprint of a task defined entirely by its tensors (the embedded tasks)."""
    fingerprint = Fingerprint(kind)
    for tensor in tensors:
        fingerprint.add_tensor(tensor)
    return fingerprint.hexdigest()
