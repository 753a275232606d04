"""The ``afinn`` task: is a word (or short phrase) of the AFINN word list positive?

``AFINN-en-165.txt`` ships with the ``afinn`` package (Nielsen 2011; version 165 of the English list): 3382
entries, each rated by hand with an integer valence from -5 (most negative) to +5 (most positive). We label an
entry ``1`` (valence > 0) or ``0`` (valence < 0), drop the entries rated 0 (two of them), and split and tokenize
as every lexicon task (:mod:`rgprune.data.lexicon`: 80/20 stratified with a fixed seed, MiniLM tokens).

It is the second offline text task beside ``vader``: another list, other raters and an integer scale. Most
AFINN words are in the VADER lexicon too (2650 of 3382), so the two tasks overlap; they are two samples of the
same kind of task, not two kinds.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from .lexicon import LexiconSplit, load_lexicon_task, split_as_text, split_lexicon
from .task import Task

__all__ = ["WORD_LIST", "afinn_split", "afinn_word_list", "load_afinn_task", "valence_label"]

WORD_LIST = "AFINN-en-165.txt"


def word_list_path() -> Path:
    """Path of ``AFINN-en-165.txt`` inside the installed ``afinn`` package."""
    try:
        import afinn
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "the 'afinn' task needs the 'afinn' package, which ships the word list; install it with `pip install afinn`"
        ) from exc
    path = Path(afinn.__file__).resolve().parent / "data" / WORD_LIST
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing; reinstall 'afinn' to restore it")
    return path


@lru_cache(maxsize=1)
def _word_list() -> tuple[tuple[str, int], ...]:
    entries: dict[str, int] = {}
    for number, line in enumerate(word_list_path().read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        word, _, valence = line.rpartition("\t")  # "word<TAB>valence"; a phrase holds spaces, never a tab
        if not word:
            raise ValueError(f"{word_list_path()} line {number} is not 'word<TAB>valence': {line!r}")
        entries[word] = int(valence)
    return tuple(entries.items())


def afinn_word_list() -> dict[str, int]:
    """Every entry of the word list and its valence (-5..+5)."""
    return dict(_word_list())


def valence_label(valence: int) -> int | None:
    """1 for a positive valence, 0 for a negative one, None for 0."""
    return None if valence == 0 else int(valence > 0)


@lru_cache(maxsize=1)
def _fixed_split() -> LexiconSplit:
    kept = [(word, valence_label(valence)) for word, valence in _word_list() if valence_label(valence) is not None]
    return split_lexicon([w for w, _ in kept], [label for _, label in kept])


def afinn_split() -> tuple[list[str], list[int], list[str], list[int]]:
    """The fixed split as text: ``(train_words, train_labels, test_words, test_labels)``; row ``i`` of the task's
    train (test) set is ``train_words[i]`` (``test_words[i]``)."""
    return split_as_text(_fixed_split())


def load_afinn_task(tokenizer=None) -> Task:
    """Build the ``afinn`` task (see the module docstring); ``tokenizer``: another model's tokenizer to use
    instead of MiniLM's (not cached)."""
    what = f"AFINN word list ({WORD_LIST}) valence: entries rated > 0 are positive (1), < 0 negative (0), 0 dropped"
    return load_lexicon_task("afinn", what, _fixed_split, tokenizer)
