"""The input pipeline of an IMP run: how batches reach the model, chosen per device, seeded and resumable.

``resolve_pipeline`` turns the config's pipeline fields (None: the device's default) into a ``Pipeline``:

=====================  ====================================  ==========================================
setting                CPU default                           CUDA default
=====================  ====================================  ==========================================
``num_workers``        0: the training itself uses every     up to 8 per GPU (the CPUs shared among the
                       core; workers would compete with it   node's ranks), so decoding keeps up
``persistent_workers`` on when there are workers             on when there are workers
``pin_memory``         off (nothing to copy to)              on: batches copied without blocking
``channels_last``      off                                   on for vision tasks (every vision model
                                                             starts with a convolution)
``amp_dtype``          bfloat16 (with ``amp``)               float16 + gradient scaler (with ``amp``)
``compile``            as configured                         as configured
=====================  ====================================  ==========================================

Determinism. Each epoch, ``EpochSampler`` draws from its own generator (reseeded by ``train_epochs`` from
``(seed, round, epoch)``) first a base seed, then the permutation: the very draws ``DataLoader(shuffle=True,
generator=g)`` made in the runs before this module existed, so those runs resume onto the same data order. It
hands out ``(index, base + index)``; ``SeededItems`` reads item ``index`` with torch's RNG seeded by the second
number, in whichever process reads it, and leaves the reading process's RNG as it was. So the data order and
every augmentation draw are the same for any ``num_workers`` (persistent or not), and for a run resumed at any
round; the DataLoader's own generator only seeds its workers, which draw nothing that matters.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from rgprune.train import amp_dtype

__all__ = [
    "CUDA_WORKERS",
    "EVAL_BATCH",
    "EpochSampler",
    "Pipeline",
    "SeededItems",
    "eval_loader",
    "resolve_pipeline",
    "train_loader",
]

#: DataLoader workers per GPU by default (fewer when the CPUs do not allow)
CUDA_WORKERS = 8
#: the smallest evaluation batch (the training batch size when that is larger)
EVAL_BATCH = 256
_SEED_SPACE = 1 << 63


@dataclass(frozen=True)
class Pipeline:
    """The resolved input pipeline of a run (see the module docstring)."""

    num_workers: int
    persistent_workers: bool
    pin_memory: bool
    channels_last: bool
    amp_dtype: torch.dtype | None
    compile: bool


def resolve_pipeline(
    config, device: torch.device, task_kind: str, *, cpu_count: int | None = None, local_ranks: int | None = None
) -> Pipeline:
    """The pipeline of ``config`` on ``device`` for a task of ``task_kind``: each field that is None in the config
    takes the device's default (module docstring). ``cpu_count`` (default ``os.cpu_count()``) and ``local_ranks``
    (processes sharing this machine's CPUs; default torchrun's ``LOCAL_WORLD_SIZE``, else 1) size the CUDA
    default of ``num_workers``."""
    device = torch.device(device)
    if device.type not in ("cpu", "cuda"):
        raise ValueError(f"device must be a CPU or CUDA device, got {device}")
    if task_kind not in ("vision", "text"):
        raise ValueError(f"task_kind must be 'vision' or 'text', got {task_kind!r}")
    cuda = device.type == "cuda"
    workers = config.num_workers
    if workers is None:
        cpus = cpu_count if cpu_count is not None else os.cpu_count() or 1
        ranks = local_ranks if local_ranks is not None else int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
        workers = min(CUDA_WORKERS, cpus // max(ranks, 1)) if cuda else 0
    persistent = workers > 0 if config.persistent_workers is None else config.persistent_workers and workers > 0
    pin = cuda if config.pin_memory is None else config.pin_memory
    channels_last = (cuda and task_kind == "vision") if config.channels_last is None else config.channels_last
    dtype = None
    if config.amp:
        dtype = getattr(torch, config.amp_dtype) if config.amp_dtype is not None else amp_dtype(device, True)
    return Pipeline(
        num_workers=workers,
        persistent_workers=persistent,
        pin_memory=pin,
        channels_last=channels_last and task_kind == "vision",
        amp_dtype=dtype,
        compile=config.compile,
    )


class EpochSampler(Sampler):
    """Each epoch, one permutation of ``range(n)`` with a seed per example (module docstring), dealt out to ``world``
    ranks: padded by wrapping around to a multiple of ``world``, rank r takes positions r, r + world, ... (disjoint
    shards of equal length, as DistributedDataParallel needs). Yields ``(index, item seed)``."""

    def __init__(self, n: int, rank: int = 0, world: int = 1):
        if not (n >= 1 and world >= 1 and 0 <= rank < world):
            raise ValueError(
                f"EpochSampler needs n >= 1 examples and 0 <= rank < world, got n={n}, rank={rank}, world={world}"
            )
        self.n, self.rank, self.world = n, rank, world
        self.generator = torch.Generator()

    def seed_epoch(self, seed: int) -> None:
        """Seed the next epoch (``rgprune.train.train_epochs`` calls it at the start of every epoch)."""
        self.generator.manual_seed(seed)

    def __len__(self) -> int:
        return -(-self.n // self.world)

    def __iter__(self):
        base = int(torch.empty((), dtype=torch.int64).random_(generator=self.generator))
        order = torch.randperm(self.n, generator=self.generator).tolist()
        order += order[: len(self) * self.world - self.n]
        return iter([(index, (base + index) % _SEED_SPACE) for index in order[self.rank :: self.world]])


class SeededItems(Dataset):
    """``dataset`` indexed by ``(index, seed)``: item ``index`` read with torch's RNG seeded by ``seed``, the
    caller's RNG state left as it was (so that reading in the training process draws nothing from its RNG)."""

    def __init__(self, dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: tuple[int, int]):
        index, seed = key
        # the CPU generator alone, which item transforms draw from: torch.manual_seed (and fork_rng) would also
        # reach every other device's generator, a cost paid per example
        generator = torch.default_generator
        state = generator.get_state()
        generator.manual_seed(seed)
        try:
            return self.dataset[index]
        finally:
            generator.set_state(state)


def _workers(pipeline: Pipeline) -> dict:
    if pipeline.num_workers == 0:
        return {"num_workers": 0}
    return {"num_workers": pipeline.num_workers, "persistent_workers": pipeline.persistent_workers}


def train_loader(dataset, batch_size: int, pipeline: Pipeline, rank: int = 0, world: int = 1) -> DataLoader:
    """The training loader: ``EpochSampler`` order (this rank's shard), ``SeededItems``, the pipeline's workers and
    pinned memory. Its own ``generator`` seeds the workers only (module docstring)."""
    return DataLoader(
        SeededItems(dataset),
        batch_size=batch_size,
        sampler=EpochSampler(len(dataset), rank, world),
        generator=torch.Generator(),
        pin_memory=pipeline.pin_memory,
        **_workers(pipeline),
    )


def eval_loader(dataset, batch_size: int, pipeline: Pipeline) -> DataLoader:
    """The evaluation loader: the whole test set in order, batches of at least ``EVAL_BATCH``."""
    return DataLoader(
        dataset, batch_size=max(EVAL_BATCH, batch_size), pin_memory=pipeline.pin_memory, **_workers(pipeline)
    )
