"""The tasks and models the findings need: the equal-size digits family, the afinn task, the ResNet depth series,
and the shuffled-pretrained MiniLM control. Each test names the bug it guards against."""

import pytest
import torch
from torch import nn

from rgprune.data import load_task
from rgprune.data.afinn import afinn_split, afinn_word_list, valence_label
from rgprune.data.digits import (
    EQUAL_TASK_NAMES,
    EQUAL_TRAIN_SIZE,
    LABEL_PERMUTATION,
    NOISE_STD,
    digits_split,
    equal_subsample,
    fixed_noise,
    pixel_shuffle_permutation,
)
from rgprune.data.lexicon import MAX_LENGTH
from rgprune.models import build_model

ATOL = 1e-5


@pytest.fixture(scope="module")
def equal_tasks():
    return {name: load_task(name) for name in EQUAL_TASK_NAMES}


def unnormalize(task, split, reference_images):
    """Undo the task's normalization with the train statistics of the raw ``reference_images``."""
    x = getattr(task, split).tensors[0][:, 0].double()
    return x * reference_images.std() + reference_images.mean()


def test_every_equal_size_task_trains_on_the_same_number_of_images(equal_tasks):
    # the bug the family exists for: a task with fewer images trains fewer steps per round
    assert len(EQUAL_TASK_NAMES) == 9
    for name, task in equal_tasks.items():
        assert len(task.train) == EQUAL_TRAIN_SIZE, name
        assert f"{EQUAL_TRAIN_SIZE} train images" in task.description
    sizes = {name: len(task.test) for name, task in equal_tasks.items()}
    assert sizes.pop("digits700-upper5") == 180  # the test images of digits 5-9
    assert set(sizes.values()) == {360}


def test_ten_digit_tasks_share_one_stratified_subsample():
    _, y_train, _, _ = digits_split()
    rows = equal_subsample(y_train)
    assert len(rows) == EQUAL_TRAIN_SIZE and len(set(rows.tolist())) == EQUAL_TRAIN_SIZE
    counts = torch.bincount(y_train[rows], minlength=10)
    full = torch.bincount(y_train, minlength=10)
    # stratified: each digit keeps its share of the train split within one image
    assert torch.all((counts - full * EQUAL_TRAIN_SIZE / len(y_train)).abs() <= 1)
    assert torch.equal(equal_subsample(y_train), rows)  # fixed, not the run's draw


def test_transforms_of_the_shared_images(equal_tasks):
    x_train, y_train, _, y_test = digits_split()
    rows = equal_subsample(y_train)
    plain = x_train[rows]
    expected = {
        "digits700": plain,
        "digits700-inverted": 1 - plain,
        "digits700-rotated": torch.rot90(plain, 1, dims=(-2, -1)),
        "digits700-mirrored": torch.flip(plain, dims=(-1,)),
        "digits700-permuted": plain,
        "digits700-parity": plain,
        "digits700-shuffled": plain.reshape(-1, 64)[:, pixel_shuffle_permutation()].reshape(-1, 8, 8),
    }
    noise_train, _ = fixed_noise(len(y_train), len(y_test))
    expected["digits700-noisy"] = (plain + NOISE_STD * noise_train[rows]).clamp(0, 1)
    for name, images in expected.items():
        got = unnormalize(equal_tasks[name], "train", images)
        assert torch.allclose(got, images, atol=ATOL), name
    labels = y_train[rows]
    assert torch.equal(equal_tasks["digits700"].train.tensors[1], labels)
    assert torch.equal(equal_tasks["digits700-permuted"].train.tensors[1], torch.tensor(LABEL_PERMUTATION)[labels])
    assert torch.equal(equal_tasks["digits700-parity"].train.tensors[1], labels % 2)
    assert equal_tasks["digits700-parity"].num_classes == 2


def test_noise_is_fixed_per_image_and_on_the_test_images_too(equal_tasks):
    # the same image must get the same noise in every load (a fresh draw would change the data between runs)
    task = equal_tasks["digits700-noisy"]
    again = load_task("digits700-noisy")
    for a, b in zip(again.train.tensors + again.test.tensors, task.train.tensors + task.test.tensors):
        assert torch.equal(a, b)
    x_train, y_train, x_test, y_test = digits_split()
    noise_train, noise_test = fixed_noise(len(y_train), len(y_test))
    rows = equal_subsample(y_train)
    noisy_train = (x_train[rows] + NOISE_STD * noise_train[rows]).clamp(0, 1)
    noisy_test = (x_test + NOISE_STD * noise_test).clamp(0, 1)
    got = task.test.tensors[0][:, 0].double() * noisy_train.std() + noisy_train.mean()
    assert torch.allclose(got, noisy_test, atol=ATOL)
    assert 0.1 < (noisy_test - x_test).abs().mean() < NOISE_STD


def test_pixel_shuffle_keeps_values_and_moves_them(equal_tasks):
    perm = pixel_shuffle_permutation()
    assert sorted(perm.tolist()) == list(range(64)) and (perm != torch.arange(64)).float().mean() > 0.9
    plain = equal_tasks["digits700"].test.tensors[0].reshape(-1, 64)
    shuffled = equal_tasks["digits700-shuffled"].test.tensors[0].reshape(-1, 64)
    # same train statistics (a permutation keeps them), so the normalized values are permuted too
    assert torch.allclose(shuffled, plain[:, perm], atol=ATOL)


def test_upper5_is_digits_five_to_nine_relabelled(equal_tasks):
    x_train, y_train, _, y_test = digits_split()
    task = equal_tasks["digits700-upper5"]
    assert task.num_classes == 5
    upper_test = y_test >= 5
    assert torch.equal(task.test.tensors[1], y_test[upper_test] - 5)
    train_images = x_train[y_train >= 5]
    picked = train_images[equal_subsample(y_train[y_train >= 5])]
    assert torch.allclose(unnormalize(task, "train", picked), picked, atol=ATOL)
    assert set(task.train.tensors[1].tolist()) == {0, 1, 2, 3, 4}


def test_equal_size_tasks_resize_like_the_others():
    task = load_task("digits700-shuffled", image_size=16)
    assert task.train.tensors[0].shape == (EQUAL_TRAIN_SIZE, 1, 16, 16)
    assert "16x16" in task.description


def test_afinn_labels_follow_valence_and_drop_zeros():
    words = afinn_word_list()
    assert len(words) == 3382 and words["good"] == 3 and words["bad"] == -3
    train_words, train_labels, test_words, test_labels = afinn_split()
    labelled = dict(zip(train_words + test_words, train_labels + test_labels))
    assert len(labelled) == sum(v != 0 for v in words.values())
    assert all(labelled[w] == valence_label(words[w]) for w in labelled)
    assert not set(train_words) & set(test_words)
    assert abs(len(test_words) / len(labelled) - 0.2) < 0.01
    assert abs(sum(train_labels) / len(train_labels) - sum(test_labels) / len(test_labels)) < 0.01


def test_afinn_task_rows_are_the_tokenized_words():
    task = load_task("afinn")
    assert (task.kind, task.num_classes) == ("text", 2)
    train_words, train_labels, _, _ = afinn_split()
    input_ids, attention_mask, labels = task.train.tensors
    assert input_ids.shape == (len(train_words), MAX_LENGTH)
    row = train_words.index("good") if "good" in train_words else None
    if row is not None:
        assert input_ids[row, :4].tolist() == [101, 2204, 102, 0] and labels[row] == 1
    assert torch.equal(labels, torch.tensor(train_labels))
    assert ((input_ids == 0) == (attention_mask == 0)).all()
    assert "2704" in task.description


@pytest.mark.parametrize("depth", [8, 14, 20, 32, 56])
def test_resnet_depth_series_has_depth_minus_one_convs(depth):
    # a wrong blocks-per-stage would build another depth under the name
    model = build_model(f"resnet{depth}", 10, in_channels=1, seed=0)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == depth - 1
    blocks = (depth - 2) // 6
    expected = (
        16 * 9
        + 16 * 16 * 9 * 2 * blocks
        + (16 * 32 + 32 * 32 * (2 * blocks - 1)) * 9
        + (32 * 64 + 64 * 64 * (2 * blocks - 1)) * 9
    )
    assert sum(c.weight.numel() for c in convs) == expected
    with torch.no_grad():
        assert model.eval()(torch.randn(2, 1, 8, 8)).shape == (2, 10)


def test_shuffled_minilm_keeps_each_tensors_values_and_moves_them():
    pretrained = dict(build_model("minilm", 2, seed=0).named_parameters())
    shuffled = dict(build_model("minilm-shuffled", 2, seed=0).named_parameters())
    other = dict(build_model("minilm-shuffled", 2, seed=1).named_parameters())
    again = dict(build_model("minilm-shuffled", 2, seed=0).named_parameters())
    assert pretrained.keys() == shuffled.keys()
    moved = 0
    for name, p in pretrained.items():
        s = shuffled[name]
        # identical histograms: the same multiset of values in every tensor
        assert torch.equal(p.detach().flatten().sort().values, s.detach().flatten().sort().values), name
        assert torch.equal(s, again[name]), name  # seeded
        if name.startswith("classifier."):
            assert torch.equal(p, s), name  # the same fresh head as minilm's at that seed: a paired control
        elif torch.unique(p.detach()).numel() > 100:  # (the pooler bias is all zeros: nothing to move)
            assert (p != s).float().mean() > 0.5, name
            assert not torch.equal(s, other[name]), name  # another seed, another shuffle
            moved += 1
    assert moved > 30
