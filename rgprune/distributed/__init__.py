"""Exact global magnitude pruning across ``torch.distributed`` ranks, for models sharded over processes.

Every rank holds its own local tensors (its shard of the model: an FSDP2 shard of every parameter, or
whole parameters of a pipeline stage). The threshold is the one that single-process pruning of all ranks'
tensors together would find, computed without ever moving a weight between ranks: histograms are
additive, so each pass of the radix select (``rgprune.global_magnitude_threshold``) becomes a local
histogram of the rank's survivors followed by one ``all_reduce`` (SUM) of that histogram; the select step
then runs on the reduced histogram, identically on every rank.

>>> import torch.distributed as dist, rgprune.distributed as rgd      # doctest: +SKIP
>>> dist.init_process_group("nccl")                                   # doctest: +SKIP
>>> result = rgd.prune_global_distributed_(local_weights, local_masks, k)  # doctest: +SKIP

Cost model (per threshold, independent of the model's size)
-----------------------------------------------------------
``passes x all_reduce of bins x 8 bytes`` (int64 counts): the first pass is the 2**12-bin histogram of the
top 12 key bits (32 KiB, plus a 7-int64 header per rank that carries the counts and the argument checks);
each refinement pass resolves up to 12 more bits on the bins of the boundary bin only. float32 keys (31
bits): 3 passes (12 + 12 + 7 bits: 32 + 32 + 1 KiB); float16/bfloat16 (15 bits): 2 passes (32 KiB + 64 B);
float64: 6 passes. When survivors equal to the threshold straddle ranks, one more ``all_gather`` of 8
bytes per rank (``tie_order="rank"``) or 8 bytes per tensor per rank (``tie_order="parameter"``) decides
which rank prunes which ties. Local work per pass is one read of the rank's weights (refinement passes
read fast: almost nothing matches a long prefix); applying the threshold is the usual 1 read + 1 write,
with no communication. Each pass costs one device-to-host copy of its histogram (the next pass's prefix
is a Python int).

Ties
----
Exactly ``k`` weights are pruned over all ranks. Survivors equal to the threshold are pruned in a global
order known to every rank without communication beyond the counts:

* ``tie_order="rank"`` (default): rank, then tensor index, then flat index -- the result equals
  single-process pruning of the concatenation of all ranks' tensor lists in rank order, bit for bit.
* ``tie_order="parameter"``: tensor index, then rank, then flat index; every rank passes the same number
  of tensors, tensor ``i`` of every rank being a shard of the same logical parameter, in rank order. For
  row shards (FSDP2's ``Shard(0)``) this is single-process model order: the result equals single-process
  pruning of the full (unsharded) parameters, bit for bit.

Failures
--------
Argument errors (NaN survivors, ``k`` out of range or different on different ranks, mismatched dtypes)
are decided after the first ``all_reduce``, so every rank raises the same ValueError/TypeError and none is
left waiting in a collective. A rank that crashes or never makes the call makes the others' collective
fail (at once when its connection closes, else after the process group's timeout, set by
``init_process_group(timeout=...)``); that surfaces as ``DistributedPruneError`` naming the step.

Modules: ``threshold`` (the distributed select and prune), ``comm`` (collectives, statistics, the
replication check), ``sharding`` (FSDP2 DTensor parameters).
"""

from rgprune.distributed.comm import (
    DistributedPruneError,
    all_reduce_stats,
    check_replicated,
    collective,
    resolve_group,
)
from rgprune.distributed.sharding import is_sharded, local_shard
from rgprune.distributed.threshold import (
    DistributedPruneResult,
    DistributedThreshold,
    global_magnitude_threshold_distributed,
    prune_global_distributed_,
)

__all__ = [
    "DistributedPruneError",
    "DistributedPruneResult",
    "DistributedThreshold",
    "all_reduce_stats",
    "check_replicated",
    "collective",
    "global_magnitude_threshold_distributed",
    "is_sharded",
    "local_shard",
    "prune_global_distributed_",
    "resolve_group",
]
