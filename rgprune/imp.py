"""Iterative magnitude pruning (lottery tickets) with rewinding, checkpointed and resumable.

>>> from rgprune.imp import IMPConfig
>>> config = IMPConfig(model="resnet20", task="digits", rounds=8, rewind_step=20, image_size=16)
>>> config.name.startswith("resnet20-digits-"), config.optimizer, config.lr
(True, 'sgd', 0.1)

``run_imp(config, out_dir)`` runs, for round 0, dense training from the initialization θ_init (saving
θ_k, the weights after ``rewind_step`` optimizer steps), and then for every round n = 1 .. rounds:

1. the mask m_n: ``fraction`` of the surviving prunable weights of the trained θ_{n-1} pruned, ranked
   globally by |w| (``GlobalMagnitudePruner.prune``, done as the closing step of round n-1); density
   (1 - fraction)^n;
2. rewind the survivors to θ_k (every other parameter and buffer too);
3. train from step k to the end of the schedule with the mask kept applied, and evaluate: θ_n;
4. the baselines of the ticket claim, trained the same way (same steps, schedule and data order):
   ``random-reinit`` (mask m_n on a fresh random initialization) and ``random-mask`` (random positions
   with m_n's per-layer survivor counts, rewound to θ_k).

Every round, the last one included, ends by pruning its trained weights θ_n: that is one RG step
(coarse-graining), and its ``PruneReport`` carries the round's observables at no extra pass.

Run directory (every file written to a temp file and renamed into place)::

    config.json                  the IMPConfig (written first; a resume must match it)
    init.safetensors             θ_init, the full state dict before training
    rewind.safetensors           θ_k, the rewind point (equal to θ_init when rewind_step = 0)
    round-XX/weights.safetensors θ_n, the trained weights (weights pruned by m_n are 0)
    round-XX/masks.safetensors   m_n (MaskSet.save), the mask θ_n was trained with
    round-XX/observables.json    the RG observables of θ_n, from the PruneReport of pruning θ_n (below)
    round-XX/metrics.json        accuracy, density, per-layer densities, the threshold that made m_n,
                                 baselines, timings; written last: a round is complete exactly when this
                                 file exists
    metrics.json                 all complete rounds and their baselines (a summary, rewritten per round)
    trace.json                   the run's rgprune.rg.FlowTrace (rewritten per round)

``observables.json`` of round n: ``histogram_before``, θ_n's survivors (mask m_n) on the 4096 logarithmic
bins of the threshold pass (``report.threshold.histogram``); ``counts_after``, ``abs_sums_after``,
``sq_sums_after``: per tensor, the survivors kept for round n+1 (``report.stats``); ``threshold``: the
threshold of that prune; ``density_after``. Round n of ``trace.json`` is exactly this (the semantics of
``FlowTrace.record_prune``), so the trace is assembled without another pass over the weights.

Resume: ``run_imp`` on a directory that holds a run continues after its last complete round and gives
the same result as an uninterrupted run: every random draw is seeded from ``(seed, round, ...)``, each
epoch's data order from ``(seed, round, epoch)``, and a round starts only from what the previous complete
round saved (θ_{n-1}, m_{n-1}) plus θ_k. A config that differs from the saved one is refused. Bit-identical
results need the same device and, on the CPU, the same number of threads (``torch.get_num_threads()``,
recorded per round; resuming with another count warns), as CPU kernels reduce in a thread-dependent order.

Distributed (``torchrun --nproc-per-node N python -m rgprune.cli imp ...``; detected from an initialized
default process group, which ``rgprune imp`` creates from torchrun's environment): every rank trains the
replicated model (DistributedDataParallel: gradients averaged) on its own shard of the training data (each
epoch's permutation seeded from ``(seed, round, epoch)`` as above, then split rank by rank; ``batch_size``
is per rank), prunes it locally and identically (``GlobalMagnitudePruner(process_group=...)`` checks k and
the counts; a hash of the masks and weights is compared over the ranks every round) and evaluates it on
the whole test set (the same result everywhere). Rank 0 alone writes the run directory, which the other
ranks must see too (a resume reads the completed rounds on every rank); all ranks wait for each other after
each round. Rank 0 decides the resume point (and config checks) and broadcasts it. ``world_size`` is
recorded per round; resuming with another number of ranks warns (other shards: not bit-identical).
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import math
import os
import random
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import torch

from rgprune._io import atomic_write, atomic_write_json
from rgprune.masks import MaskSet
from rgprune.pruner import GlobalMagnitudePruner, PruneReport
from rgprune.train import _mix, evaluate, progress_enabled, train_epochs

__all__ = ["BASELINES", "IMPConfig", "IMPResult", "OPTIMIZERS", "RoundResult", "SCHEDULES", "run_imp",
           "load_result"]

OPTIMIZERS = ("sgd", "adamw")
SCHEDULES = ("cosine", "constant", "step")
BASELINES = ("random-reinit", "random-mask")
#: default learning rate and weight decay per optimizer
_DEFAULT_LR = {"sgd": 0.1, "adamw": 1e-4}
_DEFAULT_WD = {"sgd": 1e-4, "adamw": 0.01}
CONFIG_VERSION = 1
EVAL_BATCH = 256


def _task_kind(task: str) -> str:
    from rgprune.data import TASK_NAMES, TEXT_TASK_NAMES

    if not isinstance(task, str):
        raise TypeError(f"task must be a str, got {type(task).__name__}")
    if task not in TASK_NAMES:
        raise ValueError(f"unknown task {task!r}; valid tasks are: {', '.join(TASK_NAMES)}")
    return "text" if task in TEXT_TASK_NAMES else "vision"


def _check_number(name: str, value, *, integer: bool = False, low=None, high=None, low_open=False,
                  high_open=False) -> None:
    kinds = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds):
        raise TypeError(f"{name} must be {'an int' if integer else 'a number'}, got {type(value).__name__} "
                        f"({value!r})")
    if not integer and not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value!r}")
    if low is not None and (value <= low if low_open else value < low):
        raise ValueError(f"{name} must be {'>' if low_open else '>='} {low}, got {value!r}")
    if high is not None and (value >= high if high_open else value > high):
        raise ValueError(f"{name} must be {'<' if high_open else '<='} {high}, got {value!r}")


def _check_choice(name: str, value, choices) -> None:
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"unknown {name} {value!r}; valid choices are: {', '.join(choices)}")


@dataclass(frozen=True)
class IMPConfig:
    """Everything that determines an IMP run (two runs with equal configs give equal results).

    ``None`` fields are filled in with defaults that depend on others: ``optimizer`` (``"sgd"`` for vision,
    ``"adamw"`` for text), ``lr`` (0.1 for SGD, 1e-4 for AdamW), ``weight_decay`` (1e-4 for SGD, 0.01 for
    AdamW), ``image_size`` (vision: the 8x8 digits are upsampled to 32x32, the ResNets' native size;
    text: stays None). ``rewind_step`` counts optimizer steps (0 = rewind to the initialization).
    ``schedule``: the learning rate per step, ``"cosine"`` (to 0 over the run), ``"constant"``, or
    ``"step"`` (x0.1 at 50% and 75% of the steps). ``momentum`` is used by SGD only. ``device`` is
    ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"auto"`` (CUDA when available). ``prune_head`` /
    ``prune_embeddings``: also prune the classifier head / BERT's embeddings (not by default).
    ``baselines``: any of ``BASELINES``, trained for every round's mask.
    """

    model: str
    task: str
    rounds: int = 8
    fraction: float = 0.2
    rewind_step: int = 0
    epochs: int = 10
    optimizer: str | None = None
    lr: float | None = None
    momentum: float = 0.9
    weight_decay: float | None = None
    schedule: str = "cosine"
    batch_size: int = 64
    seed: int = 0
    device: str = "cpu"
    amp: bool = False
    image_size: int | None = None
    prune_head: bool = False
    prune_embeddings: bool = False
    baselines: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        from rgprune.models import MODEL_NAMES, model_kind

        set_ = lambda name, value: object.__setattr__(self, name, value)  # noqa: E731 (frozen dataclass)
        if not isinstance(self.model, str) or self.model not in MODEL_NAMES:
            raise ValueError(f"unknown model {self.model!r}; valid models are: {', '.join(MODEL_NAMES)}")
        kind = _task_kind(self.task)
        if model_kind(self.model) != kind:
            raise ValueError(f"model {self.model!r} is a {model_kind(self.model)} model but task {self.task!r} is a "
                             f"{kind} task; pair vision models (resnet*) with digits* tasks and text models "
                             f"(minilm, minilm-random, bert-base) with vader")
        _check_number("rounds", self.rounds, integer=True, low=1)
        _check_number("fraction", self.fraction, low=0, high=1, low_open=True, high_open=True)
        _check_number("rewind_step", self.rewind_step, integer=True, low=0)
        _check_number("epochs", self.epochs, integer=True, low=1)
        if self.optimizer is None:
            set_("optimizer", "adamw" if kind == "text" else "sgd")
        _check_choice("optimizer", self.optimizer, OPTIMIZERS)
        if self.lr is None:
            set_("lr", _DEFAULT_LR[self.optimizer])
        _check_number("lr", self.lr, low=0, low_open=True)
        set_("lr", float(self.lr))
        _check_number("momentum", self.momentum, low=0, high=1, high_open=True)
        set_("momentum", float(self.momentum))
        if self.weight_decay is None:
            set_("weight_decay", _DEFAULT_WD[self.optimizer])
        _check_number("weight_decay", self.weight_decay, low=0)
        set_("weight_decay", float(self.weight_decay))
        set_("fraction", float(self.fraction))
        _check_choice("schedule", self.schedule, SCHEDULES)
        _check_number("batch_size", self.batch_size, integer=True, low=1)
        _check_number("seed", self.seed, integer=True, low=0)
        if not isinstance(self.device, str):
            raise TypeError(f"device must be a str such as 'cpu', 'cuda' or 'auto', got {type(self.device).__name__}")
        if self.device != "auto":
            try:
                dev = torch.device(self.device)
            except (RuntimeError, ValueError):
                raise ValueError(f"unknown device {self.device!r}; use 'cpu', 'cuda', 'cuda:N' or 'auto'") from None
            if dev.type not in ("cpu", "cuda"):
                raise ValueError(f"device {self.device!r} is not supported; use 'cpu', 'cuda', 'cuda:N' or 'auto'")
        for name in ("amp", "prune_head", "prune_embeddings"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"{name} must be a bool, got {getattr(self, name)!r}")
        if kind == "vision":
            if self.image_size is None:
                set_("image_size", 32)
            _check_number("image_size", self.image_size, integer=True, low=4)
        elif self.image_size is not None:
            raise ValueError(f"image_size applies to vision tasks only; task {self.task!r} is a text task, leave it None")
        baselines = self.baselines
        if isinstance(baselines, str):
            baselines = (baselines,)
        if not isinstance(baselines, (tuple, list, set, frozenset)):
            raise TypeError(f"baselines must be a tuple of names from {BASELINES}, got {type(baselines).__name__}")
        unknown = [b for b in baselines if b not in BASELINES]
        if unknown:
            raise ValueError(f"unknown baseline(s) {unknown}; valid baselines are: {', '.join(BASELINES)}")
        set_("baselines", tuple(b for b in BASELINES if b in baselines))

    # ---- identity and persistence ------------------------------------------------------------------
    def to_dict(self) -> dict:
        data = dataclasses.asdict(self)
        data["baselines"] = list(self.baselines)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "IMPConfig":
        data = {k: v for k, v in data.items() if k != "version"}
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"unknown IMPConfig field(s) {unknown}; valid fields are: {', '.join(sorted(names))}")
        if "baselines" in data and data["baselines"] is not None:
            data["baselines"] = tuple(data["baselines"])
        return cls(**data)

    @property
    def digest(self) -> str:
        """A short hash of every field."""
        text = json.dumps(self.to_dict(), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:8]

    @property
    def name(self) -> str:
        """``<model>-<task>-<hash>``: experiments are named by their config."""
        return f"{self.model}-{self.task}-{self.digest}"

    def replace(self, **changes) -> "IMPConfig":
        return dataclasses.replace(self, **changes)

    def differences(self, other: "IMPConfig") -> dict[str, tuple[Any, Any]]:
        """``{field: (self's value, other's value)}`` for every field that differs."""
        a, b = self.to_dict(), other.to_dict()
        return {k: (a[k], b[k]) for k in a if a[k] != b[k]}


# ----------------------------------------------------------------------------------------------------
# Results
# ----------------------------------------------------------------------------------------------------

@dataclass
class RoundResult:
    """One complete round: the ticket's accuracy at its density, and the baselines' accuracies."""

    round: int
    density: float
    accuracy: float
    baselines: dict[str, float] = field(default_factory=dict)
    threshold: float | None = None
    seconds: float = 0.0
    layer_densities: dict[str, float] = field(default_factory=dict)

    @classmethod
    def from_metrics(cls, m: Mapping) -> "RoundResult":
        th = m.get("threshold")
        return cls(round=m["round"], density=m["density"], accuracy=m["accuracy"],
                   baselines={k: v["accuracy"] for k, v in m.get("baselines", {}).items()},
                   threshold=th.get("magnitude") if th else None,
                   seconds=m.get("timings", {}).get("total_s", 0.0),
                   layer_densities=dict(m.get("layer_densities", {})))


@dataclass
class IMPResult:
    """The outcome of ``run_imp``: the config, the run directory and one ``RoundResult`` per round.

    ``resumed_from`` is the last complete round found in ``out_dir`` when the call started (None for a
    fresh run). ``table()`` formats the accuracy/density table."""

    config: IMPConfig
    out_dir: str
    rounds: list[RoundResult]
    resumed_from: int | None = None

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def complete(self) -> bool:
        return len(self.rounds) == self.config.rounds + 1

    @property
    def densities(self) -> list[float]:
        return [r.density for r in self.rounds]

    @property
    def accuracies(self) -> list[float]:
        return [r.accuracy for r in self.rounds]

    def baseline_accuracies(self, name: str) -> list[float | None]:
        return [r.baselines.get(name) for r in self.rounds]

    def table(self) -> str:
        """The accuracy/density table, one line per round."""
        names = list(self.config.baselines)
        head = f"{'round':>5} {'density':>8} {'accuracy':>9}" + "".join(f" {n:>13}" for n in names) + f" {'time':>8}"
        lines = [head]
        for r in self.rounds:
            cells = "".join(f" {r.baselines[n]:>13.4f}" if n in r.baselines else f" {'-':>13}" for n in names)
            lines.append(f"{r.round:>5} {r.density:>8.4f} {r.accuracy:>9.4f}{cells} {r.seconds:>7.1f}s")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {"name": self.name, "out_dir": self.out_dir, "config": self.config.to_dict(),
                "complete": self.complete, "resumed_from": self.resumed_from,
                "rounds": [dataclasses.asdict(r) for r in self.rounds]}

    def __str__(self) -> str:
        return f"IMP run {self.name} in {self.out_dir}\n{self.table()}"


# ----------------------------------------------------------------------------------------------------
# Helpers: seeding, determinism, files
# ----------------------------------------------------------------------------------------------------

def _seed_all(seed: int) -> None:
    random.seed(seed)
    torch.manual_seed(seed)
    try:
        import numpy as np
        np.random.seed(seed % (1 << 32))
    except ImportError:  # pragma: no cover
        pass


@contextlib.contextmanager
def _deterministic(device: torch.device):
    """Deterministic kernels for the duration of the run (warn-only where an op has none), restored after."""
    if device.type == "cuda":
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    import torch.utils.deterministic as det

    previous = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled(),
                torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark, det.fill_uninitialized_memory)
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    # no NaN-filling of every torch.empty: nothing here reads uninitialized memory, and it costs a write pass
    det.fill_uninitialized_memory = False
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous[0], warn_only=previous[1])
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = previous[2], previous[3]
        det.fill_uninitialized_memory = previous[4]


@contextlib.contextmanager
def _run_lock(out: Path):
    """An advisory lock on the run directory: two processes must not write one run at once. The kernel
    drops it when the process dies, so a killed run never leaves the directory locked."""
    out.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX: no locking
        yield
        return
    with open(out / ".lock", "a") as handle:  # "a": never truncates, so the file is left untouched
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise ValueError(f"{out} is being written by another running IMP process; wait for it or use "
                             f"another output directory") from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _state_to_cpu(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu", copy=True).contiguous() for k, v in model.state_dict().items()}


def _save_state(path: Path, state: Mapping[str, torch.Tensor]) -> None:
    from safetensors.torch import save_file

    tensors = {k: v.detach().cpu().contiguous() for k, v in state.items()}
    atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata={"rgprune": "state_dict"}))


def _load_state(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(path), device="cpu")


def _round_dir(out: Path, n: int) -> Path:
    return out / f"round-{n:02d}"


def _read_json(path: Path):
    with open(path) as f:
        return json.load(f)


def _finite_or_none(x: float) -> float | None:
    return x if math.isfinite(x) else None


def _threshold_json(th) -> dict:
    return {"k": int(th.k), "key": int(th.key), "magnitude": _finite_or_none(float(th.magnitude)),
            "n_below": int(th.n_below), "n_ties": int(th.n_ties), "n_equal": int(th.n_equal),
            "n_survivors": int(th.n_survivors)}


def _stats_json(stats, suffix: str = "") -> dict:
    return {f"counts{suffix}": [int(x) for x in stats.counts.tolist()],
            f"abs_sums{suffix}": [float(x) for x in stats.abs_sums.tolist()],
            f"sq_sums{suffix}": [float(x) for x in stats.sq_sums.tolist()]}


def _resolve_device(name: str, distributed: bool = False) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} asked for but CUDA is not available here; use --device cpu")
    if distributed and device.type == "cuda" and device.index is None:  # one GPU per rank: the current one,
        device = torch.device("cuda", torch.cuda.current_device())    # which rgprune imp sets to LOCAL_RANK
    return device


class _ShardSampler(torch.utils.data.Sampler):
    """DistributedSampler's sharding with the single-process seeding: each epoch, one permutation of the
    dataset drawn from ``generator`` (reseeded per (seed, round, epoch) by train_epochs, identically on every
    rank), padded by wrapping around to a multiple of ``world`` and dealt out rank by rank: the ranks see
    disjoint shards of equal length (so equal step counts, as DDP needs)."""

    def __init__(self, n: int, rank: int, world: int, generator: torch.Generator):
        self.n, self.rank, self.world, self.generator = n, rank, world, generator

    def __len__(self) -> int:
        return -(-self.n // self.world)

    def __iter__(self):
        order = torch.randperm(self.n, generator=self.generator).tolist()
        order += order[:len(self) * self.world - self.n]
        return iter(order[self.rank::self.world])


def _distributed() -> tuple[int, int] | None:
    """(rank, world size) when the default torch.distributed process group is initialized, else None."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return None


def _check_same_on_ranks(model: torch.nn.Module, pruner: GlobalMagnitudePruner, what: str) -> None:
    """Raise on every rank unless all ranks hold the same masks and weights (one all_gather of two hashes)."""
    from rgprune.distributed import check_replicated

    masks, weights = hashlib.sha256(), hashlib.sha256()
    for word in pruner.masks.words:
        masks.update(word.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    for name, value in model.state_dict().items():
        weights.update(name.encode())
        weights.update(value.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    ints = [int.from_bytes(h.digest()[:8], "little") & ((1 << 63) - 1) for h in (masks, weights)]
    check_replicated(ints, f"the hashes of the masks and weights after training ({what})", "default",
                     pruner.masks.words[0].device)


def _lr_factor(schedule: str, total: int):
    def factor(step: int) -> float:
        if schedule == "constant" or total <= 0:
            return 1.0
        if schedule == "cosine":
            return 0.5 * (1.0 + math.cos(math.pi * min(step, total) / total))
        return 0.1 ** ((step >= 0.5 * total) + (step >= 0.75 * total))  # "step"
    return factor


# ----------------------------------------------------------------------------------------------------
# The run
# ----------------------------------------------------------------------------------------------------

class _Run:
    """State shared by the rounds of one run_imp call."""

    def __init__(self, config: IMPConfig, out: Path, progress: bool, rank: int = 0, world: int | None = None):
        from rgprune.data import load_task

        # world: the number of torch.distributed ranks (None: one process, the code path of old)
        self.config, self.out, self.progress, self.rank, self.world = config, out, progress, rank, world
        self.device = _resolve_device(config.device, distributed=world is not None)
        self.task = load_task(config.task, image_size=config.image_size)
        self.train_generator = torch.Generator()
        if world is None:
            self.train_loader = torch.utils.data.DataLoader(self.task.train, batch_size=config.batch_size,
                                                            shuffle=True, generator=self.train_generator)
        else:  # this rank's shard of each epoch's permutation (train_epochs reseeds the generator per epoch)
            sampler = _ShardSampler(len(self.task.train), rank, world, self.train_generator)
            self.train_loader = torch.utils.data.DataLoader(self.task.train, batch_size=config.batch_size,
                                                            sampler=sampler, generator=self.train_generator)
        self.test_loader = torch.utils.data.DataLoader(self.task.test, batch_size=max(EVAL_BATCH, config.batch_size))
        self.steps_per_epoch = len(self.train_loader)
        self.total_steps = config.epochs * self.steps_per_epoch
        if config.rewind_step > self.total_steps:
            raise ValueError(f"rewind_step={config.rewind_step} is past the end of training: {config.epochs} epochs x "
                             f"{self.steps_per_epoch} steps = {self.total_steps} optimizer steps (batch size "
                             f"{config.batch_size}, {len(self.task.train)} training examples)")

    # ---- building blocks ---------------------------------------------------------------------------
    def build(self, seed: int, pretrained: bool = True) -> torch.nn.Module:
        from rgprune.models import build_model

        model = build_model(self.config.model, self.task.num_classes, in_channels=self.task.in_channels or 3,
                            pretrained=pretrained, seed=seed)
        return model.to(self.device)

    def pruner(self, model: torch.nn.Module) -> GlobalMagnitudePruner:
        # distributed: the replicated model is pruned locally on every rank, the pruner checking agreement
        return GlobalMagnitudePruner(model, prune_head=self.config.prune_head,
                                     prune_embeddings=self.config.prune_embeddings,
                                     process_group="default" if self.world is not None else None)

    def optimizer(self, model: torch.nn.Module) -> torch.optim.Optimizer:
        c = self.config
        if c.optimizer == "sgd":
            return torch.optim.SGD(model.parameters(), lr=c.lr, momentum=c.momentum, weight_decay=c.weight_decay)
        return torch.optim.AdamW(model.parameters(), lr=c.lr, weight_decay=c.weight_decay)

    def train(self, model, pruner: GlobalMagnitudePruner | None, start_step: int, seed: int, desc: str,
              on_step=None) -> dict:
        """Train from ``start_step`` to the end of the schedule, masks kept applied; returns train metrics."""
        _seed_all(seed)
        optimizer = self.optimizer(model)
        handle = pruner.attach(optimizer) if pruner is not None else None
        factor = _lr_factor(self.config.schedule, self.total_steps)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: factor(s + start_step))
        start = time.perf_counter()
        trained = model
        if self.world is not None:  # DDP averages the gradients; it wraps the model for this training only
            from torch.nn.parallel import DistributedDataParallel

            trained = DistributedDataParallel(model, device_ids=[self.device.index] if self.device.type == "cuda"
                                              else None)
        try:
            stats = train_epochs(trained, self.train_loader, optimizer, scheduler, self.config.epochs, self.device,
                                 amp=self.config.amp, progress=self.progress, start_step=start_step, seed=seed,
                                 on_step=on_step, desc=desc)
        finally:
            if handle is not None:
                handle.remove()
        if self.world is not None:
            # DDP broadcasts rank 0's buffers before each forward, but the last forward then updated each rank's
            # BatchNorm statistics from its own batch: take rank 0's, so the ranks hold one model again
            import torch.distributed as dist

            with torch.no_grad():
                for buffer in model.buffers():
                    dist.broadcast(buffer, 0)
        return {"steps": stats.steps, "train_loss": _finite_or_none(stats.last_epoch_loss),
                "amp_skipped_steps": stats.skipped, "train_s": time.perf_counter() - start}

    def evaluate(self, model) -> float:
        return evaluate(model, self.test_loader, self.device, amp=self.config.amp)

    def random_mask(self, masks: MaskSet, seed: int) -> MaskSet:
        """Random survivor positions with ``masks``' per-layer survivor counts."""
        generator = torch.Generator().manual_seed(seed)
        keep = []
        for shape, count in zip(masks.shapes, masks.survivor_counts()):
            flat = torch.zeros(shape.numel(), dtype=torch.bool)
            flat[torch.randperm(shape.numel(), generator=generator)[:count]] = True
            keep.append(flat.reshape(shape))
        return MaskSet.from_bool(keep, masks.names)

    # ---- the baselines -------------------------------------------------------------------------------
    def baselines(self, n: int, masks: MaskSet, theta_k: Mapping[str, torch.Tensor]) -> dict:
        c, results = self.config, {}
        train_seed = _mix(c.seed, n, "train")
        for name in c.baselines:
            start = time.perf_counter()
            if name == "random-reinit":
                model = self.build(_mix(c.seed, n, "reinit"), pretrained=False)
                pruner = self.pruner(model)
                pruner.load_state_dict({"names": masks.names, "masks": masks.state_dict()})
            else:  # random-mask
                model = self.build(_mix(c.seed, "init"))
                pruner = self.pruner(model)
                random_masks = self.random_mask(masks, _mix(c.seed, n, "random-mask"))
                pruner.load_state_dict({"names": random_masks.names, "masks": random_masks.state_dict()})
                pruner.rewind(theta_k)
            train = self.train(model, pruner, c.rewind_step, train_seed, desc=f"round {n} {name}")
            accuracy = self.evaluate(model)
            results[name] = {"accuracy": accuracy, "density": pruner.density(), "train_loss": train["train_loss"],
                             "seconds": time.perf_counter() - start}
            del model, pruner
        return results

    # ---- files -------------------------------------------------------------------------------------
    def save_round(self, n: int, model, pruner: GlobalMagnitudePruner, metrics: dict, start: float) -> PruneReport:
        """Checkpoint round n: θ_n and m_n, then prune θ_n in place (the mask of round n + 1) and save the
        PruneReport's observables, then metrics.json, which marks the round complete. Returns the report."""
        folder = _round_dir(self.out, n)
        if self.world is not None:  # the ranks must hold one model: compare hashes of the masks and weights
            _check_same_on_ranks(model, pruner, f"round {n}")
        if self.writes:  # distributed: rank 0 alone writes; the others prune alike (same masks, no files)
            folder.mkdir(parents=True, exist_ok=True)
            _save_state(folder / "weights.safetensors", _state_to_cpu(model))
            pruner.masks.save(folder / "masks.safetensors")
        round_start, start = start, time.perf_counter()
        report = pruner.prune(fraction=self.config.fraction)
        metrics["timings"]["prune_s"] = time.perf_counter() - start
        metrics["timings"]["total_s"] = time.perf_counter() - round_start
        if self.writes:
            atomic_write_json(folder / "observables.json", _observables_json(n, pruner, report))
            atomic_write_json(folder / "metrics.json", metrics)  # last: marks the round complete
        return report

    @property
    def writes(self) -> bool:
        """Whether this process writes the run directory: always in one process, rank 0 alone when distributed."""
        return self.rank == 0


def _observables_json(n: int, pruner: GlobalMagnitudePruner, report: PruneReport) -> dict:
    """The RG observables of round n from the PruneReport of pruning θ_n (no extra pass over the weights)."""
    return {"round": n, "tensor_names": list(pruner.names), "tensor_sizes": pruner.masks.numels(),
            "dtype": str(pruner.params[0].dtype).removeprefix("torch."), "bits": 12,
            "threshold": _threshold_json(report.threshold),
            "histogram_before": [int(x) for x in report.threshold.histogram.tolist()],
            **_stats_json(report.stats, "_after"), "density_after": report.density}


def _complete_rounds(out: Path, rounds: int) -> int:
    """The last round n such that rounds 0..n are all complete (-1 if none)."""
    last = -1
    while last < rounds and (_round_dir(out, last + 1) / "metrics.json").is_file() \
            and (out / "rewind.safetensors").is_file():
        last += 1
    return last


def _check_run_dir(out: Path, config: IMPConfig) -> None:
    """Write config.json into a new run directory, or check that an existing run has the same config."""
    path = out / "config.json"
    if path.is_file():
        try:
            saved = IMPConfig.from_dict(_read_json(path))
        except (ValueError, TypeError, json.JSONDecodeError) as exc:
            raise ValueError(f"{path} is not a readable IMP config ({exc}); use another output directory") from None
        diff = saved.differences(config)
        if diff:
            lines = "; ".join(f"{k}: saved {a!r}, given {b!r}" for k, a, b in ((k, *v) for k, v in diff.items()))
            raise ValueError(f"{out} holds an IMP run with a different config, refusing to resume it. Differing "
                             f"fields: {lines}. Use another output directory, or the saved config "
                             f"(IMPConfig.from_dict(json.load(open('{path}'))))")
        return
    foreign = [p.name for p in out.iterdir() if not p.name.startswith(".")] if out.exists() else []
    if foreign:
        raise ValueError(f"{out} is not empty and holds no IMP run (no config.json; found {sorted(foreign)[:5]}); "
                         f"use a new or empty output directory")
    atomic_write_json(path, {"version": CONFIG_VERSION, **config.to_dict()})


def _clean_partial(out: Path, last: int) -> None:
    """Remove leftovers of an interrupted round: temp files and round folders after the last complete one."""
    for tmp in list(out.glob(".tmp-*")) + list(out.glob("round-*/.tmp-*")):
        tmp.unlink(missing_ok=True)
    for folder in out.glob("round-*"):
        try:
            n = int(folder.name.split("-", 1)[1])
        except ValueError:
            continue
        if n > last and folder.is_dir():
            shutil.rmtree(folder)


def _write_summary(run: _Run, rounds: list[dict]) -> None:
    """metrics.json (all complete rounds) and trace.json (the FlowTrace) of the run directory."""
    from rgprune import backend

    c = run.config
    atomic_write_json(run.out / "metrics.json", {
        "name": c.name, "config": c.to_dict(), "device": str(run.device), "backend": backend(),
        "complete": len(rounds) == c.rounds + 1, "steps_per_epoch": run.steps_per_epoch,
        "total_steps": run.total_steps, "task": run.task.description, "rounds": rounds})
    try:
        from rgprune.rg.trace import FlowTrace
    except ImportError:  # pragma: no cover - the RG package is optional for the IMP engine
        return
    observables = [_read_json(_round_dir(run.out, r["round"]) / "observables.json") for r in rounds]
    first = observables[0]
    trace = FlowTrace(first["tensor_names"], first["tensor_sizes"], dtype=first["dtype"], bits=first["bits"],
                      fraction=c.fraction, source=str(run.out))
    for metrics, o in zip(rounds, observables):
        extra = {"accuracy": metrics["accuracy"], "train_density": metrics["density"]}
        for name, b in metrics.get("baselines", {}).items():
            extra[f"{name}_accuracy"] = b["accuracy"]
        trace.record(metrics["round"], torch.tensor(o["histogram_before"]), torch.tensor(o["counts_after"]),
                     torch.tensor(o["abs_sums_after"], dtype=torch.float64),
                     torch.tensor(o["sq_sums_after"], dtype=torch.float64), extra)
    trace.save(run.out / "trace.json")


def write_run_flow_report(out_dir: str | os.PathLike) -> Path:
    """flow.json, report.md and the figures of a run directory, from its trace.json (recorded during the
    run) and the Gram matrix of its per-round weight checkpoints; returns the report's path."""
    from rgprune.rg.report import checkpoints_in, write_flow_report
    from rgprune.rg.trace import FlowTrace, parameter_gram

    out = Path(out_dir)
    trace = FlowTrace.load(out / "trace.json")
    checkpoints = checkpoints_in([out])
    gram = parameter_gram(checkpoints) if len(checkpoints) >= 3 else None
    return write_flow_report(trace, out, title=out.name, gram=gram)["report"]


def run_imp(config: IMPConfig, out_dir: str | os.PathLike, progress: bool = True) -> IMPResult:
    """Run (or resume) iterative magnitude pruning with rewinding; see the module docstring.

    ``progress``: tqdm bars per round and per epoch (on a terminal only) and a one-line summary per
    round on stdout. Returns an ``IMPResult`` with one ``RoundResult`` per round (round 0 = dense).
    Raises ValueError for an unusable config or output directory (e.g. a run with another config).
    """
    if not isinstance(config, IMPConfig):
        raise TypeError(f"config must be an IMPConfig, got {type(config).__name__}")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ValueError(f"output path {out} exists and is not a directory")
    if _distributed() is not None:
        return _run_imp_distributed(config, out, progress)
    with _run_lock(out):
        run = _Run(config, out, progress)  # validates what needs the data (rewind_step) before writing anything
        _check_run_dir(out, config)
        last = _complete_rounds(out, config.rounds)
        _clean_partial(out, last)
        with _deterministic(run.device):
            return _run_rounds(run, last)


def _run_imp_distributed(config: IMPConfig, out: Path, progress: bool) -> IMPResult:
    """run_imp on every rank of the default process group: rank 0 locks the run directory, checks or writes
    config.json, finds the last complete round and cleans up after it, then broadcasts that round (or its
    error, which every rank raises alike, so none is left waiting in a collective)."""
    import torch.distributed as dist

    rank, world = _distributed()
    # every rank validates alike (deterministic: the same error everywhere, before any collective)
    run = _Run(config, out, progress and rank == 0, rank, world)
    with contextlib.ExitStack() as stack:
        decision: list = [None]
        if rank == 0:
            try:
                stack.enter_context(_run_lock(out))
                _check_run_dir(out, config)
                last = _complete_rounds(out, config.rounds)
                _clean_partial(out, last)
                decision = [("ok", last)]
            except (ValueError, TypeError, OSError) as exc:
                decision = [("error", type(exc).__name__, str(exc))]
        dist.broadcast_object_list(decision, src=0, device=run.device if run.device.type == "cuda" else None)
        if decision[0][0] == "error":
            kind = {"TypeError": TypeError}.get(decision[0][1], ValueError)
            raise kind(decision[0][2] if rank == 0 else f"rank 0: {decision[0][2]}")
        with _deterministic(run.device):
            return _run_rounds(run, decision[0][1])


def _say(run: _Run, text: str) -> None:
    if run.progress:
        from tqdm.auto import tqdm
        tqdm.write(text)


def _summary_line(c: IMPConfig, m: dict) -> str:
    parts = [f"round {m['round']}/{c.rounds}", f"density {m['density']:.4f}", f"accuracy {m['accuracy']:.4f}"]
    parts += [f"{name} {b['accuracy']:.4f}" for name, b in m.get("baselines", {}).items()]
    parts.append(f"{m['timings']['total_s']:.1f}s")
    return "  ".join(parts)


def _run_rounds(run: _Run, last: int) -> IMPResult:
    from tqdm.auto import tqdm

    c, out = run.config, run.out
    resumed_from = last if last >= 0 else None
    rounds = [_read_json(_round_dir(out, n) / "metrics.json") for n in range(last + 1)]
    if last >= 0:
        _say(run, f"resuming {c.name} in {out} after round {last}")
        saved_threads = rounds[-1].get("threads")
        if run.device.type == "cpu" and saved_threads not in (None, torch.get_num_threads()):
            import warnings
            warnings.warn(f"resuming {out} with {torch.get_num_threads()} CPU threads; its rounds ran with "
                          f"{saved_threads}. CPU kernels reduce in a thread-dependent order, so the rest of the run "
                          f"will not be bit-identical to an uninterrupted one (torch.set_num_threads / "
                          f"OMP_NUM_THREADS={saved_threads} restores that)", RuntimeWarning, stacklevel=3)
        saved_world, world = rounds[-1].get("world_size", 1), run.world or 1
        if saved_world != world and run.writes:
            import warnings
            warnings.warn(f"resuming {out} with {world} torch.distributed rank(s); its rounds ran with {saved_world}. "
                          f"The data shards differ, so the rest of the run will not be bit-identical to an "
                          f"uninterrupted one", RuntimeWarning, stacklevel=3)
    bar = tqdm(total=c.rounds + 1, initial=last + 1, desc=f"IMP {c.name}", unit="round", dynamic_ncols=True,
               disable=not progress_enabled(run.progress))
    init_seed = _mix(c.seed, "init")

    model = run.build(init_seed)
    pruner = run.pruner(model)
    report: PruneReport | None = None  # the prune of θ_{n-1}, which made this round's mask m_n
    if 0 <= last < c.rounds:  # resume: θ_last and m_last, as the last complete round saved them, and θ_k
        model.load_state_dict(_load_state(_round_dir(out, last) / "weights.safetensors"))
        masks = MaskSet.load(_round_dir(out, last) / "masks.safetensors")
        pruner.load_state_dict({"names": masks.names, "masks": masks.state_dict()})
        theta_k = _load_state(out / "rewind.safetensors")
        # redo the last round's closing prune (deterministic: the same mask and report it saved)
        report = pruner.prune(fraction=c.fraction)
    try:
        for n in range(last + 1, c.rounds + 1):
            start = time.perf_counter()
            _seed_all(_mix(c.seed, n))
            train_seed = _mix(c.seed, n, "train")
            if n == 0:
                init = _state_to_cpu(model)
                captured = {}
                if c.rewind_step == 0:
                    captured["theta_k"] = init

                # distributed: θ_k's BatchNorm statistics are rank 0's only there (rank 0 saves them); elsewhere
                # they are harmless, as DDP overwrites every rank's buffers with rank 0's before each forward
                def capture(step, model=model, captured=captured):
                    if step == c.rewind_step:
                        captured["theta_k"] = _state_to_cpu(model)

                train = run.train(model, None, 0, train_seed, desc="round 0 dense", on_step=capture)
                theta_k = captured["theta_k"]
                if run.writes:
                    _save_state(out / "init.safetensors", init)
                    _save_state(out / "rewind.safetensors", theta_k)
            else:  # the mask m_n is in place (the previous round pruned θ_{n-1}); rewind the survivors to θ_k
                pruner.rewind(theta_k)
                train = run.train(model, pruner, c.rewind_step, train_seed, desc=f"round {n}")
            timings = {"train_s": train.pop("train_s")}
            t0 = time.perf_counter()
            accuracy = run.evaluate(model)
            timings["eval_s"] = time.perf_counter() - t0
            t0 = time.perf_counter()
            baselines = run.baselines(n, pruner.masks.clone(), theta_k) if n > 0 else {}
            timings["baselines_s"] = time.perf_counter() - t0
            metrics = {"round": n, "density": pruner.density(), "survivors": pruner.num_survivors,
                       "weights": pruner.num_weights, "accuracy": accuracy, **train,
                       "rewind_step": c.rewind_step,
                       "threshold": _threshold_json(report.threshold) if report is not None else None,
                       "baselines": baselines, "layer_densities": pruner.layer_densities(), "timings": timings,
                       "device": str(run.device), "threads": torch.get_num_threads()}
            if run.world is not None:
                metrics["world_size"] = run.world
            report = run.save_round(n, model, pruner, metrics, start)
            rounds.append(metrics)
            if run.writes:
                _write_summary(run, rounds)
            if run.world is not None:  # a round is complete on disk before any rank goes on (or exits)
                import torch.distributed as dist
                dist.barrier()
            bar.update(1)
            _say(run, _summary_line(c, metrics))
    finally:
        bar.close()
    if last == c.rounds and run.writes:  # nothing was left to do: keep the summary files in step with the rounds
        _write_summary(run, rounds)
    if len(rounds) == c.rounds + 1 and run.writes:
        write_run_flow_report(out)
    if run.world is not None:  # the others wait for rank 0's summary files
        import torch.distributed as dist
        dist.barrier()
    return IMPResult(c, str(out), [RoundResult.from_metrics(m) for m in rounds], resumed_from)


def load_result(out_dir: str | os.PathLike) -> IMPResult:
    """The ``IMPResult`` of the complete rounds in a run directory, without running anything."""
    out = Path(out_dir)
    if not (out / "config.json").is_file():
        raise FileNotFoundError(f"{out} holds no IMP run (no config.json)")
    config = IMPConfig.from_dict(_read_json(out / "config.json"))
    last = _complete_rounds(out, config.rounds)
    rounds = [RoundResult.from_metrics(_read_json(_round_dir(out, n) / "metrics.json")) for n in range(last + 1)]
    return IMPResult(config, str(out), rounds, last if last >= 0 else None)
