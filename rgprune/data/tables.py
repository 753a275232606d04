"""Text tasks from a user's own tables: ``csv:PATH`` (CSV/TSV files) and ``hf-disk:PATH`` (``save_to_disk``).

Both take their columns from :class:`~rgprune.data.options.TextOptions`: ``text_columns`` (one column, or
two for sentence pairs; default ``("text",)``) and ``label_column`` (default ``"label"``). String and
integer labels get ids in the order of ``TextOptions.labels`` or, by default, the training set's distinct
labels sorted (as numbers when all are integers); see :func:`rgprune.data.text.label_order`.
"""

from __future__ import annotations

import csv
from pathlib import Path

from .options import TextOptions, option_name
from .task import DataLayoutError
from .text import TextSplit, build_text_task, default_tokenizer, label_order

DEFAULT_TEXT_COLUMNS = ("text",)
DEFAULT_LABEL_COLUMN = "label"
CSV_LAYOUT = (
    "csv:PATH expects a folder PATH with train.csv and test.csv (comma-separated) or train.tsv and "
    "test.tsv (tab-separated), each with a header line naming the text column(s) and the label column"
)
HF_DISK_LAYOUT = (
    "hf-disk:PATH expects a datasets.DatasetDict saved with save_to_disk(PATH): PATH/dataset_dict.json "
    "and one folder per split, with a 'train' split and a 'test' or 'validation' split"
)


def _column_options() -> str:
    """The options that name the columns, as errors name them (``rgprune.data.options.option_name``)."""
    return f"{option_name('TextOptions.text_columns')} / {option_name('TextOptions.label_column')}"


def _columns(options: TextOptions) -> tuple[tuple[str, ...], str]:
    return options.text_columns or DEFAULT_TEXT_COLUMNS, options.label_column or DEFAULT_LABEL_COLUMN


def _csv_file(root: Path, split: str) -> Path:
    found = [root / f"{split}.{ext}" for ext in ("csv", "tsv") if (root / f"{split}.{ext}").is_file()]
    if not found:
        raise DataLayoutError(f"{root} has no {split}.csv or {split}.tsv; {CSV_LAYOUT}")
    if len(found) > 1:
        raise DataLayoutError(f"{root} has both {split}.csv and {split}.tsv; keep one of them ({CSV_LAYOUT})")
    return found[0]


def read_csv_split(path: Path, options: TextOptions) -> TextSplit:
    """One CSV (``,``) or TSV (tab) file with a header line, quoted fields allowed (``csv`` module rules)."""
    text_columns, label_column = _columns(options)
    with open(path, encoding="utf-8-sig", newline="") as f:
        reader = csv.DictReader(f, delimiter="\t" if path.suffix == ".tsv" else ",")
        header = reader.fieldnames or []
        missing = [c for c in text_columns + (label_column,) if c not in header]
        if missing:
            raise DataLayoutError(
                f"{path}: no column(s) {missing} in the header {header}; name the columns with "
                f"{_column_options()}; " + CSV_LAYOUT
            )
        texts: list[list[str]] = [[] for _ in text_columns]
        labels: list[str] = []
        for row in reader:
            if None in row or None in row.values():
                raise DataLayoutError(
                    f"{path}, line {reader.line_num}: the row has a different number of fields "
                    f"than the header ({len(header)}); {CSV_LAYOUT}"
                )
            for column, name in zip(texts, text_columns):
                column.append(row[name])
            labels.append(row[label_column].strip())
    return TextSplit(first=texts[0], second=texts[1] if len(texts) > 1 else None, labels=labels, source=str(path))


def load_csv_task(spec: str, root: Path, tokenizer, options: TextOptions):
    """``csv:PATH``: ``PATH/train.{csv,tsv}`` to train on, ``PATH/test.{csv,tsv}`` to test on."""
    if not root.is_dir():
        raise DataLayoutError(f"{root} is not a directory; {CSV_LAYOUT}")
    paths = [_csv_file(root, "train"), _csv_file(root, "test")]
    train, test = (read_csv_split(path, options) for path in paths)
    order = options.labels or label_order(train.labels)
    return build_text_task(
        name="csv",
        spec=spec,
        train=train,
        test=test,
        tokenizer=tokenizer if tokenizer is not None else default_tokenizer(),
        options=options,
        order=order,
        class_names=None,
        what=f"CSV {paths[0].name} / {paths[1].name} from {root}",
    )


def _open_dataset_dict(root: Path):
    if not (root / "dataset_dict.json").is_file():
        if (root / "state.json").is_file():
            raise DataLayoutError(
                f"{root} holds a single saved Dataset, not a DatasetDict with splits; save "
                "DatasetDict({'train': ..., 'test': ...}) instead. " + HF_DISK_LAYOUT
            )
        raise DataLayoutError(f"{root} has no dataset_dict.json; {HF_DISK_LAYOUT}")
    try:
        import datasets
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("hf-disk tasks need the 'datasets' package: pip install datasets") from exc
    try:
        return datasets.load_from_disk(str(root))
    except (FileNotFoundError, ValueError, KeyError) as exc:  # a split folder or its files are missing
        raise DataLayoutError(f"{root} could not be read as a saved DatasetDict ({exc}); {HF_DISK_LAYOUT}") from exc


def _hf_split(dataset, name: str, root: Path, options: TextOptions, labels_are_ids: bool) -> TextSplit:
    text_columns, label_column = _columns(options)
    missing = [c for c in text_columns + (label_column,) if c not in dataset.column_names]
    if missing:
        raise DataLayoutError(
            f"{root} split {name!r}: no column(s) {missing} (it has {dataset.column_names}); name "
            f"the columns with {_column_options()}"
        )
    texts = [list(dataset[c]) for c in text_columns]
    for column, values in zip(text_columns, texts):
        bad = next((i for i, v in enumerate(values) if not isinstance(v, str)), None)
        if bad is not None:
            raise DataLayoutError(
                f"{root} split {name!r}, row {bad}: column {column!r} holds "
                f"{type(values[bad]).__name__} {values[bad]!r}, not text"
            )
    labels = [str(v) for v in dataset[label_column]]
    if labels_are_ids and "-1" in labels:
        raise DataLayoutError(
            f"{root} split {name!r} has label -1 (hidden labels, as in GLUE's test splits); "
            f"evaluate on a labelled split with {option_name('TextOptions.test_split')}, e.g. 'validation'"
        )
    return TextSplit(
        first=texts[0], second=texts[1] if len(texts) > 1 else None, labels=labels, source=f"{root} split {name!r}"
    )


def load_hf_disk_task(spec: str, root: Path, tokenizer, options: TextOptions):
    """``hf-disk:PATH``: a ``DatasetDict`` saved with ``save_to_disk``; its ``train`` split and the test split
    of ``TextOptions.test_split`` (default ``validation`` if present, else ``test``)."""
    from datasets import ClassLabel, Value

    if not root.is_dir():
        raise DataLayoutError(f"{root} is not a directory; {HF_DISK_LAYOUT}")
    splits = _open_dataset_dict(root)
    test_name = options.test_split or ("validation" if "validation" in splits else "test")
    for name in ("train", test_name):
        if name not in splits:
            raise DataLayoutError(f"{root} has no {name!r} split (it has {list(splits)}); {HF_DISK_LAYOUT}")
    label_column = _columns(options)[1]
    feature = splits["train"].features.get(label_column)
    class_names = None
    if isinstance(feature, ClassLabel):
        if options.labels is not None:
            raise ValueError(
                f"{root}: column {label_column!r} is a ClassLabel, whose values are already ids "
                f"({feature.names}); leave {option_name('TextOptions.labels')} unset"
            )
        order, class_names = tuple(str(i) for i in range(feature.num_classes)), tuple(feature.names)
    elif feature is not None and not (
        isinstance(feature, Value)
        and (feature.dtype.startswith(("int", "uint")) or feature.dtype in ("string", "large_string", "bool"))
    ):
        raise DataLayoutError(
            f"{root}: label column {label_column!r} has type {feature}; class labels must be "
            "ClassLabel, integers or strings (a float column is a regression target)"
        )
    labels_are_ids = class_names is not None
    train = _hf_split(splits["train"], "train", root, options, labels_are_ids)
    test = _hf_split(splits[test_name], test_name, root, options, labels_are_ids)
    if class_names is None:
        order = options.labels or label_order(train.labels)
    return build_text_task(
        name="hf-disk",
        spec=spec,
        train=train,
        test=test,
        tokenizer=tokenizer if tokenizer is not None else default_tokenizer(),
        options=options,
        order=order,
        class_names=class_names,
        what=f"saved dataset {root} (splits train / {test_name})",
    )
