"""``run_imp``: the round loop of iterative magnitude pruning with rewinding, checkpointed and resumable.

Round 0 trains densely from the initialization θ_init (saving θ_k, the weights after ``rewind_step``
optimizer steps); then every round n = 1 .. rounds:

1. the mask m_n: ``fraction`` of the surviving prunable weights of the trained θ_{n-1} pruned, ranked
   globally by |w| (``GlobalMagnitudePruner.prune``, done as the closing step of round n-1); density
   (1 - fraction)^n;
2. rewind the survivors to θ_k (every other parameter and buffer too);
3. train from step k to the end of the schedule with the mask kept applied, and evaluate: θ_n;
4. the baselines of the ticket claim, trained the same way (same steps, schedule and data order):
   ``random-reinit`` (mask m_n on a fresh random initialization) and ``random-mask`` (random positions
   with m_n's per-layer survivor counts, rewound to θ_k).

Every round, the last one included, ends by pruning its trained weights θ_n: that is one RG step
(coarse-graining), and its ``PruneReport`` carries the round's observables at no extra pass. What each round
writes, and when a round counts as complete: ``rgprune.imp.rundir.RunDir``.

Resume: ``run_imp`` on a directory that holds a run continues after its last complete round and gives
the same result as an uninterrupted run: every random draw is seeded from ``(seed, round, ...)``, each
epoch's data order from ``(seed, round, epoch)``, and a round starts only from what the previous complete
round saved (θ_{n-1}, m_{n-1}) plus θ_k. A config that differs from the saved one is refused. Bit-identical
results need the same device and, on the CPU, the same number of threads (``torch.get_num_threads()``,
recorded per round; resuming with another count warns), as torch's CPU training kernels reduce in a
thread-dependent order (rgprune's own kernels give one result for any count).
Under torch.distributed: ``rgprune.imp.coordination`` (``world_size`` is recorded per round; resuming with
another number of ranks warns, as the data shards then differ).
"""

from __future__ import annotations

import os
import sys
import time
import warnings
from collections.abc import Callable
from typing import TextIO

import torch

from rgprune.imp.config import ConfigError, IMPConfig
from rgprune.imp.coordination import barrier, check_replicated_state, distributed, rank0_prepares
from rgprune.imp.flow_report import write_run_flow_report
from rgprune.imp.progress import RunProgress
from rgprune.imp.results import IMPResult, RoundResult
from rgprune.imp.rundir import RunDir, observables_record, threshold_record
from rgprune.imp.trainer import RoundTrainer, cpu_state, deterministic
from rgprune.pruner import GlobalMagnitudePruner, PruneReport
from rgprune.train import progress_enabled

__all__ = ["run_imp"]


def run_imp(
    config: IMPConfig,
    out_dir: str | os.PathLike,
    progress: bool = True,
    *,
    model_fn: Callable[..., torch.nn.Module] | None = None,
    train=None,
    test=None,
    num_classes: int | None = None,
    tokenizer=None,
    stream: TextIO | None = None,
) -> IMPResult:
    """Run (or resume) iterative magnitude pruning with rewinding; see the module docstring.

    ``progress``: a line per epoch (training loss and accuracy, seconds, approximate ETA of the round and of the
    run) and per round on ``stream`` (default: stdout), whether or not it is a terminal, and tqdm bars per round
    and per epoch on a terminal (``rgprune.imp.progress``); ``progress=False`` prints nothing. Either way the same
    lines are appended to the run directory's run.log (a resume appends "resumed at round N"). Returns an
    ``IMPResult`` with one ``RoundResult`` per round (round 0 = dense).

    The program's own model and data: ``model_fn`` builds the model of ``config.model = "given:NAME"``, called
    as ``model_fn(num_classes=K, in_channels=C)`` for a vision task and ``model_fn(num_classes=K)`` for a text
    task; ``train`` and ``test`` are the datasets of ``config.task = "given-vision:NAME"`` or
    ``"given-text:NAME"`` (items and fingerprint: ``rgprune.data.given_task``; ``num_classes`` when they do not
    list their labels). ``tokenizer`` tokenizes a text task read from disk instead of the model's own. Resume,
    baselines and reports are as for named models and tasks; a resume with other data (lengths or sampled items)
    is refused.

    Everything is validated (config, data, model, weights) before anything is written: on any error the output
    directory is not created. Raises ``ConfigError`` (a ValueError) for an unusable config, data or output
    directory (e.g. a run with another config, or on other data). Under torch.distributed, every rank of the
    default process group calls it.
    """
    if not isinstance(config, IMPConfig):
        raise TypeError(f"config must be an IMPConfig, got {type(config).__name__}")
    run_dir = RunDir(out_dir)
    ranks = distributed()
    rank, world = ranks if ranks is not None else (0, None)
    # every rank validates alike (deterministic: the same error everywhere, before any collective)
    task = _given_task(config, train, test, num_classes)
    trainer = RoundTrainer(
        config, progress and rank == 0, rank, world, task=task, model_fn=model_fn, tokenizer=tokenizer
    )
    # rank 0 alone prints and writes run.log (distributed: the others only train)
    reporter = None
    if rank == 0:
        reporter = RunProgress(config, trainer.total_steps, (stream or sys.stdout) if progress else None)
        trainer.on_epoch = reporter.epoch
    with deterministic(trainer.device):
        model = trainer.build(trainer.init_seed)  # a model or weights file that does not fit fails here, unwritten
        trainer.check_model(model)
        if ranks is None:
            with run_dir.lock():
                return _run_rounds(trainer, run_dir, run_dir.prepare(config, trainer.inputs()), model, reporter)
        with rank0_prepares(run_dir, config, trainer.inputs(), rank, trainer.device) as last:
            return _run_rounds(trainer, run_dir, last, model, reporter)


def _given_task(config: IMPConfig, train, test, num_classes: int | None):
    """The Task of the datasets passed to run_imp (None when none were)."""
    from rgprune.data import given_task

    if train is None and test is None:
        if num_classes is not None:
            raise ConfigError("num_classes goes with the datasets of a given-*:NAME task (train=..., test=...)")
        return None
    if train is None or test is None:
        raise ConfigError("pass both datasets, train=... and test=..., or neither")
    try:
        return given_task(config.task, train, test, num_classes=num_classes)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def _warn_on_resume(trainer: RoundTrainer, run_dir: RunDir, saved: dict) -> None:
    """Warn when the rest of the run cannot be bit-identical to an uninterrupted one (``saved``: the metrics
    of the last complete round)."""
    saved_threads = saved.get("threads")
    if trainer.device.type == "cpu" and saved_threads not in (None, torch.get_num_threads()):
        warnings.warn(
            f"resuming {run_dir.path} with {torch.get_num_threads()} CPU threads; its rounds ran with "
            f"{saved_threads}. torch's CPU training kernels reduce in a thread-dependent order, so the rest "
            f"of the run will not be bit-identical to an uninterrupted one (torch.set_num_threads / "
            f"OMP_NUM_THREADS={saved_threads} restores that)",
            RuntimeWarning,
            stacklevel=4,
        )
    saved_world, world = saved.get("world_size", 1), trainer.world or 1
    if saved_world != world and trainer.rank == 0:
        warnings.warn(
            f"resuming {run_dir.path} with {world} torch.distributed rank(s); its rounds ran with "
            f"{saved_world}. The data shards differ, so the rest of the run will not be bit-identical "
            f"to an uninterrupted one",
            RuntimeWarning,
            stacklevel=4,
        )


def _train_dense(trainer: RoundTrainer, run_dir: RunDir, model: torch.nn.Module) -> tuple[dict, dict]:
    """Round 0: train densely from θ_init, capturing θ_k; saves θ_init and θ_k. Returns (train metrics, θ_k)."""
    init = cpu_state(model)
    captured = {"theta_k": init} if trainer.config.rewind_step == 0 else {}

    # distributed: θ_k's BatchNorm statistics are rank 0's only there (rank 0 saves them); elsewhere they are
    # harmless, as DDP overwrites every rank's buffers with rank 0's before each forward
    def capture(step: int) -> None:
        if step == trainer.config.rewind_step:
            captured["theta_k"] = cpu_state(model)

    train = trainer.train(model, None, 0, trainer.train_seed(0), desc="round 0 dense", on_step=capture)
    if trainer.rank == 0:  # distributed: rank 0 alone writes the run directory
        # θ_k = θ_init (rewind_step = 0) is saved once, init.safetensors marked as the rewind point too
        run_dir.save_init(init, None if captured["theta_k"] is init else captured["theta_k"])
    return train, captured["theta_k"]


def _round_metrics(
    trainer: RoundTrainer,
    n: int,
    model,
    pruner: GlobalMagnitudePruner,
    theta_k: dict,
    train: dict,
    report: PruneReport | None,
) -> dict:
    """Evaluate round n's trained θ_n and train its baselines; the round's metrics (timings completed later)."""
    c = trainer.config
    timings = {"train_s": train.pop("train_s")}
    t0 = time.perf_counter()
    accuracy = trainer.evaluate(model)
    timings["eval_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    baselines = trainer.baselines(n, pruner.masks.clone(), theta_k) if n > 0 else {}
    timings["baselines_s"] = time.perf_counter() - t0
    metrics = {
        "round": n,
        "density": pruner.density(),
        "survivors": pruner.num_survivors,
        "weights": pruner.num_weights,
        "accuracy": accuracy,
        **train,
        "rewind_step": c.rewind_step,
        "threshold": threshold_record(report.threshold) if report is not None else None,
        "baselines": baselines,
        "layer_densities": pruner.layer_densities(),
        "timings": timings,
        "device": str(trainer.device),
        "threads": torch.get_num_threads(),
    }
    if trainer.world is not None:
        metrics["world_size"] = trainer.world
    return metrics


def _finish_round(
    trainer: RoundTrainer, run_dir: RunDir, n: int, model, pruner: GlobalMagnitudePruner, metrics: dict, start: float
) -> PruneReport:
    """Checkpoint round n (θ_n and m_n), prune θ_n in place (the mask of round n + 1), save the PruneReport's
    observables, then the round's metrics, which mark it complete. Returns the report."""
    if trainer.world is not None:  # the ranks must hold one model: compare hashes of the masks and weights
        check_replicated_state(model, pruner, f"round {n}")
    writes = trainer.rank == 0  # distributed: rank 0 alone writes; the others prune alike (same masks, no files)
    if writes:
        run_dir.save_checkpoint(n, cpu_state(model), pruner.masks)
    t0 = time.perf_counter()
    report = pruner.prune(fraction=trainer.config.fraction)
    metrics["timings"]["prune_s"] = time.perf_counter() - t0
    metrics["timings"]["total_s"] = time.perf_counter() - start
    if writes:
        run_dir.save_observables(n, observables_record(n, pruner, report))
        run_dir.save_round_metrics(n, metrics)
    return report


def _write_summary(trainer: RoundTrainer, run_dir: RunDir, rounds: list[dict]) -> None:
    from rgprune import backend

    c = trainer.config
    run_dir.write_summary(
        {
            "name": c.name,
            "config": c.to_dict(),
            "device": str(trainer.device),
            "backend": backend(),
            "complete": len(rounds) == c.rounds + 1,
            "steps_per_epoch": trainer.steps_per_epoch,
            "total_steps": trainer.total_steps,
            "task": trainer.task.description,
            "rounds": rounds,
        },
        c.fraction,
    )


def _run_rounds(
    trainer: RoundTrainer, run_dir: RunDir, last: int, model: torch.nn.Module, reporter: RunProgress | None
) -> IMPResult:
    """Rounds last + 1 .. config.rounds, after the complete rounds 0 .. last found in ``run_dir``; ``model``: the
    config's model at θ_init; ``reporter``: rank 0's lines (None on the other ranks)."""
    from tqdm.auto import tqdm

    c, writes = trainer.config, trainer.rank == 0
    rounds = [run_dir.read_round_metrics(n) for n in range(last + 1)]
    if reporter is not None:  # the run directory is prepared (and locked): run.log may be appended to
        reporter.attach(run_dir)
        if last >= 0:
            reporter.resumed(last)
        else:
            reporter.started(c.name, trainer.steps_per_epoch, trainer.device)
    if last >= 0:
        _warn_on_resume(trainer, run_dir, rounds[-1])
    pruner = trainer.pruner(model)
    report: PruneReport | None = None  # the prune of θ_{n-1}, which made this round's mask m_n
    theta_k = None
    if 0 <= last < c.rounds:  # resume: θ_last and m_last, as the last complete round saved them, and θ_k
        model.load_state_dict(run_dir.load_weights(last))
        masks = run_dir.load_masks(last)
        pruner.load_state_dict({"names": masks.names, "masks": masks.state_dict()})
        theta_k = run_dir.load_rewind()
        report = pruner.prune(fraction=c.fraction)  # redo the last closing prune: the same mask and report
    bar = tqdm(
        total=c.rounds + 1,
        initial=last + 1,
        desc=f"IMP {c.name}",
        unit="round",
        dynamic_ncols=True,
        disable=not progress_enabled(trainer.progress),
    )
    n = last + 1
    try:
        for n in range(last + 1, c.rounds + 1):
            start = time.perf_counter()
            if reporter is not None:
                reporter.start_round(n)
            trainer.seed_round(n)
            if n == 0:
                train, theta_k = _train_dense(trainer, run_dir, model)
            else:  # the mask m_n is in place (the previous round pruned θ_{n-1}); rewind the survivors to θ_k
                pruner.rewind(theta_k)
                train = trainer.train_ticket(model, pruner, n, desc=f"round {n}")
            metrics = _round_metrics(trainer, n, model, pruner, theta_k, train, report)
            report = _finish_round(trainer, run_dir, n, model, pruner, metrics, start)
            rounds.append(metrics)
            if writes:
                _write_summary(trainer, run_dir, rounds)
            if trainer.world is not None:  # a round is complete on disk before any rank goes on (or exits)
                barrier()
            bar.update(1)
            if reporter is not None:
                reporter.round_done(metrics)
    except BaseException as exc:
        if reporter is not None:
            reporter.stopped(n, exc)
        raise
    finally:
        bar.close()
    if last == c.rounds and writes:  # nothing was left to do: keep the summary files in step with the rounds
        _write_summary(trainer, run_dir, rounds)
    if len(rounds) == c.rounds + 1 and writes:
        write_run_flow_report(run_dir.path)
    if trainer.world is not None:  # the others wait for rank 0's summary files
        barrier()
    return IMPResult(c, str(run_dir.path), [RoundResult.from_metrics(m) for m in rounds], last if last >= 0 else None)
