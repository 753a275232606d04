"""Tiny data sets written in the real on-disk formats of the sources ``rgprune.data`` reads, for the tests.

Each writer returns what it wrote (arrays, rows) so tests can compare a loaded task with the source.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np

SENTENCES = [
    "the movie is good",
    "the movie is bad",
    "a truly great film",
    "a dull and boring film",
    "i loved every minute",
    "i hated every minute",
    "the actors were great",
    "the plot was bad",
    '"wow" he said twice',
    "nothing works here",
    "it was fine",
    "what a waste of time",
]

# ---- CIFAR: python pickle batches as torchvision's download=True leaves them ------------------------------


def _pickle(path: Path, obj) -> None:
    # Protocol 2, as the original (Python 2) files; they are read back with encoding="latin1".
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=2)


def write_cifar10(root: Path, per_batch: int = 4, n_test: int = 6, seed: int = 0) -> dict:
    """ROOT/cifar-10-batches-py/{data_batch_1..5, test_batch, batches.meta}; returns the images and labels."""
    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    train_x, train_y = [], []
    for i in range(1, 6):
        x = rng.integers(0, 256, size=(per_batch, 3072), dtype=np.uint8)
        y = [int(v) for v in rng.integers(0, 10, size=per_batch)]
        _pickle(
            folder / f"data_batch_{i}",
            {
                "batch_label": f"training batch {i} of 5",
                "labels": y,
                "data": x,
                "filenames": [f"img_{i}_{j}.png" for j in range(per_batch)],
            },
        )
        train_x.append(x)
        train_y += y
    test_x = rng.integers(0, 256, size=(n_test, 3072), dtype=np.uint8)
    test_y = [int(v) for v in rng.integers(0, 10, size=n_test)]
    _pickle(
        folder / "test_batch",
        {
            "batch_label": "testing batch 1 of 1",
            "labels": test_y,
            "data": test_x,
            "filenames": [f"test_{j}.png" for j in range(n_test)],
        },
    )
    names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    _pickle(folder / "batches.meta", {"num_cases_per_batch": per_batch, "label_names": names, "num_vis": 3072})
    return {
        "train_x": np.concatenate(train_x),
        "train_y": np.array(train_y),
        "test_x": test_x,
        "test_y": np.array(test_y),
        "names": names,
    }


def write_cifar100(root: Path, n_train: int = 12, n_test: int = 5, seed: int = 1) -> dict:
    """ROOT/cifar-100-python/{train, test, meta} with fine and coarse labels."""
    rng = np.random.default_rng(seed)
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True)
    out = {}
    for split, n in (("train", n_train), ("test", n_test)):
        x = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
        fine = [int(v) for v in rng.integers(20, 100, size=n)]  # >= 20: never a valid coarse label
        coarse = [v % 20 for v in fine]
        _pickle(
            folder / split,
            {
                "filenames": [f"{split}_{j}.png" for j in range(n)],
                "batch_label": split,
                "fine_labels": fine,
                "coarse_labels": coarse,
                "data": x,
            },
        )
        out[f"{split}_x"], out[f"{split}_y"] = x, np.array(fine)
    names = [f"fine_{i}" for i in range(100)]
    _pickle(folder / "meta", {"fine_label_names": names, "coarse_label_names": [f"coarse_{i}" for i in range(20)]})
    out["names"] = names
    return out


# ---- ImageFolder: PNG files in train/<class>/ and val/<class>/ --------------------------------------------

#: class -> (solid RGB color, PIL mode of its images); val has no 'bird', so labels must come from train.
FOLDER_CLASSES = {"bird": ((200, 30, 30), "RGB"), "cat": ((10, 240, 90), "L"), "dog": ((50, 60, 250), "RGBA")}


def write_imagefolder(root: Path, per_class: int = 3) -> dict:
    """Solid-color PNGs of several sizes and modes (grayscale, RGBA) in the ImageNet layout."""
    from PIL import Image

    counts = {}
    for split, classes in (("train", FOLDER_CLASSES), ("val", {k: FOLDER_CLASSES[k] for k in ("cat", "dog")})):
        for name, (color, mode) in classes.items():
            folder = root / split / name
            folder.mkdir(parents=True)
            for j in range(per_class):
                size = (40 + 7 * j, 30 + 5 * j)  # width != height: the resize/crop path matters
                fill = color[0] if mode == "L" else (*color, 255) if mode == "RGBA" else color
                Image.new(mode, size, fill).save(folder / f"{name}_{j}.png")
            counts[(split, name)] = per_class
    (root / "train" / "cat" / "notes.txt").write_text("not an image: skipped")
    return counts


# ---- GLUE TSV files ----------------------------------------------------------------------------------------


def write_glue_sst2(root: Path) -> tuple[list, list]:
    root.mkdir(parents=True)
    train = [(s, i % 2) for i, s in enumerate(SENTENCES[:8])]
    dev = [(s, i % 2) for i, s in enumerate(SENTENCES[8:])]
    for name, rows in (("train.tsv", train), ("dev.tsv", dev)):
        lines = ["sentence\tlabel"] + [f"{s}\t{y}" for s, y in rows]
        (root / name).write_text("\n".join(lines) + "\n", encoding="utf-8")
    (root / "test.tsv").write_text("index\tsentence\n0\tunlabelled\n")
    return train, dev


MNLI_TRAIN_HEADER = (
    "index\tpromptID\tpairID\tgenre\tsentence1_binary_parse\tsentence2_binary_parse\t"
    "sentence1_parse\tsentence2_parse\tsentence1\tsentence2\tlabel1\tgold_label"
)
MNLI_DEV_HEADER = (
    "index\tpromptID\tpairID\tgenre\tsentence1_binary_parse\tsentence2_binary_parse\t"
    "sentence1_parse\tsentence2_parse\tsentence1\tsentence2\tlabel1\tlabel2\tlabel3\tlabel4\tlabel5\t"
    "gold_label"
)
MNLI_LABELS = ("entailment", "neutral", "contradiction")


def write_glue_mnli(root: Path) -> dict:
    """train.tsv (12 columns) and dev_matched.tsv / dev_mismatched.tsv (16 columns) with GLUE's headers."""
    root.mkdir(parents=True)
    rows = {}
    for name, header, n, extra in (
        ("train.tsv", MNLI_TRAIN_HEADER, 9, 1),
        ("dev_matched.tsv", MNLI_DEV_HEADER, 4, 5),
        ("dev_mismatched.tsv", MNLI_DEV_HEADER, 3, 5),
    ):
        split = []
        lines = [header]
        for i in range(n):
            first, second = SENTENCES[i % len(SENTENCES)], SENTENCES[(i + 5) % len(SENTENCES)]
            label = MNLI_LABELS[(i + len(name)) % 3]
            parses = [f"( {first} )", f"( {second} )", f"(ROOT {first})", f"(ROOT {second})"]
            lines.append(
                "\t".join(
                    [str(i), str(100 + i), f"{100 + i}e", "fiction", *parses, first, second, *[label] * extra, label]
                )
            )
            split.append((first, second, label))
        (root / name).write_text("\n".join(lines) + "\n", encoding="utf-8")
        rows[name] = split
    return rows


def write_glue_cola(root: Path) -> list:
    """CoLA: no header, 4 fields (source, label, original label notation, sentence)."""
    root.mkdir(parents=True)
    rows = [(s, i % 2) for i, s in enumerate(SENTENCES)]
    for name, part in (("train.tsv", rows[:8]), ("dev.tsv", rows[8:])):
        lines = [f"gj04\t{y}\t{'' if y else '*'}\t{s}" for s, y in part]
        (root / name).write_text("\n".join(lines) + "\n", encoding="utf-8")
    return rows


# ---- datasets.save_to_disk and CSV -------------------------------------------------------------------------


def write_hf_disk(root: Path, *, class_label: bool = True, splits=("train", "validation", "test")) -> None:
    """A DatasetDict with sentence pairs; ClassLabel labels (GLUE-style, test labels hidden as -1) or strings."""
    import datasets

    names = ["negative", "positive"]
    parts = {}
    for split in splits:
        part = SENTENCES[:8] if split == "train" else SENTENCES[8:]
        labels = [-1] * len(part) if split == "test" and class_label else [i % 2 for i in range(len(part))]
        columns = {"premise": part, "hypothesis": part[::-1], "idx": list(range(len(part)))}
        if class_label:
            features = datasets.Features(
                {
                    "premise": datasets.Value("string"),
                    "hypothesis": datasets.Value("string"),
                    "idx": datasets.Value("int32"),
                    "label": datasets.ClassLabel(names=names),
                }
            )
            parts[split] = datasets.Dataset.from_dict({**columns, "label": labels}, features=features)
        else:
            parts[split] = datasets.Dataset.from_dict({**columns, "label": [names[y] for y in labels]})
    datasets.DatasetDict(parts).save_to_disk(str(root))


def write_csv(root: Path, ext: str = "csv") -> dict:
    """train/test files with a quoted text holding the delimiter, string labels, an extra column."""
    import csv

    root.mkdir(parents=True, exist_ok=True)
    labels = ["pos", "neg", "neutral"]
    rows = {
        "train": [(f"{s}, really", labels[i % 3]) for i, s in enumerate(SENTENCES[:9])],
        "test": [(s, labels[i % 2]) for i, s in enumerate(SENTENCES[9:])],
    }
    for split, part in rows.items():
        with open(root / f"{split}.{ext}", "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f, delimiter="\t" if ext == "tsv" else ",")
            writer.writerow(["id", "review", "sentiment"])
            writer.writerows([i, text, label] for i, (text, label) in enumerate(part))
    return rows


# ---- A local Hugging Face checkpoint with its tokenizer ----------------------------------------------------


HF_POSITIONS = 64  # the tiny BERT's max_position_embeddings, and its tokenizer's model_max_length


def write_hf_checkpoint(folder: Path, num_labels: int = 2, seed: int = 0):
    """A 1-layer BERT (hidden 16) saved with save_pretrained, with a WordPiece tokenizer over the test words."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast

    folder.mkdir(parents=True)
    words = sorted({w.strip('",.').lower() for s in SENTENCES for w in s.split()} | {",", '"', "really", "."})
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words]
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n")
    tokenizer = BertTokenizerFast(str(folder / "vocab.txt"), do_lower_case=True, model_max_length=HF_POSITIONS)
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=HF_POSITIONS,
        num_labels=num_labels,
    )
    torch.manual_seed(seed)
    model = BertForSequenceClassification(config)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return model, tokenizer


def listing(root: Path) -> dict:
    """Every file under ``root`` with its size and mtime: to check that loading wrote nothing."""
    out = {}
    for dirpath, _, files in os.walk(root):
        for name in files:
            stat = os.stat(os.path.join(dirpath, name))
            out[os.path.join(dirpath, name)] = (stat.st_size, stat.st_mtime_ns)
    return out
