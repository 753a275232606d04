"""The default prunable set on Hugging Face architectures beyond BERT: GPT-2's transposed Conv1D layers are
layer weights (its embeddings wte/wpe and the tied lm_head are not pruned by default), sequence
classification heads named ``score`` are heads, and a checkpoint's selection equals the live model's."""

import pytest
import torch
from safetensors.torch import save_file

import rgprune
from rgprune.prunable import HEAD_MODULE_NAMES, LayerKind, tensor_kind
from rgprune.rg import trace_from_checkpoints

transformers = pytest.importorskip("transformers")


def gpt2(head):
    torch.manual_seed(0)
    config = transformers.GPT2Config(vocab_size=50, n_positions=16, n_embd=32, n_layer=2, n_head=2, num_labels=3)
    return (transformers.GPT2LMHeadModel if head == "lm" else transformers.GPT2ForSequenceClassification)(config)


@pytest.mark.parametrize("head", ["lm", "score"])
def test_gpt2_conv1d_layers_are_pruned_and_heads_and_embeddings_are_not(tmp_path, head):
    model = gpt2(head)
    pruner = rgprune.GlobalMagnitudePruner(model)
    expected = [
        f"transformer.h.{i}.{layer}.weight"
        for i in range(2)
        for layer in ("attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj")
    ]
    assert pruner.names == expected
    assert "score" in HEAD_MODULE_NAMES and "lm_head" in HEAD_MODULE_NAMES
    with_head = rgprune.GlobalMagnitudePruner(model, prune_head=True, prune_embeddings=True, masks_from="ones").names
    assert {"transformer.wte.weight", "transformer.wpe.weight"} <= set(with_head)
    # a checkpoint (tied tensors saved apart) selects the same tensors
    path = tmp_path / "gpt2.safetensors"
    save_file({k: v.detach().contiguous().clone() for k, v in model.state_dict().items()}, str(path))
    assert sorted(trace_from_checkpoints([path]).tensor_names) == sorted(pruner.names)
    assert tensor_kind("transformer.wte.weight", 2, torch.float32) is LayerKind.EMBEDDING
    assert tensor_kind("model.embed_tokens.weight", 2, torch.float32) is LayerKind.EMBEDDING
    report = pruner.prune(fraction=0.5)
    assert report.k == round(0.5 * pruner.num_weights) and pruner.check() == {}
