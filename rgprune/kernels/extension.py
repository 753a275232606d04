"""Loading the compiled extension ``rgprune._C`` and deciding, per device and op, whether to use it.

Importing ``rgprune._C`` registers the ``torch.ops.rgprune.*`` ops. Without it the package still works:
``rgprune.ops`` then calls the pure-PyTorch reference (``rgprune.kernels.reference``) and warns once.
"""
from __future__ import annotations

import importlib
import warnings
from types import ModuleType

import torch


def _load() -> tuple[ModuleType | None, str | None]:
    try:
        return importlib.import_module("rgprune._C"), None
    except ImportError as exc:  # the package still works, through the reference
        return None, f"{type(exc).__name__}: {exc}"


#: the compiled extension module, or None when it did not load (see ``backend()`` for why)
module, load_error = _load()

_warned_reference = False
_warned_ops: set = set()


def backend() -> str:
    """Which implementation is active: ``"cuda+cpp"``, ``"cpp"`` or ``"reference (<why>)"``."""
    if module is None:
        return (f"reference (rgprune._C did not load: {load_error}; build it with `make build` or "
                f"`pip install --no-build-isolation -e .`)")
    return "cuda+cpp" if module.built_with_cuda else "cpp"


def has_kernel(op: str, device: torch.device) -> bool:
    """True when the dispatcher has a kernel of the registered ``op`` (e.g. ``"rgprune::radix_histogram"``)
    for ``device``'s type. Raises RuntimeError for an op name that is not registered (a misspelt name)."""
    return torch._C._dispatch_has_kernel_for_dispatch_key(op, device.type.upper())


def compiled_for(device: torch.device, op: str | None = None) -> bool:
    """True when the extension has kernels for ``device``; warns once when falling back to the reference.

    With ``op``, also checks that this op has a kernel for the device (an op may have a CPU kernel before
    its CUDA kernel is written); the op falls back to the reference where it has none.
    """
    global _warned_reference
    if module is not None and (device.type == "cpu" or (device.type == "cuda" and module.built_with_cuda)):
        if op is None or has_kernel(op, device):
            return True
        if op not in _warned_ops:
            _warned_ops.add(op)
            warnings.warn(f"rgprune: {op} has no compiled {device.type} kernel in this build; using the "
                          f"pure-PyTorch reference for it", RuntimeWarning, stacklevel=3)
        return False
    if not _warned_reference:
        _warned_reference = True
        warnings.warn(f"rgprune: using the pure-PyTorch reference kernels on {device.type}; {backend()}",
                      RuntimeWarning, stacklevel=3)
    return False
