"""Which GPU architectures setup.py compiles the CUDA kernels for (the default of ``TORCH_CUDA_ARCH_LIST``).

Why not a fixed list: the former fixed ``8.0;9.0+PTX`` left GPUs older than sm_80 (T4: sm_75, V100: sm_70) with
no code they can run ("no kernel image is available" at the first launch). Why not torch's own default:
with ``TORCH_CUDA_ARCH_LIST`` unset, torch builds for the GPUs *visible at build time*: it fails where there is
none (CI, a login node) and builds the wrong set when the extension runs on another machine.

The rule (``choose_arch_list``): the architectures the installed torch was itself built for (its kernels only run
there anyway), less those the installed nvcc cannot compile (nvcc 13 dropped sm_70 and older), with ``+PTX`` on
the newest so that GPUs newer than the list JIT-compile the kernels. A ``TORCH_CUDA_ARCH_LIST`` the user set
always wins. Each architecture costs one more device-code pass of every ``.cu`` file, so the list is also what
the build time scales with (setup.py prints the list it chose).

This module imports neither torch nor setuptools at import time, so tests can check the rule on made-up inputs
(tests/test_setup_arch.py) without a GPU, a toolkit or a build.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterable, Mapping

__all__ = ["choose_arch_list", "default_arch_list", "nvcc_gpu_targets", "parse_archs", "torch_arch_flags"]

_ARCH = re.compile(r"^(?:sm|compute)_(\d+)([a-z]?)$")


def parse_archs(names: Iterable[str] | str | None) -> list[tuple[int, int]]:
    """``sm_86`` / ``compute_90`` / ``sm_90a`` (as torch's arch flags and ``nvcc --list-gpu-code`` /
    ``--list-gpu-arch`` print them, whitespace-separated or one per item) -> sorted unique ``(major, minor)``.
    The architecture-specific suffixes (``a``, ``f``) map to the plain architecture, whose cubin runs on the
    same GPUs; anything else is ignored."""
    if names is None:
        return []
    items = names.split() if isinstance(names, str) else [n for item in names for n in str(item).split()]
    out = set()
    for item in items:
        m = _ARCH.match(item.strip())
        if m:
            digits = m.group(1)
            out.add((int(digits[:-1]), int(digits[-1])))
    return sorted(out)


def _fmt(arch: tuple[int, int]) -> str:
    return f"{arch[0]}.{arch[1]}"


def choose_arch_list(
    torch_archs: Iterable[str] | str | None,
    nvcc_codes: Iterable[str] | str | None,
    nvcc_ptx: Iterable[str] | str | None = None,
    user_value: str | None = None,
) -> tuple[str | None, str]:
    """The ``TORCH_CUDA_ARCH_LIST`` to build with, and a one-line reason.

    ``torch_archs``: what torch was built for (``torch._C._cuda_getArchFlags()``, e.g. ``"sm_75 sm_80 sm_90"``);
    ``nvcc_codes``: the real architectures nvcc can compile (``nvcc --list-gpu-code``), None when unknown (then
    torch's list is taken as it is); ``nvcc_ptx``: the virtual ones (``nvcc --list-gpu-arch``), which decide
    whether the newest gets ``+PTX`` (None: assume it can); ``user_value``: ``TORCH_CUDA_ARCH_LIST`` as the user
    set it (returned unchanged when non-empty).

    Returns ``(None, reason)`` when there is nothing to choose from (a CPU build of torch, or no architecture
    both know): torch's own default then applies (the GPUs visible at build time).
    """
    if user_value and user_value.strip():
        return user_value, "set by the user"
    wanted = parse_archs(torch_archs)
    if not wanted:
        return None, "torch reports no CUDA architectures (a CPU build?): torch's default applies"
    dropped = []
    if nvcc_codes is not None:
        known = set(parse_archs(nvcc_codes))
        dropped = [a for a in wanted if a not in known]
        wanted = [a for a in wanted if a in known]
        if not wanted:
            return None, (
                f"nvcc can compile none of torch's architectures ({', '.join(_fmt(a) for a in dropped)}): "
                "torch's default applies (the GPUs visible now)"
            )
    ptx_ok = nvcc_ptx is None or wanted[-1] in set(parse_archs(nvcc_ptx))
    names = [_fmt(a) for a in wanted]
    if ptx_ok:
        names[-1] += "+PTX"
    reason = "the architectures torch was built for"
    reason += " that nvcc can compile" if nvcc_codes is not None else " (nvcc's list unknown)"
    if dropped:
        reason += f"; dropped (nvcc lacks them): {', '.join(_fmt(a) for a in dropped)}"
    if not ptx_ok:
        reason += f"; no PTX (nvcc has no compute_{wanted[-1][0]}{wanted[-1][1]})"
    return ";".join(names), reason


def torch_arch_flags() -> str | None:
    """The architectures the installed torch was built for, read without a GPU: ``torch.cuda.get_arch_list()``
    is empty on some versions when no device is present, ``torch._C._cuda_getArchFlags()`` never is. None for a
    CPU build of torch."""
    import torch

    if torch.version.cuda is None:
        return None
    getter = getattr(torch._C, "_cuda_getArchFlags", None)
    flags = getter() if getter is not None else None
    return flags or " ".join(torch.cuda.get_arch_list()) or None


def nvcc_gpu_targets(nvcc: str, option: str) -> list[str] | None:
    """``nvcc --list-gpu-code`` (real architectures, ``sm_XX``) or ``--list-gpu-arch`` (virtual, ``compute_XX``)
    as a list; None when nvcc is missing or too old to answer."""
    try:
        proc = subprocess.run([nvcc, option], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return None
    return proc.stdout.split() if proc.returncode == 0 and proc.stdout.strip() else None


def default_arch_list(nvcc: str, environ: Mapping[str, str]) -> tuple[str | None, str]:
    """``choose_arch_list`` on the installed torch, the toolkit's ``nvcc`` and ``environ``'s
    ``TORCH_CUDA_ARCH_LIST``."""
    user = environ.get("TORCH_CUDA_ARCH_LIST")
    if user and user.strip():
        return choose_arch_list(None, None, user_value=user)
    return choose_arch_list(
        torch_arch_flags(), nvcc_gpu_targets(nvcc, "--list-gpu-code"), nvcc_gpu_targets(nvcc, "--list-gpu-arch")
    )
