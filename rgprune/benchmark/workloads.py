"""What is pruned: the weight sets of the benchmark suite (ResNet-50, BERT-base, a 1B-weight synthetic set,
and tiny ones for quick runs), with which of their weights are pruned and how a training step runs on them."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from rgprune.benchmark.methods import WeightHolder


def _resnet50(device):
    import torchvision
    return torchvision.models.resnet50(weights=None).to(device)


def _resnet20(device):
    from rgprune.models import build_model
    return build_model("resnet20", 10).to(device)


def _bert(device, **config):
    from transformers import BertConfig, BertModel
    from transformers.utils import logging as hf_logging
    hf_logging.set_verbosity_error()
    return BertModel(BertConfig(**config)).to(device)


def synthetic(device, shapes) -> torch.nn.ModuleList:
    """Random normal tensors with a different scale per tensor (like layers of a real model)."""
    holders = []
    for i, shape in enumerate(shapes):
        w = torch.randn(shape, device=device) * (0.01 * (1 + i % 7))
        holders.append(WeightHolder(w))
    return torch.nn.ModuleList(holders)


@dataclass
class Workload:
    name: str
    role: str  # "resnet", "bert" or "synthetic": which targets apply
    description: str
    build: Callable[[torch.device], torch.nn.Module]
    select: dict  # keyword arguments of rgprune.pruner.select_prunable
    train: dict | None  # the training-step benchmark, or None


WORKLOADS = {
    "resnet50": Workload("resnet50", "resnet", "torchvision resnet50(weights=None): all conv + linear weights",
                         _resnet50, dict(prune_head=True),
                         dict(kind="vision", batch=2, image=64, classes=1000, optimizer="sgd")),
    "bert-base": Workload("bert-base", "bert",
                          "transformers BertModel(BertConfig()) random init: all linear weights",
                          _bert, dict(prune_head=True),
                          dict(kind="text", batch=2, seq=32, vocab=30522, optimizer="adamw")),
    "synthetic-1b": Workload("synthetic-1b", "synthetic", "200 random tensors of 2000 x 2500 (1.0e9 weights)",
                             lambda d: synthetic(d, [(2000, 2500)] * 200), dict(include=["*weight"]), None),
    # tiny sets for --quick (the smoke test) and for trying the suite out
    "resnet20": Workload("resnet20", "resnet", "CIFAR ResNet-20 (rgprune.models): all conv + linear weights",
                         _resnet20, dict(prune_head=True),
                         dict(kind="vision", batch=2, image=32, classes=10, optimizer="sgd")),
    "bert-tiny": Workload("bert-tiny", "bert", "BertModel, 2 layers of width 64: all linear weights",
                          lambda d: _bert(d, vocab_size=512, hidden_size=64, num_hidden_layers=2,
                                          num_attention_heads=2, intermediate_size=128,
                                          max_position_embeddings=64),
                          dict(prune_head=True), dict(kind="text", batch=2, seq=32, vocab=512, optimizer="adamw")),
    "synthetic-tiny": Workload("synthetic-tiny", "synthetic", "20 random tensors of 37 x 53 .. 96 x 128",
                               lambda d: synthetic(d, [(37, 53), (96, 128)] * 10), dict(include=["*weight"]), None),
}
DEFAULT_MODELS = {
    (False, "cpu"): ["resnet50", "bert-base"],
    (False, "cuda"): ["resnet50", "bert-base", "synthetic-1b"],
    (True, "cpu"): ["resnet20", "bert-tiny", "synthetic-tiny"],
    (True, "cuda"): ["resnet20", "bert-tiny", "synthetic-tiny"],
}
# Methods skipped by default for a weight set: the reference copies all 8-byte keys to the host and
# sorts them there, minutes for 1e9 weights. An explicit list of methods overrides.
DEFAULT_SKIP = {"synthetic-1b": {"reference"}}
