"""The names the benchmark needs from parts of rgprune that are being renamed.

Every import of a name that is private today or moving to another module is here, so that one edit switches
the benchmark to the public names once they exist. TODO(merge):

* ``rgprune._ops`` becomes ``rgprune.ops`` (the extension handle moves to the kernels' extension loader);
* ``rgprune.masks._popcount`` becomes public (``popcount``);
* ``pack_mask`` / ``unpack_mask`` move from ``rgprune.kernels.reference`` to ``rgprune.kernels.format``;
* ``GlobalMagnitudePruner._masked_state`` (what ``attach`` re-masks after a step) needs a public name.
"""
from __future__ import annotations

from rgprune import _ops  # TODO(merge): rgprune.ops / the kernels' extension loader
from rgprune.kernels.reference import pack_mask, unpack_mask  # TODO(merge): rgprune.kernels.format
from rgprune.masks import _popcount as popcount  # TODO(merge): rgprune.masks.popcount

__all__ = ["extension", "masked_state", "pack_mask", "popcount", "unpack_mask"]


def extension():
    """The compiled extension module, or None when rgprune runs on its pure-PyTorch reference."""
    return _ops._C


def masked_state(pruner, optimizer) -> tuple[list, list]:
    """The tensors ``pruner.attach(optimizer)`` re-masks after each step (weights and the optimizer state
    shaped like them) and their masks."""
    return pruner._masked_state(optimizer)  # TODO(merge): the public name
