"""The default prunable set (rgprune.prunable) on the head and embedding layouts of real model families:
a ``Sequential`` classifier, RoBERTa's ``classifier.dense``/``classifier.out_proj`` (transformers), timm/ViT's
``head.fc``, torchvision's ``classifier[-1]`` (MobileNetV3, EfficientNet) and ``heads.head`` (ViT).

For each layout the expected head and embedding parameters are written out by hand (not derived from the rule
under test); heads are kept dense by default and pruned with ``prune_head=True``, embeddings likewise with
``prune_embeddings=True``; and the live-model selection (GlobalMagnitudePruner) equals the checkpoint selection
(the model's state_dict saved as safetensors, read by trace_from_checkpoints and by the checkpoint rule).

Guards against: the head rule matched on the full module name instead of the top-level name (then
``classifier.0``, ``classifier.dense``, ``head.fc`` and ``heads.head`` are all pruned by default), a head name
deeper in the model (``features.1.block.1.fc1``, MobileNet's squeeze-excitation) taken for a head, and the
pruner and the trace drifting apart on any layout."""

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

import rgprune
from rgprune.prunable import is_default_prunable, tensor_kind
from rgprune.rg.checkpoints import trace_from_checkpoints

pytestmark = pytest.mark.reference  # make test-reference


class SequentialClassifier(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten()
        )
        self.classifier = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Dropout(), nn.Linear(16, 4))


class TimmStyleViT(nn.Module):
    """timm's VisionTransformer naming: patch_embed.proj, cls_token/pos_embed parameters, blocks, and the
    classifier under head.fc (timm's ClassifierHead/NormMlpClassifierHead)."""

    def __init__(self):
        super().__init__()
        self.patch_embed = nn.Module()
        self.patch_embed.proj = nn.Conv2d(3, 16, 8, stride=8)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, 16))
        self.pos_embed = nn.Parameter(torch.zeros(1, 5, 16))
        self.blocks = nn.Sequential(nn.Linear(16, 32), nn.GELU(), nn.Linear(32, 16))
        self.norm = nn.LayerNorm(16)
        self.head = nn.Module()
        self.head.fc = nn.Linear(16, 4)


def roberta():
    from transformers import RobertaConfig, RobertaForSequenceClassification

    config = RobertaConfig(
        vocab_size=64,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=40,
        num_labels=3,
    )
    return RobertaForSequenceClassification(config)


def torchvision_model(name, **kwargs):
    import torchvision

    return lambda: getattr(torchvision.models, name)(weights=None, num_classes=4, **kwargs)


def torchvision_vit():
    from torchvision.models import VisionTransformer

    return VisionTransformer(
        image_size=32, patch_size=16, num_layers=1, num_heads=2, hidden_dim=16, mlp_dim=32, num_classes=4
    )


ROBERTA_EMBEDDINGS = {
    "roberta.embeddings.word_embeddings.weight",
    "roberta.embeddings.position_embeddings.weight",
    "roberta.embeddings.token_type_embeddings.weight",
}

# layout: (builder, head weights, embedding weights), written out by hand
LAYOUTS = {
    "sequential-classifier": (SequentialClassifier, {"classifier.0.weight", "classifier.3.weight"}, set()),
    "roberta": (roberta, {"classifier.dense.weight", "classifier.out_proj.weight"}, ROBERTA_EMBEDDINGS),
    "timm-vit-head.fc": (TimmStyleViT, {"head.fc.weight"}, set()),
    "mobilenet_v3_small": (
        torchvision_model("mobilenet_v3_small"),
        {"classifier.0.weight", "classifier.3.weight"},
        set(),
    ),
    "efficientnet_b0": (torchvision_model("efficientnet_b0"), {"classifier.1.weight"}, set()),
    "torchvision-vit": (torchvision_vit, {"heads.head.weight"}, set()),
}


@pytest.fixture(scope="module")
def models():
    """Each model built once (EfficientNet-B0 is 4M parameters), with a fixed seed."""
    built = {}
    for name, (build, _, _) in LAYOUTS.items():
        torch.manual_seed(0)
        built[name] = build()
    return built


def layer_weights(model):
    """Every Linear/Conv weight in model order, found by module type (what a pruner may rank at all)."""
    return [
        f"{name}.weight"
        for name, m in model.named_modules()
        if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d))
    ]


def in_model_order(model, names):
    return [n for n, _ in model.named_parameters() if n in names]


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_heads_and_embeddings_are_dense_by_default_and_prunable_on_request(models, layout):
    model, (_, heads, embeddings) = models[layout], LAYOUTS[layout]
    body = [n for n in layer_weights(model) if n not in heads]
    assert heads <= set(layer_weights(model)) and body, "the layout must have a head and a body"
    assert rgprune.GlobalMagnitudePruner(model).names == body
    assert rgprune.GlobalMagnitudePruner(model, prune_head=True).names == layer_weights(model)
    assert rgprune.GlobalMagnitudePruner(model, prune_embeddings=True).names == in_model_order(
        model, set(body) | embeddings
    )
    pruner = rgprune.GlobalMagnitudePruner(model, prune_head=True, prune_embeddings=True)
    assert pruner.names == in_model_order(model, set(layer_weights(model)) | embeddings)


def checkpoint_selection(state, **options):
    """The checkpoint rule (what trace_from_checkpoints applies to a file's tensors) with ``options``."""
    return [
        name for name, t in state.items() if is_default_prunable(name, tensor_kind(name, t.dim(), t.dtype), **options)
    ]


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_checkpoint_selection_equals_the_pruners(models, layout, tmp_path):
    """The trace of the saved state_dict sees the pruner's default tensors; the checkpoint rule agrees with the
    pruner with heads and embeddings switched on too (safetensors lists tensors by name: compared as sets)."""
    model = models[layout]
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    path = tmp_path / "model.safetensors"
    save_file(state, str(path))
    names = rgprune.GlobalMagnitudePruner(model).names
    assert sorted(trace_from_checkpoints([path]).tensor_names) == sorted(names)
    for options in (
        {},
        {"prune_head": True},
        {"prune_embeddings": True},
        {"prune_head": True, "prune_embeddings": True},
    ):
        pruner_names = rgprune.GlobalMagnitudePruner(model, **options).names
        assert sorted(checkpoint_selection(state, **options)) == sorted(pruner_names), options
