"""Model registry: build the ResNets and BERTs that rgprune prunes, by name.

=================  ======  ============================================================
name               kind    what it is
=================  ======  ============================================================
``resnet18``       vision  torchvision ResNet-18, optional small-image stem, random init
``resnet50``       vision  torchvision ResNet-50, optional small-image stem, random init
``resnet20``       vision  CIFAR ResNet-20 (He et al. 2016, option-A shortcuts), ~0.27M
``resnet56``       vision  CIFAR ResNet-56 (He et al. 2016, option-A shortcuts), ~0.85M
``minilm``         text    pretrained MiniLM-L6 (BERT) encoder + fresh classifier head
``minilm-random``  text    MiniLM-L6 config, random init
``bert-base``      text    ``BertConfig()`` defaults (BERT-base), random init
=================  ======  ============================================================

Vision models map ``[N, C, H, W]`` float images to ``[N, num_classes]`` logits. Text models are
Hugging Face ``BertForSequenceClassification`` modules: ``model(input_ids=..., attention_mask=...)``
returns an output whose ``.logits`` is ``[N, num_classes]``.

Which of a model's parameters are the classifier head and the embeddings (which global magnitude
pruning leaves dense by default) is defined once, for every model, in :mod:`rgprune.prunable`.
"""

from __future__ import annotations

import contextlib
from typing import Iterator, Literal

import torch
from torch import nn

from . import bert, resnet_cifar, torchvision_resnet
from .bert import load_tokenizer

MODEL_NAMES: tuple[str, ...] = (
    "resnet18",
    "resnet50",
    "resnet20",
    "resnet56",
    "minilm",
    "minilm-random",
    "bert-base",
)

ModelKind = Literal["vision", "text"]

__all__ = [
    "MODEL_NAMES",
    "build_model",
    "load_tokenizer",
    "model_kind",
]


def _check_name(name: object) -> str:
    if not isinstance(name, str):
        raise TypeError(f"model name must be a str, got {type(name).__name__}")
    if name not in MODEL_NAMES:
        raise ValueError(f"unknown model {name!r}; valid names are: {', '.join(MODEL_NAMES)}")
    return name


def model_kind(name: str) -> ModelKind:
    """``"text"`` for the BERT models (token-id inputs), ``"vision"`` for the ResNets (images)."""
    return "text" if _check_name(name) in bert.BERT_NAMES else "vision"


@contextlib.contextmanager
def _seeded(seed: int | None) -> Iterator[None]:
    """Seed torch's CPU RNG for the block without disturbing the caller's RNG state."""
    if seed is None:
        yield
        return
    # devices=[]: models are built on the CPU, so only the CPU generator needs forking, and
    # this never initializes CUDA as a side effect.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def build_model(
    name: str,
    num_classes: int,
    *,
    in_channels: int = 3,
    small_input: bool = True,
    pretrained: bool = True,
    seed: int | None = None,
) -> nn.Module:
    """Build the model called ``name`` with a ``num_classes``-way classifier head, on the CPU.

    Args:
        name: one of :data:`MODEL_NAMES`.
        num_classes: number of output classes (>= 2).
        in_channels: image channels for vision models (>= 1; e.g. 1 for the digits tasks).
            Ignored by text models.
        small_input: torchvision ResNets only: use the 3x3 stride-1 stem without max-pool
            (right for 8x8..64x64 images) instead of the ImageNet stem. The CIFAR ResNets always
            have a small-image stem; text models ignore it.
        pretrained: load shipped pretrained weights where they exist, which is only ``"minilm"``
            (``pretrained=False`` makes it equal to ``"minilm-random"``). No weights are ever
            downloaded, so every other model is randomly initialized either way.
        seed: if given, initialize from ``torch.manual_seed(seed)`` (same seed, same weights)
            without changing the global RNG state; if None, draw from the global RNG.

    Raises:
        ValueError: unknown name, ``num_classes < 2`` or ``in_channels < 1``.
        TypeError: an argument has the wrong type.
    """
    _check_name(name)
    _check_int("num_classes", num_classes, minimum=2)
    _check_int("in_channels", in_channels, minimum=1)
    if seed is not None:
        _check_int("seed", seed, minimum=0)
    with _seeded(seed):
        if name in torchvision_resnet.CONSTRUCTORS:
            return torchvision_resnet.build_torchvision_resnet(
                name, num_classes, in_channels=in_channels, small_input=small_input
            )
        if name in resnet_cifar.BLOCKS_PER_STAGE:
            return resnet_cifar.build_cifar_resnet(name, num_classes, in_channels=in_channels)
        return bert.build_bert(name, num_classes, pretrained=pretrained)


def _check_int(what: str, value: object, *, minimum: int) -> None:
    # bool is an int subclass; build_model(..., num_classes=True) is a bug, not a 1.
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{what} must be an int, got {type(value).__name__} ({value!r})")
    if value < minimum:
        raise ValueError(f"{what} must be >= {minimum}, got {value}")
