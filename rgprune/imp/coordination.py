"""IMP under torch.distributed: who decides, who writes, how the ranks stay one model.

``torchrun --nproc-per-node N python -m rgprune.cli imp ...`` (detected from an initialized default process
group, which ``rgprune imp`` creates from torchrun's environment): every rank trains the replicated model
(DistributedDataParallel: gradients averaged) on its own shard of the training data (each epoch's permutation
seeded from ``(seed, round, epoch)`` as in one process, then dealt out rank by rank:
``rgprune.imp.pipeline.EpochSampler``; ``batch_size`` is per rank), prunes it locally and identically
(``GlobalMagnitudePruner(process_group=...)`` checks k and the counts; ``check_replicated_state`` compares a
hash of the masks and weights over the ranks every round) and evaluates it on the whole test set (the same
result everywhere). Rank 0 alone writes the run directory, which the other ranks must see too (a resume reads
the completed rounds on every rank); all ranks wait for each other after each round (``barrier``). Rank 0
decides the resume point (and checks the config and the inputs) and broadcasts it (``rank0_prepares``).
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator

import torch

from rgprune.imp.config import ConfigError

__all__ = ["barrier", "broadcast_buffers", "check_replicated_state", "distributed", "rank0_prepares", "wrap_ddp"]


def distributed() -> tuple[int, int] | None:
    """(rank, world size) when the default torch.distributed process group is initialized, else None."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return None


def barrier() -> None:
    """Wait for every rank of the default process group."""
    import torch.distributed as dist

    dist.barrier()


def wrap_ddp(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """``model`` in DistributedDataParallel (gradients averaged over the ranks), for one training."""
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)


def broadcast_buffers(model: torch.nn.Module) -> None:
    """Give every rank rank 0's buffers. DDP broadcasts them before each forward, but the last forward of a
    training then updated each rank's BatchNorm statistics from its own batch: after training, this makes
    the ranks hold one model again."""
    import torch.distributed as dist

    with torch.no_grad():
        for buffer in model.buffers():
            dist.broadcast(buffer, 0)


def check_replicated_state(model: torch.nn.Module, pruner, what: str) -> None:
    """Raise on every rank unless all ranks hold the same masks and weights (one all_gather of two hashes)."""
    from rgprune.distributed import check_replicated

    masks, weights = hashlib.sha256(), hashlib.sha256()
    for word in pruner.masks.words:
        masks.update(word.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    for name, value in model.state_dict().items():
        weights.update(name.encode())
        weights.update(value.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    ints = [int.from_bytes(h.digest()[:8], "little") & ((1 << 63) - 1) for h in (masks, weights)]
    check_replicated(
        ints, f"the hashes of the masks and weights after training ({what})", "default", pruner.masks.words[0].device
    )


@contextlib.contextmanager
def rank0_prepares(run_dir, config, inputs, rank: int, device: torch.device) -> Iterator[int]:
    """Rank 0 locks ``run_dir`` for the block, prepares it for ``config`` and ``inputs`` (``RunDir.prepare``: checks
    or writes config.json and inputs.json, finds the last complete round, cleans up after it) and broadcasts that
    round, which
    every rank gets from the block. An error there reaches every rank, so none is left waiting in a
    collective: a ``ConfigError`` is raised on every rank alike; any other error as it is on rank 0, and as
    a RuntimeError naming it on the others."""
    import torch.distributed as dist

    with contextlib.ExitStack() as stack:
        decision: list = [None]
        error: BaseException | None = None
        if rank == 0:
            try:
                stack.enter_context(run_dir.lock())
                decision = [("ok", run_dir.prepare(config, inputs))]
            except ConfigError as exc:
                error, decision = exc, [("config", str(exc))]
            except Exception as exc:
                error, decision = exc, [("error", f"{type(exc).__name__}: {exc}")]
        dist.broadcast_object_list(decision, src=0, device=device if device.type == "cuda" else None)
        status, value = decision[0]
        if error is not None:
            raise error
        if status == "config":
            raise ConfigError(f"rank 0: {value}")
        if status == "error":
            raise RuntimeError(f"rank 0 could not prepare the run directory {run_dir.path}: {value}")
        yield value
