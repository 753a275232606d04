"""The parsers and checks of ``IMPConfig`` values that need no ``IMPConfig``: the model and task specs (parsed
on use, so importing the config loads neither torchvision nor transformers), the device, the baselines, and a
spec as part of a run's name."""

from __future__ import annotations

import re
from pathlib import Path

from rgprune.imp.fields import ConfigError, ConfigTypeError

#: the baselines a round can train beside its ticket, in the order they run
BASELINES = ("random-reinit", "random-mask")


def parse_model(spec: str):
    from rgprune.models import parse_model_spec  # imported on use: it loads torchvision and transformers

    return parse_model_spec(spec)


def parse_task(spec: str):
    from rgprune.data import parse_task_spec

    return parse_task_spec(spec)


def model_forms() -> str:
    from rgprune.models import MODEL_NAMES
    from rgprune.models.specs import SPEC_FORMS

    return f"a built-in name ({', '.join(MODEL_NAMES)}) or {SPEC_FORMS}"


def task_forms() -> str:
    from rgprune.data import TASK_NAMES
    from rgprune.data.specs import FILE_TASK_KINDS

    return (
        f"an embedded task ({', '.join(TASK_NAMES)}) or local data, read from disk and never downloaded: "
        f"{', '.join(f'{kind}:PATH' for kind in FILE_TASK_KINDS)}"
    )


def check_device(device) -> None:
    """Refuse a device that is not a str naming a CPU or CUDA device (or 'auto')."""
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


def canonical_baselines(baselines) -> tuple[str, ...]:
    """The baselines as a tuple in ``BASELINES`` order, refused unless each is one of them."""
    if isinstance(baselines, str):
        baselines = (baselines,)
    if not isinstance(baselines, (tuple, list, set, frozenset)):
        raise ConfigTypeError(f"baselines must be a tuple of names from {BASELINES}, got {type(baselines).__name__}")
    unknown = [b for b in baselines if b not in BASELINES]
    if unknown:
        raise ConfigError(f"unknown baseline(s) {unknown}; valid baselines are: {', '.join(BASELINES)}")
    return tuple(b for b in BASELINES if b in baselines)  # canonical order, whatever the input order


def name_part(spec: str) -> str:
    """A spec as a file-name-safe part of a run's name: embedded and built-in names as they are, ``KIND:PATH``
    as ``KIND-<last path component>`` (the digest tells apart what this leaves alike)."""
    kind, colon, rest = spec.partition(":")
    if not colon:
        return spec
    last = Path(rest.replace(":", "/").rstrip("/")).name
    return re.sub(r"[^A-Za-z0-9._-]", "_", f"{kind}-{last}" if last not in ("", ".", "..") else kind)
