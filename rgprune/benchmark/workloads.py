"""What is pruned: the weight sets of the benchmark suite (ResNet-50, BERT-base, a 1B-weight synthetic set,
and tiny ones for quick runs), with which of their weights are pruned and how a training step runs on them;
and a user's model given as an ``nn.Module``, a built-in name or a model spec (``resolve_model``)."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass

import torch


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
    """Random normal tensors with a different scale per tensor (like layers of a real model), each the weight of a
    bias-free Linear layer (a 1-D shape becomes one row), so that they are the weights a pruner selects."""
    layers = []
    for i, shape in enumerate(shapes):
        rows, cols = shape if len(shape) == 2 else (1, shape[0])
        layer = torch.nn.Linear(cols, rows, bias=False, device="meta")  # no init: the weight is replaced
        layer.weight = torch.nn.Parameter(torch.randn(shape, device=device).view(rows, cols) * (0.01 * (1 + i % 7)))
        layers.append(layer)
    return torch.nn.ModuleList(layers)


@dataclass
class Workload:
    name: str
    role: str  # "resnet", "bert" or "synthetic": which targets apply
    description: str
    build: Callable[[torch.device], torch.nn.Module]
    select: dict  # keyword arguments of rgprune.pruner.select_prunable
    train: dict | None  # the training-step benchmark, or None


WORKLOADS = {
    "resnet50": Workload(
        "resnet50",
        "resnet",
        "torchvision resnet50(weights=None): all conv + linear weights",
        _resnet50,
        dict(prune_head=True),
        dict(kind="vision", batch=2, image=64, classes=1000, optimizer="sgd"),
    ),
    "bert-base": Workload(
        "bert-base",
        "bert",
        "transformers BertModel(BertConfig()) random init: all linear weights",
        _bert,
        dict(prune_head=True),
        dict(kind="text", batch=2, seq=32, vocab=30522, optimizer="adamw"),
    ),
    "synthetic-1b": Workload(
        "synthetic-1b",
        "synthetic",
        "200 random tensors of 2000 x 2500 (1.0e9 weights)",
        lambda d: synthetic(d, [(2000, 2500)] * 200),
        dict(include=["*weight"]),
        None,
    ),
    # tiny sets for --quick (the smoke test) and for trying the suite out
    "resnet20": Workload(
        "resnet20",
        "resnet",
        "CIFAR ResNet-20 (rgprune.models): all conv + linear weights",
        _resnet20,
        dict(prune_head=True),
        dict(kind="vision", batch=2, image=32, classes=10, optimizer="sgd"),
    ),
    "bert-tiny": Workload(
        "bert-tiny",
        "bert",
        "BertModel, 2 layers of width 64: all linear weights",
        lambda d: _bert(
            d,
            vocab_size=512,
            hidden_size=64,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=128,
            max_position_embeddings=64,
        ),
        dict(prune_head=True),
        dict(kind="text", batch=2, seq=32, vocab=512, optimizer="adamw"),
    ),
    "synthetic-tiny": Workload(
        "synthetic-tiny",
        "synthetic",
        "20 random tensors of 37 x 53 .. 96 x 128",
        lambda d: synthetic(d, [(37, 53), (96, 128)] * 10),
        dict(include=["*weight"]),
        None,
    ),
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


# --------------------------------------------------------------------------------------------------
# A user's model: an nn.Module, a built-in name or a spec "kind:argument"
# --------------------------------------------------------------------------------------------------


class BenchmarkError(ValueError):
    """Bad input to the benchmark (unknown model, a device that is not there, nothing to prune...): raised
    before anything is timed, with what to change in the message."""


def load_module_callable(target: str) -> torch.nn.Module:
    """``module:callable``: imports ``module`` and calls ``callable`` (a dotted attribute path) with no
    arguments; it must return an ``nn.Module``."""
    module_name, _, attr = target.partition(":")
    if not module_name or not attr:
        raise BenchmarkError(
            f"model spec module:callable needs both parts, got {target!r}; e.g. mypkg.models:build_model"
        )
    try:
        obj = importlib.import_module(module_name)
    except ImportError as exc:
        raise BenchmarkError(
            f"cannot import {module_name!r} for model spec {target!r} ({exc}); check that it is "
            f"installed or on PYTHONPATH"
        ) from exc
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise BenchmarkError(
                f"{module_name!r} has no attribute {attr!r} (model spec {target!r}); name a "
                f"function that returns a torch.nn.Module"
            )
        obj = getattr(obj, part)
    if not callable(obj):
        raise BenchmarkError(f"{target!r} is not callable; name a function that returns a torch.nn.Module")
    model = obj()
    if not isinstance(model, torch.nn.Module):
        raise BenchmarkError(f"{target!r} returned {type(model).__name__}, not a torch.nn.Module")
    return model


# kind -> loader(argument) -> nn.Module, for the model specs "torchvision:NAME", "hf:DIR" and
# "module:pkg.mod:fn" of rgprune imp, registered by rgprune.benchmark.model_specs (register_model_spec). Any other
# "a.b:c" is module:callable, called with no arguments.
MODEL_SPEC_LOADERS: dict[str, Callable[[str], torch.nn.Module]] = {}
SPEC_KINDS = ("torchvision", "hf", "module")


def register_model_spec(kind: str, loader: Callable[[str], torch.nn.Module]) -> None:
    """Lets ``--model kind:ARG`` build a model with ``loader(ARG)`` (``torchvision``, ``hf``)."""
    if not kind.isidentifier() or not callable(loader):
        raise TypeError(
            f"register_model_spec needs an identifier kind and a callable loader, got {kind!r}, {type(loader).__name__}"
        )
    MODEL_SPEC_LOADERS[kind] = loader


def model_spec_help() -> str:
    """What ``--model`` accepts, for error messages and ``--help``."""
    from rgprune.models import MODEL_NAMES

    names = list(WORKLOADS) + [n for n in MODEL_NAMES if n not in WORKLOADS]
    forms = {"torchvision": "torchvision:NAME", "hf": "hf:DIR", "module": "module:pkg.mod:fn"}
    kinds = [forms[k] for k in SPEC_KINDS if k in MODEL_SPEC_LOADERS]
    return (
        f"a built-in name ({', '.join(names)}), "
        + (f"a model spec as rgprune imp takes it ({', '.join(kinds)}), " if kinds else "")
        + "or module:callable, a function called with no arguments returning an nn.Module (e.g. "
        "mypkg.models:build, torchvision.models:resnet18)"
    )


def _custom(name: str, description: str, module: torch.nn.Module, select: dict) -> Workload:
    return Workload(name, "custom", description, lambda device: module, select, None)


def resolve_model(model, select: dict | None = None, name: str | None = None) -> Workload:
    """The workload for ``model``: an ``nn.Module``, a built-in name (the suite's weight sets, then
    ``rgprune.models.MODEL_NAMES``) or a spec ``kind:argument`` (``MODEL_SPEC_LOADERS``). ``select``:
    keyword arguments of ``select_prunable`` (default: the suite's for its sets, else rgprune's default set:
    Linear and Conv weights without the classifier head and embeddings)."""
    if isinstance(model, torch.nn.Module):
        return _custom(name or type(model).__name__, f"{type(model).__name__} (a user module)", model, select or {})
    if not isinstance(model, str):
        raise BenchmarkError(f"model must be a torch.nn.Module or a model spec string, got {type(model).__name__}")
    if model in WORKLOADS:
        known = WORKLOADS[model]
        return (
            known
            if select is None
            else Workload(known.name, known.role, known.description, known.build, select, known.train)
        )
    from rgprune.models import MODEL_NAMES, build_model

    if model in MODEL_NAMES:
        return Workload(
            name or model,
            "custom",
            f"rgprune.models.build_model({model!r}, 10)",
            lambda device: build_model(model, 10, seed=0).to(device),
            select or {},
            None,
        )
    kind, sep, argument = model.partition(":")
    if not sep:
        raise BenchmarkError(f"unknown model {model!r}; give {model_spec_help()}")
    if kind in MODEL_SPEC_LOADERS:
        return _custom(name or model, f"{model} (model spec)", MODEL_SPEC_LOADERS[kind](argument), select or {})
    if kind in SPEC_KINDS:
        raise BenchmarkError(
            f"{kind}: model specs are not available in this build; give module:callable instead "
            f"(e.g. torchvision.models:resnet18)"
        )
    return _custom(name or model, f"{model} (module:callable)", load_module_callable(model), select or {})
