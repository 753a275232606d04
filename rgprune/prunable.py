"""What rgprune prunes by default: the one definition, for live models and for checkpoints on disk.

The default set is the ``weight`` of every Linear and Conv layer (and Hugging Face ``Conv1D``, GPT-2's
transposed Linear), except

* the **classifier head**: parameters under a top-level module named one of ``HEAD_MODULE_NAMES``
  (``fc.weight``; ``classifier.1.weight`` when ``classifier`` is a ``Sequential``), kept dense unless
  ``prune_head=True``;
* the **embeddings**: kept dense unless ``prune_embeddings=True``.

Biases, norm layers and everything else are never in the default set. A live model tells the layer kind
by module type (``nn.Linear``, ``nn.Conv1d/2d/3d``, transformers' ``Conv1D``, ``nn.Embedding``). A
checkpoint holds only names and tensors, so there a floating-point tensor of two or more dimensions named
``*.weight`` counts as a layer weight, and as an embedding when its name matches one of
``EMBEDDING_NAME_PATTERNS`` (the names Hugging Face models give their embedding tables).
``include``/``exclude`` fnmatch patterns over qualified names override the default set in both
(``select_prunable`` and ``rgprune.rg.trace_from_checkpoints``). On a live model a pattern that matches no
parameter name is refused (``check_patterns``), naming the closest names: a typo must not prune what it meant
to keep. ``GlobalMagnitudePruner``, ``select_prunable`` and ``rgprune imp --exclude`` share that check.
"""

from __future__ import annotations

import difflib
import enum
import fnmatch
import sys
import warnings
from collections.abc import Sequence

import torch

#: top-level module names treated as classifier heads (torchvision, CIFAR ResNets, Hugging Face -- ``score`` for
#: GPT-2/Llama sequence classification, ``qa_outputs`` for question answering --, timm)
HEAD_MODULE_NAMES = ("fc", "classifier", "head", "heads", "lm_head", "linear", "cls", "score", "qa_outputs")
#: module types whose ``weight`` is pruned by default
PRUNABLE_LAYER_TYPES = (torch.nn.Linear, torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Conv3d)
#: how a checkpoint's tensor name marks an embedding (a live model's are ``nn.Embedding`` modules): BERT's
#: ``*.embeddings.*``, Llama's ``embed_tokens``, GPT-2's ``wte`` / ``wpe``
EMBEDDING_NAME_PATTERNS = ("*embeddings*", "*embed_tokens*", "*wte.*", "*wpe.*")


class LayerKind(enum.Enum):
    """What a parameter belongs to, as far as the default prunable set cares."""

    LAYER = "linear or conv layer"
    EMBEDDING = "embedding"
    OTHER = "other"


def as_patterns(patterns, what: str) -> list[str]:
    """fnmatch patterns as a list: a single string is one pattern (``include="fc.weight"`` means
    ``include=["fc.weight"]``); anything else must be an iterable of strings."""
    if isinstance(patterns, str):
        return [patterns]
    try:
        patterns = list(patterns)
    except TypeError:
        raise TypeError(
            f"{what} must be a string or a list of fnmatch patterns, got {type(patterns).__name__}"
        ) from None
    bad = [p for p in patterns if not isinstance(p, str)]
    if bad:
        raise TypeError(f"{what} must hold strings (fnmatch patterns over qualified parameter names), got {bad[:3]}")
    return patterns


def matches(name: str, patterns: Sequence[str] | str) -> bool:
    """True when the qualified name ``name`` matches one of the fnmatch ``patterns`` (case-sensitive; a single
    string is one pattern)."""
    return any(fnmatch.fnmatchcase(name, p) for p in as_patterns(patterns, "patterns"))


def parameter_names(model: torch.nn.Module) -> list[str]:
    """Every qualified parameter name of the user's model (inside DDP / torch.compile wrappers), tied
    parameters under each of their names: what ``include`` / ``exclude`` patterns are matched against."""
    return [name for name, _ in unwrap_model(model).named_parameters(remove_duplicate=False)]


def closest_names(pattern: str, names: Sequence[str], n: int = 3) -> list[str]:
    """The ``n`` names (or module wildcards such as ``"layer2.*"``) most like ``pattern``, by
    ``difflib.get_close_matches``; empty when none is close."""
    wildcards = dict.fromkeys(
        ".".join(parts[:i]) + ".*" for parts in (name.split(".") for name in names) for i in range(1, len(parts))
    )
    return difflib.get_close_matches(pattern, [*dict.fromkeys(names), *wildcards], n=n, cutoff=0.6)


def unmatched_patterns_message(
    model_or_names: torch.nn.Module | Sequence[str],
    include: Sequence[str] | str | None = None,
    exclude: Sequence[str] | str = (),
) -> str | None:
    """Why ``include`` / ``exclude`` cannot be used on ``model_or_names`` (a model, or its qualified parameter
    names): the patterns that match no parameter, each with the closest names; None when every pattern
    matches some parameter. ``check_patterns`` raises it; ``rgprune imp`` raises it as a usage error."""
    names = parameter_names(model_or_names) if isinstance(model_or_names, torch.nn.Module) else list(model_or_names)
    problems = []
    for what, patterns in (("include", include), ("exclude", exclude)):
        if patterns is None:
            continue
        patterns = dict.fromkeys(as_patterns(patterns, what))
        unmatched = [p for p in patterns if not any(fnmatch.fnmatchcase(n, p) for n in names)]
        if not unmatched:
            continue
        hints = []
        for p in unmatched:
            close = closest_names(p, names)
            hints.append(f"{p!r}: closest {close}" if close else f"{p!r}: no name is close")
        problems.append(f"{what} pattern(s) {unmatched} match no parameter of the model ({'; '.join(hints)})")
    if not problems:
        return None
    example = f" such as {names[0]!r}" if names else ""
    return (
        f"{'; '.join(problems)}. Patterns are fnmatch patterns over qualified parameter names{example}, "
        f"case-sensitive; correct them (a typo would prune what it meant to keep, or keep what it meant to prune)"
    )


def check_patterns(
    model_or_names: torch.nn.Module | Sequence[str],
    include: Sequence[str] | str | None = None,
    exclude: Sequence[str] | str = (),
) -> None:
    """Refuse, with a ValueError naming the closest names, an ``include`` or ``exclude`` pattern that matches no
    parameter of ``model_or_names`` (a model, or its qualified parameter names). Changes nothing."""
    message = unmatched_patterns_message(model_or_names, include, exclude)
    if message is not None:
        raise ValueError(message)


def is_head(name: str) -> bool:
    """True for a qualified module or parameter name under a classifier head (its top-level module's name
    is one of ``HEAD_MODULE_NAMES``)."""
    return name.split(".")[0] in HEAD_MODULE_NAMES


def _is_transformers_conv1d(module: torch.nn.Module) -> bool:
    """Hugging Face's ``Conv1D`` (GPT-2's attention and MLP layers): a Linear layer with a transposed weight.
    Told by class, without importing transformers (a model holding one has imported it)."""
    conv1d = getattr(sys.modules.get("transformers.pytorch_utils"), "Conv1D", None)
    return conv1d is not None and isinstance(module, conv1d)


def module_kind(module: torch.nn.Module) -> LayerKind:
    """The kind of a live module, by type."""
    if isinstance(module, PRUNABLE_LAYER_TYPES) or _is_transformers_conv1d(module):
        return LayerKind.LAYER
    if isinstance(module, torch.nn.Embedding):
        return LayerKind.EMBEDDING
    return LayerKind.OTHER


def tensor_kind(name: str, ndim: int, dtype: torch.dtype) -> LayerKind:
    """The kind of a checkpoint tensor, from its qualified name, number of dimensions and dtype alone."""
    if ndim < 2 or not dtype.is_floating_point:
        return LayerKind.OTHER
    return LayerKind.EMBEDDING if matches(name, EMBEDDING_NAME_PATTERNS) else LayerKind.LAYER


def is_default_prunable(
    name: str, kind: LayerKind, *, prune_head: bool = False, prune_embeddings: bool = False
) -> bool:
    """True when the parameter with qualified name ``name`` of a ``kind`` module is in the default set."""
    if not isinstance(kind, LayerKind):
        raise TypeError(f"kind must be a LayerKind (from module_kind or tensor_kind), got {kind!r}")
    if name.rpartition(".")[2] != "weight":
        return False
    if kind is LayerKind.LAYER:
        return prune_head or not is_head(name)
    return kind is LayerKind.EMBEDDING and prune_embeddings


def _wrapped(model: torch.nn.Module) -> tuple[torch.nn.Module, str] | None:
    """The module inside one wrapper layer and the prefix that layer adds to parameter names, or None."""
    if isinstance(model, (torch.nn.parallel.DistributedDataParallel, torch.nn.DataParallel)):
        return model.module, "module."
    # torch.compile's OptimizedModule; without torch._dynamo imported no model can be compiled
    dynamo = sys.modules.get("torch._dynamo.eval_frame")
    if dynamo is not None and isinstance(model, dynamo.OptimizedModule):
        return model._orig_mod, "_orig_mod."
    return None


def unwrap_model(model: torch.nn.Module) -> torch.nn.Module:
    """The user's model inside DistributedDataParallel / DataParallel and ``torch.compile`` wrappers (whose
    parameter names carry a ``module.`` / ``_orig_mod.`` prefix per wrapper); any other model as is."""
    while (inner := _wrapped(model)) is not None:
        model = inner[0]
    return model


def wrapper_prefixes(model: torch.nn.Module) -> list[str]:
    """What each wrapper around the user's model, outermost first, prefixes to its state_dict keys: ``[]``
    for a plain model, ``["module.", "_orig_mod."]`` for DDP around a compiled model."""
    prefixes = []
    while (inner := _wrapped(model)) is not None:
        model = inner[0]
        prefixes.append(inner[1])
    return prefixes


def unwrap_state_dict(model: torch.nn.Module, state_dict):
    """``state_dict`` with the key prefix of ``model``'s wrappers removed, when every key carries it: the
    wrappers' own ``state_dict()`` (DDP's ``module.``, torch.compile's ``_orig_mod.``, of any wrapper level)
    then reads like the inner model's. Any other state dict is returned as is."""
    prefixes = wrapper_prefixes(model)
    for prefix in ("".join(prefixes[i:]) for i in range(len(prefixes))):
        if state_dict and all(n.startswith(prefix) for n in state_dict):
            return {n[len(prefix) :]: value for n, value in state_dict.items()}
    return state_dict


def select_prunable(
    model: torch.nn.Module,
    include: Sequence[str] | str | None = None,
    exclude: Sequence[str] | str = (),
    *,
    prune_embeddings: bool = False,
    prune_head: bool = False,
) -> list[tuple[str, torch.nn.Parameter]]:
    """The parameters a pruner ranks, in model order, each once (tied weights are counted once).

    Default: the module docstring's set. ``include`` (fnmatch patterns over qualified parameter names,
    e.g. ``"layer1.*.conv*.weight"``; a single string is one pattern) replaces the default set and selects
    whatever float parameter it names; when that takes parameters other than Linear/Conv/Embedding weights
    (a broad ``"layer1.*"`` takes biases and BatchNorm weights too) a warning lists them. ``exclude``
    removes from the selection. A pattern that matches no parameter name raises ValueError
    (``check_patterns``).
    """
    include = as_patterns(include, "include") if include is not None else None
    exclude = as_patterns(exclude, "exclude")
    check_patterns(model, include, exclude)
    model = unwrap_model(model)
    chosen, seen, beyond = [], set(), []
    for module_name, module in model.named_modules():
        kind = module_kind(module)
        for param_name, param in module.named_parameters(recurse=False):
            name = f"{module_name}.{param_name}" if module_name else param_name
            if id(param) in seen:
                continue
            if include is not None:
                take = matches(name, include)
            else:
                take = is_default_prunable(name, kind, prune_head=prune_head, prune_embeddings=prune_embeddings)
            if take and not matches(name, exclude):
                if not param.is_floating_point():
                    raise TypeError(f"parameter {name} has dtype {param.dtype}; only float parameters can be pruned")
                seen.add(id(param))
                chosen.append((name, param))
                if kind is LayerKind.OTHER or param_name != "weight":
                    beyond.append(name)
    if not chosen:
        raise ValueError(
            "no prunable parameters selected: the model has no Linear/Conv weights matching the "
            f"include={include!r} / exclude={exclude!r} patterns; adjust them"
        )
    if beyond:
        warnings.warn(
            f"include={include!r} selected {len(beyond)} parameters that are not Linear/Conv/Embedding "
            f"weights (biases, norm layers, ...): {beyond[:6]}{' ...' if len(beyond) > 6 else ''}; the "
            f"default set never prunes them. If that is not what you meant, narrow the patterns (e.g. "
            f"'layer1.*.conv*.weight') or add exclude=['*.bias', ...]",
            UserWarning,
            stacklevel=3,
        )
    return chosen
