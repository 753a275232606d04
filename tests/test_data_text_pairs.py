"""Sentence-pair text tasks (GLUE MRPC, RTE, QQP, MNLI, QNLI, STS-B style: two text columns): the pair is tokenized
as ``(text, text_pair)`` (``[CLS] first [SEP] second [SEP]``), items carry ``token_type_ids`` (0 on the first
segment, 1 on the second, 0 on the padding) when the tokenizer's model takes them, and the model is called with
them in training and evaluation. A tiny BERT checkpoint and MRPC files in GLUE's own layout, written here."""

from __future__ import annotations

import pytest
import tiny_data as td
import torch
from torch import nn
from torch.utils.data import DataLoader
from transformers import BertForSequenceClassification

from rgprune.data import TextOptions, load_task
from rgprune.imp import IMPConfig, run_imp
from rgprune.models import load_tokenizer

MRPC_HEADER = "\ufeffQuality\t#1 ID\t#2 ID\t#1 String\t#2 String"  # GLUE's MRPC files start with a byte-order mark


def write_glue_mrpc(root):
    """train.tsv (8 pairs) and dev.tsv (4) in GLUE's MRPC layout; returns the rows (first, second, label)."""
    root.mkdir(parents=True)
    rows = {}
    for name, start, n in (("train.tsv", 0, 8), ("dev.tsv", 8, 4)):
        part = [
            (td.SENTENCES[i], td.SENTENCES[(i + 3) % len(td.SENTENCES)], str(i % 2)) for i in range(start, start + n)
        ]
        lines = [MRPC_HEADER] + [f"{y}\t{100 + i}\t{200 + i}\t{a}\t{b}" for i, (a, b, y) in enumerate(part)]
        (root / name).write_text("\n".join(lines) + "\n", encoding="utf-8")
        rows[name] = part
    return rows


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("pairs")
    rows = write_glue_mrpc(root / "MRPC")
    td.write_glue_sst2(root / "SST-2")
    td.write_hf_checkpoint(root / "bert")
    return root, rows


def items(dataset):
    return next(iter(DataLoader(dataset, batch_size=len(dataset))))


@pytest.mark.parametrize("tokenizer_name", ["tiny", "minilm"])
def test_a_pair_task_carries_the_tokenizers_token_types(data, tokenizer_name):
    root, rows = data
    tokenizer = load_tokenizer(f"hf:{root}/bert") if tokenizer_name == "tiny" else load_tokenizer("minilm")
    task = load_task(f"glue-mrpc:{root}/MRPC", tokenizer=tokenizer, text=TextOptions(max_length=24))
    assert "sentence pairs (token types 0/1)" in task.description
    for dataset, part in ((task.train, rows["train.tsv"]), (task.test, rows["dev.tsv"])):
        input_ids, attention_mask, token_type_ids, labels = items(dataset)
        assert token_type_ids.dtype == torch.int64 and token_type_ids.shape == input_ids.shape
        assert labels.tolist() == [int(y) for *_, y in part]
        for i, (first, second, _) in enumerate(part):
            expected = tokenizer(first, second, padding="max_length", max_length=24)
            assert input_ids[i].tolist() == expected["input_ids"]
            assert attention_mask[i].tolist() == expected["attention_mask"]
            assert token_type_ids[i].tolist() == expected["token_type_ids"]
            # [CLS] first [SEP] -> 0, second [SEP] -> 1, padding -> 0
            seps = (input_ids[i] == tokenizer.sep_token_id).nonzero().flatten().tolist()
            assert len(seps) == 2
            types = token_type_ids[i].tolist()
            assert types == [0] * (seps[0] + 1) + [1] * (seps[1] - seps[0]) + [0] * (23 - seps[1])
            assert 1 in types


def test_single_sentences_and_tokenizers_without_token_types_keep_three_tensors(data):
    root, _ = data
    tokenizer = load_tokenizer(f"hf:{root}/bert")
    single = load_task(f"glue-sst2:{root}/SST-2", tokenizer=tokenizer, text=TextOptions(max_length=16))
    assert len(single.train[0]) == 3 and "single sentences" in single.description
    tokenizer.model_input_names = ["input_ids", "attention_mask"]  # as RoBERTa's and DistilBERT's
    pairs = load_task(f"glue-mrpc:{root}/MRPC", tokenizer=tokenizer, text=TextOptions(max_length=24))
    assert len(pairs.train[0]) == 3 and "token types" not in pairs.description
    with_types = load_task(
        f"glue-mrpc:{root}/MRPC", tokenizer=load_tokenizer(f"hf:{root}/bert"), text=TextOptions(max_length=24)
    )
    assert with_types.fingerprint != pairs.fingerprint  # the token types are part of the data


def test_the_model_is_called_with_the_token_types(data, tmp_path, monkeypatch):
    """Spy on BertForSequenceClassification.forward through a whole IMP run on MRPC: every training and evaluation
    call gets the batch's token_type_ids, and they hold the second segment's 1s."""
    root, _ = data
    calls = []
    original = BertForSequenceClassification.forward

    def spy(self, *args, **kwargs):
        calls.append((kwargs.get("input_ids"), kwargs.get("token_type_ids")))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(BertForSequenceClassification, "forward", spy)
    config = IMPConfig(
        model=f"hf:{root}/bert", task=f"glue-mrpc:{root}/MRPC", rounds=1, epochs=1, batch_size=4, max_length=24
    )
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        result = run_imp(config, tmp_path / "mrpc", progress=False)
    finally:
        torch.set_num_threads(threads)
    assert result.complete and calls
    tokenizer = load_tokenizer(f"hf:{root}/bert")
    for input_ids, token_type_ids in calls:
        assert token_type_ids is not None and token_type_ids.shape == input_ids.shape
        sep = (input_ids == tokenizer.sep_token_id).long()
        after_first_sep = sep.cumsum(1) - sep >= 1  # the second segment and its [SEP] (and the padding)
        expected = (after_first_sep & (input_ids != tokenizer.pad_token_id)).long()
        assert torch.equal(token_type_ids, expected) and bool(token_type_ids.any())


def test_a_model_without_token_types_still_trains_on_pairs(data, tmp_path):
    """A factory's model whose forward takes only input_ids and attention_mask gets only those."""
    root, _ = data
    tokenizer = load_tokenizer(f"hf:{root}/bert")
    seen = []

    class BagOfWords(nn.Module):
        def __init__(self, num_classes: int):
            super().__init__()
            self.embed, self.hidden = nn.Embedding(len(tokenizer), 8), nn.Linear(8, 8)
            self.head = nn.Linear(8, num_classes)

        def forward(self, input_ids, attention_mask):
            seen.append(input_ids.shape)
            return self.head(torch.relu(self.hidden((self.embed(input_ids) * attention_mask[..., None]).mean(1))))

    config = IMPConfig(model="given:bag", task=f"glue-mrpc:{root}/MRPC", rounds=1, epochs=1, batch_size=4)
    result = run_imp(config, tmp_path / "bag", progress=False, model_fn=BagOfWords, tokenizer=tokenizer)
    assert result.complete and seen
