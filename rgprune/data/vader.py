"""The ``vader`` task: is a word (or emoticon, or short phrase) of the VADER lexicon positive?

``vader_lexicon.txt`` ships with the ``vaderSentiment`` package (Hutto & Gilbert 2014): ~7500
entries, each rated by ten people from -4 (most negative) to +4 (most positive). We keep the
entries whose mean rating is clearly signed, label them ``1`` (mean > +0.5) or ``0``
(mean < -0.5), drop the near-neutral rest, and split them 80/20, stratified, with a fixed seed
(``SPLIT_SEED``, never the run's seed). Entries are tokenized with the MiniLM tokenizer
(``[CLS] word [SEP]``, padded to ``MAX_LENGTH`` tokens, truncated beyond it): :mod:`rgprune.data.lexicon`.

The lexicon repeats 14 entries with two ratings; as in ``vaderSentiment`` itself (which reads
the file into a dict), the later line wins.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from .lexicon import (  # noqa: F401 (this task's settings)
    MAX_LENGTH,
    SPLIT_SEED,
    TEST_FRACTION,
    TOKENIZER_NAME,
    LexiconSplit,
    load_lexicon_task,
    split_as_text,
    split_lexicon,
)
from .task import Task

POSITIVE_THRESHOLD = 0.5  # mean rating > +0.5 -> positive (1)
NEGATIVE_THRESHOLD = -0.5  # mean rating < -0.5 -> negative (0)


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
def _fixed_split() -> LexiconSplit:
    words, labels = [], []
    for word, mean in _lexicon():
        label = sentiment_label(mean)
        if label is not None:
            words.append(word)
            labels.append(label)
    return split_lexicon(words, labels)


def vader_split() -> tuple[list[str], list[int], list[str], list[int]]:
    """The fixed split as text: ``(train_words, train_labels, test_words, test_labels)``.

    Row ``i`` of the task's train (test) set is ``train_words[i]`` (``test_words[i]``).
    """
    return split_as_text(_fixed_split())


def load_vader_task(tokenizer=None) -> Task:
    """Build the ``vader`` task (see the module docstring); ``tokenizer``: another model's tokenizer to use
    instead of MiniLM's (not cached)."""
    what = (
        f"VADER lexicon sentiment: entries with mean rating > {POSITIVE_THRESHOLD:+} are positive (1), "
        f"< {NEGATIVE_THRESHOLD:+} negative (0), the rest dropped"
    )
    return load_lexicon_task("vader", what, _fixed_split, tokenizer)
