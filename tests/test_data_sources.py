"""rgprune.data on local data: each source format, written here in its real on-disk layout, loads into a Task of
the right sizes, classes and batch format; bad layouts fail with the expected layout in the message."""

import os
import pickle
import shutil

import numpy as np
import pytest
import tiny_data as td
import torch
from torch.utils.data import DataLoader

from rgprune.data import (
    DataLayoutError,
    ImageOptions,
    TextOptions,
    load_task,
    parse_task_spec,
    task_kind,
)
from rgprune.data.images import ImageFileDataset
from rgprune.models import load_tokenizer


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return tmp_path_factory.mktemp("data")


@pytest.fixture(scope="module")
def cifar10(root):
    return root / "c10", td.write_cifar10(root / "c10")


@pytest.fixture(scope="module")
def imagefolder(root):
    td.write_imagefolder(root / "folder")
    return root / "folder"


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer("minilm")


def first_batch(dataset, n=64):
    return next(iter(DataLoader(dataset, batch_size=n)))


def copy(src, dst):
    shutil.copytree(src, dst)
    return dst


# ---- specs ---------------------------------------------------------------------------------------------------


def test_parse_task_spec_forms():
    assert parse_task_spec("digits").path is None and task_kind("vader") == "text"
    spec = parse_task_spec("cifar10:~/data/c:10")  # only the first colon separates; ~ is expanded
    assert (spec.kind, spec.path) == ("cifar10", __import__("pathlib").Path.home() / "data/c:10")
    assert task_kind("imagefolder:/x") == "vision" and task_kind("glue-mnli:/x") == task_kind("csv:/x") == "text"


@pytest.mark.parametrize(
    "spec, message",
    [
        ("mnist", "cifar10:PATH"),  # an unknown name lists the spec forms too
        ("mnist:/data", "unknown task kind 'mnist'"),
        ("cifar10:", "has no path"),
        ("glue-stsb:/data", "glue-sst2:PATH"),  # regression is not offered; the valid GLUE kinds are listed
    ],
)
def test_bad_specs_say_what_is_valid(spec, message):
    with pytest.raises(ValueError, match=message):
        load_task(spec)


def test_options_that_do_not_apply_are_refused(cifar10, tmp_path):
    path, _ = cifar10
    with pytest.raises(ValueError, match="vision task"):
        load_task(f"cifar10:{path}", text=TextOptions())
    with pytest.raises(ValueError, match="text task"):
        load_task(f"csv:{tmp_path}", image=ImageOptions())
    with pytest.raises(ValueError, match="embedded task"):
        load_task("digits", image=ImageOptions())
    with pytest.raises(ValueError, match="apply to imagefolder"):
        load_task(f"cifar10:{path}", image=ImageOptions(resize=40))
    with pytest.raises(ValueError, match="ImageOptions.mean and ImageOptions.std go together"):
        ImageOptions(mean=(0.5, 0.5, 0.5))
    with pytest.raises(ValueError, match="std must be > 0"):
        ImageOptions(mean=(0.5,) * 3, std=(0.2, 0.0, 0.2))
    with pytest.raises(ValueError, match="1 or 2 columns"):
        TextOptions(text_columns=("a", "b", "c"))


# ---- CIFAR ---------------------------------------------------------------------------------------------------


def test_cifar10_loads_the_pickle_batches(cifar10):
    path, raw = cifar10
    task = load_task(f"cifar10:{path}")
    assert (task.kind, task.num_classes, task.in_channels) == ("vision", 10, 3)
    assert (len(task.train), len(task.test)) == (20, 6)
    assert task.class_names == tuple(raw["names"]) and task.spec == f"cifar10:{path}"
    images, labels = first_batch(task.train)
    assert images.shape == (20, 3, 32, 32) and images.dtype == torch.float32 and labels.dtype == torch.int64
    # Batches 1..5 in order, rows channel-major (R plane, G plane, B plane), normalized by the exact
    # per-channel statistics of the train set.
    assert torch.equal(labels, torch.as_tensor(raw["train_y"]))
    pixels = raw["train_x"].reshape(-1, 3, 32, 32) / 255.0
    mean, std = pixels.mean(axis=(0, 2, 3)), pixels.std(axis=(0, 2, 3))
    expected = (pixels - mean[:, None, None]) / std[:, None, None]
    assert torch.allclose(images, torch.as_tensor(expected, dtype=torch.float32), atol=1e-5)
    # The test set uses the train statistics.
    test_images, test_labels = first_batch(task.test)
    expected = (raw["test_x"].reshape(-1, 3, 32, 32) / 255.0 - mean[:, None, None]) / std[:, None, None]
    assert torch.allclose(test_images, torch.as_tensor(expected, dtype=torch.float32), atol=1e-5)
    assert torch.equal(test_labels, torch.as_tensor(raw["test_y"]))


def test_cifar_accepts_the_batches_folder_itself_and_a_given_normalization(cifar10):
    path, raw = cifar10
    task = load_task(
        f"cifar10:{path / 'cifar-10-batches-py'}",
        image=ImageOptions(mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25)),
        image_size=16,
    )
    images, _ = first_batch(task.test)
    assert images.shape == (6, 3, 16, 16)
    full = load_task(f"cifar10:{path}", image=ImageOptions(mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25)))
    x, _ = full.test[0]
    assert torch.allclose(x, (torch.as_tensor(raw["test_x"][0]).reshape(3, 32, 32) / 255 - 0.5) / 0.25, atol=1e-6)


def test_cifar_augmentation_is_random_on_train_only_and_follows_torch_seed(cifar10):
    path, _ = cifar10
    plain = load_task(f"cifar10:{path}")
    task = load_task(f"cifar10:{path}", image=ImageOptions(augment=True))
    torch.manual_seed(0)
    a = torch.stack([task.train[i][0] for i in range(20)])
    torch.manual_seed(0)
    b = torch.stack([task.train[i][0] for i in range(20)])
    c = torch.stack([task.train[i][0] for i in range(20)])
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert not torch.equal(a, first_batch(plain.train)[0])
    assert torch.equal(first_batch(task.test)[0], first_batch(plain.test)[0])
    assert task.fingerprint != plain.fingerprint


def test_cifar100_uses_the_fine_labels(root):
    raw = td.write_cifar100(root / "c100")
    task = load_task(f"cifar100:{root / 'c100'}")
    assert (task.num_classes, len(task.train), len(task.test)) == (100, 12, 5)
    assert task.class_names[0] == "fine_0" and len(task.class_names) == 100
    assert torch.equal(first_batch(task.train)[1], torch.as_tensor(raw["train_y"]))
    assert torch.equal(first_batch(task.test)[1], torch.as_tensor(raw["test_y"]))


def test_cifar_missing_or_malformed_files_name_the_layout(cifar10, tmp_path):
    path, _ = cifar10
    with pytest.raises(DataLayoutError, match=r"cifar-10-batches-py.*missing.*data_batch_1, .*batches\.meta"):
        load_task(f"cifar10:{tmp_path}")
    broken = copy(path, tmp_path / "broken")
    os.remove(broken / "cifar-10-batches-py" / "data_batch_3")
    with pytest.raises(DataLayoutError, match=r"lacks data_batch_3; cifar10:ROOT expects"):
        load_task(f"cifar10:{broken}")
    with pytest.raises(DataLayoutError, match="cifar-100-python"):
        load_task(f"cifar100:{path}")  # a CIFAR-10 folder is not a CIFAR-100 one

    def rewrite(name, obj):
        with open(broken / "cifar-10-batches-py" / name, "wb") as f:
            pickle.dump(obj, f, protocol=2)

    rewrite("data_batch_3", {"data": np.zeros((2, 100), np.uint8), "labels": [0, 1]})
    with pytest.raises(DataLayoutError, match=r"expected uint8 \[N, 3072\]"):
        load_task(f"cifar10:{broken}")
    rewrite("data_batch_3", {"data": np.zeros((2, 3072), np.uint8), "labels": [0, 10]})
    with pytest.raises(DataLayoutError, match=r"labels must be in 0\.\.9"):
        load_task(f"cifar10:{broken}")
    (broken / "cifar-10-batches-py" / "data_batch_3").write_bytes(b"not a pickle")
    with pytest.raises(DataLayoutError, match="not a CIFAR python pickle"):
        load_task(f"cifar10:{broken}")


class _Exploit:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


def test_cifar_pickles_may_only_build_arrays(cifar10, tmp_path, monkeypatch):
    path, _ = cifar10
    broken = copy(path, tmp_path / "evil")
    with open(broken / "cifar-10-batches-py" / "test_batch", "wb") as f:
        pickle.dump({"data": _Exploit(), "labels": []}, f, protocol=2)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DataLayoutError, match="refusing to load posix.system"):
        load_task(f"cifar10:{broken}")
    assert not (tmp_path / "pwned").exists()


# ---- ImageFolder ---------------------------------------------------------------------------------------------


def test_imagefolder_is_lazy_with_train_classes_sorted(imagefolder):
    task = load_task(f"imagefolder:{imagefolder}", image_size=24)
    assert task.class_names == ("bird", "cat", "dog") and task.num_classes == 3 and task.in_channels == 3
    assert (len(task.train), len(task.test)) == (9, 6)  # notes.txt is not an image
    assert isinstance(task.train, ImageFileDataset) and all(isinstance(p, str) for p, _ in task.train.samples)
    images, labels = first_batch(task.train)
    assert images.shape == (9, 3, 24, 24) and images.dtype == torch.float32
    assert labels.tolist() == [0] * 3 + [1] * 3 + [2] * 3
    # val has no 'bird': its cat and dog keep the train ids 1 and 2.
    assert first_batch(task.test)[1].tolist() == [1] * 3 + [2] * 3
    # Solid colors survive resize and crop exactly; grayscale becomes 3 equal channels, RGBA drops alpha;
    # the default normalization is ImageNet's.
    mean, std = torch.tensor([0.485, 0.456, 0.406]), torch.tensor([0.229, 0.224, 0.225])
    for label, name in enumerate(task.class_names):
        color, mode = td.FOLDER_CLASSES[name]
        rgb = torch.tensor([color[0]] * 3 if mode == "L" else color) / 255
        expected = ((rgb - mean) / std)[:, None, None].expand(3, 24, 24)
        assert torch.allclose(images[labels == label], expected, atol=1e-5), name


def test_imagefolder_reads_files_per_item(imagefolder, tmp_path):
    folder = copy(imagefolder, tmp_path / "folder")
    task = load_task(f"imagefolder:{folder}", image_size=8)
    os.remove(task.train.samples[0][0])
    assert task.train[1][0].shape == (3, 8, 8)
    with pytest.raises(FileNotFoundError):
        task.train[0]


def test_imagefolder_resize_crop_and_augment(imagefolder):
    # Center crop: shorter side 30 -> resize, then the central square; without it, a squashed full image.
    crop = load_task(f"imagefolder:{imagefolder}", image_size=16, image=ImageOptions(resize=20))
    squash = load_task(f"imagefolder:{imagefolder}", image_size=16, image=ImageOptions(center_crop=False))
    assert crop.train[0][0].shape == squash.train[0][0].shape == (3, 16, 16)
    assert "shorter side to 20, center 16x16 crop" in crop.description
    assert "resized to 16x16" in squash.description
    assert crop.fingerprint != squash.fingerprint
    augmented = load_task(f"imagefolder:{imagefolder}", image_size=16, image=ImageOptions(augment=True))
    assert augmented.train[0][0].shape == (3, 16, 16) and "random resized crop" in augmented.description


def test_imagefolder_bad_layouts(imagefolder, tmp_path):
    with pytest.raises(DataLayoutError, match=r"train is missing.*ROOT/train/<class>/<image> and ROOT/val"):
        load_task(f"imagefolder:{tmp_path}")
    folder = copy(imagefolder, tmp_path / "extra")
    (folder / "val" / "fish").mkdir()
    with pytest.raises(DataLayoutError, match=r"\['fish'\] that .* lacks"):
        load_task(f"imagefolder:{folder}")
    folder = copy(imagefolder, tmp_path / "empty")
    for image in (folder / "train" / "dog").iterdir():
        image.unlink()
    with pytest.raises(DataLayoutError, match=r"\['dog'\] hold no images"):
        load_task(f"imagefolder:{folder}")
    shutil.rmtree(folder / "val")
    with pytest.raises(DataLayoutError, match="val is missing"):
        load_task(f"imagefolder:{folder}")


def test_imagefolder_fingerprint_follows_the_files(imagefolder, tmp_path):
    folder = copy(imagefolder, tmp_path / "fp")
    before = load_task(f"imagefolder:{folder}").fingerprint
    assert load_task(f"imagefolder:{folder}").fingerprint == before
    image = folder / "val" / "cat" / "cat_0.png"
    os.utime(image, ns=(image.stat().st_atime_ns, image.stat().st_mtime_ns + 10**9))
    assert load_task(f"imagefolder:{folder}").fingerprint != before


# ---- GLUE ----------------------------------------------------------------------------------------------------


def test_glue_sst2(root, tokenizer):
    train, dev = td.write_glue_sst2(root / "SST-2")
    task = load_task(f"glue-sst2:{root / 'SST-2'}", text=TextOptions(max_length=12))
    assert (task.kind, task.num_classes, task.in_channels) == ("text", 2, None)
    assert (len(task.train), len(task.test)) == (len(train), len(dev))  # dev.tsv, not the unlabelled test.tsv
    assert task.class_names == ("negative", "positive")
    input_ids, attention_mask, labels = first_batch(task.train)
    assert input_ids.shape == attention_mask.shape == (len(train), 12)
    assert input_ids.dtype == attention_mask.dtype == labels.dtype == torch.int64
    assert labels.tolist() == [y for _, y in train]
    expected = tokenizer(train[0][0], padding="max_length", max_length=12)
    assert input_ids[0].tolist() == expected["input_ids"] and attention_mask[0].tolist() == expected["attention_mask"]
    # The test set is dev.tsv, its quote characters kept as they are (GLUE files are not quoted).
    test_ids = first_batch(task.test)[0]
    assert test_ids[0].tolist() == tokenizer(dev[0][0], padding="max_length", max_length=12)["input_ids"]
    assert dev[0][0] == '"wow" he said twice'


def test_glue_mnli_sentence_pairs_by_header_names(root, tokenizer):
    rows = td.write_glue_mnli(root / "MNLI")
    task = load_task(f"glue-mnli:{root / 'MNLI'}", text=TextOptions(max_length=24))
    assert task.num_classes == 3 and task.class_names == ("entailment", "neutral", "contradiction")
    assert (len(task.train), len(task.test)) == (9, 4)  # dev_matched.tsv
    input_ids, *_, labels = first_batch(task.train)
    assert labels.tolist() == [td.MNLI_LABELS.index(label) for *_, label in rows["train.tsv"]]
    first, second, _ = rows["train.tsv"][0]
    assert input_ids[0].tolist() == tokenizer(first, second, padding="max_length", max_length=24)["input_ids"]
    assert (input_ids[0] == tokenizer.sep_token_id).sum() == 2
    mismatched = load_task(f"glue-mnli-mm:{root / 'MNLI'}", text=TextOptions(max_length=24))
    assert len(mismatched.test) == 3 and mismatched.fingerprint != task.fingerprint


def test_glue_cola_has_no_header(root):
    rows = td.write_glue_cola(root / "CoLA")
    task = load_task(f"glue-cola:{root / 'CoLA'}", text=TextOptions(max_length=16))
    assert first_batch(task.train)[2].tolist() == [y for _, y in rows[:8]]
    assert task.class_names == ("unacceptable", "acceptable")


def test_glue_bad_files_name_the_layout(tmp_path):
    td.write_glue_mnli(tmp_path / "MNLI")
    os.remove(tmp_path / "MNLI" / "dev_matched.tsv")
    with pytest.raises(DataLayoutError, match=r"dev_matched\.tsv is missing; glue-mnli:ROOT expects GLUE's MNLI"):
        load_task(f"glue-mnli:{tmp_path / 'MNLI'}")
    sst2 = tmp_path / "SST-2"  # its own copy: not the one test_glue_sst2 writes (the tests may run in any order)
    td.write_glue_sst2(sst2)
    with open(sst2 / "train.tsv", "a") as f:
        f.write("one\ttoo\tmany\n")
    with pytest.raises(DataLayoutError, match=r"train\.tsv, line 10: 3 tab-separated fields, expected 2"):
        load_task(f"glue-sst2:{sst2}")
    (sst2 / "train.tsv").write_text("text\tlabel\nfine\t1\n")
    with pytest.raises(DataLayoutError, match=r"no column 'sentence'.*'sentence', 'label'"):
        load_task(f"glue-sst2:{sst2}")
    (sst2 / "train.tsv").write_text("sentence\tlabel\nfine\t2\n")
    with pytest.raises(DataLayoutError, match=r"label '2', which is not one of the 2 labels \['0', '1'\]"):
        load_task(f"glue-sst2:{sst2}")
    with pytest.raises(ValueError, match="fixed columns"):
        load_task(f"glue-sst2:{sst2}", text=TextOptions(label_column="y"))


# ---- hf-disk -------------------------------------------------------------------------------------------------


def test_hf_disk_class_labels_and_pairs(root, tokenizer):
    td.write_hf_disk(root / "hf")
    task = load_task(f"hf-disk:{root / 'hf'}", text=TextOptions(text_columns=("premise", "hypothesis"), max_length=20))
    assert task.class_names == ("negative", "positive") and task.num_classes == 2
    assert (len(task.train), len(task.test)) == (8, 4)  # the validation split: test labels are hidden
    input_ids, *_, labels = first_batch(task.train)
    assert labels.tolist() == [i % 2 for i in range(8)]
    premise, hypothesis = td.SENTENCES[0], td.SENTENCES[:8][::-1][0]
    assert input_ids[0].tolist() == tokenizer(premise, hypothesis, padding="max_length", max_length=20)["input_ids"]
    with pytest.raises(DataLayoutError, match="label -1 .*TextOptions.test_split"):
        load_task(f"hf-disk:{root / 'hf'}", text=TextOptions(text_columns=("premise",), test_split="test"))
    with pytest.raises(DataLayoutError, match=r"no column\(s\) \['text'\] \(it has \['premise', 'hypothesis'"):
        load_task(f"hf-disk:{root / 'hf'}")
    with pytest.raises(ValueError, match="ClassLabel"):
        load_task(f"hf-disk:{root / 'hf'}", text=TextOptions(text_columns=("premise",), labels=("a", "b")))


def test_hf_disk_string_labels_and_test_split(root):
    td.write_hf_disk(root / "hf-str", class_label=False, splits=("train", "test"))
    task = load_task(f"hf-disk:{root / 'hf-str'}", text=TextOptions(text_columns=("premise",)))
    assert task.class_names == ("negative", "positive") and len(task.test) == 4
    flipped = load_task(
        f"hf-disk:{root / 'hf-str'}", text=TextOptions(text_columns=("premise",), labels=("positive", "negative"))
    )
    assert torch.equal(first_batch(flipped.train)[2], 1 - first_batch(task.train)[2])


def test_hf_disk_bad_layouts(root, tmp_path):
    import datasets

    with pytest.raises(DataLayoutError, match="no dataset_dict.json; hf-disk:PATH expects a datasets.DatasetDict"):
        load_task(f"hf-disk:{tmp_path}")
    datasets.Dataset.from_dict({"text": ["a", "b"], "label": [0, 1]}).save_to_disk(str(tmp_path / "single"))
    with pytest.raises(DataLayoutError, match="single saved Dataset"):
        load_task(f"hf-disk:{tmp_path / 'single'}")
    td.write_hf_disk(tmp_path / "notest", splits=("train",))
    with pytest.raises(DataLayoutError, match=r"no 'test' split \(it has \['train'\]\)"):
        load_task(f"hf-disk:{tmp_path / 'notest'}", text=TextOptions(text_columns=("premise",)))


# ---- CSV -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("ext", ["csv", "tsv"])
def test_csv_columns_and_sorted_string_labels(tmp_path, tokenizer, ext):
    rows = td.write_csv(tmp_path / ext, ext=ext)
    options = TextOptions(text_columns=("review",), label_column="sentiment", max_length=16)
    task = load_task(f"csv:{tmp_path / ext}", text=options)
    assert task.class_names == ("neg", "neutral", "pos") and task.num_classes == 3  # sorted
    assert (len(task.train), len(task.test)) == (9, 3)
    input_ids, *_, labels = first_batch(task.train)
    assert labels.tolist() == [task.class_names.index(label) for _, label in rows["train"]]
    text = rows["train"][0][0]
    assert "," in text  # a quoted field holding the delimiter stays one field
    assert input_ids[0].tolist() == tokenizer(text, padding="max_length", max_length=16)["input_ids"]


def test_csv_integer_labels_sort_as_numbers(tmp_path):
    (tmp_path / "train.csv").write_text("text,label\n" + "".join(f"t{i},{y}\n" for i, y in enumerate([10, 2, 2, 10])))
    (tmp_path / "test.csv").write_text("text,label\nx,2\ny,10\n")
    task = load_task(f"csv:{tmp_path}")
    assert task.class_names == ("2", "10") and first_batch(task.test)[2].tolist() == [0, 1]


def test_csv_bad_files(tmp_path):
    td.write_csv(tmp_path)
    options = TextOptions(text_columns=("review",), label_column="sentiment")
    with pytest.raises(DataLayoutError, match=r"no column\(s\) \['text', 'label'\] in the header \['id', 'review'"):
        load_task(f"csv:{tmp_path}")
    with open(tmp_path / "test.csv", "a") as f:
        f.write("9,unseen label,awful\n")
    with pytest.raises(DataLayoutError, match="test.csv: example 3 has label 'awful'"):
        load_task(f"csv:{tmp_path}", text=options)
    with open(tmp_path / "test.csv", "a") as f:
        f.write("10,short row\n")
    with pytest.raises(DataLayoutError, match="line 6: the row has a different number of fields"):
        load_task(f"csv:{tmp_path}", text=options)
    os.remove(tmp_path / "test.csv")
    with pytest.raises(DataLayoutError, match="no test.csv or test.tsv; csv:PATH expects a folder PATH with train.csv"):
        load_task(f"csv:{tmp_path}", text=options)
    (tmp_path / "test.tsv").write_text("review\tsentiment\nok\tpos\n")
    (tmp_path / "train.tsv").write_text("review\tsentiment\nok\tpos\n")
    with pytest.raises(DataLayoutError, match="both train.csv and train.tsv"):
        load_task(f"csv:{tmp_path}", text=options)


# ---- identity, tokenizers, nothing written -------------------------------------------------------------------


def test_fingerprints_identify_the_data_and_its_preparation(tmp_path):
    td.write_csv(tmp_path / "a")
    options = TextOptions(text_columns=("review",), label_column="sentiment")
    task = load_task(f"csv:{tmp_path / 'a'}", text=options)
    copy(tmp_path / "a", tmp_path / "b")
    assert load_task(f"csv:{tmp_path / 'b'}", text=options).fingerprint == task.fingerprint  # same content
    assert task.identity == {"spec": f"csv:{tmp_path / 'a'}", "fingerprint": task.fingerprint}
    longer = TextOptions(text_columns=("review",), label_column="sentiment", max_length=64)
    assert load_task(f"csv:{tmp_path / 'a'}", text=longer).fingerprint != task.fingerprint
    text = (tmp_path / "b" / "test.csv").read_text()
    (tmp_path / "b" / "test.csv").write_text(text.replace(",pos", ",neg", 1))
    assert load_task(f"csv:{tmp_path / 'b'}", text=options).fingerprint != task.fingerprint
    # Embedded tasks: fingerprinted by their tensors.
    digits = load_task("digits")
    assert digits.fingerprint == load_task("digits").fingerprint != load_task("digits-inverted").fingerprint
    assert digits.fingerprint != load_task("digits", image_size=16).fingerprint
    assert digits.spec == "digits" and len(digits.fingerprint) == 64


def test_text_tasks_take_the_models_tokenizer(tmp_path):
    model, tokenizer = td.write_hf_checkpoint(tmp_path / "ckpt")
    td.write_glue_sst2(tmp_path / "SST-2")
    own = load_tokenizer(f"hf:{tmp_path / 'ckpt'}")
    task = load_task(f"glue-sst2:{tmp_path / 'SST-2'}", tokenizer=own, text=TextOptions(max_length=16))
    input_ids = first_batch(task.train)[0]
    assert int(input_ids.max()) < model.config.vocab_size  # ids of the checkpoint's small vocabulary
    assert input_ids[0].tolist() == tokenizer(td.SENTENCES[0], padding="max_length", max_length=16)["input_ids"]
    assert task.fingerprint != load_task(f"glue-sst2:{tmp_path / 'SST-2'}", text=TextOptions(max_length=16)).fingerprint
    with pytest.raises(ValueError, match="max_length=128 exceeds the tokenizer's model_max_length=64"):
        load_task(f"glue-sst2:{tmp_path / 'SST-2'}", tokenizer=own)
    vader = load_task("vader", tokenizer=own)
    assert int(vader.train.tensors[0].max()) < model.config.vocab_size
    assert vader.fingerprint != load_task("vader").fingerprint


def test_loading_writes_nothing(root, imagefolder, cifar10):
    td.write_hf_disk(root / "hf-ro")
    before = td.listing(root)
    load_task(f"hf-disk:{root / 'hf-ro'}", text=TextOptions(text_columns=("premise",)))
    load_task(f"imagefolder:{imagefolder}", image_size=8)
    load_task(f"cifar10:{cifar10[0]}")
    with pytest.raises(DataLayoutError):
        load_task(f"cifar100:{cifar10[0]}")
    assert td.listing(root) == before


def test_datasets_survive_pickling_for_loader_workers(cifar10, imagefolder, tmp_path):
    # DataLoader workers started by spawn (macOS, Windows, CUDA setups) receive the dataset pickled.
    td.write_csv(tmp_path / "csv")
    tasks = [
        load_task(f"cifar10:{cifar10[0]}", image=ImageOptions(augment=True)),
        load_task(f"imagefolder:{imagefolder}", image_size=8),
        load_task(f"csv:{tmp_path / 'csv'}", text=TextOptions(text_columns=("review",), label_column="sentiment")),
    ]
    for task in tasks:
        copied = pickle.loads(pickle.dumps(task.train))
        torch.manual_seed(1)
        expected = task.train[3]
        torch.manual_seed(1)
        assert all(torch.equal(torch.as_tensor(a), torch.as_tensor(b)) for a, b in zip(copied[3], expected))
