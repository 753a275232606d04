"""The result document: its schema, the machine it was measured on, and where it is written.

A result (schema ``rgprune-bench/1``) holds ``kind`` (cpu or gpu), ``device``, ``date``, ``started`` /
``finished``, ``quick``, ``command``, ``machine`` (``machine()``), ``settings``, ``copy_bandwidth``,
``models`` (per weight set: sizes, ``rounds``, ``memory``, ``trace``, ``training_step``, ``floor``),
``targets``, ``all_targets_met`` and ``errors``.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import subprocess
from pathlib import Path

import torch

import rgprune
from rgprune._io import atomic_write
from rgprune.kernels import extension

SCHEMA = "rgprune-bench/1"
PACKAGE_DIR = Path(rgprune.__file__).resolve().parent
SOURCE_ROOT = PACKAGE_DIR.parent  # the source tree when rgprune runs from a checkout


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def sha256(path: Path):
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


def cpu_kernel_sources_sha256(root: Path):
    """One hash of every source the CPU kernels are compiled from (csrc/rgprune.h, csrc/ops.cpp and
    csrc/cpu/*, by relative path and content), so a result can tell whether it was measured with the kernels in
    the tree; None outside a source tree."""
    csrc = root / "csrc"
    files = sorted([csrc / "rgprune.h", csrc / "ops.cpp", *(csrc / "cpu").glob("*")])
    if not (csrc / "cpu").is_dir() or not all(f.is_file() for f in files):
        return None
    digest = hashlib.sha256()
    for f in files:
        digest.update(f.relative_to(root).as_posix().encode() + b"\0" + f.read_bytes() + b"\0")
    return digest.hexdigest()


def git_head():
    """The source tree's commit, when rgprune runs from a git checkout (None for an installed package)."""
    if not (SOURCE_ROOT / ".git").exists():
        return None
    try:
        return (
            subprocess.run(
                ["git", "rev-parse", "HEAD"], cwd=SOURCE_ROOT, capture_output=True, text=True, timeout=10
            ).stdout.strip()
            or None
        )
    except (OSError, subprocess.SubprocessError):
        return None


def cpu_pressure():
    """Linux PSI: share of time some runnable task waited for a CPU (10 s / 60 s / 300 s averages, in %),
    a direct measure of how much other processes competed for the cores during the run."""
    try:
        with open("/proc/pressure/cpu") as f:
            line = f.readline()
        return {k: float(v) for k, v in re.findall(r"(avg\d+)=([\d.]+)", line)}
    except OSError:
        return None


def _gpu(device):
    if torch.device(device).type != "cuda":
        return None
    p = torch.cuda.get_device_properties(device)
    return {
        "name": p.name,
        "memory_bytes": p.total_memory,
        "capability": f"{p.major}.{p.minor}",
        "multiprocessors": p.multi_processor_count,
    }


def machine(device) -> dict:
    """The machine, software and build a result was measured with."""
    import psutil

    ext = next(iter(sorted(PACKAGE_DIR.glob("_C*.so"))), None)
    compiled = extension.module
    return {
        "cpu_model": cpu_model(),
        "logical_cores": os.cpu_count(),
        "physical_cores": psutil.cpu_count(logical=False),
        "cores_available": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "memory_bytes": psutil.virtual_memory().total,
        "load_average_at_start": list(os.getloadavg()),
        "cpu_pressure_at_start": cpu_pressure(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,
        "rgprune_version": rgprune.__version__,
        "rgprune_backend": rgprune.backend(),
        "git_head": git_head(),
        "extension_file": ext.name if ext else None,
        "extension_sha256": sha256(ext) if ext else None,
        "cpu_kernels_sources_sha256": cpu_kernel_sources_sha256(SOURCE_ROOT),
        # the build flags decide as much as the source (without -fopenmp the CPU kernels ran on one thread)
        "setup_py_sha256": sha256(SOURCE_ROOT / "setup.py"),
        "cpu_kernels_parallel": bool(getattr(compiled, "cpu_kernels_parallel", False)) if compiled else None,
        "gpu": _gpu(device),
    }


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "unknown"


def output_path(result: dict, out_dir: Path) -> Path:
    """``<out_dir>/<cpu|gpu>-<device slug>-<date>[-<N>thread][-quick].json``."""
    m = result["machine"]
    name = m["gpu"]["name"] if result["kind"] == "gpu" else m["cpu_model"]
    suffix = f"-{result['settings']['threads']}thread" if result["settings"].get("threads") else ""
    suffix += "-quick" if result["quick"] else ""
    return Path(out_dir) / f"{result['kind']}-{slug(name)}-{result['date']}{suffix}.json"


def write_result(result: dict, path) -> None:
    """Writes the result as JSON, atomically (a crash leaves the old file or the new one)."""
    text = json.dumps(result, indent=1) + "\n"

    def write(tmp):
        with open(tmp, "w") as f:
            f.write(text)

    atomic_write(path, write)
