"""Model specs: the one place that parses the strings naming a model, and builds the models they name.

=========================  ======  ====================================================================
spec                       kind    what is built
=========================  ======  ====================================================================
``resnet20``, ``minilm``   -       a built-in name (``rgprune.models.MODEL_NAMES``)
``torchvision:NAME``       vision  ``torchvision.models.get_model(NAME, weights=None, num_classes=K)``
                                   for any classification model of ``torchvision.models.list_models``
``hf:DIR``                 text    ``AutoModelForSequenceClassification`` from the local Hugging Face
                                   checkpoint DIR (``config.json``, weights, tokenizer files), with a
                                   fresh ``K``-way head when DIR's has another class count
``module:pkg.mod:fn``      fn's    ``fn(num_classes=K, in_channels=C)`` (vision) or ``fn(num_classes=K)``
                                   (text): any importable callable returning an ``nn.Module``
``given:NAME``             task's  a factory the program passes in (``build_model(..., factory=fn)``,
                                   ``rgprune.imp.run_imp(model_fn=fn)``), called as ``module:``'s are
                                   for the task's kind; NAME says what it builds. Python API only
=========================  ======  ====================================================================

Nothing is downloaded: torchvision models start from their random initialization (a local state_dict
can be loaded with ``weights_path``), Hugging Face files are read with ``local_files_only=True``.

A ``module:`` callable says what it is with attributes: ``fn.kind = "text"`` for a text model (default
``"vision"``), which must be called as ``model(input_ids=..., attention_mask=...)`` and return logits
or an output with ``.logits``; and optionally ``fn.tokenizer``, a zero-argument callable returning the
model's Hugging Face tokenizer (default: MiniLM's, the built-in text models' tokenizer).
"""

from __future__ import annotations

import importlib
import inspect
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from torch import nn

from . import bert  # sets the offline switches before anything imports transformers

ModelKind = Literal["vision", "text"]
ModelSource = Literal["builtin", "torchvision", "hf", "module", "given"]
SPEC_SOURCES = ("torchvision", "hf", "module", "given")
SPEC_FORMS = "torchvision:NAME, hf:DIR (a local Hugging Face checkpoint) or module:pkg.mod:fn"
HF_LAYOUT = (
    "hf:DIR expects a local Hugging Face checkpoint as save_pretrained leaves it: DIR/config.json, the "
    "weights (model.safetensors or pytorch_model.bin, or their sharded .index.json) and the tokenizer's files "
    "(tokenizer.json or vocab.txt/vocab.json, tokenizer_config.json) from tokenizer.save_pretrained(DIR)"
)
#: At least one must be in DIR: without them transformers builds an empty-vocabulary tokenizer (every word [UNK]).
HF_TOKENIZER_FILES = (
    "tokenizer.json",
    "vocab.txt",
    "vocab.json",
    "tokenizer.model",
    "spiece.model",
    "sentencepiece.bpe.model",
)
HF_WEIGHT_FILES = (
    "model.safetensors",
    "pytorch_model.bin",
    "model.safetensors.index.json",
    "pytorch_model.bin.index.json",
)
#: torchvision models whose defaults would return auxiliary outputs in training or warn about their init.
_TORCHVISION_EXTRA_ARGS = {
    "googlenet": {"aux_logits": False, "init_weights": True},
    "inception_v3": {"aux_logits": False, "init_weights": True},
}


@dataclass(frozen=True)
class ModelSpec:
    """A parsed model spec: ``spec`` as given, its ``source`` and ``target`` (the built-in or torchvision
    name, the checkpoint folder with ``~`` expanded, or ``pkg.mod:fn``)."""

    spec: str
    source: ModelSource
    target: str

    @property
    def kind(self) -> ModelKind | None:
        """``"vision"`` (image inputs) or ``"text"`` (token ids); for ``module:``, the callable's ``kind``; None for
        ``given:``, whose factory builds a model for whichever kind of task it is given."""
        if self.source == "given":
            return None
        if self.source == "builtin":
            return "text" if self.target in bert.BERT_NAMES else "vision"
        if self.source == "torchvision":
            return "vision"
        if self.source == "hf":
            return "text"
        return _callable_kind(self.spec, resolve_callable(self.target, self.spec))


def parse_model_spec(spec: str) -> ModelSpec:
    """Parse a model spec (a built-in name or ``SOURCE:TARGET``, see the module docstring) and check that
    what it names exists: the torchvision model, the checkpoint's ``config.json``, the importable callable.

    Raises:
        TypeError: ``spec`` is not a str.
        ValueError: an unknown name, source or torchvision model, a missing checkpoint, a callable that
            cannot be imported; the message says which forms are valid.
    """
    from . import MODEL_NAMES

    if not isinstance(spec, str):
        raise TypeError(f"model name must be a str, got {type(spec).__name__}")
    if spec in MODEL_NAMES:
        return ModelSpec(spec=spec, source="builtin", target=spec)
    source, colon, target = spec.partition(":")
    if not colon:
        raise ValueError(f"unknown model {spec!r}; valid models are: {', '.join(MODEL_NAMES)}; or a spec {SPEC_FORMS}")
    if source not in SPEC_SOURCES:
        raise ValueError(
            f"unknown model source {source!r} in {spec!r}; valid specs are a built-in name "
            f"({', '.join(MODEL_NAMES)}) or {SPEC_FORMS}"
        )
    if not target.strip():
        raise ValueError(f"model spec {spec!r} names nothing after {source + ':'!r}; valid specs are {SPEC_FORMS}")
    if source == "torchvision":
        names = torchvision_model_names()
        if target not in names:
            raise ValueError(
                f"torchvision has no classification model {target!r} ({spec!r}); choose one of "
                f"torchvision.models.list_models(module=torchvision.models): {', '.join(names)}"
            )
    elif source == "hf":
        folder = Path(target).expanduser()
        if not (folder / "config.json").is_file():
            raise ValueError(f"{folder} has no config.json ({spec!r}); {HF_LAYOUT}")
        target = str(folder)
    elif source == "module":
        resolve_callable(target, spec)
    return ModelSpec(spec=spec, source=source, target=target)


def model_kind(name: str) -> ModelKind | None:
    """``"text"`` for models taking token ids (the BERTs, ``hf:``), ``"vision"`` for models taking images; None for
    ``given:NAME``, a factory that fits any task."""
    return parse_model_spec(name).kind


def check_model_fits_task(model: str, task: str) -> None:
    """Refuse a model spec and a task spec of different kinds (an image model on a text task, or the reverse),
    without building or loading anything but the spec's own checks."""
    from rgprune.data import task_kind

    wanted, have = task_kind(task), model_kind(model)
    if have is not None and wanted != have:
        raise ValueError(
            f"model {model!r} is a {have} model but task {task!r} is a {wanted} task; pair vision models "
            "(resnet*, torchvision:NAME) with image tasks (digits*, cifar10/100:, imagefolder:) and text "
            "models (minilm, minilm-random, bert-base, hf:DIR) with text tasks (vader, glue-*:, hf-disk:, "
            "csv:)"
        )


def torchvision_model_names() -> list[str]:
    """The classification models of ``torchvision.models`` (no detection, segmentation or video)."""
    import torchvision

    return torchvision.models.list_models(module=torchvision.models)


def resolve_callable(target: str, spec: str) -> Callable[..., nn.Module]:
    """The callable named by ``pkg.mod:fn`` (``fn`` may be a dotted attribute path), imported now."""
    module_name, colon, attribute = target.partition(":")
    if not colon or not module_name or not attribute:
        raise ValueError(
            f"model spec {spec!r} must be module:pkg.mod:fn, the module path and the callable in it "
            "separated by a colon"
        )
    try:
        obj = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(
            f"model spec {spec!r}: cannot import {module_name!r} ({exc}); the module must be "
            "importable (installed, or in a folder on PYTHONPATH)"
        ) from exc
    for part in attribute.split("."):
        if not hasattr(obj, part):
            raise ValueError(f"model spec {spec!r}: {module_name} has no attribute {attribute!r}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise ValueError(
            f"model spec {spec!r}: {attribute} is a {type(obj).__name__}, not a callable returning an nn.Module"
        )
    return obj


def _callable_kind(spec: str, fn) -> ModelKind:
    kind = getattr(fn, "kind", "vision")
    if kind not in ("vision", "text"):
        raise ValueError(f"model spec {spec!r}: the callable's kind attribute must be 'vision' or 'text', got {kind!r}")
    return kind


def load_tokenizer(name: str = "minilm"):
    """The tokenizer of a text model spec: MiniLM's for the built-in BERTs, ``DIR``'s own for ``hf:DIR``,
    ``fn.tokenizer()`` (or MiniLM's) for a ``module:`` text model. A new object on each call."""
    spec = parse_model_spec(name)
    if spec.kind != "text":
        raise ValueError(
            f"no tokenizer for model {name!r}: tokenizers exist only for the text models "
            f"{list(bert.BERT_NAMES)}, hf:DIR checkpoints and module: callables with kind 'text'"
        )
    if spec.source == "builtin":
        return bert.load_tokenizer(spec.target)
    if spec.source == "module":
        make = getattr(resolve_callable(spec.target, name), "tokenizer", None)
        return make() if make is not None else bert.load_tokenizer("minilm")
    from transformers import AutoTokenizer

    if not any((Path(spec.target) / name).is_file() for name in HF_TOKENIZER_FILES):
        raise ValueError(f"{spec.target} has no tokenizer files ({', '.join(HF_TOKENIZER_FILES)}); {HF_LAYOUT}")
    try:
        return AutoTokenizer.from_pretrained(spec.target, local_files_only=True)
    except (OSError, ValueError, TypeError) as exc:
        raise ValueError(f"{spec.target} has no loadable tokenizer ({exc}); {HF_LAYOUT}") from exc


def model_positions(spec: str) -> int | None:
    """The token positions of ``hf:DIR``'s model (``max_position_embeddings`` in DIR/config.json), which bound the
    tokens per example; None for other specs and configs without the key."""
    import json

    parsed = parse_model_spec(spec)
    if parsed.source != "hf":
        return None
    value = json.loads((Path(parsed.target) / "config.json").read_text()).get("max_position_embeddings")
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def build_from_spec(
    spec: ModelSpec,
    num_classes: int,
    *,
    in_channels: int,
    pretrained: bool,
    factory: Callable[..., nn.Module] | None = None,
    kind: ModelKind = "vision",
) -> nn.Module:
    """Build a ``torchvision:``, ``hf:``, ``module:`` or ``given:`` model (built-in names are built by
    ``rgprune.models.build_model``, which calls this for the others). ``factory``: the callable of a ``given:``
    spec, called for a task of ``kind``. Randomness comes from torch's global RNG."""
    if (factory is not None) != (spec.source == "given"):
        raise ValueError(
            f"a factory builds given:NAME models, and they need one; got spec {spec.spec!r} and factory={factory!r}"
        )
    if spec.source == "torchvision":
        if in_channels != 3:
            raise ValueError(
                f"{spec.spec} takes RGB images (3 channels), the task has {in_channels}; use a built-in "
                "ResNet (resnet18, resnet20, ...), which adapts its stem, or RGB data"
            )
        import torchvision

        extra = _TORCHVISION_EXTRA_ARGS.get(spec.target, {})
        return torchvision.models.get_model(spec.target, weights=None, num_classes=num_classes, **extra)
    if spec.source == "hf":
        return _build_hf(spec, num_classes, pretrained)
    if spec.source == "given":
        if not callable(factory):
            raise TypeError(f"the factory of {spec.spec!r} must be callable, got {type(factory).__name__}")
        return call_model_factory(factory, spec.spec, kind, num_classes, in_channels)
    fn = resolve_callable(spec.target, spec.spec)
    return call_model_factory(fn, spec.spec, _callable_kind(spec.spec, fn), num_classes, in_channels)


def call_model_factory(
    fn: Callable[..., nn.Module], spec: str, kind: ModelKind, num_classes: int, in_channels: int
) -> nn.Module:
    """``fn(num_classes=K, in_channels=C)`` for a vision model, ``fn(num_classes=K)`` for a text model, checked to
    accept those arguments and to return an ``nn.Module``."""
    kwargs = (
        {"num_classes": num_classes} if kind == "text" else {"num_classes": num_classes, "in_channels": in_channels}
    )
    try:
        inspect.signature(fn).bind(**kwargs)
    except TypeError as exc:
        raise TypeError(
            f"model spec {spec!r}: the callable must accept keyword arguments {', '.join(kwargs)} ({exc})"
        ) from exc
    except ValueError:  # no signature to inspect (some builtins): just call it
        pass
    model = fn(**kwargs)
    if not isinstance(model, nn.Module):
        raise TypeError(f"model spec {spec!r}: the callable returned a {type(model).__name__}, not an nn.Module")
    return model


def _build_hf(spec: ModelSpec, num_classes: int, pretrained: bool) -> nn.Module:
    from transformers import AutoConfig, AutoModelForSequenceClassification

    folder = Path(spec.target)
    config = AutoConfig.from_pretrained(folder, local_files_only=True)
    config.num_labels = num_classes  # also rebuilds id2label/label2id for the new class count
    try:
        if not pretrained:
            return AutoModelForSequenceClassification.from_config(config)
        if not any((folder / name).is_file() for name in HF_WEIGHT_FILES):
            raise ValueError(f"{folder} has no weights file ({', '.join(HF_WEIGHT_FILES)}); {HF_LAYOUT}")
        with bert.quiet_transformers():
            model, info = AutoModelForSequenceClassification.from_pretrained(
                folder, config=config, ignore_mismatched_sizes=True, local_files_only=True, output_loading_info=True
            )
    except ValueError as exc:
        if "Unrecognized configuration class" in str(exc):
            raise ValueError(
                f"{spec.spec}: {type(config).__name__} has no sequence-classification model in "
                "transformers; hf:DIR needs a text encoder checkpoint (BERT, RoBERTa, ...)"
            ) from exc
        raise
    shapes = {name: tuple(t.shape) for name, t in model.state_dict().items()}
    body = sorted(name for name, *_ in info["mismatched_keys"] if shapes[name][:1] != (num_classes,))
    if body:
        raise ValueError(
            f"{folder}: weights {body[:5]} have other shapes than the model's config.json says; the "
            "checkpoint does not match its config"
        )
    new = sorted(name for name in info["missing_keys"] if shapes.get(name, (None,))[:1] != (num_classes,))
    if new:
        warnings.warn(
            f"{folder} has no weights for {len(new)} tensors of the model (e.g. {new[:3]}); they keep their "
            "random initialization",
            stacklevel=3,
        )
    return model


def read_weights(path: str | Path) -> dict:
    """The state_dict in a local file: ``.safetensors``, or a ``torch.save``'d dict of tensors."""
    import torch

    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(
            f"weights file {path} does not exist; save one with torch.save(model.state_dict(), "
            "PATH) or safetensors.torch.save_file"
        )
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(path)
    else:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # torch raises many types (UnpicklingError, RuntimeError) for foreign files
            raise ValueError(f"{path} is not a torch.save'd state_dict ({type(exc).__name__}: {exc})") from exc
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(
            f"{path} must hold a dict of tensors (torch.save(model.state_dict(), PATH)), got {type(state).__name__}"
        )
    return state


def load_weights(model: nn.Module, state: dict, num_classes: int, source: str = "the state_dict") -> None:
    """Load ``state`` (e.g. from :func:`read_weights`) into ``model``.

    Every tensor of the model must be in ``state`` with its shape, except a classifier head saved with
    another class count (the model's tensor has ``num_classes`` rows, the saved one another number), which
    keeps its fresh initialization: fine-tuning an ImageNet checkpoint on a 10-class task is the point.
    """
    own = model.state_dict()
    missing, unexpected = sorted(set(own) - set(state)), sorted(set(state) - set(own))
    head, body = [], []
    for name in sorted(set(own) & set(state)):
        if own[name].shape != state[name].shape:
            is_head = own[name].shape[:1] == (num_classes,) and own[name].shape[1:] == state[name].shape[1:]
            (head if is_head else body).append(name)
    if missing or unexpected or body:
        raise ValueError(
            f"{source} does not fit the model: missing {missing[:5]}, unexpected {unexpected[:5]}, "
            f"other shapes {body[:5]} (of {len(missing)}, {len(unexpected)}, {len(body)}); was it saved "
            "from the same architecture?"
        )
    model.load_state_dict({k: v for k, v in state.items() if k not in head}, strict=False)


def _sha256(path: Path) -> str:
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def weights_identity(spec: str, weights_path: str | Path | None = None) -> dict | None:
    """What a run records to recognize its model's starting weights on resume: the SHA-256 of ``weights_path`` and,
    for ``hf:DIR``, of DIR's config.json and weight files (``{file name: sha256}``). None when the spec has no files
    (built-in names, ``torchvision:`` without weights, ``module:``/``given:``, whose code is the user's)."""
    parsed = parse_model_spec(spec)
    files = {}
    if parsed.source == "hf":
        folder = Path(parsed.target)
        names = ["config.json"] + [name for name in HF_WEIGHT_FILES if (folder / name).is_file()]
        for index in (name for name in HF_WEIGHT_FILES if name.endswith(".index.json")):
            if (folder / index).is_file():  # a sharded checkpoint: every shard its index names
                import json

                shards = json.loads((folder / index).read_text()).get("weight_map", {}).values()
                names += sorted(set(shards))
        files.update({name: _sha256(folder / name) for name in names if (folder / name).is_file()})
    if weights_path is not None:
        path = Path(weights_path).expanduser()
        if not path.is_file():
            raise FileNotFoundError(
                f"weights file {path} does not exist; save one with "
                "torch.save(model.state_dict(), PATH) or safetensors.torch.save_file"
            )
        files[str(weights_path)] = _sha256(path)
    return {"spec": spec, "sha256": files} if files else None
