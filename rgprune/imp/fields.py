"""The metadata of ``IMPConfig``'s fields and the checks it drives (``rgprune.imp.config`` documents the keys),
and the errors of an unusable configuration."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from dataclasses import field
from typing import Any

__all__ = ["ConfigError", "ConfigTypeError", "check_choice", "check_number", "describe_bounds", "option", "per_key"]


class ConfigError(ValueError):
    """An unusable IMP configuration or run directory; the message says what was wrong and how to fix it.

    ``rgprune`` turns exactly these errors into usage errors (exit status 2); any other exception is a bug
    and keeps its traceback.
    """


class ConfigTypeError(ConfigError, TypeError):
    """A configuration value of the wrong type (a ``TypeError`` and a ``ConfigError``)."""


def option(
    default: Any = dataclasses.MISSING,
    *,
    help: str,
    choices: tuple | None = None,
    plural: str = "choices",
    parse: Callable | None = None,
    forms: Callable[[], str] | None = None,
    derive: Callable | None = None,
    default_text: str | None = None,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
    group: str | None = None,
    since: int = 1,
    runtime: bool = False,
) -> Any:
    """A dataclass field whose metadata documents and constrains it (see the module docstring)."""
    bounds = (
        None
        if low is None and high is None
        else {"low": low, "high": high, "low_open": low_open, "high_open": high_open}
    )
    metadata = {
        "help": help,
        "choices": choices,
        "plural": plural,
        "parse": parse,
        "forms": forms,
        "derive": derive,
        "default_text": default_text,
        "bounds": bounds,
        "group": group,
        "since": since,
        "runtime": runtime,
    }
    return field(default=default, metadata=metadata)


def per_key(table: Mapping[str, Any]) -> str:
    return ", ".join(
        f"{value:g} for {key}" if isinstance(value, float) else f"{value} for {key}" for key, value in table.items()
    )


def check_number(
    name: str, value, *, integer: bool = False, low=None, high=None, low_open=False, high_open=False
) -> None:
    """Raise ``ConfigTypeError`` unless ``value`` is an int (``integer``) or a finite number, and ``ConfigError``
    unless it lies within the bounds (each inclusive unless ``low_open``/``high_open``)."""
    kinds = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds):
        raise ConfigTypeError(
            f"{name} must be {'an int' if integer else 'a number'}, got {type(value).__name__} ({value!r})"
        )
    if not integer and not math.isfinite(value):
        raise ConfigError(f"{name} must be finite, got {value!r}")
    if low is not None and (value <= low if low_open else value < low):
        raise ConfigError(f"{name} must be {'>' if low_open else '>='} {low}, got {value!r}")
    if high is not None and (value >= high if high_open else value > high):
        raise ConfigError(f"{name} must be {'<' if high_open else '<='} {high}, got {value!r}")


def check_choice(name: str, value, choices, plural: str = "choices") -> None:
    if not isinstance(value, str):
        raise ConfigTypeError(f"{name} must be a str, one of: {', '.join(choices)}; got {type(value).__name__}")
    if value not in choices:
        raise ConfigError(f"unknown {name} {value!r}; valid {plural} are: {', '.join(choices)}")


def describe_bounds(low=None, high=None, low_open=False, high_open=False) -> str:
    """The bounds of a number in words: ``">= 1"``, ``"between 0 and 1 (exclusive)"``, ..."""
    if low is not None and high is not None:
        ends = {(True, True): " (exclusive)", (False, False): " (inclusive)"}.get(
            (low_open, high_open),
            f" ({'exclusive' if low_open else 'inclusive'} of {low}, "
            f"{'exclusive' if high_open else 'inclusive'} of {high})",
        )
        return f"between {low} and {high}{ends}"
    if low is not None:
        return f"{'>' if low_open else '>='} {low}"
    return f"{'<' if high_open else '<='} {high}"
