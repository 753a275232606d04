"""Parameters sharded over ranks (FSDP2's ``fully_shard``: DTensor parameters): telling a sharded model from a
replicated one, and reaching the local shard that a rank prunes in place."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.distributed as dist


def local_shard(param: torch.Tensor) -> torch.Tensor:
    """This rank's part of a parameter: the local shard of a DTensor (FSDP2), else the tensor itself; always
    a detached tensor sharing the parameter's storage, so that in-place pruning reaches the real weights."""
    data = param.data if isinstance(param, torch.nn.Parameter) else param.detach()
    dtensor = _dtensor_type()
    if dtensor and isinstance(data, dtensor):
        data = data.to_local()
    if not data.is_contiguous():
        raise ValueError(
            f"the local shard of a parameter of shape {tuple(param.shape)} is not contiguous "
            f"(strides {data.stride()}); in-place pruning needs contiguous storage (FSDP2's "
            f"Shard(0) shards are)"
        )
    return data


def _dtensor_type():
    try:
        from torch.distributed.tensor import DTensor
    except ImportError:  # torch without DTensor
        return ()
    return DTensor


def is_sharded(params: Sequence[torch.Tensor], group) -> bool:
    """True when ``params`` are DTensors sharded over the process group ``group`` (FSDP2's
    ``fully_shard``): each rank then prunes its local shards with the global threshold. False for ordinary
    tensors (a replicated model, e.g. under DDP: every rank prunes its full copy alike). Raises for mixes,
    for DTensors without a group (``group=None``: one process), and for placements whose shards do not
    span exactly ``group`` (for HSDP pass the shard dimension's group)."""
    dtensor = _dtensor_type()
    flags = [isinstance(p, dtensor) for p in params] if dtensor else [False] * len(params)
    if not any(flags):
        return False
    if not all(flags):
        raise ValueError(
            "some selected parameters are DTensors (FSDP2 fully_shard) and some are not; shard all "
            "of them or select one group with include="
        )
    if group is None:
        raise ValueError(
            "the parameters are sharded DTensors (FSDP2 fully_shard): pass process_group='default' "
            "(or the process group that spans the shards) to prune them with a global threshold"
        )
    world = dist.get_world_size(group)
    for p in params:
        if any(pl.is_partial() for pl in p.placements):
            raise ValueError(f"a parameter has placements {p.placements}: Partial placements cannot be pruned")
        shards = 1
        for dim, pl in enumerate(p.placements):
            if pl.is_shard():
                shards *= p.device_mesh.size(dim)
        if shards != world:
            raise ValueError(
                f"a parameter with placements {p.placements} on a mesh of shape "
                f"{tuple(p.device_mesh.shape)} is split into {shards} shards but the process group "
                f"has {world} ranks: pass the group that spans the shards (for HSDP, the shard "
                f"dimension's group, e.g. mesh.get_group('shard'))"
            )
    return True
