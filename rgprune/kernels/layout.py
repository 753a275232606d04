"""Memory layouts: how the kernels, which walk a tensor's storage front to back, prune dense tensors that
are not contiguous (``channels_last``, ``channels_last_3d``, a transposed weight, any permuted layout).

A tensor is *dense* when its elements fill a block of storage without gaps or overlaps: some permutation
``perm`` of its dimensions makes ``t.permute(perm)`` contiguous (its *storage view*, the same memory).
The kernels prune that view in place. The masks and the tie order stay in the tensor's *logical* order,
the flat index of ``t.contiguous().view(-1)`` (row-major over ``t.shape``), whatever the layout, so a
channels_last model gets bit for bit the masks of the same model in the contiguous layout. Masks are
converted between the two orders one tensor at a time (temporaries of a few bytes per weight).
Overlapping tensors (``expand``, stride 0) and tensors with gaps (``x[:, ::2]``) have no storage view and
are refused: in-place pruning would write some weights twice or skip memory it does not own.
"""

from __future__ import annotations

import torch

from rgprune.kernels.format import pack_mask, unpack_mask


def storage_permutation(t: torch.Tensor) -> tuple[int, ...] | None:
    """``None`` for a contiguous tensor; else the dimension order ``perm`` with ``t.permute(perm)``
    contiguous (outermost storage dimension first). Raises ValueError when ``t`` is not dense."""
    if t.is_contiguous():
        return None
    strides = t.stride()
    # stable sort: dims of equal stride (only size-1 dims, in a dense tensor) keep their logical order
    perm = tuple(sorted(range(t.dim()), key=lambda d: -strides[d]))
    if not t.permute(perm).is_contiguous():
        raise ValueError(
            f"a tensor of shape {tuple(t.shape)} with strides {strides} is not dense: its elements "
            f"overlap (e.g. expand) or leave gaps (e.g. a strided slice) in storage, so it cannot be "
            f"pruned in place; pass a dense tensor (e.g. t.contiguous(), and copy the result back)"
        )
    return perm


def storage_view(t: torch.Tensor, perm: tuple[int, ...] | None) -> torch.Tensor:
    """The contiguous view of ``t``'s memory in storage order (``t`` itself when ``perm`` is None)."""
    return t if perm is None else t.permute(perm)


def to_storage_order(words: torch.Tensor, shape: torch.Size, perm: tuple[int, ...] | None) -> torch.Tensor:
    """Mask words in logical order of a tensor of ``shape`` -> new words in the storage order ``perm``."""
    if perm is None:
        return words
    keep = unpack_mask(words, shape.numel()).reshape(shape)
    return pack_mask(keep.permute(perm))


def to_logical_order(words: torch.Tensor, shape: torch.Size, perm: tuple[int, ...] | None) -> torch.Tensor:
    """Inverse of ``to_storage_order``: mask words in storage order ``perm`` -> new words in logical order."""
    if perm is None:
        return words
    stored = unpack_mask(words, shape.numel()).reshape([shape[d] for d in perm])
    inverse = sorted(range(len(perm)), key=perm.__getitem__)
    return pack_mask(stored.permute(inverse))


class StorageMaskCache:
    """Masks converted to the storage order of the tensors they mask, kept while the masks do not change:
    re-applying masks after every optimizer step then costs no conversion. The owner passes a
    ``generation`` that changes whenever its masks change; a new generation drops every cached entry."""

    def __init__(self):
        self._generation = None
        self._words: dict = {}

    def storage_order(self, tensors, masks, generation) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Storage views of ``tensors`` and their masks in storage order (the given mask where contiguous)."""
        if generation != self._generation:
            self._generation, self._words = generation, {}
        views, words = [], []
        for t, m in zip(tensors, masks):
            perm = storage_permutation(t)
            if perm is None:
                views.append(t)
                words.append(m)
                continue
            key = (id(m), perm, t.shape)
            if key not in self._words:  # the entry holds ``m``: its id cannot be reused while cached
                self._words[key] = (m, to_storage_order(m, t.shape, perm))
            views.append(t.permute(perm))
            words.append(self._words[key][1])
        return views, words
