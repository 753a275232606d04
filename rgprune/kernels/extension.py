"""Loading the compiled extension ``rgprune._C`` and deciding, per device and op, whether to use it.

Importing ``rgprune._C`` registers the ``torch.ops.rgprune.*`` ops. The environment variable
``RGPRUNE_BACKEND`` (read once, at import) chooses the implementation:

* ``auto`` (default): the compiled kernels where they load, else the pure-PyTorch reference
  (``rgprune.kernels.reference``), with a warning on first use;
* ``cpp``: the compiled kernels are required: importing rgprune fails when ``rgprune._C`` does not load,
  and a CPU op without a compiled kernel raises instead of falling back;
* ``reference``: every op runs the reference; ``rgprune._C`` is not even imported, so no compiled op can
  run by accident (``make test-reference`` runs the op tests this way).
"""

from __future__ import annotations

import importlib
import importlib.machinery
import os
import warnings
from pathlib import Path
from types import ModuleType

import torch

#: the environment variable that chooses the implementation
BACKEND_ENV = "RGPRUNE_BACKEND"
#: its valid values, the default first
BACKENDS = ("auto", "cpp", "reference")
_BUILD_HINT = "build it with `make build` or `pip install --no-build-isolation -e .`"


def requested_backend(value: str | None = None) -> str:
    """The implementation ``value`` (default: ``$RGPRUNE_BACKEND``, unset means ``auto``) asks for.

    Raises ValueError, naming the valid values, for anything else."""
    if value is None:
        value = os.environ.get(BACKEND_ENV, "")
    choice = value.strip().lower() or "auto"
    if choice not in BACKENDS:
        raise ValueError(
            f"{BACKEND_ENV}={value!r} is not a backend: set it to auto (the compiled kernels where "
            f"they load, else the pure-PyTorch reference; the default), cpp (require the compiled "
            f"kernels) or reference (the pure-PyTorch reference only), or unset it"
        )
    return choice


def extension_files() -> list[Path]:
    """The compiled ``rgprune._C`` files next to the package (what ``import rgprune._C`` would find): a build
    that has one is expected to load it."""
    package_dir = Path(__file__).resolve().parent.parent
    return [
        package_dir / f"_C{suffix}"
        for suffix in importlib.machinery.EXTENSION_SUFFIXES
        if (package_dir / f"_C{suffix}").is_file()
    ]


def load(requested: str) -> tuple[ModuleType | None, str | None]:
    """``(module, None)`` when ``rgprune._C`` loads, else ``(None, why)``; never imports it for ``reference``.

    Raises ImportError for ``cpp`` when the extension does not load (no silent fallback)."""
    if requested == "reference":
        return None, f"forced by {BACKEND_ENV}=reference"
    try:
        return importlib.import_module("rgprune._C"), None
    except ImportError as exc:
        files = extension_files()
        why = f"rgprune._C did not load: {type(exc).__name__}: {exc}"
        if files:
            why += f" (the compiled file {files[0]} exists: rebuild it for this torch and Python)"
        if requested == "cpp":
            raise ImportError(
                f"{BACKEND_ENV}=cpp requires the compiled kernels, but {why}; {_BUILD_HINT}, or "
                f"unset {BACKEND_ENV} to allow the pure-PyTorch reference"
            ) from exc
        return None, why


#: the implementation asked for by ``RGPRUNE_BACKEND`` at import (one of ``BACKENDS``)
requested = requested_backend()
#: the compiled extension module, or None when it did not load or was not wanted (see ``backend()``)
module, load_error = load(requested)

_warned_reference = False
_warned_ops: set = set()


def backend() -> str:
    """Which implementation is active: ``"cuda+cpp"``, ``"cpp"`` or ``"reference (<why>)"``."""
    if module is None:
        hint = "" if requested == "reference" else f"; {_BUILD_HINT}"
        return f"reference ({load_error}{hint})"
    return "cuda+cpp" if module.built_with_cuda else "cpp"


def has_kernel(op: str, device: torch.device) -> bool:
    """True when the dispatcher has a kernel of the registered ``op`` (e.g. ``"rgprune::radix_histogram"``)
    for ``device``'s type. Raises RuntimeError for an op name that is not registered (a misspelt name)."""
    return torch._C._dispatch_has_kernel_for_dispatch_key(op, device.type.upper())


def compiled_for(device: torch.device, op: str | None = None) -> bool:
    """True when the extension has kernels for ``device``; otherwise the caller uses the reference.

    With ``op``, also checks that this op has a kernel for the device (an op may have a CPU kernel before
    its CUDA kernel is written); the op falls back to the reference where it has none, with a warning once,
    except under ``RGPRUNE_BACKEND=reference`` (asked for: no warning) and for CPU ops under ``cpp``
    (RuntimeError: the compiled CPU kernels were required).
    """
    global _warned_reference
    if module is not None and (device.type == "cpu" or (device.type == "cuda" and module.built_with_cuda)):
        if op is None or has_kernel(op, device):
            return True
        if requested == "cpp" and device.type == "cpu":
            raise RuntimeError(
                f"{BACKEND_ENV}=cpp requires the compiled CPU kernels, but {op} has no CPU kernel "
                f"in this build of rgprune._C; rebuild it ({_BUILD_HINT}), or unset {BACKEND_ENV}"
            )
        if op not in _warned_ops:
            _warned_ops.add(op)
            warnings.warn(
                f"rgprune: {op} has no compiled {device.type} kernel in this build; using the "
                f"pure-PyTorch reference for it",
                RuntimeWarning,
                stacklevel=3,
            )
        return False
    if requested != "reference" and not _warned_reference:
        _warned_reference = True
        warnings.warn(
            f"rgprune: using the pure-PyTorch reference kernels on {device.type}; {backend()}",
            RuntimeWarning,
            stacklevel=3,
        )
    return False
