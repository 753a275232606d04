"""``IMPConfig``: everything that determines an IMP run, validated, with the help text of every field.

Each field carries its documentation once, in its metadata: ``help`` (what it is), and where it applies
``choices`` (the valid values), ``parse`` (for a spec: the parser that validates it, and ``forms``, the valid
forms in words), ``bounds`` (for numbers: ``low``/``high``, each inclusive unless ``low_open``/``high_open``),
``group`` (``"image"``/``"text"``: an option of how ``KIND:PATH`` data is prepared, refused elsewhere), and for
a field whose default depends on others (``None`` in the dataclass) ``derive`` (how it is filled in) and
``default_text`` (that rule in words). ``IMPConfig.__post_init__`` validates from this metadata and
``rgprune imp`` builds its options from it (``rgprune.cli.imp``), so the two cannot drift apart.

Names and resume. ``digest`` hashes the fields that decide the result: a field marked ``runtime`` (how the data
is fed: ``num_workers``, ``persistent_workers``, ``pin_memory``, which never change a result) does not count,
and a field added after the first config version (``since`` > 1) counts only when it differs from its
default. So adding a field never renames (or stops resuming) a run made before it existed: its config.json
lacks the field, which then takes its default. A resume must match the saved config in every non-runtime field.

>>> config = IMPConfig(model="resnet20", task="digits", rounds=8, rewind_step=20, image_size=16)
>>> config.name.startswith("resnet20-digits-"), config.optimizer, config.lr
(True, 'sgd', 0.1)
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import types as types_module
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from rgprune.imp.fields import (
    ConfigError,
    ConfigTypeError,
    check_choice,
    check_number,
    describe_bounds,
    option,
    per_key,
)
from rgprune.imp.values import (
    BASELINES,
    canonical_baselines,
    check_device,
    model_forms,
    name_part,
    parse_model,
    parse_task,
    task_forms,
)

__all__ = [
    "AMP_DTYPES",
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
    "cli_option_names",
    "describe_bounds",
    "field_item_types",
    "field_types",
    "option_choices",
    "option_flag",
]

OPTIMIZERS = ("sgd", "adamw")
SCHEDULES = ("cosine", "constant", "step")
AMP_DTYPES = ("bfloat16", "float16")
#: the default optimizer per task kind, and the default learning rate and weight decay per optimizer
DEFAULT_OPTIMIZER = {"vision": "sgd", "text": "adamw"}
DEFAULT_LR = {"sgd": 0.1, "adamw": 1e-4}
DEFAULT_WEIGHT_DECAY = {"sgd": 1e-4, "adamw": 0.01}
#: vision tasks: the 8x8 digits are upsampled to the ResNets' native 32x32 (CIFAR's size too)
DEFAULT_IMAGE_SIZE = 32
#: 2: the model and task specs, the data options, weights and the input pipeline (every field with since=2);
#: 3: exclude
CONFIG_VERSION = 3


def option_choices(f: dataclasses.Field) -> tuple[str, ...] | None:
    """The valid values of an ``IMPConfig`` field (None for a field without a fixed set)."""
    return f.metadata["choices"]


@functools.cache
def _hints() -> dict[str, list]:
    """Each field's annotation as the list of its types, None aside (``X | None``: ``[X]``)."""

    def types(hint) -> list:
        if typing.get_origin(hint) in (typing.Union, types_module.UnionType):
            return [a for a in typing.get_args(hint) if a is not type(None)]
        return [hint]

    return {name: types(hint) for name, hint in typing.get_type_hints(IMPConfig).items()}


@functools.cache
def field_types() -> dict[str, type]:
    """``{field name: int, float, str, bool or tuple}``: the type of each ``IMPConfig`` field's value, ``None``
    aside (from the annotations, which this module's ``from __future__ import annotations`` keeps as text)."""
    return {name: tuple if typing.get_origin(args[0]) is tuple else args[0] for name, args in _hints().items()}


@functools.cache
def field_item_types() -> dict[str, type]:
    """``{field name: item type}`` of the tuple-valued ``IMPConfig`` fields (``tuple[float, ...]``: float)."""
    return {name: typing.get_args(args[0])[0] for name, args in _hints().items() if typing.get_origin(args[0]) is tuple}


def option_flag(name: str) -> str:
    """The command-line flag of the ``IMPConfig`` field ``name`` (``rgprune imp``): ``--rewind-step`` for
    ``rewind_step``."""
    return "--" + name.replace("_", "-")


def cli_option_names() -> dict[str, str]:
    """How errors raised under ``rgprune imp`` name options (``rgprune.data.options.naming_options``): every
    ``IMPConfig`` field by its flag, and every ``ImageOptions``/``TextOptions`` option that a field of the same
    name sets (``IMPConfig.image_options``, ``text_options``) by that field's flag."""
    from rgprune.data.options import ImageOptions, TextOptions

    names = {f.name: option_flag(f.name) for f in dataclasses.fields(IMPConfig)}
    for cls in (ImageOptions, TextOptions):
        names.update({f"{cls.__name__}.{f.name}": names[f.name] for f in dataclasses.fields(cls) if f.name in names})
    return names


def _default_image_size(config: IMPConfig, kind: str) -> int | None:
    spec = parse_task(config.task)
    if kind != "vision" or spec.is_given:
        return None
    from rgprune.data.images import DEFAULT_IMAGE_SIZE as FOLDER_IMAGE_SIZE

    return FOLDER_IMAGE_SIZE if spec.kind == "imagefolder" else DEFAULT_IMAGE_SIZE


_DATA = "KIND:PATH tasks: "


@dataclass(frozen=True)
class IMPConfig:
    """Everything that determines an IMP run: two runs with equal configs give equal results.

    Every field's meaning and default is its ``help`` metadata (``rgprune imp --help`` lists them).
    ``None`` fields are filled in from the others (``optimizer``, ``lr``, ``weight_decay``, ``image_size``) or, for
    ``max_length`` and the input pipeline, chosen when the run starts (by the model's positions; per device:
    ``rgprune.imp.pipeline``). Invalid values raise ``ConfigError`` (a ``ValueError``; ``ConfigTypeError``,
    also a ``TypeError``, for a value of the wrong type) naming the field and the valid values.
    """

    model: str = option(help="model to prune", parse=parse_model, forms=model_forms)
    task: str = option(help="task to train on", parse=parse_task, forms=task_forms)
    rounds: int = option(8, help="pruning rounds after the dense round 0", low=1)
    fraction: float = option(
        0.2, help="fraction of the surviving weights pruned per round", low=0, high=1, low_open=True, high_open=True
    )
    rewind_step: int = option(
        0, help="optimizer step whose weights the survivors are rewound to; 0 = the initialization", low=0
    )
    epochs: int = option(10, help="training epochs per round", low=1)
    optimizer: str | None = option(
        None,
        help="SGD (with momentum) or AdamW",
        choices=OPTIMIZERS,
        derive=lambda config, kind: DEFAULT_OPTIMIZER[kind],
        default_text=", ".join(f"{v} for {k}" for k, v in DEFAULT_OPTIMIZER.items()),
    )
    lr: float | None = option(
        None,
        help="peak learning rate",
        low=0,
        low_open=True,
        derive=lambda config, kind: DEFAULT_LR[config.optimizer],
        default_text=per_key(DEFAULT_LR),
    )
    momentum: float = option(0.9, help="SGD momentum (AdamW has none)", low=0, high=1, high_open=True)
    weight_decay: float | None = option(
        None,
        help="weight decay",
        low=0,
        derive=lambda config, kind: DEFAULT_WEIGHT_DECAY[config.optimizer],
        default_text=per_key(DEFAULT_WEIGHT_DECAY),
    )
    schedule: str = option(
        "cosine",
        help="learning rate per optimizer step: cosine (to 0 over the run), constant, "
        "or step (x0.1 at 50% and 75% of the steps)",
        choices=SCHEDULES,
    )
    batch_size: int = option(64, help="training batch size (per rank under torchrun)", low=1)
    seed: int = option(0, help="seed of every random draw (initialization, data order, augmentation, baselines)", low=0)
    device: str = option("cpu", help="cpu, cuda, cuda:N or auto (CUDA when available)")
    amp: bool = option(
        False, help="mixed precision autocast (its dtype: amp_dtype); the weights and the optimizer stay float32"
    )
    image_size: int | None = option(
        None,
        help="vision tasks: side of the square images the model sees (digits: "
        "resized from 8x8; cifar: from 32x32; imagefolder: the crop)",
        low=4,
        derive=_default_image_size,
        default_text=f"{DEFAULT_IMAGE_SIZE}; 224 for imagefolder:; unused by text tasks and given datasets",
    )
    prune_head: bool = option(False, help="also prune the classifier head")
    prune_embeddings: bool = option(False, help="also prune BERT's embeddings")
    exclude: tuple[str, ...] = option(
        (),
        help="fnmatch patterns over qualified parameter names kept out of the pruned set, each of which must "
        "match a parameter (e.g. 'bert.pooler.*': a checkpoint trained with mean pooling, as minilm was, has an "
        "untrained pooler, which global pruning would empty first, cutting the classifier off)",
        since=3,
        default_text="none",
    )
    baselines: tuple[str, ...] = option(
        (),
        help="baselines trained like the ticket for every round's mask: "
        "random-reinit (the mask on a fresh initialization) and "
        "random-mask (random positions with the mask's per-layer counts)",
        choices=BASELINES,
        default_text="none",
    )
    # ---- the model's starting weights and the data options of KIND:PATH tasks (rgprune.data) ----
    weights: str | None = option(
        None,
        help="a local state_dict (.safetensors or torch.save'd) the model starts "
        "from, for built-in, torchvision: and module: models; a classifier head "
        "of another class count keeps its fresh init. Its SHA-256 is recorded: "
        "a resume with other weights is refused",
        since=2,
        default_text="the model's own initialization (hf:DIR: DIR's weights)",
    )
    resize: int | None = option(
        None,
        help=_DATA + "imagefolder: shorter side before the center crop",
        low=1,
        group="image",
        since=2,
        default_text="image_size / 0.875 (256 for 224)",
    )
    center_crop: bool = option(
        True,
        help=_DATA + "imagefolder: resize the shorter side then crop the center "
        "(--no-center-crop: resize the whole image, ignoring the aspect ratio)",
        group="image",
        since=2,
    )
    mean: tuple[float, ...] | None = option(
        None,
        help=_DATA + "per-channel (R G B) mean of [0, 1] pixels to normalize by (with std)",
        group="image",
        since=2,
        default_text="cifar: the train set's; imagefolder: ImageNet's",
    )
    std: tuple[float, ...] | None = option(
        None,
        help=_DATA + "per-channel (R G B) std to normalize by (with mean)",
        group="image",
        since=2,
        default_text="as for mean",
    )
    augment: bool = option(
        False,
        help=_DATA + "augment the training images (cifar: 4-pixel padded random crop + "
        "flip; imagefolder: random resized crop + flip), seeded per example",
        group="image",
        since=2,
    )
    max_length: int | None = option(
        None,
        help=_DATA + "tokens per text example (longer ones truncated)",
        low=4,
        group="text",
        since=2,
        default_text="128, or the model's position count if smaller; the vader task has its own",
    )
    text_columns: tuple[str, ...] | None = option(
        None,
        help=_DATA + "csv:/hf-disk: the text column, or two for sentence pairs",
        group="text",
        since=2,
        default_text="text",
    )
    label_column: str | None = option(
        None, help=_DATA + "csv:/hf-disk: the label column", group="text", since=2, default_text="label"
    )
    labels: tuple[str, ...] | None = option(
        None,
        help=_DATA + "csv:/hf-disk: every label value, in id order",
        group="text",
        since=2,
        default_text="the train set's labels, sorted (as numbers if all are)",
    )
    test_split: str | None = option(
        None,
        help=_DATA + "hf-disk: the split to evaluate on",
        group="text",
        since=2,
        default_text="validation if present, else test",
    )
    # ---- the input pipeline (rgprune.imp.pipeline chooses the defaults per device) ----
    amp_dtype: str | None = option(
        None,
        help="with amp: the autocast dtype (float16 trains with a gradient "
        "scaler; bfloat16 needs none and suits Ampere and later GPUs)",
        choices=AMP_DTYPES,
        since=2,
        default_text="float16 on CUDA, bfloat16 on the CPU",
    )
    channels_last: bool | None = option(
        None,
        help="feed images to the model in channels-last memory format (the weights keep theirs, as pruning needs)",
        since=2,
        default_text="on for vision tasks on CUDA",
    )
    compile: bool = option(False, help="torch.compile the model for training and evaluation", since=2)
    num_workers: int | None = option(
        None,
        help="DataLoader worker processes (the data order and augmentation are the same for any number)",
        low=0,
        since=2,
        runtime=True,
        default_text="0 on the CPU; on CUDA, up to 8 per GPU, as the CPUs allow",
    )
    persistent_workers: bool | None = option(
        None,
        help="keep the DataLoader workers alive between epochs",
        since=2,
        runtime=True,
        default_text="on when there are workers",
    )
    pin_memory: bool | None = option(
        None,
        help="page-locked batches, copied to the GPU without blocking",
        since=2,
        runtime=True,
        default_text="on for CUDA",
    )

    def __post_init__(self) -> None:
        model, task = self._parse_specs()
        kind = task.task_kind
        if kind == "text" and self.image_size is not None:
            raise ConfigError(
                f"image_size applies to vision tasks only; task {self.task!r} is a text task, leave it None"
            )
        for f in dataclasses.fields(self):  # in field order: a derived default reads fields validated before it
            self._check_applies(f, task)
            self._check_field(f, kind)
        check_device(self.device)
        object.__setattr__(self, "baselines", canonical_baselines(self.baselines))
        if self.weights is not None and model.source == "hf":
            raise ConfigError(
                f"weights applies to built-in, torchvision:, module: and given: models; {self.model} "
                "loads the weights of its folder"
            )
        if any(not pattern for pattern in self.exclude):
            raise ConfigError(f"exclude holds an empty pattern ({list(self.exclude)}); drop it")
        if self.amp_dtype is not None and not self.amp:
            raise ConfigError(f"amp_dtype={self.amp_dtype!r} applies with amp=True (--amp)")
        if task.is_given and self.image_size is not None:
            raise ConfigError(f"image_size applies to the tasks rgprune loads; {self.task} holds the images as given")
        self._check_data_options(task)

    def _parse_specs(self):
        """The parsed model and task specs, refused unless their kinds fit."""
        from rgprune.models import check_model_fits_task

        parsed = []
        for f in dataclasses.fields(self)[:2]:  # model, task
            value = getattr(self, f.name)
            if not isinstance(value, str):
                raise ConfigTypeError(f"{f.name} must be a str, {f.metadata['forms']()}; got {type(value).__name__}")
            try:
                parsed.append(f.metadata["parse"](value))
            except (ValueError, TypeError) as exc:
                raise ConfigError(str(exc)) from None
        try:
            check_model_fits_task(self.model, self.task)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        return parsed

    def _check_field(self, f: dataclasses.Field, kind: str) -> None:
        meta, value, kind_of_value = f.metadata, getattr(self, f.name), field_types()[f.name]
        if value is None and meta["derive"] is not None:
            value = meta["derive"](self, kind)
            object.__setattr__(self, f.name, value)
        if value is None or meta["parse"] is not None or f.name == "baselines":
            return  # unset; a spec (parsed by _parse_specs); the baselines (checked by __post_init__)
        if kind_of_value is tuple:
            object.__setattr__(self, f.name, self._checked_tuple(f.name, value))
        elif meta["bounds"] is not None:
            check_number(f.name, value, integer=kind_of_value is int, **meta["bounds"])
            if kind_of_value is float:
                object.__setattr__(self, f.name, float(value))
        elif meta["choices"] is not None:
            check_choice(f.name, value, option_choices(f), meta["plural"])
        elif kind_of_value is bool and not isinstance(value, bool):
            raise ConfigTypeError(f"{f.name} must be a bool, got {value!r}")
        elif kind_of_value is str and (not isinstance(value, str) or not value):
            raise ConfigTypeError(f"{f.name} must be a non-empty str, got {value!r}")

    @staticmethod
    def _checked_tuple(name: str, value) -> tuple:
        """``value`` as a tuple of the field's item type (a list, as JSON gives, is accepted; ints become floats)."""
        item = field_item_types()[name]
        if not isinstance(value, (tuple, list)):
            raise ConfigTypeError(f"{name} must be a tuple of {item.__name__}s, got {type(value).__name__}")
        kinds = (int, float) if item is float else (item,)
        bad = [v for v in value if isinstance(v, bool) or not isinstance(v, kinds)]
        if bad:
            raise ConfigTypeError(f"{name} must hold {item.__name__}s, got {bad[0]!r}")
        return tuple(item(v) for v in value)

    def _check_applies(self, f: dataclasses.Field, task) -> None:
        """A data option (``group``) set away from its default must fit the task: a KIND:PATH task of its kind.
        (Checked before the default is derived: a derived value always fits.)"""
        group = f.metadata["group"]
        if group is None or getattr(self, f.name) == f.default:
            return
        from rgprune.data.options import option_name  # --text-columns under rgprune imp

        wanted, name = "vision" if group == "image" else "text", option_name(f.name)
        if task.path is None:
            raise ConfigError(
                f"{name} applies to KIND:PATH tasks, which rgprune reads from disk; task {self.task!r} "
                f"comes with its data prepared: leave {name} unset"
            )
        if task.task_kind != wanted:
            raise ConfigError(
                f"{name} applies to {'image' if group == 'image' else 'text'} tasks; task "
                f"{self.task!r} is a {task.task_kind} task: leave {name} unset"
            )

    def _check_data_options(self, task) -> None:
        """Build the ImageOptions/TextOptions of a KIND:PATH task: they check their values together."""
        if task.path is None:
            return
        try:
            self.image_options() if task.task_kind == "vision" else self.text_options()
        except TypeError as exc:
            raise ConfigTypeError(str(exc)) from None
        except ValueError as exc:
            raise ConfigError(str(exc)) from None

    def image_options(self):
        """The ``rgprune.data.ImageOptions`` of these fields (for ``load_task``)."""
        from rgprune.data import ImageOptions

        return ImageOptions(
            resize=self.resize, center_crop=self.center_crop, mean=self.mean, std=self.std, augment=self.augment
        )

    def text_options(self, positions: int | None = None):
        """The ``rgprune.data.TextOptions`` of these fields (for ``load_task``); ``positions``: the model's token
        positions, which cap the default ``max_length``."""
        from rgprune.data import TextOptions

        default = TextOptions().max_length
        max_length = self.max_length or (min(default, positions) if positions is not None else default)
        return TextOptions(
            max_length=max_length,
            text_columns=self.text_columns,
            label_column=self.label_column,
            labels=self.labels,
            test_split=self.test_split,
        )

    # ---- identity and persistence ------------------------------------------------------------------
    def to_dict(self) -> dict:
        data = dataclasses.asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in data.items()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> IMPConfig:
        """The config of ``to_dict`` (a ``version`` key, as config.json holds, is ignored; a field missing from the
        dict of an older version takes its default)."""
        if not isinstance(data, Mapping):
            raise ConfigTypeError(f"an IMPConfig is read from a dict, got {type(data).__name__}")
        data = {k: v for k, v in data.items() if k != "version"}
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ConfigError(f"unknown IMPConfig field(s) {unknown}; valid fields are: {', '.join(sorted(names))}")
        missing = sorted(
            f.name for f in dataclasses.fields(cls) if f.default is dataclasses.MISSING and f.name not in data
        )
        if missing:
            raise ConfigError(f"IMPConfig field(s) {missing} are missing; they have no default")
        if data.get("baselines") is not None:
            data["baselines"] = tuple(data["baselines"])
        return cls(**data)

    def _identity(self) -> dict:
        """The fields that decide the result, as the digest hashes them (see the module docstring)."""
        data = self.to_dict()
        identity = {}
        for f in dataclasses.fields(self):
            default = list(f.default) if isinstance(f.default, tuple) else f.default
            if f.metadata["runtime"] or (f.metadata["since"] > 1 and data[f.name] == default):
                continue
            identity[f.name] = data[f.name]
        return identity

    @property
    def digest(self) -> str:
        """A short hash of the fields that decide the result (see the module docstring)."""
        text = json.dumps(self._identity(), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:8]

    @property
    def name(self) -> str:
        """``<model>-<task>-<hash>``: experiments are named by their config (specs shortened to a file-name-safe
        ``KIND-<last path component>``)."""
        return f"{name_part(self.model)}-{name_part(self.task)}-{self.digest}"

    def replace(self, **changes) -> IMPConfig:
        return dataclasses.replace(self, **changes)

    def differences(self, other: IMPConfig) -> dict[str, tuple[Any, Any]]:
        """``{field: (self's value, other's value)}`` for every field that differs, runtime fields aside (they
        never change a result, so a resume may change them)."""
        a, b = self.to_dict(), other.to_dict()
        runtime = {f.name for f in dataclasses.fields(self) if f.metadata["runtime"]}
        return {k: (a[k], b[k]) for k in a if a[k] != b[k] and k not in runtime}
