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

from .options import TextOptions, option_name
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
    scalar, padded with ``pad_id``; with ``token_types`` (sentence pairs, for a tokenizer whose model takes
    ``token_type_ids``, e.g. BERT's) it is ``(input_ids, attention_mask, token_type_ids, label)``, the token
    types 0 for the first segment, 1 for the second (as the tokenizer made them) and 0 on the padding. Storing
    the tokens unpadded keeps e.g. MNLI (393k pairs of ~40 tokens) at a fraction of the memory of
    ``[N, max_length]`` int64 tensors.
    """

    def __init__(
        self,
        token_ids: Sequence[Sequence[int]],
        labels: torch.Tensor,
        max_length: int,
        pad_id: int,
        token_types: Sequence[Sequence[int]] | None = None,
    ):
        lengths = torch.tensor([len(ids) for ids in token_ids], dtype=torch.int64)
        if len(lengths) != len(labels):
            raise ValueError(f"{len(lengths)} token sequences but {len(labels)} labels")
        if len(lengths) and int(lengths.max()) > max_length:
            raise ValueError(f"a token sequence has {int(lengths.max())} tokens, more than max_length={max_length}")
        self.offsets = torch.zeros(len(lengths) + 1, dtype=torch.int64)
        torch.cumsum(lengths, 0, out=self.offsets[1:])
        total = int(self.offsets[-1])
        self.tokens = torch.from_numpy(np.fromiter(itertools.chain.from_iterable(token_ids), np.int32, total))
        self.types = None
        if token_types is not None:
            if [len(t) for t in token_types] != lengths.tolist():
                raise ValueError("token_types must have one type per token of every example")
            self.types = torch.from_numpy(np.fromiter(itertools.chain.from_iterable(token_types), np.int8, total))
        self.labels = labels
        self.max_length = max_length
        self.pad_id = pad_id

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, ...]:
        start, end = int(self.offsets[index]), int(self.offsets[index + 1])
        input_ids = torch.full((self.max_length,), self.pad_id, dtype=torch.int64)
        input_ids[: end - start] = self.tokens[start:end]
        attention_mask = torch.zeros(self.max_length, dtype=torch.int64)
        attention_mask[: end - start] = 1
        if self.types is None:
            return input_ids, attention_mask, self.labels[index]
        token_type_ids = torch.zeros(self.max_length, dtype=torch.int64)
        token_type_ids[: end - start] = self.types[start:end]
        return input_ids, attention_mask, token_type_ids, self.labels[index]

    def add_to(self, fingerprint: Fingerprint) -> None:
        fingerprint.add_json({"max_length": self.max_length, "pad_id": self.pad_id})
        # single sentences: no token types, and the fingerprint their runs recorded before pairs had them
        tensors = (self.tokens, self.offsets, self.labels) + (() if self.types is None else (self.types,))
        for tensor in tensors:
            fingerprint.add_tensor(tensor)


def takes_token_types(tokenizer) -> bool:
    """Whether ``tokenizer``'s model takes ``token_type_ids`` (BERT's does; RoBERTa's and DistilBERT's do not)."""
    return "token_type_ids" in (getattr(tokenizer, "model_input_names", None) or ())


def tokenize(tokenizer, split: TextSplit, max_length: int) -> tuple[list[list[int]], list[list[int]] | None]:
    """Token ids of every example (special tokens added, truncated to ``max_length``, not padded), and their
    token types for a sentence pair when the tokenizer's model takes them (else None). A pair is encoded as
    the tokenizer encodes ``(text, text_pair)``: for BERT ``[CLS] first [SEP] second [SEP]``, types 0 then 1."""
    types = split.second is not None and takes_token_types(tokenizer)
    encoded = tokenizer(
        split.first,
        split.second,
        truncation=True,
        max_length=max_length,
        padding=False,
        return_attention_mask=False,
        return_token_type_ids=types,
    )
    return encoded["input_ids"], (encoded["token_type_ids"] if types else None)


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
        name = option_name("TextOptions.max_length")  # --max-length under rgprune imp
        raise ValueError(
            f"{name}={max_length} exceeds the tokenizer's model_max_length={limit} (the model's positions); "
            f"use {name} <= {limit}"
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
    datasets = []
    for split, y in ((train, y_train), (test, y_test)):
        ids, types = tokenize(tokenizer, split, options.max_length)
        datasets.append(TokenizedTextDataset(ids, y, options.max_length, pad_id, types))
    names = tuple(class_names) if class_names is not None else tuple(order)
    fingerprint = Fingerprint(name).add_json({"classes": list(names), "order": list(order)})
    for dataset in datasets:
        dataset.add_to(fingerprint)
    counts = torch.bincount(y_train, minlength=len(order)).tolist()
    pairs = "single sentences"
    if train.second is not None:
        pairs = "sentence pairs (token types 0/1)" if datasets[0].types is not None else "sentence pairs"
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
