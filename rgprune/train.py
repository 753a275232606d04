"""Minimal, honest training and evaluation loops, meant to be read and replaced.

``train_epochs`` runs plain supervised training with cross-entropy; ``evaluate`` returns top-1 accuracy.
Both take the two batch layouts of ``rgprune.data``:

* vision: ``(images, labels)``; the model maps images to logits;
* text: ``(input_ids, attention_mask, labels)``; the model is a Hugging Face classifier called as
  ``model(input_ids=..., attention_mask=...)`` whose output has ``.logits``. Sentence pairs for a model with
  token types (BERT) are ``(input_ids, attention_mask, token_type_ids, labels)``, and the model is called with
  ``token_type_ids=...`` too (unless its ``forward`` takes no such argument, e.g. a factory's own model).

Nothing here knows about pruning: ``GlobalMagnitudePruner.attach(optimizer)`` keeps the masks applied
through the optimizer's step hook, so any training loop that calls ``optimizer.step()`` works with it.

AMP uses ``torch.autocast``: ``amp=True`` picks the device's dtype (bfloat16 on the CPU, float16 on CUDA), or
``amp`` names it (``torch.bfloat16``/``torch.float16``); float16 trains with a ``GradScaler``. The weights and
the optimizer stay in float32. ``channels_last=True`` hands 4-D image batches to the model in channels-last
memory format (cuDNN's fast layout for convolutions); the model's weights keep theirs.

Data order: ``train_epochs(seed=...)`` reseeds, every epoch, torch's RNG, the loader's ``generator`` and, when
the loader's sampler has one, its ``seed_epoch(seed)`` (``rgprune.imp.pipeline.EpochSampler``, which also
seeds every example's augmentation whichever process loads it).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import inspect
import math
import sys
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch.nn import functional as F

__all__ = [
    "EpochStats",
    "TrainStats",
    "amp_dtype",
    "evaluate",
    "forward_batch",
    "mix_seed",
    "progress_enabled",
    "train_epochs",
]


def progress_enabled(progress: bool, stream=None) -> bool:
    """Whether to draw progress bars: asked for, and the stream is an interactive terminal."""
    stream = sys.stderr if stream is None else stream
    return bool(progress) and hasattr(stream, "isatty") and stream.isatty()


def _to(batch: Sequence[torch.Tensor], device: torch.device) -> list[torch.Tensor]:
    # non_blocking: a copy from pinned memory overlaps with the GPU's work (from pageable memory it syncs anyway)
    non_blocking = device.type == "cuda"
    return [t.to(device, non_blocking=non_blocking) for t in batch]


@functools.lru_cache(maxsize=64)
def _forward_takes_token_type_ids(forward) -> bool:
    try:
        parameters = inspect.signature(forward).parameters.values()
    except (TypeError, ValueError):  # no signature to read: pass them, as to any Hugging Face model
        return True
    return any(p.name == "token_type_ids" or p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters)


def _takes_token_type_ids(model: torch.nn.Module) -> bool:
    """Whether ``model``'s ``forward`` takes ``token_type_ids`` (by name or ``**kwargs``), looking through
    DistributedDataParallel (``.module``) and ``torch.compile`` (``._orig_mod``) wrappers."""
    wrappers = (torch.nn.parallel.DistributedDataParallel, torch.nn.DataParallel)
    while True:
        if isinstance(model, wrappers):
            model = model.module
        elif isinstance(getattr(model, "_orig_mod", None), torch.nn.Module):
            model = model._orig_mod
        else:
            break
    return _forward_takes_token_type_ids(type(model).forward)


def forward_batch(
    model: torch.nn.Module, batch: Sequence[torch.Tensor], device, channels_last: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(logits, labels)`` for one batch of either layout (see the module docstring)."""
    device = torch.device(device)
    batch = _to(batch, device)
    if len(batch) == 2:  # vision: (images, labels)
        x, y = batch
        if channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        out = model(x)
    elif len(batch) in (3, 4):  # text: (input_ids, attention_mask[, token_type_ids], labels)
        *inputs, y = batch
        kwargs = {"input_ids": inputs[0], "attention_mask": inputs[1]}
        if len(inputs) == 3 and _takes_token_type_ids(model):
            kwargs["token_type_ids"] = inputs[2]
        out = model(**kwargs)
    else:
        raise ValueError(
            "a batch must be (inputs, labels) or (input_ids, attention_mask[, token_type_ids], labels); got "
            f"{len(batch)} tensors"
        )
    logits = out.logits if hasattr(out, "logits") else out
    if not isinstance(logits, torch.Tensor):
        raise TypeError(f"the model returned {type(out).__name__}; expected logits or an output with .logits")
    return logits, y


def amp_dtype(device, amp: bool | torch.dtype) -> torch.dtype | None:
    """The autocast dtype of ``amp`` on ``device``: None (off), the device's default for ``True`` (float16 on
    CUDA, bfloat16 on the CPU), or the dtype given (bfloat16 or float16)."""
    if amp is False or amp is None:
        return None
    if amp is True:
        return torch.float16 if torch.device(device).type == "cuda" else torch.bfloat16
    if amp not in (torch.bfloat16, torch.float16):
        raise ValueError(f"amp must be True, False, torch.bfloat16 or torch.float16, got {amp!r}")
    return amp


def _autocast(device: torch.device, dtype: torch.dtype | None):
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


@dataclass
class TrainStats:
    """What a ``train_epochs`` call did: optimizer steps taken (``steps``; ``skipped`` of them skipped by
    the AMP grad scaler), the step counter at the end (``end_step``), and the mean training loss of the
    last epoch."""

    steps: int
    end_step: int
    last_epoch_loss: float
    skipped: int = 0


@dataclass
class EpochStats:
    """One epoch of a ``train_epochs`` call, as passed to its ``on_epoch``: the epoch (0-based) of ``epochs``, the
    optimizer steps taken in it (``steps``, fewer than the loader's length when training started mid-epoch) and the
    step counter at its end (``end_step``, of ``total_steps``), its mean training loss and training accuracy (the
    fraction of its examples whose logits' argmax was the label, counted on the batches as they were trained: in
    training mode, before each step), and its wall-clock seconds."""

    epoch: int
    epochs: int
    steps: int
    end_step: int
    total_steps: int
    loss: float
    accuracy: float
    seconds: float


def _seed_epoch(loader, epoch_seed: int) -> None:
    """Reseed torch, the loader's generator and its sampler's ``seed_epoch`` (the shuffling order) for one epoch."""
    torch.manual_seed(epoch_seed)
    generator = getattr(loader, "generator", None)
    if generator is not None:
        generator.manual_seed(epoch_seed)
    seed_sampler = getattr(getattr(loader, "sampler", None), "seed_epoch", None)
    if seed_sampler is not None:
        seed_sampler(epoch_seed)


def _train_step(
    model, batch, optimizer, scheduler, scaler, device: torch.device, dtype: torch.dtype | None, channels_last: bool
) -> tuple[float, bool]:
    """One optimizer step on one batch (then one scheduler step); returns the loss, whether the AMP grad scaler
    skipped the step, and the number of examples whose logits' argmax was the label (a tensor on the device, read
    once per epoch) and of examples."""
    with _autocast(device, dtype):
        logits, y = forward_batch(model, batch, device, channels_last)
        loss = F.cross_entropy(logits.float(), y)
    correct = (logits.detach().argmax(dim=-1) == y).sum()
    optimizer.zero_grad(set_to_none=True)
    skipped = False
    if scaler is not None:
        scaler.scale(loss).backward()
        scale = scaler.get_scale()
        scaler.step(optimizer)
        scaler.update()
        skipped = scaler.get_scale() < scale  # the scaler lowered its scale: step skipped
    else:
        loss.backward()
        optimizer.step()
    if scheduler is not None:
        with warnings.catch_warnings():  # a step skipped by the scaler makes torch warn about order
            warnings.simplefilter("ignore", UserWarning)
            scheduler.step()
    return float(loss.detach()), skipped, correct, int(y.numel())


def train_epochs(
    model: torch.nn.Module,
    loader,
    optimizer: torch.optim.Optimizer,
    scheduler=None,
    epochs: int = 1,
    device="cpu",
    amp: bool | torch.dtype = False,
    progress: bool = True,
    *,
    start_step: int = 0,
    seed: int | None = None,
    on_step: Callable[[int], None] | None = None,
    desc: str = "train",
    channels_last: bool = False,
    on_epoch: Callable[[EpochStats], None] | None = None,
) -> TrainStats:
    """Train ``model`` with cross-entropy for ``epochs`` epochs of ``loader``.

    ``scheduler`` (any ``torch.optim.lr_scheduler``) is stepped after every optimizer step, not per
    epoch. ``start_step`` resumes in the middle of the run (learning-rate rewinding): training covers
    optimizer steps ``start_step .. epochs * len(loader)``, skipping the batches before it, so the caller
    must build ``scheduler`` to start at that step. ``seed``: when given, torch's RNG and the loader's
    generator are reseeded at the start of every epoch from ``(seed, epoch)``, so that each epoch's data
    order is the same whichever step training started from. ``on_step(step)`` is called after each
    optimizer step with the number of steps taken so far (counting ``start_step``); ``on_epoch(EpochStats)``
    after each epoch (its loss, training accuracy and seconds). ``amp`` and ``channels_last``: see the module
    docstring.

    Progress: one tqdm bar per epoch, shown only when ``progress`` is true and stderr is a terminal.
    """
    import time

    from tqdm.auto import tqdm

    device = torch.device(device)
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 0:
        raise ValueError(f"epochs must be an int >= 0, got {epochs!r}")
    steps_per_epoch = len(loader)
    total = epochs * steps_per_epoch
    if not 0 <= start_step <= total:
        raise ValueError(
            f"start_step must be in [0, {total}] ({epochs} epochs x {steps_per_epoch} steps), got {start_step}"
        )
    dtype = amp_dtype(device, amp)
    scaler = torch.amp.GradScaler(device.type) if dtype == torch.float16 else None
    show = progress_enabled(progress)
    step, steps, skipped, last_loss = start_step, 0, 0, math.nan
    model.train()
    for epoch in range(start_step // steps_per_epoch if steps_per_epoch else epochs, epochs):
        if seed is not None:
            _seed_epoch(loader, mix_seed(seed, epoch))
        skip = step - epoch * steps_per_epoch  # batches of this epoch already taken before start_step
        loss_sum, n_loss, correct, seen = 0.0, 0, 0, 0
        started = time.perf_counter()
        bar = tqdm(
            total=steps_per_epoch - skip,
            desc=f"{desc} epoch {epoch + 1}/{epochs}",
            leave=False,
            disable=not show,
            dynamic_ncols=True,
        )
        for i, batch in enumerate(loader):
            if i < skip:
                continue
            value, was_skipped, right, n = _train_step(
                model, batch, optimizer, scheduler, scaler, device, dtype, channels_last
            )
            correct, seen = right + correct, seen + n  # summed on the device: no sync per step
            skipped += was_skipped
            step += 1
            steps += 1
            loss_sum += value
            n_loss += 1
            bar.update(1)
            if show:
                bar.set_postfix(loss=f"{value:.3f}", refresh=False)
            if on_step is not None:
                on_step(step)
        bar.close()
        last_loss = loss_sum / n_loss if n_loss else math.nan
        if on_epoch is not None:
            on_epoch(
                EpochStats(
                    epoch=epoch,
                    epochs=epochs,
                    steps=n_loss,
                    end_step=step,
                    total_steps=total,
                    loss=last_loss,
                    accuracy=int(correct) / seen if seen else math.nan,
                    seconds=time.perf_counter() - started,
                )
            )
    return TrainStats(steps=steps, end_step=step, last_epoch_loss=last_loss, skipped=skipped)


@torch.no_grad()
def evaluate(
    model: torch.nn.Module, loader, device="cpu", amp: bool | torch.dtype = False, channels_last: bool = False
) -> float:
    """Top-1 accuracy of ``model`` on ``loader`` (eval mode; the model's train/eval mode is restored)."""
    device = torch.device(device)
    dtype = amp_dtype(device, amp)
    was_training = model.training
    model.eval()
    correct, seen = 0, 0
    try:
        for batch in loader:
            with _autocast(device, dtype):
                logits, y = forward_batch(model, batch, device, channels_last)
            correct += int((logits.argmax(dim=-1) == y).sum())
            seen += int(y.numel())
    finally:
        model.train(was_training)
    if seen == 0:
        raise ValueError("evaluate: the loader yielded no examples")
    return correct / seen


def mix_seed(*parts: int | str) -> int:
    """A 63-bit seed from a tuple of ints and strings, e.g. ``mix_seed(seed, round, "train")``.

    Stable across processes and Python versions (unlike ``hash()``), so a resumed or transferred run
    draws exactly what an uninterrupted one drew.

    >>> mix_seed(0, "init") == mix_seed(0, "init") != mix_seed(1, "init")
    True
    """
    if not parts or not all(isinstance(p, (int, str)) and not isinstance(p, bool) for p in parts):
        raise TypeError(f"mix_seed takes one or more ints or strings, got {parts!r}")
    digest = hashlib.sha256(repr(tuple(parts)).encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)
