"""Builds shared libraries of CUDA device code for the SIMT simulator (``simt.h`` / ``simt.cpp``).

``build_library`` compiles C++ sources with g++ as host code, with the simulator's prelude force-included,
and links them with the runtime into ``build/cuda_sim/<name>-<hash>.so``. The hash covers everything the
build depends on (sources, every header under ``csrc/`` and ``tests/cuda_sim/``, flags, compiler version, this
file), so an edit anywhere rebuilds on the next call and a fresh clone builds on first use; an unchanged build
is found on disk and reused.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

SIM_DIR = Path(__file__).resolve().parent
REPO_ROOT = SIM_DIR.parent.parent
PRELUDE = SIM_DIR / "simt.h"
RUNTIME = SIM_DIR / "simt.cpp"
DEFAULT_OUT_DIR = REPO_ROOT / "build" / "cuda_sim"
COMPILER = "g++"

# -U_FORTIFY_SOURCE: glibc's checked longjmp rejects the runtime's jumps between fiber stacks.
# -fno-gnu-unique: template statics (__shared__ variables of kernel templates) stay private to each library,
# so two simulator libraries loaded into one process never share shared memory or runtime state.
BASE_FLAGS = ("-std=c++17", "-O2", "-fPIC", "-pthread", "-U_FORTIFY_SOURCE", "-fno-gnu-unique")
HASHED_SUFFIXES = {".h", ".hpp", ".cuh", ".c", ".cc", ".cpp", ".cu"}
_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")


class BuildError(RuntimeError):
    """g++ failed; the message holds the command and the compiler's output."""


@functools.cache
def _compiler_version(compiler: str) -> str:
    try:
        done = subprocess.run([compiler, "--version"], capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError) as e:
        raise BuildError(f"cannot run the C++ compiler {compiler!r}: {e}") from e
    return done.stdout


def _tree_files(directory: Path) -> list[Path]:
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.rglob("*") if p.suffix in HASHED_SUFFIXES and p.is_file())


def _build_hash(sources: list[Path], header_dirs: list[Path], flags: list[str], compiler: str) -> str:
    digest = hashlib.sha256()

    def add(label: str, data: bytes) -> None:
        digest.update(f"{label}\0{len(data)}\0".encode())
        digest.update(data)

    add("compiler", _compiler_version(compiler).encode())
    add("flags", "\0".join(flags).encode())
    add("build.py", Path(__file__).read_bytes())
    for source in sources:
        add(f"source {source}", source.read_bytes())
    for directory in header_dirs:
        for path in _tree_files(directory):
            add(f"tree {directory} {path.relative_to(directory)}", path.read_bytes())
    return digest.hexdigest()[:20]


def _run(command: list[str], what: str) -> None:
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise BuildError(f"{what} failed (exit {done.returncode}):\n$ {' '.join(command)}\n{done.stdout}{done.stderr}")


def _compile_and_link(compiler: str, sources: list[Path], flags: list[str], extra_flags: list[str], target: Path):
    """Compiles the sources in parallel, links them into a temporary file next to ``target`` and renames it
    into place (atomic: a concurrent build or load never sees a partial library)."""
    work = Path(tempfile.mkdtemp(prefix=f".{target.stem}-", dir=target.parent))
    try:
        objects = [work / f"{i}-{source.stem}.o" for i, source in enumerate(sources)]
        commands = [[compiler, *flags, "-c", str(s), "-o", str(o)] for s, o in zip(sources, objects)]
        with ThreadPoolExecutor(max_workers=max(1, min(len(commands), os.cpu_count() or 1))) as pool:
            list(pool.map(lambda c: _run(c, f"compiling {c[-3]}"), commands))
        linked = work / target.name
        _run([compiler, "-shared", "-pthread", *extra_flags, *map(str, objects), "-o", str(linked)], "linking")
        os.replace(linked, target)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def build_library(
    name: str,
    sources: Iterable[str | Path],
    *,
    include_dirs: Iterable[str | Path] = (),
    defines: Iterable[str] = (),
    extra_flags: Iterable[str] = (),
    root: str | Path | None = None,
    out_dir: str | Path | None = None,
    runtime: bool = True,
) -> Path:
    """Builds (or finds up to date) the simulator library ``name`` and returns its path.

    ``sources``: C++ files (relative paths are relative to the repository root), compiled with
    ``-std=c++17 -O2 -fPIC``, ``-include tests/cuda_sim/simt.h``, ``-I <root>/csrc -I <root>``, the given
    ``include_dirs`` (``-I``), ``defines`` (``-D``, e.g. ``"NAME=1"``) and ``extra_flags`` (also passed to the
    link). ``runtime``: link ``simt.cpp`` too (once, also when listed in ``sources``). ``root``: where ``csrc/``
    is looked up (default: this repository; a copy with a planted bug in mutation tests). ``out_dir``: where the
    library goes (default ``build/cuda_sim/`` under the repository root). Headers in ``include_dirs`` outside
    ``csrc/`` and ``tests/cuda_sim/`` are not hashed. Raises ``BuildError`` with g++'s output on failure.
    """
    if not _NAME.match(name):
        raise ValueError(f"library name {name!r}: use letters, digits, '_', '.', '-'")
    root = Path(root).resolve() if root is not None else REPO_ROOT
    out = Path(out_dir).resolve() if out_dir is not None else DEFAULT_OUT_DIR
    files = [(REPO_ROOT / s).resolve() for s in sources]  # absolute paths stay as they are
    if runtime and RUNTIME not in files:
        files.append(RUNTIME)
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise BuildError(f"missing source files: {', '.join(missing)}")

    flags = [*BASE_FLAGS, "-include", str(PRELUDE), "-I", str(root / "csrc"), "-I", str(root)]
    flags += [f"-I{Path(d).resolve()}" for d in include_dirs]
    flags += [f"-D{d}" for d in defines]
    extra = list(extra_flags)
    flags += extra
    target = out / f"{name}-{_build_hash(files, [root / 'csrc', SIM_DIR], flags, COMPILER)}.so"
    if not target.exists():
        out.mkdir(parents=True, exist_ok=True)
        _compile_and_link(COMPILER, files, flags, extra, target)
    return target
