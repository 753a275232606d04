"""rgprune.data: the embedded tasks hold the data they describe, split the same way every time."""

import dataclasses

import pytest
import torch
from sklearn.datasets import load_digits

from rgprune.data import TASK_NAMES, Task, load_task
from rgprune.data.digits import LABEL_PERMUTATION, digits_split
from rgprune.data.vader import MAX_LENGTH, sentiment_label, vader_lexicon, vader_split

DIGITS_TASKS = [name for name in TASK_NAMES if name.startswith("digits")]
ATOL = 1e-5  # float32 images; transforms are checked to float32 precision


@pytest.fixture(scope="module")
def digits():
    return load_task("digits")


@pytest.fixture(scope="module")
def vader():
    return load_task("vader")


def images_and_labels(dataset):
    images, labels = dataset.tensors
    return images, labels


def standardize(x: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    return ((x - reference.mean()) / reference.std()).float()


def test_task_names():
    assert TASK_NAMES == (
        "digits",
        "digits-inverted",
        "digits-rotated",
        "digits-permuted",
        "digits-5class",
        "digits700",
        "digits700-inverted",
        "digits700-rotated",
        "digits700-mirrored",
        "digits700-permuted",
        "digits700-upper5",
        "digits700-parity",
        "digits700-noisy",
        "digits700-shuffled",
        "vader",
        "afinn",
    )


def test_unknown_task_lists_valid_names():
    with pytest.raises(ValueError) as info:
        load_task("mnist")
    for name in TASK_NAMES:
        assert name in str(info.value)


@pytest.mark.parametrize(
    "name, kwargs, error, message",
    [
        ("digits", dict(image_size=0), ValueError, "image_size must be >= 1"),
        ("digits", dict(image_size=32.0), TypeError, "image_size must be an int"),
        ("digits", dict(seed=-1), ValueError, "seed must be >= 0"),
        ("vader", dict(image_size=32), ValueError, "vision tasks only"),
        (7, {}, TypeError, "task name must be a str"),
    ],
)
def test_invalid_arguments_are_rejected(name, kwargs, error, message):
    with pytest.raises(error, match=message):
        load_task(name, **kwargs)


def test_digits_split_is_fixed_stratified_80_20(digits):
    x_train, y_train = images_and_labels(digits.train)
    x_test, y_test = images_and_labels(digits.test)
    assert (len(y_train), len(y_test)) == (1437, 360)
    assert x_train.shape == (1437, 1, 8, 8) and x_test.shape == (360, 1, 8, 8)
    assert x_train.dtype == torch.float32 and y_train.dtype == torch.int64

    all_labels = torch.as_tensor(load_digits().target)
    for digit in range(10):
        total = int((all_labels == digit).sum())
        n_test = int((y_test == digit).sum())
        assert n_test + int((y_train == digit).sum()) == total
        assert abs(n_test - 0.2 * total) <= 1, (digit, n_test, total)


def test_digits_task_metadata(digits):
    assert (digits.name, digits.kind, digits.num_classes, digits.in_channels) == ("digits", "vision", 10, 1)
    assert "1437 train / 360 test" in digits.description
    with pytest.raises(dataclasses.FrozenInstanceError):
        digits.num_classes = 3


def test_digits_images_are_scaled_then_standardized_on_train(digits):
    raw_train, _, raw_test, _ = digits_split()
    assert raw_train.min() == 0 and raw_train.max() == 1
    x_train, _ = images_and_labels(digits.train)
    x_test, _ = images_and_labels(digits.test)
    assert torch.allclose(x_train[:, 0], standardize(raw_train, raw_train), atol=ATOL)
    # The test set uses the train statistics, not its own.
    assert torch.allclose(x_test[:, 0], standardize(raw_test, raw_train), atol=ATOL)
    assert abs(x_train.mean().item()) < 1e-5 and abs(x_train.std().item() - 1) < 1e-5


def test_loading_is_deterministic_and_independent_of_seed(digits):
    again = load_task("digits", seed=5)
    for a, b in zip(digits.train.tensors + digits.test.tensors, again.train.tensors + again.test.tensors):
        assert torch.equal(a, b)
    # Each call hands out its own tensors: changing one task cannot change the next.
    again.train.tensors[0].zero_()
    assert torch.equal(load_task("digits").train.tensors[0], digits.train.tensors[0])


def test_inverted_is_one_minus_x_before_normalization(digits):
    raw_train, _, raw_test, _ = digits_split()
    inverted = load_task("digits-inverted")
    x_train, y_train = images_and_labels(inverted.train)
    x_test, _ = images_and_labels(inverted.test)
    assert torch.allclose(x_train[:, 0], standardize(1 - raw_train, 1 - raw_train), atol=ATOL)
    assert torch.allclose(x_test[:, 0], standardize(1 - raw_test, 1 - raw_train), atol=ATOL)
    # Inverting flips the sign of standardized pixels (same std, mirrored mean).
    assert torch.allclose(x_train, -digits.train.tensors[0], atol=ATOL)
    assert torch.equal(y_train, digits.train.tensors[1])


def test_rotated_is_rot90_of_original(digits):
    rotated = load_task("digits-rotated")
    for split, original in ((rotated.train, digits.train), (rotated.test, digits.test)):
        expected = torch.rot90(original.tensors[0], 1, dims=(-2, -1))
        assert torch.allclose(split.tensors[0], expected, atol=ATOL)
        assert not torch.allclose(split.tensors[0], original.tensors[0], atol=0.1)
        assert torch.equal(split.tensors[1], original.tensors[1])


def test_permuted_labels_are_a_fixed_permutation_of_the_original(digits):
    assert sorted(LABEL_PERMUTATION) == list(range(10))
    assert all(LABEL_PERMUTATION[d] != d for d in range(10)), "every digit should change label"
    permuted = load_task("digits-permuted")
    for split, original in ((permuted.train, digits.train), (permuted.test, digits.test)):
        assert torch.equal(split.tensors[0], original.tensors[0])
        new, old = split.tensors[1], original.tensors[1]
        # One label per original digit, and distinct digits get distinct labels.
        mapping = {d: set(new[old == d].tolist()) for d in range(10)}
        assert all(len(labels) == 1 for labels in mapping.values())
        assert sorted(labels.pop() for labels in mapping.values()) == list(range(10))
        assert torch.equal(new, torch.tensor(LABEL_PERMUTATION)[old])
    assert permuted.num_classes == 10


def test_five_class_keeps_digits_zero_to_four(digits):
    five = load_task("digits-5class")
    assert five.num_classes == 5
    for split, original in ((five.train, digits.train), (five.test, digits.test)):
        labels = split.tensors[1]
        assert set(labels.tolist()) == {0, 1, 2, 3, 4}
        assert len(labels) == int((original.tensors[1] < 5).sum())
    # Same fixed split as the other digits tasks: its test images are the originals' test images
    # (restandardized with the 5-class train statistics, so compare after re-standardizing).
    raw_train, y_train, raw_test, y_test = digits_split()
    expected = standardize(raw_test[y_test < 5], raw_train[y_train < 5])
    assert torch.allclose(five.test.tensors[0][:, 0], expected, atol=ATOL)


@pytest.mark.parametrize("name", DIGITS_TASKS)
def test_upsampling_to_image_size(name):
    task = load_task(name, image_size=32)
    x_train, y_train = images_and_labels(task.train)
    x_test, _ = images_and_labels(task.test)
    assert x_train.shape[1:] == x_test.shape[1:] == (1, 32, 32)
    assert x_train.dtype == torch.float32
    assert abs(x_train.mean().item()) < 1e-4 and abs(x_train.std().item() - 1) < 1e-4
    assert "32x32" in task.description
    assert len(y_train) == len(load_task(name).train)


def test_upsampling_is_bilinear_from_8x8():
    raw_train, _, _, _ = digits_split()
    upsampled = torch.nn.functional.interpolate(raw_train[:, None], size=(16, 16), mode="bilinear", align_corners=False)
    task = load_task("digits", image_size=16)
    assert torch.allclose(task.train.tensors[0], standardize(upsampled, upsampled), atol=ATOL)


def test_task_rejects_inconsistent_fields(digits):
    with pytest.raises(ValueError, match="kind"):
        dataclasses.replace(digits, kind="audio")
    with pytest.raises(ValueError, match="num_classes"):
        dataclasses.replace(digits, num_classes=1)
    with pytest.raises(ValueError, match="in_channels"):
        dataclasses.replace(digits, in_channels=None)
    assert isinstance(digits, Task)


def test_vader_task_shapes_and_metadata(vader):
    assert (vader.kind, vader.num_classes, vader.in_channels) == ("text", 2, None)
    for split in (vader.train, vader.test):
        input_ids, attention_mask, labels = split.tensors
        n = len(labels)
        assert input_ids.shape == attention_mask.shape == (n, MAX_LENGTH)
        assert input_ids.dtype == attention_mask.dtype == labels.dtype == torch.int64
        assert set(labels.tolist()) == {0, 1}
        # Every row is [CLS] ... [SEP] then padding, and the mask marks exactly the real tokens.
        assert (input_ids[:, 0] == 101).all()
        lengths = attention_mask.sum(1)
        assert (input_ids[torch.arange(n), lengths - 1] == 102).all()
        assert ((input_ids == 0) == (attention_mask == 0)).all()


def test_vader_labels_agree_with_lexicon_ratings(vader):
    lexicon = vader_lexicon()
    assert lexicon["love"] > 3 and lexicon["hate"] < -2
    train_words, train_labels, test_words, test_labels = vader_split()
    labelled = dict(zip(train_words + test_words, train_labels + test_labels))
    expected = {"love": 1, "good": 1, "happy": 1, "hate": 0, "bad": 0, "terrible": 0}
    for word, label in expected.items():
        assert labelled[word] == label, word
    for word, label in labelled.items():
        assert label == sentiment_label(lexicon[word]), word
    # Near-neutral entries are dropped, signed ones all kept.
    neutral = [w for w, rating in lexicon.items() if abs(rating) <= 0.5]
    assert neutral and not set(neutral) & set(labelled)
    assert len(labelled) == len(lexicon) - len(neutral)
    assert len(train_words) == len(vader.train) and len(test_words) == len(vader.test)
    assert not set(train_words) & set(test_words)


def test_vader_rows_are_the_tokenized_words(vader):
    train_words, _, test_words, _ = vader_split()
    checked = []
    for words, split in ((train_words, vader.train), (test_words, vader.test)):
        for word, token_id in (("love", 2293), ("hate", 5223)):
            if word in words:
                row = words.index(word)
                assert split.tensors[0][row, :4].tolist() == [101, token_id, 102, 0]
                assert split.tensors[2][row].item() == (word == "love")
                checked.append(word)
    assert sorted(checked) == ["hate", "love"]


def test_vader_split_is_stratified_and_counts_are_reported(vader):
    lexicon = vader_lexicon()
    positives = sum(rating > 0.5 for rating in lexicon.values())
    negatives = sum(rating < -0.5 for rating in lexicon.values())
    train_labels, test_labels = vader.train.tensors[2], vader.test.tensors[2]
    assert int(train_labels.sum() + test_labels.sum()) == positives
    assert len(train_labels) + len(test_labels) == positives + negatives
    assert abs(len(test_labels) / (positives + negatives) - 0.2) < 0.01
    assert abs(train_labels.float().mean() - test_labels.float().mean()) < 0.01
    n_pos_train = int(train_labels.sum())
    assert f"{n_pos_train} positive, {len(train_labels) - n_pos_train} negative" in vader.description


def test_vader_is_deterministic(vader):
    again = load_task("vader", seed=3)
    for a, b in zip(vader.train.tensors + vader.test.tensors, again.train.tensors + again.test.tensors):
        assert torch.equal(a, b)
