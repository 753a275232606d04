"""``RoundTrainer``: how every round of an IMP run builds, trains and evaluates its model.

One ``RoundTrainer`` per ``IMPConfig`` holds the task's data loaders and the step counts, and trains a model
the way ``run_imp`` trains each round: the config's optimizer, learning-rate schedule (per optimizer step,
over ``epochs`` x ``steps_per_epoch`` steps), batch size and input pipeline (``rgprune.imp.pipeline``: workers,
pinned memory, channels-last, AMP, ``torch.compile``), the masks kept applied through the optimizer's step hook
(``GlobalMagnitudePruner.attach``), each epoch's data order and augmentation seeded from
``(seed, round, epoch)``. Every random draw comes from ``mix_seed(config.seed, ...)``: ``init_seed`` for
the initialization θ_init, ``train_seed(n)`` for round n's training. So anything trained with
``train_ticket(model, pruner, n)`` is trained exactly as round n's ticket was (``rgprune.transfer`` uses
this to train one run's ticket on another run's task).

Under torch.distributed (``rank``/``world`` given) each rank trains the replicated model with
DistributedDataParallel on its own shard of every epoch's permutation (``rgprune.imp.coordination``).
"""

from __future__ import annotations

import contextlib
import math
import os
import random
import time
from collections.abc import Callable, Iterator, Mapping

import numpy as np
import torch

from rgprune.imp.config import ConfigError, IMPConfig
from rgprune.imp.coordination import broadcast_buffers, wrap_ddp
from rgprune.imp.pipeline import eval_loader, resolve_pipeline, train_loader
from rgprune.masks import MaskSet
from rgprune.pruner import GlobalMagnitudePruner
from rgprune.train import EpochStats, evaluate, mix_seed, train_epochs

__all__ = ["RoundTrainer", "cpu_state", "deterministic", "seed_all"]


def seed_all(seed: int) -> None:
    """Seed Python's, NumPy's and torch's global random number generators."""
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be an int >= 0, got {seed!r}")
    random.seed(seed)
    torch.manual_seed(seed)
    np.random.seed(seed % (1 << 32))


@contextlib.contextmanager
def deterministic(device: torch.device | str) -> Iterator[None]:
    """Deterministic kernels for the duration of the block (warn-only where an op has none), restored after.

    On CUDA this also sets ``CUBLAS_WORKSPACE_CONFIG`` (if unset), which deterministic cuBLAS needs.
    """
    import torch.utils.deterministic as det

    if torch.device(device).type == "cuda":
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    previous = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
        torch.backends.cudnn.deterministic,
        torch.backends.cudnn.benchmark,
        det.fill_uninitialized_memory,
    )
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


def cpu_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """A copy of ``model``'s state dict on the CPU (what the run directory saves)."""
    return {k: v.detach().to("cpu", copy=True).contiguous() for k, v in model.state_dict().items()}


def _lr_factor(schedule: str, total: int) -> Callable[[int], float]:
    """The learning rate at an optimizer step, relative to the peak (see IMPConfig.schedule)."""

    def factor(step: int) -> float:
        if schedule == "constant" or total <= 0:
            return 1.0
        if schedule == "cosine":
            return 0.5 * (1.0 + math.cos(math.pi * min(step, total) / total))
        return 0.1 ** ((step >= 0.5 * total) + (step >= 0.75 * total))  # "step"

    return factor


def _check_given(config: IMPConfig, given_task: bool, given_model: bool, task, model_fn) -> None:
    """A ``given-*:NAME`` task comes with its Task and a ``given:NAME`` model with its factory, and only they do."""
    from rgprune.data import Task

    if given_task and task is None:
        raise ConfigError(
            f"task {config.task!r} names datasets the program passes in: call run_imp(config, out_dir, "
            "train=..., test=...); on the command line, give an embedded task or a KIND:PATH spec"
        )
    if task is not None and not given_task:
        raise ConfigError(
            f"datasets were passed in but task {config.task!r} is loaded from its spec; name them "
            "given-vision:NAME or given-text:NAME"
        )
    if task is not None and not isinstance(task, Task):
        raise TypeError(f"task must be an rgprune.data.Task (rgprune.data.given_task), got {type(task).__name__}")
    if task is not None and task.spec != config.task:
        raise ConfigError(f"the datasets were given as {task.spec!r} but the config's task is {config.task!r}")
    if given_model and model_fn is None:
        raise ConfigError(
            f"model {config.model!r} is built by a factory the program passes in: call "
            "run_imp(config, out_dir, model_fn=...); on the command line, give a built-in name or a "
            "torchvision:, hf: or module: spec"
        )
    if model_fn is not None and not given_model:
        raise ConfigError(
            f"a model_fn was passed in but model {config.model!r} is built from its spec; name it given:NAME"
        )
    if model_fn is not None and not callable(model_fn):
        raise TypeError(
            f"model_fn must be callable (num_classes=..., in_channels=...) -> nn.Module, got {type(model_fn).__name__}"
        )


def _positions(tokenizer) -> int | None:
    """The token positions of a tokenizer's model (None when it has no limit: tokenizers without one report 1e30)."""
    limit = getattr(tokenizer, "model_max_length", None)
    return limit if isinstance(limit, int) and limit < 1_000_000 else None


def _resolve_device(name: str, distributed: bool) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} asked for but CUDA is not available here; use --device cpu")
    if distributed and device.type == "cuda" and device.index is None:  # one GPU per rank: the current one,
        device = torch.device("cuda", torch.cuda.current_device())  # which rgprune imp sets to LOCAL_RANK
    return device


class RoundTrainer:
    """Trains and evaluates models for one ``IMPConfig`` the way ``run_imp``'s rounds do (module docstring).

    ``progress``: tqdm bars per epoch (on a terminal only). ``rank``/``world``: this process's
    torch.distributed rank and the number of ranks (``world=None``: one process). Loads the task's data
    (``task``: the ``Task`` of a ``given-*:NAME`` spec, from ``rgprune.data.given_task``, instead); ``model_fn``
    builds a ``given:NAME`` model; ``tokenizer`` tokenizes a text task instead of the model's own (default: an
    ``hf:DIR`` or ``module:`` model's tokenizer, MiniLM's for the others). Raises ``ConfigError`` when the config
    cannot run here (data missing or malformed, a missing weights file, ``rewind_step`` past the end of training,
    CUDA asked for but absent).
    """

    def __init__(
        self,
        config: IMPConfig,
        progress: bool = False,
        rank: int = 0,
        world: int | None = None,
        *,
        task=None,
        model_fn: Callable[..., torch.nn.Module] | None = None,
        tokenizer=None,
    ):
        from rgprune.data import parse_task_spec
        from rgprune.models import parse_model_spec, weights_identity

        if not isinstance(config, IMPConfig):
            raise TypeError(f"config must be an IMPConfig, got {type(config).__name__}")
        if world is not None and not 0 <= rank < world:
            raise ValueError(f"rank must be in [0, world) = [0, {world}), got {rank}")
        self.config, self.progress, self.rank, self.world = config, progress, rank, world
        #: called after every epoch of ``train`` as ``on_epoch(desc, EpochStats)`` (run_imp's per-epoch lines)
        self.on_epoch: Callable[[str, EpochStats], None] | None = None
        self.model_source = parse_model_spec(config.model).source
        _check_given(config, parse_task_spec(config.task).is_given, self.model_source == "given", task, model_fn)
        self.device = _resolve_device(config.device, distributed=world is not None)
        self.model_fn = model_fn
        self.task = task if task is not None else self._load_task(tokenizer)
        try:
            self.model_identity = weights_identity(config.model, config.weights) or {"spec": config.model}
        except FileNotFoundError as exc:
            raise ConfigError(str(exc)) from None
        self.pipeline = resolve_pipeline(config, self.device, self.task.kind)
        self.train_loader = train_loader(self.task.train, config.batch_size, self.pipeline, rank, world or 1)
        self.test_loader = eval_loader(self.task.test, config.batch_size, self.pipeline)
        self.steps_per_epoch = len(self.train_loader)
        self.total_steps = config.epochs * self.steps_per_epoch
        if config.rewind_step > self.total_steps:
            raise ConfigError(
                f"rewind_step={config.rewind_step} is past the end of training: {config.epochs} epochs "
                f"x {self.steps_per_epoch} steps = {self.total_steps} optimizer steps (batch size "
                f"{config.batch_size}, {len(self.task.train)} training examples)"
            )

    def _load_task(self, tokenizer):
        """The config's task, read as its spec says; a missing or malformed file is a ``ConfigError``."""
        from rgprune.data import load_task, parse_task_spec
        from rgprune.models import load_tokenizer
        from rgprune.models.specs import model_positions

        c, spec = self.config, parse_task_spec(self.config.task)
        try:
            if spec.task_kind == "text" and tokenizer is None and self.model_source in ("hf", "module"):
                tokenizer = load_tokenizer(c.model)
            options = {}
            if not spec.is_embedded and spec.task_kind == "vision":
                options["image"] = c.image_options()
            elif not spec.is_embedded:
                limits = [n for n in (_positions(tokenizer), model_positions(c.model)) if n is not None]
                positions = min(limits) if limits else None
                if c.max_length is not None and positions is not None and c.max_length > positions:
                    raise ConfigError(
                        f"max_length={c.max_length} exceeds the {positions} token positions of "
                        f"{c.model}; use max_length <= {positions}"
                    )
                options["text"] = c.text_options(positions)
            return load_task(c.task, image_size=c.image_size, tokenizer=tokenizer, **options)
        except ValueError as exc:  # DataLayoutError (a ValueError) and the options a format refuses
            raise ConfigError(str(exc)) from None

    def inputs(self) -> dict:
        """What the run directory records to refuse a resume on other data or weights: the task's identity (spec and
        data fingerprint) and the model's (spec and the SHA-256 of its weight files, where it has files)."""
        return {"task": self.task.identity, "model": self.model_identity}

    # ---- seeds ---------------------------------------------------------------------------------------
    @property
    def init_seed(self) -> int:
        """The seed of θ_init (the model every ticket and the random-mask baseline start from)."""
        return mix_seed(self.config.seed, "init")

    def train_seed(self, n: int) -> int:
        """The seed of round n's training: its data order, hence the same for the ticket and the baselines."""
        return mix_seed(self.config.seed, n, "train")

    def seed_round(self, n: int) -> None:
        """Seed every global generator for round n (done at the start of each round)."""
        seed_all(mix_seed(self.config.seed, n))

    # ---- building blocks ------------------------------------------------------------------------------
    def build(self, seed: int, pretrained: bool = True) -> torch.nn.Module:
        """The config's model for the task, initialized from ``seed`` (then the config's weights, when
        ``pretrained``), on the device. A weights file that does not fit the model is a ``ConfigError``."""
        from rgprune.models import build_model

        try:
            model = build_model(
                self.config.model,
                self.task.num_classes,
                in_channels=self.task.in_channels or 3,
                pretrained=pretrained,
                seed=seed,
                weights_path=self.config.weights,
                factory=self.model_fn,
                kind=self.task.kind,
            )
        except (ValueError, FileNotFoundError) as exc:
            raise ConfigError(str(exc)) from None
        return model.to(self.device)

    def check_model(self, model: torch.nn.Module) -> None:
        """Refuse, before anything is written, an exclude pattern that names no parameter (a typo would prune
        what it meant to keep), a model with nothing to prune (under the config's prune_head, prune_embeddings and
        exclude) or one that cannot train on this data's batches: BatchNorm (in training mode) fails on a batch of
        one example, which the last batch of every epoch is when the training examples (this rank's shard) leave a
        remainder of one; better now than at the end of the first epoch."""
        from rgprune.prunable import select_prunable, unmatched_patterns_message

        c = self.config
        if problem := unmatched_patterns_message(model, exclude=c.exclude):  # the check GlobalMagnitudePruner makes
            raise ConfigError(f"{c.model}: {problem}")
        try:
            select_prunable(model, exclude=c.exclude, prune_head=c.prune_head, prune_embeddings=c.prune_embeddings)
        except (ValueError, TypeError) as exc:
            raise ConfigError(
                f"{c.model}: {exc} (or prune the head or the embeddings too: prune_head, prune_embeddings)"
            ) from None
        shard = len(self.train_loader.sampler)
        batch_norms = (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d, torch.nn.BatchNorm3d, torch.nn.SyncBatchNorm)
        has_batch_norm = any(isinstance(m, batch_norms) for m in model.modules())
        if has_batch_norm and self.config.batch_size > 1 and shard % self.config.batch_size == 1:
            where = " on this rank" if self.world else ""
            raise ConfigError(
                f"the last training batch of every epoch would hold a single example ({shard} examples"
                f"{where}, batch size {self.config.batch_size}), on which the model's BatchNorm layers "
                "cannot train; choose another batch size"
            )

    def _forward_module(self, model: torch.nn.Module) -> torch.nn.Module:
        """What runs the forward passes: ``model``, compiled when the config says so."""
        return torch.compile(model) if self.pipeline.compile else model

    def pruner(self, model: torch.nn.Module) -> GlobalMagnitudePruner:
        """The config's pruner of ``model`` (distributed: pruned locally on every rank, agreement checked)."""
        return GlobalMagnitudePruner(
            model,
            exclude=self.config.exclude,
            prune_head=self.config.prune_head,
            prune_embeddings=self.config.prune_embeddings,
            process_group="default" if self.world is not None else None,
        )

    def optimizer(self, model: torch.nn.Module) -> torch.optim.Optimizer:
        c = self.config
        if c.optimizer == "sgd":
            return torch.optim.SGD(model.parameters(), lr=c.lr, momentum=c.momentum, weight_decay=c.weight_decay)
        return torch.optim.AdamW(model.parameters(), lr=c.lr, weight_decay=c.weight_decay)

    # ---- training and evaluation -----------------------------------------------------------------------
    def train(
        self,
        model: torch.nn.Module,
        pruner: GlobalMagnitudePruner | None,
        start_step: int,
        seed: int,
        desc: str,
        on_step: Callable[[int], None] | None = None,
    ) -> dict:
        """Train from optimizer step ``start_step`` to the end of the schedule with ``pruner``'s masks kept
        applied (None: dense). Returns ``steps``, ``train_loss`` (the last epoch's mean, None if not finite),
        ``amp_skipped_steps`` and ``train_s``."""
        seed_all(seed)
        optimizer = self.optimizer(model)
        handle = pruner.attach(optimizer) if pruner is not None else None
        factor = _lr_factor(self.config.schedule, self.total_steps)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: factor(s + start_step))
        start = time.perf_counter()
        trained = self._forward_module(wrap_ddp(model, self.device) if self.world is not None else model)
        try:
            stats = train_epochs(
                trained,
                self.train_loader,
                optimizer,
                scheduler,
                self.config.epochs,
                self.device,
                amp=self.pipeline.amp_dtype or False,
                progress=self.progress,
                start_step=start_step,
                seed=seed,
                on_step=on_step,
                desc=desc,
                channels_last=self.pipeline.channels_last,
                on_epoch=(lambda e: self.on_epoch(desc, e)) if self.on_epoch is not None else None,
            )
        finally:
            if handle is not None:
                handle.remove()
        if self.world is not None:
            broadcast_buffers(model)
        loss = stats.last_epoch_loss
        return {
            "steps": stats.steps,
            "train_loss": loss if math.isfinite(loss) else None,
            "amp_skipped_steps": stats.skipped,
            "train_s": time.perf_counter() - start,
        }

    def train_ticket(self, model: torch.nn.Module, pruner: GlobalMagnitudePruner, n: int, desc: str) -> dict:
        """Train a masked model rewound to the rewind step exactly as round ``n``'s ticket is trained."""
        return self.train(model, pruner, self.config.rewind_step, self.train_seed(n), desc)

    def evaluate(self, model: torch.nn.Module) -> float:
        """Top-1 accuracy on the task's whole test set."""
        return evaluate(
            self._forward_module(model),
            self.test_loader,
            self.device,
            amp=self.pipeline.amp_dtype or False,
            channels_last=self.pipeline.channels_last,
        )

    # ---- the baselines ----------------------------------------------------------------------------------
    @staticmethod
    def random_mask(masks: MaskSet, seed: int) -> MaskSet:
        """Random survivor positions with ``masks``' per-layer survivor counts."""
        generator = torch.Generator().manual_seed(seed)
        keep = []
        for shape, count in zip(masks.shapes, masks.survivor_counts()):
            flat = torch.zeros(shape.numel(), dtype=torch.bool)
            flat[torch.randperm(shape.numel(), generator=generator)[:count]] = True
            keep.append(flat.reshape(shape))
        return MaskSet.from_bool(keep, masks.names)

    def baselines(self, n: int, masks: MaskSet, theta_k: Mapping[str, torch.Tensor]) -> dict:
        """Round n's baselines (``config.baselines``), each trained like the ticket with mask ``masks``:
        ``random-reinit`` (that mask on a fresh initialization) and ``random-mask`` (random positions with its
        per-layer counts, rewound to ``theta_k``). Returns ``{name: accuracy, density, train_loss, seconds}``."""
        c, results = self.config, {}
        for name in c.baselines:
            start = time.perf_counter()
            if name == "random-reinit":
                model = self.build(mix_seed(c.seed, n, "reinit"), pretrained=False)
                pruner = self.pruner(model)
                pruner.load_state_dict({"names": masks.names, "masks": masks.state_dict()})
            else:  # random-mask
                model = self.build(self.init_seed)
                pruner = self.pruner(model)
                random_masks = self.random_mask(masks, mix_seed(c.seed, n, "random-mask"))
                pruner.load_state_dict({"names": random_masks.names, "masks": random_masks.state_dict()})
                pruner.rewind(theta_k)
            train = self.train_ticket(model, pruner, n, desc=f"round {n} {name}")
            accuracy = self.evaluate(model)
            results[name] = {
                "accuracy": accuracy,
                "density": pruner.density(),
                "train_loss": train["train_loss"],
                "seconds": time.perf_counter() - start,
            }
            del model, pruner
        return results
