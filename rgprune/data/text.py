"""What the text loaders (GLUE, CSV, ``hf-disk``) share: label ids, tokenization and the tokenized dataset.

A loader reads its files into :class:`TextSplit` (sentences or sentence pairs, and string labels) and
hands the train and test splits to :func:`build_text_task`, which maps labels to ids, tokenizes, and
fingerprints the result.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset

from .options import TextOptions
from .task import DataLayoutError, Fingerprint, Task


@dataclass(frozen=True)
class TextSplit:
    """One split as read from disk: ``first[i]`` (and ``second[i]`` for sentence pairs) with label
    ``labels[i]`` (label values as strings; ids are assigned later, for both splits at once)."""

    first: list[str]
    second: list[str] | None
    labels: list[str]
    source: str  # where it was read from, for messages

    def __post_init__(self) -> None:
        if not self.labels:
            raise DataLayoutError(f"{self.source} holds no examples")


def _label_sort_key(label: str) -> tuple:
    try:
        return (0, int(label), label)
    except ValueError:
        return (1, 0, label)


def label_order(train_labels: Sequence[str]) -> tuple[str, ...]:
    """The distinct labels of a training set in id order: as numbers when every label is an integer
    (``"2" < "10"``), else as strings. Deterministic: it depends only on the set of labels."""
    distinct = set(train_labels)
    if all(_label_sort_key(label)[0] == 0 for label in distinct):
        return tuple(sorted(distinct, key=_label_sort_key))
    return tuple(sorted(distinct))


def label_ids(labels: Sequence[str], order: Sequence[str], source: str) -> torch.Tensor:
    """int64 ids of ``labels`` in ``order``; a label outside ``order`` is a :class:`DataLayoutError`."""
    index = {label: i for i, label in enumerate(order)}
    ids = []
    for row, label in enumerate(labels):
        if label not in index:
            raise DataLayoutError(
                f"{source}: example {row} has label {label!r}, which is not one of the "
                f"{len(order)} labels {list(order)[:20]}"
            )
        ids.append(index[label])
    return torch.tensor(ids, dtype=torch.int64)


class TokenizedTextDataset(Dataset):
    """Tokenized examples stored ragged (int32 tokens, no padding) and padded per item.

    Item ``i`` is ``(input_ids, attention_mask, label)``: int64 ``[max_length]``, ``[max_length]`` and a
    scalar, padded with ``pad_id``. Storing the tokens unpadded keeps e.g. MNLI (393k pairs of ~40
    tokens) at a fraction of the memory of ``[N, max_length]`` int64 tensors.
    """

    def __init__(self, token_ids: Sequence[Sequence[int]], labels: torch.Tensor, max_length: int, pad_id: int):
        lengths = torch.tensor([len(ids) for ids in token_ids], dtype=torch.int64)
        if len(lengths) != len(labels):
            raise ValueError(f"{len(lengths)} token sequences but {len(labels)} labels")
        if len(lengths) and int(lengths.max()) > max_length:
            raise ValueError(f"a token sequence has {int(lengths.max())} tokens, more than max_length={max_length}")
        self.offsets = torch.zeros(len(lengths) + 1, dtype=torch.int64)
        torch.cumsum(lengths, 0, out=self.offsets[1:])
        total = int(self.offsets[-1])
        self.tokens = torch.from_numpy(np.fromiter(itertools.chain.from_iterable(token_ids), np.int32, total))
        self.labels = labels
        self.max_length = max_length
        self.pad_id = pad_id

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        start, end = int(self.offsets[index]), int(self.offsets[index + 1])
        input_ids = torch.full((self.max_length,), self.pad_id, dtype=torch.int64)
        input_ids[: end - start] = self.tokens[start:end]
        attention_mask = torch.zeros(self.max_length, dtype=torch.int64)
        attention_mask[: end - start] = 1
        return input_ids, attention_mask, self.labels[index]

    def add_to(self, fingerprint: Fingerprint) -> None:
        fingerprint.add_json({"max_length": self.max_length, "pad_id": self.pad_id})
        for tensor in (self.tokens, self.offsets, self.labels):
            fingerprint.add_tensor(tensor)


def tokenize(tokenizer, split: TextSplit, max_length: int) -> list[list[int]]:
    """Token ids of every example (special tokens added, truncated to ``max_length``, not padded)."""
    encoded = tokenizer(
        split.first,
        split.second,
        truncation=True,
        max_length=max_length,
        padding=False,
        return_attention_mask=False,
        return_token_type_ids=False,
    )
    return encoded["input_ids"]


def default_tokenizer():
    """The tokenizer of the built-in text models (MiniLM's uncased WordPiece)."""
    from rgprune.models.bert import load_tokenizer

    return load_tokenizer("minilm")


def check_tokenizer(tokenizer, max_length: int | None = None) -> int:
    """The pad id of ``tokenizer``, after checking it has one and takes ``max_length`` tokens."""
    if not callable(tokenizer):
        raise TypeError(f"tokenizer must be a Hugging Face tokenizer (callable), got {type(tokenizer).__name__}")
    pad_id = getattr(tokenizer, "pad_token_id", None)
    if not isinstance(pad_id, int):
        raise ValueError(
            f"the tokenizer {type(tokenizer).__name__} has no pad token; set one first "
            "(e.g. tokenizer.pad_token = tokenizer.eos_token)"
        )
    # Tokenizers without a limit report a huge model_max_length (1e30); a real one is the model's position count.
    limit = getattr(tokenizer, "model_max_length", None)
    if max_length is not None and isinstance(limit, int) and max_length > limit:
        raise ValueError(
            f"TextOptions.max_length={max_length} exceeds the tokenizer's model_max_length={limit} (the "
            f"model's positions); use max_length <= {limit}"
        )
    return pad_id


def build_text_task(
    *,
    name: str,
    spec: str,
    train: TextSplit,
    test: TextSplit,
    tokenizer,
    options: TextOptions,
    order: Sequence[str],
    class_names: Sequence[str] | None,
    what: str,
) -> Task:
    """Map labels to ids in ``order``, tokenize both splits and fingerprint the result.

    ``what`` starts the task's description (e.g. ``"GLUE SST-2 from /data/SST-2"``).
    """
    if len(order) < 2:
        raise DataLayoutError(
            f"{train.source} has {len(order)} distinct label(s) {list(order)}; a classification task needs at least 2"
        )
    if (train.second is None) != (test.second is None):
        raise ValueError("train and test must both be single sentences or both sentence pairs")
    pad_id = check_tokenizer(tokenizer, options.max_length)
    y_train = label_ids(train.labels, order, train.source)
    y_test = label_ids(test.labels, order, test.source)
    datasets = [
        TokenizedTextDataset(tokenize(tokenizer, split, options.max_length), y, options.max_length, pad_id)
        for split, y in ((train, y_train), (test, y_test))
    ]
    names = tuple(class_names) if class_names is not None else tuple(order)
    fingerprint = Fingerprint(name).add_json({"classes": list(names), "order": list(order)})
    for dataset in datasets:
        dataset.add_to(fingerprint)
    counts = torch.bincount(y_train, minlength=len(order)).tolist()
    pairs = "sentence pairs" if train.second is not None else "single sentences"
    per_class = f" ({', '.join(f'{n}={c}' for n, c in zip(names, counts))} in train)" if len(names) <= 20 else ""
    description = (
        f"{what}: {len(y_train)} train / {len(y_test)} test {pairs}, {len(order)} classes{per_class}; "
        f"{type(tokenizer).__name__} tokens padded/truncated to {options.max_length}"
    )
    return Task(
        name=name,
        kind="text",
        num_classes=len(order),
        in_channels=None,
        train=datasets[0],
        test=datasets[1],
        description=description,
        spec=spec,
        fingerprint=fingerprint.hexdigest(),
        class_names=names,
    )
