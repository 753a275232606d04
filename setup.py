"""Builds rgprune._C: the C++ CPU kernels always, the CUDA kernels when nvcc and a CUDA build of torch exist.

RGPRUNE_CUDA=0 / RGPRUNE_CUDA=1 forces the CUDA part off / on. TORCH_CUDA_ARCH_LIST defaults to the
architectures the installed torch was built for that the installed nvcc can compile, + PTX on the newest
(build_support/cuda_arch.py says why); setting it chooses others (e.g. TORCH_CUDA_ARCH_LIST=9.0 for one GPU
kind: the shortest build).
"""

import os
import re
import shutil
import sys
from pathlib import Path

from setuptools import setup

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))  # build_support/: pip runs this file from elsewhere

from build_support.cuda_arch import default_arch_list  # noqa: E402


def find_cuda_home():
    """The CUDA toolkit root, derived from the nvcc on PATH.

    The nvcc found on PATH may be a small wrapper script (``exec /real/toolkit/bin/nvcc "$@"``); torch
    would then guess the toolkit root from the wrapper's location and fail to link libcudart. Follow
    symlinks and wrapper scripts to the real binary, whose parent's parent is the toolkit root.
    """
    if os.environ.get("CUDA_HOME") or os.environ.get("CUDA_PATH"):
        return os.environ.get("CUDA_HOME") or os.environ.get("CUDA_PATH")
    nvcc = shutil.which("nvcc")
    for _ in range(5):  # wrappers may wrap wrappers; stop after a few hops
        if nvcc is None:
            return None
        nvcc = os.path.realpath(nvcc)
        with open(nvcc, "rb") as f:
            head = f.read(4096)
        if not head.startswith(b"#!"):
            root = Path(nvcc).parent.parent
            return str(root) if (root / "include" / "cuda_runtime.h").exists() else None
        targets = re.findall(rb"(/[^\s\"']+/bin/nvcc)\b", head)
        nvcc = next((t.decode() for t in targets if os.path.exists(t.decode()) and t.decode() != nvcc), None)
    return None


def want_cuda(cuda_home):
    forced = os.environ.get("RGPRUNE_CUDA")
    if forced is not None and forced not in ("0", "1"):
        sys.exit(f"RGPRUNE_CUDA must be 0 or 1, got {forced!r}")
    import torch

    available = cuda_home is not None and torch.version.cuda is not None
    if forced == "1" and not available:
        sys.exit(
            "RGPRUNE_CUDA=1 but no CUDA toolkit (nvcc) or no CUDA build of torch was found; "
            "set CUDA_HOME to the toolkit root or install a CUDA build of torch"
        )
    return available if forced is None else forced == "1"


cuda_home = find_cuda_home()
if cuda_home:
    os.environ["CUDA_HOME"] = cuda_home  # must be set before torch.utils.cpp_extension is imported

from torch.utils.cpp_extension import BuildExtension, CppExtension, CUDAExtension  # noqa: E402

sources = ["csrc/ops.cpp"] + sorted(str(p.relative_to(ROOT)) for p in (ROOT / "csrc" / "cpu").glob("*.cpp"))
cxx_flags = ["-O3"]  # the C++ standard is chosen by torch (C++17 or C++20 by version)
link_flags = []
if sys.platform.startswith("linux"):
    # at::parallel_for is a header template: without -fopenmp in *our* translation units it compiles to a
    # serial loop, whatever torch.get_num_threads() says (the CPU kernels ran on one thread until this flag).
    # The OpenMP runtime is the libgomp.so.1 that libtorch_cpu has already loaded, so there is one pool.
    cxx_flags.append("-fopenmp")
    link_flags.append("-fopenmp")
if want_cuda(cuda_home):
    if os.environ.get("RGPRUNE_SKIP_EXT") != "1":  # (else nothing is compiled)
        arch_list, why = default_arch_list(os.path.join(cuda_home, "bin", "nvcc"), os.environ)
        if arch_list is not None:
            os.environ["TORCH_CUDA_ARCH_LIST"] = arch_list  # torch reads it when it compiles
        print(f"rgprune: CUDA kernels for TORCH_CUDA_ARCH_LIST={arch_list or '(torch default)'}: {why}")
    sources += sorted(str(p.relative_to(ROOT)) for p in (ROOT / "csrc" / "cuda").glob("*.cu"))
    ext = CUDAExtension(
        "rgprune._C",
        sources,
        # --threads: nvcc compiles the architectures of the list in parallel (the long pole of a clean build)
        extra_compile_args={"cxx": cxx_flags + ["-DRGPRUNE_WITH_CUDA"], "nvcc": ["-O3", "-lineinfo", "--threads=2"]},
        extra_link_args=link_flags,
    )
else:
    ext = CppExtension("rgprune._C", sources, extra_compile_args={"cxx": cxx_flags}, extra_link_args=link_flags)

# RGPRUNE_SKIP_EXT=1: install the Python package only (the Makefile builds the extension in place, with
# ninja, so that rebuilds are incremental).
setup(
    ext_modules=[] if os.environ.get("RGPRUNE_SKIP_EXT") == "1" else [ext],
    cmdclass={"build_ext": BuildExtension.with_options(use_ninja=True)},
)
