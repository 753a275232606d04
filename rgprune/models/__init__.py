"""Model registry: build the ResNets and BERTs that rgprune prunes, by name.

===================  ======  ======================================================================================
name                 kind    what it is
===================  ======  ======================================================================================
``resnet18``         vision  torchvision ResNet-18, optional small-image stem, random init
``resnet50``         vision  torchvision ResNet-50, optional small-image stem, random init
``resnet20``         vision  CIFAR ResNet-20 (He et al. 2016, option-A shortcuts), ~0.27M
``resnet56``         vision  CIFAR ResNet-56 (He et al. 2016, option-A shortcuts), ~0.85M
``resnet8``          vision  the same family at depth 8 (~0.08M); also ``resnet14`` (~0.17M), ``resnet32`` (~0.46M)
``minilm``           text    pretrained MiniLM-L6 (BERT) encoder + fresh classifier head
``minilm-random``    text    MiniLM-L6 config, random init
``minilm-shuffled``  text    pretrained MiniLM-L6, each tensor's values shuffled (same histograms)
``bert-base``        text    ``BertConfig()`` defaults (BERT-base), random init
===================  ======  ======================================================================================

Besides these names, ``build_model`` takes the specs ``torchvision:NAME`` (any torchvision classification
model, random init), ``hf:DIR`` (a local Hugging Face checkpoint), ``module:pkg.mod:fn`` (your own
callable) and ``given:NAME`` (a factory passed in); see :mod:`rgprune.models.specs`, which parses every
model name and spec.

Vision models map ``[N, C, H, W]`` float images to ``[N, num_classes]`` logits. Text models are
Hugging Face ``BertForSequenceClassification`` modules: ``model(input_ids=..., attention_mask=...)``
returns an output whose ``.logits`` is ``[N, num_classes]``.

Which of a model's parameters are the classifier head and the embeddings (which global magnitude
pruning leaves dense by default) is defined once, for every model, in :mod:`rgprune.prunable`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import torch
from torch import nn

from . import bert, resnet_cifar, specs, torchvision_resnet
from .specs import (
    ModelKind,
    ModelSpec,
    check_model_fits_task,
    load_tokenizer,
    model_kind,
    parse_model_spec,
    weights_identity,
)

MODEL_NAMES: tuple[str, ...] = (
    "resnet18",
    "resnet50",
    "resnet20",
    "resnet56",
    "minilm",
    "minilm-random",
    "bert-base",
    # the depth series and the pretrained-weights control of docs/findings.md
    "resnet8",
    "resnet14",
    "resnet32",
    "minilm-shuffled",
)

__all__ = [
    "MODEL_NAMES",
    "ModelKind",
    "ModelSpec",
    "build_model",
    "check_model_fits_task",
    "load_tokenizer",
    "model_kind",
    "parse_model_spec",
    "weights_identity",
]


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
    weights_path: str | None = None,
    factory: Callable[..., nn.Module] | None = None,
    kind: ModelKind = "vision",
) -> nn.Module:
    """Build the model called ``name`` with a ``num_classes``-way classifier head, on the CPU.

    Args:
        name: one of :data:`MODEL_NAMES`, or a spec ``torchvision:NAME``, ``hf:DIR``, ``module:pkg.mod:fn``
            (see :mod:`rgprune.models.specs`).
        num_classes: number of output classes (>= 2).
        in_channels: image channels for vision models (>= 1; e.g. 1 for the digits tasks).
            Ignored by text models.
        small_input: torchvision ResNets only: use the 3x3 stride-1 stem without max-pool
            (right for 8x8..64x64 images) instead of the ImageNet stem. The CIFAR ResNets always
            have a small-image stem; text models and specs ignore it.
        pretrained: load the weights the name or spec comes with: ``"minilm"``'s shipped ones
            (``pretrained=False`` makes it equal to ``"minilm-random"``), ``hf:DIR``'s, and
            ``weights_path``. ``False`` builds the same architecture at random init (``module:``
            callables decide for themselves). No weights are ever downloaded.
        seed: if given, initialize from ``torch.manual_seed(seed)`` (same seed, same weights)
            without changing the global RNG state; if None, draw from the global RNG.
        weights_path: a local state_dict (``.safetensors`` or ``torch.save``'d) loaded after building
            when ``pretrained``; a head saved with another class count keeps its fresh init (see
            :func:`rgprune.models.specs.load_weights`). Not for ``hf:DIR``, which has its own weights.
        factory: the callable of a ``given:NAME`` spec (required for it, refused for the others), called
            like a ``module:`` callable for a task of ``kind`` (``"vision"``: with ``in_channels``).

    Raises:
        ValueError: unknown name or spec, ``num_classes < 2`` or ``in_channels < 1``.
        TypeError: an argument has the wrong type.
        FileNotFoundError: ``weights_path`` does not exist.
    """
    spec = parse_model_spec(name)
    _check_int("num_classes", num_classes, minimum=2)
    _check_int("in_channels", in_channels, minimum=1)
    if seed is not None:
        _check_int("seed", seed, minimum=0)
    if (factory is not None) != (spec.source == "given"):
        raise ValueError(
            f"factory builds given:NAME models, which need one; got model {name!r} with "
            f"factory={'a callable' if factory is not None else 'None'}"
        )
    if kind not in ("vision", "text"):
        raise ValueError(f"kind must be 'vision' or 'text', got {kind!r}")
    if weights_path is not None and spec.source == "hf":
        raise ValueError(f"{name} loads the weights of its folder; weights_path does not apply to hf:DIR models")
    # Read (and check) the file before building anything.
    state = specs.read_weights(weights_path) if weights_path is not None and pretrained else None
    with _seeded(seed):
        if spec.source != "builtin":
            model = specs.build_from_spec(
                spec, num_classes, in_channels=in_channels, pretrained=pretrained, factory=factory, kind=kind
            )
        elif name in torchvision_resnet.CONSTRUCTORS:
            model = torchvision_resnet.build_torchvision_resnet(
                name, num_classes, in_channels=in_channels, small_input=small_input
            )
        elif name in resnet_cifar.BLOCKS_PER_STAGE:
            model = resnet_cifar.build_cifar_resnet(name, num_classes, in_channels=in_channels)
        else:
            model = bert.build_bert(name, num_classes, pretrained=pretrained)
    if state is not None:
        specs.load_weights(model, state, num_classes, source=str(weights_path))
    return model


def _check_int(what: str, value: object, *, minimum: int) -> None:
    # bool is an int subclass; build_model(..., num_classes=True) is a bug, not a 1.
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{what} must be an int, got {type(value).__name__} ({value!r})")
    if value < minimum:
        raise ValueError(f"{what} must be >= {minimum}, got {value}")
