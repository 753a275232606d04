"""MaskSet: bit-packed pruning masks for an ordered list of tensors (1 bit per weight).

32x smaller than torch.nn.utils.prune's float masks. Converts to and from bool tensors and to and from
torch.nn.utils.prune's ``<name>_orig`` / ``<name>_mask`` reparametrization.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence

import numpy as np
import torch

from rgprune._io import atomic_write
from rgprune.kernels.format import mask_words, pack_mask, unpack_mask

# popcount of every byte value: counting survivors without unpacking the masks
_POPCOUNT_BYTE = torch.tensor([bin(i).count("1") for i in range(256)], dtype=torch.int64)
_INTEGER_DTYPES = (torch.int32, torch.int64, torch.int16, torch.int8, torch.uint8)
_UNSIGNED = {
    torch.int32: np.uint32,
    torch.int64: np.uint64,
    torch.int16: np.uint16,
    torch.int8: np.uint8,
    torch.uint8: np.uint8,
}


def popcount(words: torch.Tensor) -> int:
    """Number of set bits in bit-packed mask words (an integer tensor): the survivors they mark."""
    if not isinstance(words, torch.Tensor) or words.dtype not in _INTEGER_DTYPES:
        raise TypeError(
            f"popcount needs an integer tensor of mask words (e.g. MaskSet.words[i]), got "
            f"{getattr(words, 'dtype', type(words).__name__)}"
        )
    if not words.numel():
        return 0
    if words.device.type == "cpu" and words.is_contiguous():
        # the CPU's popcount instruction, through numpy (>= 2.0) on unsigned words: numpy counts the bits of a
        # signed integer's absolute value, which for a negative word is not the word's bits
        return int(np.bitwise_count(words.numpy().view(_UNSIGNED[words.dtype])).sum(dtype=np.int64))
    # how many bytes take each of the 256 values, times that value's popcount: one pass, no 8-byte temporaries
    octets = torch.bincount(words.contiguous().view(torch.uint8), minlength=256)
    return int((octets * _POPCOUNT_BYTE.to(words.device)).sum())


class MaskSet:
    """Bit-packed masks, one per tensor, in model order.

    ``words[i]`` is a 1-D int32 tensor of ``ceil(numel_i / 32)`` words; bit j of word w is the weight at flat
    index ``32 * w + j`` (1 = surviving). ``names[i]`` and ``shapes[i]`` describe the tensor it masks.

    >>> import torch
    >>> masks = MaskSet.from_bool([torch.tensor([True, False, True])], names=["w"])
    >>> masks.density(), masks.to_bool()[0].tolist()
    (0.6666666666666666, [True, False, True])
    """

    def __init__(
        self, words: Sequence[torch.Tensor], shapes: Sequence[Iterable[int]], names: Sequence[str] | None = None
    ):
        words, shapes = list(words), [torch.Size(s) for s in shapes]
        names = list(names) if names is not None else [str(i) for i in range(len(words))]
        if not (len(words) == len(shapes) == len(names)):
            raise ValueError(
                f"MaskSet needs as many shapes and names as mask tensors, got {len(words)} masks, "
                f"{len(shapes)} shapes and {len(names)} names"
            )
        if len(set(names)) != len(names):
            raise ValueError("MaskSet names must be unique")
        for name, w, s in zip(names, words, shapes):
            expected = mask_words(s.numel())
            if not isinstance(w, torch.Tensor) or w.dtype != torch.int32 or w.dim() != 1 or w.numel() != expected:
                raise ValueError(
                    f"mask {name!r} must be a 1-D int32 tensor of {expected} words for shape "
                    f"{tuple(s)}, got {getattr(w, 'dtype', type(w))} {tuple(getattr(w, 'shape', ()))}"
                )
        self.words = [w.contiguous() for w in words]
        self.shapes = shapes
        self.names = names

    # ---- construction -----------------------------------------------------------------------------
    @classmethod
    def ones(cls, tensors: Sequence[torch.Tensor], names: Sequence[str] | None = None) -> MaskSet:
        """All weights surviving, on the tensors' devices."""
        words = []
        for t in tensors:
            w = torch.full((mask_words(t.numel()),), -1, dtype=torch.int32, device=t.device)
            tail = t.numel() % 32
            if tail:
                w[-1] = pack_mask(torch.ones(tail, dtype=torch.bool))[0]
            words.append(w)
        return cls(words, [t.shape for t in tensors], names)

    @classmethod
    def from_bool(cls, keep: Sequence[torch.Tensor], names: Sequence[str] | None = None) -> MaskSet:
        """From bool (or 0/1) tensors: True/1 = surviving."""
        for i, k in enumerate(keep):
            if k.dtype != torch.bool and not bool(((k == 0) | (k == 1)).all()):
                raise ValueError(f"mask {i} must be bool or hold only 0 and 1")
        return cls([pack_mask(k != 0) for k in keep], [k.shape for k in keep], names)

    @classmethod
    def from_nonzero(cls, tensors: Sequence[torch.Tensor], names: Sequence[str] | None = None) -> MaskSet:
        """Masks that keep exactly the nonzero entries of ``tensors`` (NaN counts as nonzero), e.g. to adopt a
        model that was pruned elsewhere. One tensor's bool temporary at a time, in logical order."""
        return cls([pack_mask(t.detach() != 0) for t in tensors], [t.shape for t in tensors], names)

    # ---- views --------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.words)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.words[i]

    def __iter__(self):
        return iter(self.words)

    def to_bool(self) -> list[torch.Tensor]:
        """Unpacked bool masks, shaped like the tensors."""
        return [unpack_mask(w, s.numel()).reshape(s) for w, s in zip(self.words, self.shapes)]

    def numels(self) -> list[int]:
        return [s.numel() for s in self.shapes]

    def survivor_counts(self) -> list[int]:
        return [popcount(w) for w in self.words]

    def density(self) -> float:
        """Fraction of weights surviving over all tensors."""
        total = sum(self.numels())
        return sum(self.survivor_counts()) / total if total else 1.0

    def layer_densities(self) -> dict[str, float]:
        return {
            n: (c / s.numel() if s.numel() else 1.0) for n, c, s in zip(self.names, self.survivor_counts(), self.shapes)
        }

    @property
    def nbytes(self) -> int:
        """Bytes used by the packed masks."""
        return sum(w.numel() * 4 for w in self.words)

    def to(self, device) -> MaskSet:
        return MaskSet([w.to(device) for w in self.words], self.shapes, self.names)

    def clone(self) -> MaskSet:
        return MaskSet([w.clone() for w in self.words], self.shapes, self.names)

    def __eq__(self, other) -> bool:
        return (
            isinstance(other, MaskSet)
            and self.names == other.names
            and self.shapes == other.shapes
            and all(torch.equal(a.cpu(), b.cpu()) for a, b in zip(self.words, other.words))
        )

    def __repr__(self) -> str:
        return f"MaskSet({len(self)} tensors, density={self.density():.4f}, {self.nbytes} bytes)"

    # ---- persistence --------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {
            "names": list(self.names),
            "shapes": [list(s) for s in self.shapes],
            "words": [w.detach().cpu() for w in self.words],
        }

    @classmethod
    def from_state_dict(cls, state: dict) -> MaskSet:
        try:
            return cls(state["words"], state["shapes"], state["names"])
        except KeyError as exc:
            raise ValueError(f"not a MaskSet state dict: missing {exc}") from None

    def save(self, path: str | os.PathLike) -> None:
        """Write to a safetensors file atomically (temp file in the same folder, then rename)."""
        from safetensors.torch import save_file

        tensors = {f"mask.{i}": w.detach().cpu() for i, w in enumerate(self.words)}
        meta = {
            "rgprune": "MaskSet",
            "names": json.dumps(self.names),
            "shapes": json.dumps([list(s) for s in self.shapes]),
        }
        atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata=meta))

    @classmethod
    def load(cls, path: str | os.PathLike, device="cpu") -> MaskSet:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt", device=str(device)) as f:
            meta = f.metadata() or {}
            if meta.get("rgprune") != "MaskSet":
                raise ValueError(f"{path} is not a MaskSet file written by MaskSet.save")
            names, shapes = json.loads(meta["names"]), json.loads(meta["shapes"])
            words = [f.get_tensor(f"mask.{i}") for i in range(len(names))]
        return cls(words, shapes, names)

    # ---- torch.nn.utils.prune interop ---------------------------------------------------------------
    def to_torch_prune(self, parameters: Sequence[tuple[torch.nn.Module, str]]) -> None:
        """Install these masks with torch.nn.utils.prune (``<name>_orig`` + ``<name>_mask`` + hook).

        ``parameters`` are (module, name) pairs in the MaskSet's order, as for ``global_unstructured``.
        """
        import torch.nn.utils.prune as tprune

        parameters = list(parameters)
        if len(parameters) != len(self):
            raise ValueError(f"got {len(parameters)} (module, name) pairs for {len(self)} masks")
        for (module, name), keep in zip(parameters, self.to_bool()):
            param = getattr(module, name)
            if param.shape != keep.shape:
                raise ValueError(f"mask of shape {tuple(keep.shape)} does not fit {name} of shape {tuple(param.shape)}")
            tprune.custom_from_mask(module, name, mask=keep.to(param.device))

    @classmethod
    def from_torch_prune(
        cls, parameters: Sequence[tuple[torch.nn.Module, str]], names: Sequence[str] | None = None
    ) -> MaskSet:
        """Read torch.nn.utils.prune's ``<name>_mask`` buffers (all ones for an unpruned parameter)."""
        keep = []
        for module, name in parameters:
            mask = getattr(module, name + "_mask", None)
            keep.append(mask != 0 if mask is not None else torch.ones_like(getattr(module, name), dtype=torch.bool))
        return cls.from_bool(keep, names)
