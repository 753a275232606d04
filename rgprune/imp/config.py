"""``IMPConfig``: everything that determines an IMP run, validated, with the help text of every field.

Each field carries its documentation once, in its metadata: ``help`` (what it is), and where it applies
``choices`` (the valid values, or a function returning them), ``bounds`` (for numbers: ``low``/``high``,
each inclusive unless ``low_open``/``high_open``), and for a field whose default depends on others
(``None`` in the dataclass) ``derive`` (how it is filled in) and ``default_text`` (that rule in words).
``IMPConfig.__post_init__`` validates from this metadata and ``rgprune imp`` builds its options from it
(``rgprune.cli.imp``), so the two cannot drift apart.

>>> config = IMPConfig(model="resnet20", task="digits", rounds=8, rewind_step=20, image_size=16)
>>> config.name.startswith("resnet20-digits-"), config.optimizer, config.lr
(True, 'sgd', 0.1)
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import math
import typing
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

__all__ = [
    "BASELINES",
    "CONFIG_VERSION",
    "ConfigError",
    "ConfigTypeError",
    "DEFAULT_LR",
    "DEFAULT_OPTIMIZER",
    "DEFAULT_WEIGHT_DECAY",
    "IMPConfig",
    "OPTIMIZERS",
    "SCHEDULES",
    "check_number",
    "describe_bounds",
    "field_types",
    "option_choices",
    "task_kind",
]

OPTIMIZERS = ("sgd", "adamw")
SCHEDULES = ("cosine", "constant", "step")
BASELINES = ("random-reinit", "random-mask")
#: the default optimizer per task kind, and the default learning rate and weight decay per optimizer
DEFAULT_OPTIMIZER = {"vision": "sgd", "text": "adamw"}
DEFAULT_LR = {"sgd": 0.1, "adamw": 1e-4}
DEFAULT_WEIGHT_DECAY = {"sgd": 1e-4, "adamw": 0.01}
#: vision tasks: the 8x8 digits are upsampled to the ResNets' native 32x32
DEFAULT_IMAGE_SIZE = 32
CONFIG_VERSION = 1


class ConfigError(ValueError):
    """An unusable IMP configuration or run directory; the message says what was wrong and how to fix it.

    ``rgprune`` turns exactly these errors into usage errors (exit status 2); any other exception is a bug
    and keeps its traceback.
    """


class ConfigTypeError(ConfigError, TypeError):
    """A configuration value of the wrong type (a ``TypeError`` and a ``ConfigError``)."""


def _model_names() -> tuple[str, ...]:
    from rgprune.models import MODEL_NAMES  # imported on use: it loads torchvision and transformers

    return tuple(MODEL_NAMES)


def _task_names() -> tuple[str, ...]:
    from rgprune.data import TASK_NAMES

    return tuple(TASK_NAMES)


def task_kind(task: str) -> str:
    """``"vision"`` or ``"text"``: the kind of a task name (``ConfigError`` for an unknown one)."""
    from rgprune.data import TEXT_TASK_NAMES

    _check_choice("task", task, _task_names(), "tasks")
    return "text" if task in TEXT_TASK_NAMES else "vision"


def _per_key(table: Mapping[str, Any]) -> str:
    return ", ".join(f"{value:g} for {key}" if isinstance(value, float) else f"{value} for {key}"
                     for key, value in table.items())


def _option(default: Any = dataclasses.MISSING, *, help: str, choices: tuple | Callable | None = None,
            plural: str = "choices", derive: Callable | None = None, default_text: str | None = None,
            low: float | None = None, high: float | None = None, low_open: bool = False,
            high_open: bool = False) -> Any:
    """A dataclass field whose metadata documents and constrains it (see the module docstring)."""
    bounds = None if low is None and high is None else {"low": low, "high": high, "low_open": low_open,
                                                         "high_open": high_open}
    metadata = {"help": help, "choices": choices, "plural": plural, "derive": derive, "default_text": default_text,
                "bounds": bounds}
    return field(default=default, metadata=metadata)


def option_choices(f: dataclasses.Field) -> tuple[str, ...] | None:
    """The valid values of an ``IMPConfig`` field (None for a field without a fixed set)."""
    choices = f.metadata["choices"]
    return choices() if callable(choices) else choices


@functools.cache
def field_types() -> dict[str, type]:
    """``{field name: int, float, str, bool or tuple}``: the type of each ``IMPConfig`` field's value, ``None``
    aside (from the annotations, which this module's ``from __future__ import annotations`` keeps as text)."""
    types = {}
    for name, hint in typing.get_type_hints(IMPConfig).items():
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        types[name] = tuple if typing.get_origin(hint) is tuple else args[0] if args else hint
    return types


def check_number(name: str, value, *, integer: bool = False, low=None, high=None, low_open=False,
                 high_open=False) -> None:
    """Raise ``ConfigTypeError`` unless ``value`` is an int (``integer``) or a finite number, and ``ConfigError``
    unless it lies within the bounds (each inclusive unless ``low_open``/``high_open``)."""
    kinds = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds):
        raise ConfigTypeError(f"{name} must be {'an int' if integer else 'a number'}, got {type(value).__name__} "
                              f"({value!r})")
    if not integer and not math.isfinite(value):
        raise ConfigError(f"{name} must be finite, got {value!r}")
    if low is not None and (value <= low if low_open else value < low):
        raise ConfigError(f"{name} must be {'>' if low_open else '>='} {low}, got {value!r}")
    if high is not None and (value >= high if high_open else value > high):
        raise ConfigError(f"{name} must be {'<' if high_open else '<='} {high}, got {value!r}")


def _check_choice(name: str, value, choices, plural: str = "choices") -> None:
    if not isinstance(value, str):
        raise ConfigTypeError(f"{name} must be a str, one of: {', '.join(choices)}; got {type(value).__name__}")
    if value not in choices:
        raise ConfigError(f"unknown {name} {value!r}; valid {plural} are: {', '.join(choices)}")


def describe_bounds(low=None, high=None, low_open=False, high_open=False) -> str:
    """The bounds of a number in words: ``">= 1"``, ``"between 0 and 1 (exclusive)"``, ..."""
    if low is not None and high is not None:
        ends = {(True, True): " (exclusive)", (False, False): " (inclusive)"}.get(
            (low_open, high_open), f" ({'exclusive' if low_open else 'inclusive'} of {low}, "
                                   f"{'exclusive' if high_open else 'inclusive'} of {high})")
        return f"between {low} and {high}{ends}"
    if low is not None:
        return f"{'>' if low_open else '>='} {low}"
    return f"{'<' if high_open else '<='} {high}"


def _check_device(device) -> None:
    import torch

    if not isinstance(device, str):
        raise ConfigTypeError(f"device must be a str such as 'cpu', 'cuda' or 'auto', got {type(device).__name__}")
    if device == "auto":
        return
    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError):
        raise ConfigError(f"unknown device {device!r}; use 'cpu', 'cuda', 'cuda:N' or 'auto'") from None
    if dev.type not in ("cpu", "cuda"):
        raise ConfigError(f"device {device!r} is not supported; use 'cpu', 'cuda', 'cuda:N' or 'auto'")


def _canonical_baselines(baselines) -> tuple[str, ...]:
    if isinstance(baselines, str):
        baselines = (baselines,)
    if not isinstance(baselines, (tuple, list, set, frozenset)):
        raise ConfigTypeError(f"baselines must be a tuple of names from {BASELINES}, got {type(baselines).__name__}")
    unknown = [b for b in baselines if b not in BASELINES]
    if unknown:
        raise ConfigError(f"unknown baseline(s) {unknown}; valid baselines are: {', '.join(BASELINES)}")
    return tuple(b for b in BASELINES if b in baselines)  # canonical order, whatever the input order


@dataclass(frozen=True)
class IMPConfig:
    """Everything that determines an IMP run: two runs with equal configs give equal results.

    Every field's meaning and default is its ``help`` metadata (``rgprune imp --help`` lists them).
    ``None`` fields are filled in from the others (``optimizer``, ``lr``, ``weight_decay``, ``image_size``).
    Invalid values raise ``ConfigError`` (a ``ValueError``; ``ConfigTypeError``, also a ``TypeError``, for a
    value of the wrong type) naming the field and the valid values.
    """

    model: str = _option(help="model to prune", choices=_model_names, plural="models")
    task: str = _option(help="task to train on", choices=_task_names, plural="tasks")
    rounds: int = _option(8, help="pruning rounds after the dense round 0", low=1)
    fraction: float = _option(0.2, help="fraction of the surviving weights pruned per round", low=0, high=1,
                              low_open=True, high_open=True)
    rewind_step: int = _option(0, help="optimizer step whose weights the survivors are rewound to; 0 = the "
                                       "initialization", low=0)
    epochs: int = _option(10, help="training epochs per round", low=1)
    optimizer: str | None = _option(None, help="SGD (with momentum) or AdamW", choices=OPTIMIZERS,
                                    derive=lambda config, kind: DEFAULT_OPTIMIZER[kind],
                                    default_text=", ".join(f"{v} for {k}" for k, v in DEFAULT_OPTIMIZER.items()))
    lr: float | None = _option(None, help="peak learning rate", low=0, low_open=True,
                               derive=lambda config, kind: DEFAULT_LR[config.optimizer],
                               default_text=_per_key(DEFAULT_LR))
    momentum: float = _option(0.9, help="SGD momentum (AdamW has none)", low=0, high=1, high_open=True)
    weight_decay: float | None = _option(None, help="weight decay", low=0,
                                         derive=lambda config, kind: DEFAULT_WEIGHT_DECAY[config.optimizer],
                                         default_text=_per_key(DEFAULT_WEIGHT_DECAY))
    schedule: str = _option("cosine", help="learning rate per optimizer step: cosine (to 0 over the run), constant, "
                                           "or step (x0.1 at 50% and 75% of the steps)", choices=SCHEDULES)
    batch_size: int = _option(64, help="training batch size (per rank under torchrun)", low=1)
    seed: int = _option(0, help="seed of every random draw (initialization, data order, baselines)", low=0)
    device: str = _option("cpu", help="cpu, cuda, cuda:N or auto (CUDA when available)")
    amp: bool = _option(False, help="mixed precision: bfloat16 autocast on CPU, float16 + GradScaler on CUDA")
    image_size: int | None = _option(None, help="vision tasks: resize the 8x8 digits to this size", low=4,
                                     derive=lambda config, kind: DEFAULT_IMAGE_SIZE if kind == "vision" else None,
                                     default_text=f"{DEFAULT_IMAGE_SIZE} for vision tasks, unused by text tasks")
    prune_head: bool = _option(False, help="also prune the classifier head")
    prune_embeddings: bool = _option(False, help="also prune BERT's embeddings")
    baselines: tuple[str, ...] = _option((), help="baselines trained like the ticket for every round's mask: "
                                                  "random-reinit (the mask on a fresh initialization) and "
                                                  "random-mask (random positions with the mask's per-layer counts)",
                                         choices=BASELINES, default_text="none")

    def __post_init__(self) -> None:
        from rgprune.models import model_kind

        _check_choice("model", self.model, _model_names(), "models")
        kind = task_kind(self.task)
        if model_kind(self.model) != kind:
            raise ConfigError(f"model {self.model!r} is a {model_kind(self.model)} model but task {self.task!r} is a "
                              f"{kind} task; pair vision models (resnet*) with digits* tasks and text models "
                              f"(minilm, minilm-random, bert-base) with vader")
        if kind == "text" and self.image_size is not None:
            raise ConfigError(f"image_size applies to vision tasks only; task {self.task!r} is a text task, leave it "
                              f"None")
        for f in dataclasses.fields(self):  # in field order: a derived default reads fields validated before it
            self._check_field(f, kind)
        _check_device(self.device)
        object.__setattr__(self, "baselines", _canonical_baselines(self.baselines))

    def _check_field(self, f: dataclasses.Field, kind: str) -> None:
        meta, value, kind_of_value = f.metadata, getattr(self, f.name), field_types()[f.name]
        if value is None and meta["derive"] is not None:
            value = meta["derive"](self, kind)
            object.__setattr__(self, f.name, value)
        if value is None or kind_of_value is tuple:
            return  # a field that does not apply to this task kind, or the baselines (checked by __post_init__)
        if meta["bounds"] is not None:
            check_number(f.name, value, integer=kind_of_value is int, **meta["bounds"])
            if kind_of_value is float:
                object.__setattr__(self, f.name, float(value))
        elif meta["choices"] is not None:
            _check_choice(f.name, value, option_choices(f), meta["plural"])
        elif kind_of_value is bool and not isinstance(value, bool):
            raise ConfigTypeError(f"{f.name} must be a bool, got {value!r}")

    # ---- identity and persistence ------------------------------------------------------------------
    def to_dict(self) -> dict:
        data = dataclasses.asdict(self)
        data["baselines"] = list(self.baselines)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "IMPConfig":
        """The config of ``to_dict`` (a ``version`` key, as config.json holds, is ignored)."""
        if not isinstance(data, Mapping):
            raise ConfigTypeError(f"an IMPConfig is read from a dict, got {type(data).__name__}")
        data = {k: v for k, v in data.items() if k != "version"}
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ConfigError(f"unknown IMPConfig field(s) {unknown}; valid fields are: {', '.join(sorted(names))}")
        missing = sorted(f.name for f in dataclasses.fields(cls)
                         if f.default is dataclasses.MISSING and f.name not in data)
        if missing:
            raise ConfigError(f"IMPConfig field(s) {missing} are missing; they have no default")
        if data.get("baselines") is not None:
            data["baselines"] = tuple(data["baselines"])
        return cls(**data)

    @property
    def digest(self) -> str:
        """A short hash of every field."""
        text = json.dumps(self.to_dict(), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:8]

    @property
    def name(self) -> str:
        """``<model>-<task>-<hash>``: experiments are named by their config."""
        return f"{self.model}-{self.task}-{self.digest}"

    def replace(self, **changes) -> "IMPConfig":
        return dataclasses.replace(self, **changes)

    def differences(self, other: "IMPConfig") -> dict[str, tuple[Any, Any]]:
        """``{field: (self's value, other's value)}`` for every field that differs."""
        a, b = self.to_dict(), other.to_dict()
        return {k: (a[k], b[k]) for k in a if a[k] != b[k]}
