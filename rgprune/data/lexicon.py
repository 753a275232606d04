"""What the word-list sentiment tasks (``vader``, ``afinn``) share: the fixed split, the tokenization, the Task.

A lexicon task is a list of entries (words, emoticons, short phrases), each labelled 1 (positive) or 0
(negative) by its module; here they are split 80/20, stratified by label, with a fixed seed (``SPLIT_SEED``,
never the run's seed), and tokenized as ``[CLS] entry [SEP]`` padded (truncated) to ``MAX_LENGTH`` tokens.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

# Before transformers is imported through the tokenizer: never reach for the hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import torch  # noqa: E402
from torch.utils.data import TensorDataset  # noqa: E402

from .task import Task, tensors_fingerprint  # noqa: E402
from .text import check_tokenizer  # noqa: E402

__all__ = [
    "MAX_LENGTH",
    "SPLIT_SEED",
    "TEST_FRACTION",
    "TOKENIZER_NAME",
    "LexiconSplit",
    "encode_entries",
    "lexicon_task",
    "split_lexicon",
]

SPLIT_SEED = 0
TEST_FRACTION = 0.2
#: Token budget per entry, [CLS] and [SEP] included. Entries are single words, emoticons and
#: two- or three-word phrases, which fit easily; longer ones would be truncated.
MAX_LENGTH = 16
TOKENIZER_NAME = "minilm"

#: ``(train_entries, train_labels, test_entries, test_labels)``, as tuples
LexiconSplit = tuple[tuple[str, ...], tuple[int, ...], tuple[str, ...], tuple[int, ...]]


def split_lexicon(entries: Sequence[str], labels: Sequence[int]) -> LexiconSplit:
    """The fixed 80/20 split of a labelled lexicon, stratified by label (``SPLIT_SEED``)."""
    from sklearn.model_selection import train_test_split

    if len(entries) != len(labels) or not entries:
        raise ValueError(
            f"a lexicon needs one label per entry and at least one entry, got {len(entries)} entries "
            f"and {len(labels)} labels"
        )
    train_entries, test_entries, train_labels, test_labels = train_test_split(
        list(entries), list(labels), test_size=TEST_FRACTION, stratify=list(labels), random_state=SPLIT_SEED
    )
    return tuple(train_entries), tuple(train_labels), tuple(test_entries), tuple(test_labels)


def encode_entries(tokenizer, entries: Sequence[str], labels: Sequence[int]) -> tuple[torch.Tensor, ...]:
    """``(input_ids, attention_mask, labels)``: int64 ``[N, MAX_LENGTH]``, ``[N, MAX_LENGTH]``, ``[N]``."""
    encoded = tokenizer(
        list(entries), padding="max_length", truncation=True, max_length=MAX_LENGTH, return_tensors="pt"
    )
    return (
        encoded["input_ids"].to(torch.int64),
        encoded["attention_mask"].to(torch.int64),
        torch.tensor(list(labels), dtype=torch.int64),
    )


def encode_split(split: LexiconSplit, tokenizer) -> tuple[tuple[torch.Tensor, ...], tuple[torch.Tensor, ...]]:
    """The train and test parts of ``split``, each encoded by :func:`encode_entries`."""
    train_entries, train_labels, test_entries, test_labels = split
    return encode_entries(tokenizer, train_entries, train_labels), encode_entries(tokenizer, test_entries, test_labels)


def default_tokenizer():
    """The built-in text models' tokenizer (MiniLM's), which the lexicon tasks use unless told otherwise."""
    from rgprune.models.bert import load_tokenizer

    return load_tokenizer(TOKENIZER_NAME)


def load_lexicon_task(name: str, what: str, split: Callable[[], LexiconSplit], tokenizer=None) -> Task:
    """The Task of the lexicon ``name`` with its fixed ``split`` (a cached function): tokenized by MiniLM's
    tokenizer (encoded once per process) or by a caller's own ``tokenizer`` (checked; not cached). ``what``: how the
    entries were labelled, the first part of the task's description."""
    if tokenizer is None:
        if name not in _DEFAULT_ENCODED:
            _DEFAULT_ENCODED[name] = encode_split(split(), default_tokenizer())
        encoded, tokenizer_name = _DEFAULT_ENCODED[name], "MiniLM WordPiece"
    else:
        encoded, tokenizer_name = encode_split(split(), checked_tokenizer(tokenizer)), type(tokenizer).__name__
    return lexicon_task(name, what, encoded, tokenizer_name)


def split_as_text(split: LexiconSplit) -> tuple[list[str], list[int], list[str], list[int]]:
    """A fixed split as lists: ``(train_entries, train_labels, test_entries, test_labels)``; row ``i`` of the
    task's train (test) set is ``train_entries[i]`` (``test_entries[i]``)."""
    return tuple(list(part) for part in split)  # type: ignore[return-value]


#: each lexicon's split encoded by MiniLM's tokenizer, by lexicon name (tokenizing takes seconds)
_DEFAULT_ENCODED: dict[str, tuple[tuple[torch.Tensor, ...], tuple[torch.Tensor, ...]]] = {}


def lexicon_task(
    name: str, what: str, encoded: tuple[tuple[torch.Tensor, ...], tuple[torch.Tensor, ...]], tokenizer_name: str
) -> Task:
    """The Task of an encoded lexicon split: ``what`` says how entries were labelled (first part of the
    description); the split's sizes and class counts and the tokenization are added here. The tensors are
    cloned, so cached encodings cannot be changed through the task."""
    train, test = encoded
    counts = {
        split: (int((labels == 1).sum()), int((labels == 0).sum()))
        for split, labels in (("train", train[2]), ("test", test[2]))
    }
    description = (
        f"{what}; fixed stratified split (seed {SPLIT_SEED}): train {len(train[2])} ({counts['train'][0]} positive, "
        f"{counts['train'][1]} negative), test {len(test[2])} ({counts['test'][0]} positive, "
        f"{counts['test'][1]} negative); {tokenizer_name} tokens padded/truncated to {MAX_LENGTH}"
    )
    return Task(
        name=name,
        kind="text",
        num_classes=2,
        in_channels=None,
        train=TensorDataset(*(t.clone() for t in train)),
        test=TensorDataset(*(t.clone() for t in test)),
        description=description,
        fingerprint=tensors_fingerprint(name, *train, *test),
    )


def checked_tokenizer(tokenizer):
    """``tokenizer`` after checking it can encode entries of ``MAX_LENGTH`` tokens (a caller's own tokenizer)."""
    check_tokenizer(tokenizer, MAX_LENGTH)
    return tokenizer
