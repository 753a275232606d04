"""rgprune.prunable: one default prunable set, the same for a live model (GlobalMagnitudePruner) and for its
checkpoint on disk (trace_from_checkpoints)."""

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

import rgprune
from rgprune.models import build_model
from rgprune.prunable import LayerKind, is_default_prunable, is_head, module_kind, tensor_kind
from rgprune.rg.checkpoints import trace_from_checkpoints

pytestmark = pytest.mark.reference  # make test-reference


class Zoo(nn.Module):
    """Every case of the rule: heads as top-level modules (a Sequential head too), embeddings, a head name
    below the top level, norms, biases, a 1-D weight and a conv."""

    def __init__(self):
        super().__init__()
        self.embeddings = nn.Module()
        self.embeddings.tokens = nn.Embedding(50, 8)
        self.embeddings.norm = nn.LayerNorm(8)
        self.conv = nn.Conv1d(8, 8, 3)
        self.encoder = nn.Sequential(nn.Linear(8, 8), nn.LayerNorm(8))
        self.encoder.fc = nn.Linear(8, 8)  # named like a head, but not a top-level module: not a head
        self.classifier = nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 4))
        self.cls = nn.Linear(8, 2)
        self.heads = nn.Linear(8, 2)


BODY = ["conv.weight", "encoder.0.weight", "encoder.fc.weight"]
HEADS = ["classifier.0.weight", "classifier.2.weight", "cls.weight", "heads.weight"]


def test_default_set_is_layer_weights_without_heads_or_embeddings():
    model = Zoo()
    assert rgprune.GlobalMagnitudePruner(model).names == BODY
    assert rgprune.GlobalMagnitudePruner(model, prune_head=True).names == BODY + HEADS
    assert rgprune.GlobalMagnitudePruner(model, prune_embeddings=True).names == ["embeddings.tokens.weight"] + BODY


def test_head_rule_is_on_the_top_level_module_name():
    assert is_head("fc.weight") and is_head("classifier.1.weight") and is_head("lm_head")
    assert not is_head("encoder.fc.weight") and not is_head("fcx.weight") and not is_head("weight")


def test_kinds_from_module_types_and_from_checkpoint_names():
    assert module_kind(nn.Conv2d(1, 1, 1)) is LayerKind.LAYER
    assert module_kind(nn.Linear(1, 1)) is LayerKind.LAYER
    assert module_kind(nn.Embedding(3, 2)) is LayerKind.EMBEDDING
    assert module_kind(nn.LayerNorm(2)) is LayerKind.OTHER
    assert tensor_kind("bert.embeddings.word_embeddings.weight", 2, torch.float32) is LayerKind.EMBEDDING
    assert tensor_kind("layer1.0.conv1.weight", 4, torch.float16) is LayerKind.LAYER
    assert tensor_kind("bn1.weight", 1, torch.float32) is LayerKind.OTHER  # norms are 1-D
    assert tensor_kind("position_ids", 2, torch.int64) is LayerKind.OTHER
    assert not is_default_prunable("conv.bias", LayerKind.LAYER)
    assert not is_default_prunable("encoder.in_proj_weight", LayerKind.LAYER)
    with pytest.raises(TypeError, match="LayerKind"):
        is_default_prunable("conv.weight", "layer")


def checkpoint(model, path):
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    return path


@pytest.mark.parametrize(
    "build",
    [
        Zoo,
        lambda: build_model("resnet20", 10),
        lambda: build_model("resnet18", 10),
        lambda: build_model("minilm-random", 2, seed=0),
    ],
    ids=["zoo", "resnet20", "resnet18", "minilm"],
)
def test_checkpoint_selection_equals_the_pruners(tmp_path, build):
    """The trace of a checkpoint and the pruner of the live model see the same tensors (safetensors files
    list their tensors by name, so the order may differ)."""
    model = build()
    trace = trace_from_checkpoints([checkpoint(model, tmp_path / "model.safetensors")])
    names = rgprune.GlobalMagnitudePruner(model).names
    assert sorted(trace.tensor_names) == sorted(names) and len(set(names)) == len(names)
