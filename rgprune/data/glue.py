"""GLUE classification tasks read from GLUE's own TSV files (as its ``download_glue_data.py`` lays them out).

``glue-TASK:ROOT`` reads ``ROOT/train.tsv`` for training and the labelled dev file for testing (GLUE's
``test.tsv`` has no labels). Files are tab-separated with no quoting (a ``"`` is an ordinary character,
as in GLUE's own readers), UTF-8 (a leading byte-order mark, as in MRPC's header, is dropped); every row
must have as many fields as the header. STS-B (a regression task) is not a classification task and is
not offered. Label ids follow the ``glue`` dataset of Hugging Face ``datasets``, so a GLUE task saved
from there with ``save_to_disk`` and loaded as ``hf-disk`` gets the same ids.

============  =================  ==========================================  =================================
spec          test file          text columns                                labels (id order)
============  =================  ==========================================  =================================
glue-cola     dev.tsv            no header: 4 fields, sentence is the 4th    field 2: 0 unacceptable, 1 acceptable
glue-sst2     dev.tsv            sentence                                    label: 0 negative, 1 positive
glue-mrpc     dev.tsv            #1 String, #2 String                        Quality: 0 not_equivalent, 1 equivalent
glue-qqp      dev.tsv            question1, question2                        is_duplicate: 0, 1 duplicate
glue-mnli     dev_matched.tsv    sentence1, sentence2                        gold_label: entailment, neutral,
glue-mnli-mm  dev_mismatched.tsv (the same, mismatched-genre dev set)        contradiction
glue-qnli     dev.tsv            question, sentence                          label: entailment, not_entailment
glue-rte      dev.tsv            sentence1, sentence2                        label: entailment, not_entailment
glue-wnli     dev.tsv            sentence1, sentence2                        label: 0 not_entailment, 1 entailment
============  =================  ==========================================  =================================
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .task import DataLayoutError


@dataclass(frozen=True)
class GlueFormat:
    """How one GLUE task's TSV files are laid out. With ``header``, columns are named by the header line;
    without it (CoLA), by 0-based field index, and every row has ``fields`` fields."""

    title: str
    test_file: str
    text_columns: tuple[str, ...] | tuple[int, ...]
    label_column: str | int
    labels: tuple[str, ...]  # label values as written in the files, in id order
    class_names: tuple[str, ...]
    header: bool = True
    fields: int | None = None
    train_file: str = "train.tsv"


_BINARY = ("0", "1")
_NLI = ("entailment", "not_entailment")
GLUE_FORMATS: dict[str, GlueFormat] = {
    "glue-cola": GlueFormat(
        "CoLA", "dev.tsv", (3,), 1, _BINARY, ("unacceptable", "acceptable"), header=False, fields=4
    ),
    "glue-sst2": GlueFormat("SST-2", "dev.tsv", ("sentence",), "label", _BINARY, ("negative", "positive")),
    "glue-mrpc": GlueFormat(
        "MRPC", "dev.tsv", ("#1 String", "#2 String"), "Quality", _BINARY, ("not_equivalent", "equivalent")
    ),
    "glue-qqp": GlueFormat(
        "QQP", "dev.tsv", ("question1", "question2"), "is_duplicate", _BINARY, ("not_duplicate", "duplicate")
    ),
    "glue-mnli": GlueFormat(
        "MNLI",
        "dev_matched.tsv",
        ("sentence1", "sentence2"),
        "gold_label",
        ("entailment", "neutral", "contradiction"),
        ("entailment", "neutral", "contradiction"),
    ),
    "glue-mnli-mm": GlueFormat(
        "MNLI",
        "dev_mismatched.tsv",
        ("sentence1", "sentence2"),
        "gold_label",
        ("entailment", "neutral", "contradiction"),
        ("entailment", "neutral", "contradiction"),
    ),
    "glue-qnli": GlueFormat("QNLI", "dev.tsv", ("question", "sentence"), "label", _NLI, _NLI),
    "glue-rte": GlueFormat("RTE", "dev.tsv", ("sentence1", "sentence2"), "label", _NLI, _NLI),
    "glue-wnli": GlueFormat(
        "WNLI", "dev.tsv", ("sentence1", "sentence2"), "label", _BINARY, ("not_entailment", "entailment")
    ),
}


def layout(kind: str) -> str:
    """The expected files of ``kind``, for error messages."""
    fmt = GLUE_FORMATS[kind]
    if fmt.header:
        columns = f"a header line naming (at least) {', '.join(map(repr, fmt.text_columns + (fmt.label_column,)))}"
    else:
        columns = (
            f"no header; {fmt.fields} tab-separated fields per line, label in field {fmt.label_column + 1}, "
            f"sentence in field {fmt.text_columns[0] + 1}"
        )
    return (
        f"{kind}:ROOT expects GLUE's {fmt.title} files ROOT/{fmt.train_file} and ROOT/{fmt.test_file} "
        f"(tab-separated, {columns}; labels {list(fmt.labels)})"
    )


def _column_index(fmt: GlueFormat, header: list[str] | None, column: str | int, path: Path, kind: str) -> int:
    if header is None:
        return int(column)
    if column not in header:
        raise DataLayoutError(f"{path}: the header has no column {column!r} (it has {header}); {layout(kind)}")
    return header.index(column)


def read_glue_file(kind: str, path: Path) -> tuple[list[list[str]], list[str]]:
    """``(texts, labels)`` of one GLUE TSV file: ``texts[j][i]`` is text column ``j`` of example ``i``."""
    fmt = GLUE_FORMATS[kind]
    # newline="\n": only LF ends a line (a stray CR or U+2028 inside a sentence does not); utf-8-sig drops
    # the byte-order mark MRPC's header starts with.
    with open(path, encoding="utf-8-sig", newline="\n") as f:
        lines = [line.rstrip("\r\n") for line in f]
    header = lines[0].split("\t") if fmt.header and lines else None
    rows = lines[1:] if fmt.header else lines
    fields = len(header) if header is not None else fmt.fields
    text_index = [_column_index(fmt, header, c, path, kind) for c in fmt.text_columns]
    label_index = _column_index(fmt, header, fmt.label_column, path, kind)
    texts: list[list[str]] = [[] for _ in text_index]
    labels: list[str] = []
    first_row_line = 2 if fmt.header else 1
    for number, line in enumerate(rows, start=first_row_line):
        if not line:
            continue  # a blank line (e.g. at the end of the file) holds no example
        values = line.split("\t")
        if len(values) != fields:
            raise DataLayoutError(
                f"{path}, line {number}: {len(values)} tab-separated fields, expected {fields}; {layout(kind)}"
            )
        for column, index in zip(texts, text_index):
            column.append(values[index])
        labels.append(values[label_index].strip())
    if not labels:
        raise DataLayoutError(f"{path} holds no examples; {layout(kind)}")
    return texts, labels


def load_glue_task(kind: str, spec: str, root: Path, tokenizer, options):
    """Load ``glue-*:ROOT`` (see the module docstring) as a text task."""
    from .text import TextSplit, build_text_task, default_tokenizer

    fmt = GLUE_FORMATS[kind]
    if (
        options.text_columns is not None
        or options.label_column is not None
        or options.labels is not None
        or options.test_split is not None
    ):
        from .options import option_name  # the flags under rgprune imp

        names = ", ".join(option_name(f"TextOptions.{n}") for n in ("text_columns", "label_column", "labels"))
        raise ValueError(
            f"{kind} has fixed columns and labels ({layout(kind)}); leave {names} and "
            f"{option_name('TextOptions.test_split')} unset"
        )
    if not root.is_dir():
        raise DataLayoutError(f"{root} is not a directory; {layout(kind)}")
    paths = [root / fmt.train_file, root / fmt.test_file]
    for path in paths:  # both, before reading either
        if not path.is_file():
            raise DataLayoutError(f"{path} is missing; {layout(kind)}")
    splits = []
    for path in paths:
        texts, labels = read_glue_file(kind, path)
        splits.append(
            TextSplit(first=texts[0], second=texts[1] if len(texts) > 1 else None, labels=labels, source=str(path))
        )
    return build_text_task(
        name=kind,
        spec=spec,
        train=splits[0],
        test=splits[1],
        tokenizer=tokenizer if tokenizer is not None else default_tokenizer(),
        options=options,
        order=fmt.labels,
        class_names=fmt.class_names,
        what=f"GLUE {fmt.title} from {root} ({paths[0].name} / {paths[1].name})",
    )
