"""The ``vader`` task: is a word (or emoticon, or short phrase) of the VADER lexicon positive?

``vader_lexicon.txt`` ships with the ``vaderSentiment`` package (Hutto & Gilbert 2014): ~7500
entries, each rated by ten people from -4 (most negative) to +4 (most positive). We keep the
entries whose mean rating is clearly signed, label them ``1`` (mean > +0.5) or ``0``
(mean < -0.5), drop the near-neutral rest, and split them 80/20, stratified, with a fixed seed
(``SPLIT_SEED``, never the run's seed). Entries are tokenized with the MiniLM tokenizer
(``[CLS] word [SEP]``, padded to ``MAX_LENGTH`` tokens, truncated beyond it).

The lexicon repeats 14 entries with two ratings; as in ``vaderSentiment`` itself (which reads
the file into a dict), the later line wins.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

# Before transformers is imported through the tokenizer: never reach for the hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import torch  # noqa: E402
from torch.utils.data import TensorDataset  # noqa: E402

from .task import Task, tensors_fingerprint  # noqa: E402
from .text import check_tokenizer  # noqa: E402

POSITIVE_THRESHOLD = 0.5  # mean rating > +0.5 -> positive (1)
NEGATIVE_THRESHOLD = -0.5  # mean rating < -0.5 -> negative (0)
SPLIT_SEED = 0
TEST_FRACTION = 0.2
#: Token budget per entry, [CLS] and [SEP] included. Entries are single words, emoticons and
#: two- or three-word phrases, which fit easily; longer ones would be truncated.
MAX_LENGTH = 16
TOKENIZER_NAME = "minilm"


def lexicon_path() -> Path:
    """Path of ``vader_lexicon.txt`` inside the installed ``vaderSentiment`` package."""
    try:
        import vaderSentiment
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "the 'vader' task needs the 'vaderSentiment' package, which ships the lexicon; "
            "install it with `pip install vaderSentiment`"
        ) from exc
    path = Path(vaderSentiment.__file__).resolve().parent / "vader_lexicon.txt"
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing; reinstall 'vaderSentiment' to restore it")
    return path


@lru_cache(maxsize=1)
def _lexicon() -> tuple[tuple[str, float], ...]:
    entries: dict[str, float] = {}
    # Lines are "token<TAB>mean<TAB>std<TAB>[ten ratings]" with CRLF endings; splitlines()
    # drops the CR as well as the LF.
    for line in lexicon_path().read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        token, mean = line.split("\t")[:2]
        entries[token] = float(mean)  # a repeated token: the later line wins, as in vaderSentiment
    return tuple(entries.items())


def vader_lexicon() -> dict[str, float]:
    """Every lexicon entry and its mean rating (-4..+4), as ``vaderSentiment`` reads them."""
    return dict(_lexicon())


def sentiment_label(mean_rating: float) -> int | None:
    """1 for a positive rating (> +0.5), 0 for a negative one (< -0.5), None for near-neutral."""
    if mean_rating > POSITIVE_THRESHOLD:
        return 1
    if mean_rating < NEGATIVE_THRESHOLD:
        return 0
    return None


@lru_cache(maxsize=1)
def _fixed_split() -> tuple[tuple[str, ...], tuple[int, ...], tuple[str, ...], tuple[int, ...]]:
    from sklearn.model_selection import train_test_split

    words, labels = [], []
    for word, mean in _lexicon():
        label = sentiment_label(mean)
        if label is not None:
            words.append(word)
            labels.append(label)
    train_words, test_words, train_labels, test_labels = train_test_split(
        words, labels, test_size=TEST_FRACTION, stratify=labels, random_state=SPLIT_SEED
    )
    return tuple(train_words), tuple(train_labels), tuple(test_words), tuple(test_labels)


def vader_split() -> tuple[list[str], list[int], list[str], list[int]]:
    """The fixed split as text: ``(train_words, train_labels, test_words, test_labels)``.

    Row ``i`` of the task's train (test) set is ``train_words[i]`` (``test_words[i]``).
    """
    return tuple(list(part) for part in _fixed_split())  # type: ignore[return-value]


def _encode(tokenizer) -> tuple[tuple[torch.Tensor, ...], tuple[torch.Tensor, ...]]:
    train_words, train_labels, test_words, test_labels = _fixed_split()

    def encode(words: tuple[str, ...], labels: tuple[int, ...]) -> tuple[torch.Tensor, ...]:
        encoded = tokenizer(
            list(words), padding="max_length", truncation=True, max_length=MAX_LENGTH,
            return_tensors="pt",
        )
        return (
            encoded["input_ids"].to(torch.int64),
            encoded["attention_mask"].to(torch.int64),
            torch.tensor(labels, dtype=torch.int64),
        )

    return encode(train_words, train_labels), encode(test_words, test_labels)


@lru_cache(maxsize=1)
def _tokenized_split() -> tuple[tuple[torch.Tensor, ...], tuple[torch.Tensor, ...]]:
    from rgprune.models.bert import load_tokenizer

    return _encode(load_tokenizer(TOKENIZER_NAME))


def load_vader_task(tokenizer=None) -> Task:
    """Build the ``vader`` task (see the module docstring); ``tokenizer``: another model's tokenizer to use
    instead of MiniLM's (not cached)."""
    if tokenizer is None:
        train, test = _tokenized_split()
        tokenizer_name = "MiniLM WordPiece"
    else:
        check_tokenizer(tokenizer, MAX_LENGTH)
        train, test = _encode(tokenizer)
        tokenizer_name = type(tokenizer).__name__
    train_labels, test_labels = train[2], test[2]
    counts = {
        split: (int((labels == 1).sum()), int((labels == 0).sum()))
        for split, labels in (("train", train_labels), ("test", test_labels))
    }
    description = (
        f"VADER lexicon sentiment: entries with mean rating > {POSITIVE_THRESHOLD:+} are positive (1), "
        f"< {NEGATIVE_THRESHOLD:+} negative (0), the rest dropped; fixed stratified split "
        f"(seed {SPLIT_SEED}): train {len(train_labels)} ({counts['train'][0]} positive, "
        f"{counts['train'][1]} negative), test {len(test_labels)} ({counts['test'][0]} positive, "
        f"{counts['test'][1]} negative); {tokenizer_name} tokens padded/truncated to {MAX_LENGTH}"
    )
    return Task(
        name="vader",
        kind="text",
        num_classes=2,
        in_channels=None,
        # Clones: the cached tensors must not be changed through a task handed to a caller.
        train=TensorDataset(*(t.clone() for t in train)),
        test=TensorDataset(*(t.clone() for t in test)),
        description=description,
        fingerprint=tensors_fingerprint("vader", *train, *test),
    )
