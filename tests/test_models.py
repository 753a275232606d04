"""rgprune.models: every registered model builds, runs, and is what its name says."""

import pytest
import torch
from torch import nn

from rgprune.models import (
    MODEL_NAMES,
    build_model,
    load_tokenizer,
    model_kind,
)
from rgprune.models.bert import minilm_model_dir
from rgprune.prunable import LayerKind, is_head, module_kind, tensor_kind

VISION_NAMES = [n for n in MODEL_NAMES if model_kind(n) == "vision"]
TEXT_NAMES = [n for n in MODEL_NAMES if model_kind(n) == "text"]
NUM_CLASSES = 3


@pytest.fixture(scope="module")
def text_models():
    """Each BERT built once (bert-base is ~110M parameters; minilm reads a 90 MB checkpoint)."""
    return {name: build_model(name, NUM_CLASSES, seed=0).eval() for name in TEXT_NAMES}


def param_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def head_parameters(model: nn.Module) -> dict[str, nn.Parameter]:
    return {name: p for name, p in model.named_parameters() if is_head(name)}


def embedding_modules(model: nn.Module) -> list[str]:
    return [name for name, m in model.named_modules() if module_kind(m) is LayerKind.EMBEDDING]


def test_registry_lists_the_eleven_models():
    assert set(MODEL_NAMES) == {
        "resnet18",
        "resnet50",
        "resnet20",
        "resnet56",
        "minilm",
        "minilm-random",
        "bert-base",
        "resnet8",
        "resnet14",
        "resnet32",
        "minilm-shuffled",
    }
    assert VISION_NAMES == ["resnet18", "resnet50", "resnet20", "resnet56", "resnet8", "resnet14", "resnet32"]
    assert TEXT_NAMES == ["minilm", "minilm-random", "bert-base", "minilm-shuffled"]


@pytest.mark.parametrize("name", VISION_NAMES)
@pytest.mark.parametrize("in_channels", [1, 3])
def test_vision_forward_shape(name, in_channels):
    model = build_model(name, NUM_CLASSES, in_channels=in_channels, seed=0).eval()
    with torch.no_grad():
        logits = model(torch.randn(2, in_channels, 16, 16))
    assert logits.shape == (2, NUM_CLASSES)
    assert torch.isfinite(logits).all()


@pytest.mark.parametrize("name", TEXT_NAMES)
def test_text_forward_shape(text_models, name):
    model = text_models[name]
    input_ids = torch.randint(1000, 2000, (2, 8))
    attention_mask = torch.ones(2, 8, dtype=torch.int64)
    attention_mask[1, 5:] = 0
    with torch.no_grad():
        logits = model(input_ids=input_ids, attention_mask=attention_mask).logits
    assert logits.shape == (2, NUM_CLASSES)
    assert torch.isfinite(logits).all()


@pytest.mark.parametrize("name, paper_count", [("resnet20", 0.27e6), ("resnet56", 0.85e6)])
def test_cifar_resnet_parameter_count_matches_he_et_al(name, paper_count):
    # He et al. 2016, Table 6 (CIFAR-10, 10 classes, RGB input).
    count = param_count(build_model(name, 10))
    assert abs(count - paper_count) / paper_count < 0.02, count


@pytest.mark.parametrize("name", ["resnet20", "resnet56"])
def test_cifar_resnet_uses_option_a_shortcuts(name):
    # Option A: shortcuts are parameter-free, so the only convs are the 3x3 convs of the stem
    # and of the blocks (2 per block, 3 stages of n blocks): depth - 1 of them.
    model = build_model(name, 10)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    depth = int(name.removeprefix("resnet"))
    assert len(convs) == depth - 1
    assert all(conv.kernel_size == (3, 3) for conv in convs)
    assert [
        model.layer1[0].conv1.out_channels,
        model.layer2[0].conv1.out_channels,
        model.layer3[0].conv1.out_channels,
    ] == [16, 32, 64]


def test_cifar_resnet_zero_pad_shortcut_keeps_input_and_pads_zeros():
    block = build_model("resnet20", 10).layer2[0]
    x = torch.randn(2, 16, 8, 8)
    out = block.shortcut(x)
    assert out.shape == (2, 32, 4, 4)
    kept = out[:, 8:24]
    assert torch.equal(kept, x[:, :, ::2, ::2])
    assert out[:, :8].abs().sum() == 0 and out[:, 24:].abs().sum() == 0


@pytest.mark.parametrize("name", ["resnet18", "resnet50"])
def test_torchvision_resnet_small_input_stem(name):
    small = build_model(name, 10, in_channels=1, small_input=True)
    assert small.conv1.kernel_size == (3, 3) and small.conv1.stride == (1, 1)
    assert small.conv1.in_channels == 1
    assert isinstance(small.maxpool, nn.Identity)

    imagenet = build_model(name, 10, in_channels=1, small_input=False)
    assert imagenet.conv1.kernel_size == (7, 7) and imagenet.conv1.stride == (2, 2)
    assert imagenet.conv1.in_channels == 1
    assert isinstance(imagenet.maxpool, nn.MaxPool2d)


def test_small_input_stem_keeps_resolution_for_the_first_stage():
    seen = {}

    def first_stage_shape(model):
        handle = model.layer1.register_forward_hook(lambda m, i, o: seen.update(shape=o.shape))
        with torch.no_grad():
            model.eval()(torch.randn(1, 3, 32, 32))
        handle.remove()
        return seen["shape"][-2:]

    assert first_stage_shape(build_model("resnet18", 10, small_input=True)) == (32, 32)
    assert first_stage_shape(build_model("resnet18", 10, small_input=False)) == (8, 8)


def test_seed_makes_builds_reproducible_without_touching_global_rng():
    torch.manual_seed(123)
    expected_next = torch.rand(1)
    torch.manual_seed(123)
    a = build_model("resnet20", 10, seed=7)
    b = build_model("resnet20", 10, seed=7)
    c = build_model("resnet20", 10, seed=8)
    assert torch.equal(torch.rand(1), expected_next), "build_model(seed=...) changed the global RNG"
    for (name, pa), pb in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(pa, pb), name
    assert not torch.equal(a.conv1.weight, c.conv1.weight)


def test_minilm_loads_the_pretrained_checkpoint(text_models):
    from safetensors.torch import load_file

    checkpoint = load_file(minilm_model_dir() / "model.safetensors")
    model = text_models["minilm"]
    state = model.state_dict()
    loaded = [key for key in checkpoint if key != "embeddings.position_ids"]
    assert len(loaded) > 100
    for key in loaded:
        assert torch.equal(state["bert." + key], checkpoint[key]), key

    word_embeddings = checkpoint["embeddings.word_embeddings.weight"]
    random = text_models["minilm-random"].bert.embeddings.word_embeddings.weight
    assert random.shape == word_embeddings.shape == (30522, 384)
    assert not torch.allclose(random, word_embeddings)
    # The head is new: sized for our classes, not in the checkpoint.
    assert model.classifier.weight.shape == (NUM_CLASSES, 384)
    assert not any(key.startswith("classifier") for key in checkpoint)


def test_minilm_without_pretrained_is_minilm_random():
    a = build_model("minilm", 2, pretrained=False, seed=3)
    b = build_model("minilm-random", 2, seed=3)
    for (name, pa), pb in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(pa, pb), name


def test_bert_base_has_bert_base_shape(text_models):
    config = text_models["bert-base"].config
    assert (config.num_hidden_layers, config.hidden_size, config.num_attention_heads) == (12, 768, 12)
    assert 105e6 < param_count(text_models["bert-base"]) < 115e6


@pytest.mark.parametrize("name", VISION_NAMES)
def test_vision_classifier_head_and_embeddings(name):
    model = build_model(name, NUM_CLASSES)
    head = head_parameters(model)
    assert set(head) == {"fc.weight", "fc.bias"}
    assert head["fc.weight"].shape[0] == NUM_CLASSES
    assert embedding_modules(model) == []


def test_text_classifier_head_and_embeddings(text_models):
    for name in TEXT_NAMES:
        model = text_models[name]
        head = head_parameters(model)
        assert set(head) == {"classifier.weight", "classifier.bias"}, name
        assert head["classifier.weight"].shape[0] == NUM_CLASSES
        embeddings = embedding_modules(model)
        assert embeddings == [
            "bert.embeddings.word_embeddings",
            "bert.embeddings.position_embeddings",
            "bert.embeddings.token_type_embeddings",
        ], name
        assert isinstance(model.get_submodule("bert.embeddings").word_embeddings, nn.Embedding)
        # a checkpoint, which has no module types, sees the same embedding tables
        for module_name in embeddings:
            weight = model.get_parameter(module_name + ".weight")
            assert tensor_kind(module_name + ".weight", weight.dim(), weight.dtype) is LayerKind.EMBEDDING


def test_unknown_model_name_lists_valid_names():
    with pytest.raises(ValueError) as info:
        build_model("resnet21", 10)
    for name in MODEL_NAMES:
        assert name in str(info.value)
    with pytest.raises(ValueError, match="resnet56"):
        model_kind("vgg16")


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        (dict(num_classes=1), ValueError, "num_classes must be >= 2"),
        (dict(num_classes=10, in_channels=0), ValueError, "in_channels must be >= 1"),
        (dict(num_classes=10.0), TypeError, "num_classes must be an int"),
        (dict(num_classes=True), TypeError, "num_classes must be an int"),
        (dict(num_classes=10, seed=-1), ValueError, "seed must be >= 0"),
    ],
)
def test_invalid_arguments_are_rejected(kwargs, error, message):
    with pytest.raises(error, match=message):
        build_model("resnet20", **kwargs)


def test_model_kind():
    assert model_kind("resnet50") == "vision"
    assert model_kind("minilm") == "text"
    with pytest.raises(TypeError):
        model_kind(None)


def test_tokenizer_is_minilms_and_fits_every_text_model(text_models):
    tokenizer = load_tokenizer("bert-base")
    for name in TEXT_NAMES:
        assert len(tokenizer) == text_models[name].config.vocab_size == 30522
    encoded = tokenizer(["love", "hate"], padding="max_length", max_length=6, truncation=True)
    assert encoded["input_ids"] == [[101, 2293, 102, 0, 0, 0], [101, 5223, 102, 0, 0, 0]]
    assert len(load_tokenizer("minilm")) == len(load_tokenizer("minilm-random")) == 30522
    with pytest.raises(ValueError, match="text models"):
        load_tokenizer("resnet18")
