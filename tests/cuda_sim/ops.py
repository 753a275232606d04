"""rgprune's CUDA ops run by the SIMT simulator, with the signatures of ``rgprune.kernels.reference``.

``SimulatedOps`` binds ``tests/cuda_sim/ops_sim.cpp`` (the launch sequences of ``csrc/cuda/launch.cuh`` and the
kernels of ``csrc/cuda/kernels.cuh``, compiled as host C++ with ``simt.h``) through ctypes. Tensors are CPU
tensors; the kernels read and write them in place, as they would device memory. ``load()`` builds the library
when its build is missing or stale (``build.build_library``), so a fresh clone needs no extra step.
"""

from __future__ import annotations

import ctypes
from collections.abc import Sequence
from contextlib import contextmanager
from pathlib import Path

import torch

from rgprune.kernels.format import INFO_LEN, RADIX_BITS

from .build import build_library

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
DTYPE_CODES = {torch.float32: 0, torch.float16: 1, torch.bfloat16: 2, torch.float64: 3}
SCHEDULES = ("in-order", "reversed", "random:1", "warp-greedy")


class SimulationError(RuntimeError):
    """A launch the simulator refused: a broken CUDA rule (divergent barrier, warp mask, misalignment,
    deadlock) or a write past a scratch buffer. The message names the kernel."""


def _pointers(values, ctype):
    return (ctype * len(values))(*values)


class SimulatedOps:
    """The simulated CUDA ops of one built library (``load()`` caches one per source root)."""

    def __init__(self, path: Path):
        self.path = path
        self.lib = ctypes.CDLL(str(path))
        self.lib.rgp_sim_last_error.restype = ctypes.c_char_p
        self.lib.rgp_sim_context_switches.restype = ctypes.c_ulonglong
        self.lib.rgp_sim_configure.argtypes = [ctypes.c_int, ctypes.c_int64]
        self._state = torch.zeros(self.lib.rgp_sim_select_state_words(), dtype=torch.int64)
        self.configure()

    # ---- configuration ------------------------------------------------------------------------------
    def configure(self, schedule: str = "in-order", wave: int = 4, key_capacity: int = 0) -> None:
        """``schedule`` of the fibers (simt.h), blocks per full wave (the grid cap: grids are min(wave, chunks)),
        and the threshold's key buffer in keys (0: the default rule of launch.cuh)."""
        self._call("rgp_sim_set_schedule", schedule.encode())
        self.lib.rgp_sim_configure(wave, key_capacity)

    @contextmanager
    def configured(self, **settings):
        self.configure(**settings)
        try:
            yield self
        finally:
            self.configure()

    def context_switches(self) -> int:
        return int(self.lib.rgp_sim_context_switches())

    def _call(self, name: str, *args) -> None:
        if getattr(self.lib, name)(*args) != 0:
            raise SimulationError(self.lib.rgp_sim_last_error().decode())

    # ---- the ops ------------------------------------------------------------------------------------
    @staticmethod
    def _lists(tensors: Sequence[torch.Tensor], masks: Sequence[torch.Tensor]):
        for t, m in zip(tensors, masks):
            if t.device.type != "cpu" or not t.is_contiguous() or m.dtype != torch.int32 or not m.is_contiguous():
                raise ValueError("the simulator takes contiguous CPU tensors and contiguous int32 masks")
        n = len(tensors)
        return (
            ctypes.c_int(n),
            _pointers([t.data_ptr() for t in tensors], ctypes.c_void_p),
            _pointers([m.data_ptr() for m in masks], ctypes.c_void_p),
            _pointers([t.numel() for t in tensors], ctypes.c_int64),
        )

    @staticmethod
    def _stats_buffers(n: int, bits: int):
        out = (
            torch.zeros(1 << bits, dtype=torch.int64),
            torch.zeros(n, dtype=torch.int64),
            torch.zeros(n, dtype=torch.float64),
            torch.zeros(n, dtype=torch.float64),
            torch.zeros(n, dtype=torch.int64),
        )
        return out, [ctypes.c_void_p(t.data_ptr()) for t in out]

    def magnitude_histogram(self, tensors, masks, bits: int):
        out, ptrs = self._stats_buffers(len(tensors), bits)
        code = DTYPE_CODES[tensors[0].dtype]
        self._call("rgp_sim_magnitude_histogram", code, *self._lists(tensors, masks), bits, *ptrs)
        return out

    def radix_histogram(self, tensors, masks, prefix: int, prefix_bits: int, bits: int) -> torch.Tensor:
        hist = torch.zeros(1 << bits, dtype=torch.int64)
        code = DTYPE_CODES[tensors[0].dtype]
        args = (ctypes.c_int64(prefix), prefix_bits, bits, ctypes.c_void_p(hist.data_ptr()))
        self._call("rgp_sim_radix_histogram", code, *self._lists(tensors, masks), *args)
        return hist

    def global_magnitude_threshold(self, tensors, masks, k: int):
        info = torch.empty(INFO_LEN, dtype=torch.int64)
        top = torch.zeros(1 << RADIX_BITS, dtype=torch.int64)
        code, size = DTYPE_CODES[tensors[0].dtype], tensors[0].element_size()
        args = (size, ctypes.c_int64(k), *(ctypes.c_void_p(t.data_ptr()) for t in (info, top, self._state)))
        self._call("rgp_sim_global_magnitude_threshold", code, *self._lists(tensors, masks), *args)
        return info, top

    def last_select(self) -> dict:
        """What the last ``global_magnitude_threshold`` did: whether its last passes read the key buffer
        (``from_keys``) instead of the weights, and how many keys its second pass gathered."""
        state = self._state.tolist()
        return {
            "from_keys": bool(state[self.lib.rgp_sim_select_state_from_keys()]),
            "gathered": state[self.lib.rgp_sim_select_state_gathered()],
        }

    def apply_threshold_(self, tensors, masks, info: torch.Tensor, bits: int):
        out, ptrs = self._stats_buffers(len(tensors), bits)
        info = info.to(torch.int64).contiguous()
        code = DTYPE_CODES[tensors[0].dtype]
        args = (ctypes.c_void_p(info.data_ptr()), bits, *ptrs)
        self._call("rgp_sim_apply_threshold", code, *self._lists(tensors, masks), *args)
        return out

    def threshold_masks_(self, tensors, masks, info: torch.Tensor) -> None:
        info = info.to(torch.int64).contiguous()
        code = DTYPE_CODES[tensors[0].dtype]
        self._call("rgp_sim_threshold_masks", code, *self._lists(tensors, masks), ctypes.c_void_p(info.data_ptr()))

    def apply_masks_(self, tensors, masks) -> None:
        sizes = _pointers([t.element_size() for t in tensors], ctypes.c_int)
        self._call("rgp_sim_apply_masks", *self._lists(tensors, masks), sizes)

    def masks_where_one_(self, tensors, masks) -> None:
        """One launch sequence per dtype, as kernels_cuda.cu groups them."""
        for dtype in dict.fromkeys(t.dtype for t in tensors):
            group = [i for i, t in enumerate(tensors) if t.dtype == dtype]
            lists = self._lists([tensors[i] for i in group], [masks[i] for i in group])
            self._call("rgp_sim_masks_where_one", DTYPE_CODES[dtype], *lists)


_loaded: dict[Path, SimulatedOps] = {}


def load(root: Path = REPO) -> SimulatedOps:
    """The simulated ops built from ``root``'s csrc/ (default: this repository; a copy with a planted bug in the
    mutation tests), building the library first when it is missing or stale."""
    root = Path(root).resolve()
    if root not in _loaded:
        sources = [HERE / "ops_sim.cpp", HERE / "simt.cpp"]
        path = build_library("rgprune_cuda_sim", sources, include_dirs=[root / "csrc"], root=root)
        _loaded[root] = SimulatedOps(path)
    return _loaded[root]
