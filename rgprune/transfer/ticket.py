"""One ticket transfer: task A's winning ticket retrained on task B; and the random-mask baseline it is measured by.

A ticket of an IMP run (``rgprune.imp``) at round n is the pair (mask m_n, rewind point θ_k). Transferring
run A's round-n ticket to run B's task (after Morcos et al. 2019, "One ticket to win them all") means: build
B's model, take every tensor of A's θ_k whose shape fits (the classifier head of a task with another number of
classes does not: it comes from B's own θ_k and is reported in ``TransferResult.from_target``), keep A's mask
m_n applied, and train exactly as B's own round n was trained: B's optimizer, schedule, epochs and batch size,
from B's rewind step, with B's round-n training seed (hence B's data order). The only difference from B's
own ticket is then A's mask and A's weights. Transferring a run onto itself reproduces its round n bit for bit
(same device and CPU thread count), which the tests check.

``random_mask_baseline(B, n)``: the accuracy on B's task of a random mask with m_n's per-layer survivor counts,
rewound to B's θ_k and trained like B's round n: B's own ``random-mask`` baseline when the run trained one,
else trained now exactly as the run would have (the same seeds, so the same numbers as a run made with
``--baselines random-mask``). The normalized transfer gain (``rgprune.rg.transfer_gain``) divides by it.

Both rebuild the target run's task and model from its directory: its config (the task spec with its data paths and
text/image options, the model spec, the weights file) and ``inputs.json``, against which the rebuilt data and
weights are checked (files changed since the run are refused, not silently trained on). A run on datasets or a
model factory its program passed to ``run_imp`` (``given-vision:NAME`` / ``given-text:NAME`` tasks, ``given:NAME``
models) recorded only their names and the data's fingerprint: ``check_rebuildable`` refuses it up front unless the
caller passes them again (``train=``, ``test=``, ``num_classes=``, ``model_fn=``, as to ``run_imp``; the data are
checked against the recorded fingerprint). The command line cannot pass them, so ``rgprune transfer`` refuses such
runs with that message. A run tokenized with a ``tokenizer=`` of its own takes it again here too.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from rgprune._io import atomic_write_json
from rgprune.imp import ConfigError, ConfigTypeError, IMPResult, RoundTrainer, RunDir, deterministic, load_result

__all__ = [
    "RANDOM_MASK",
    "REPORT_FILE",
    "RESULT_FILE",
    "BaselineResult",
    "TransferResult",
    "check_rebuildable",
    "check_round",
    "check_transferable",
    "load_complete_run",
    "random_mask_baseline",
    "run_trainer",
    "transfer_ticket",
    "write_transfer_result",
]

#: the files of a transfer's output directory: the result (JSON) and, for a matrix, its markdown report
RESULT_FILE, REPORT_FILE = "transfer.json", "transfer.md"
#: the baseline the transfer gain is normalized by (one of rgprune.imp.BASELINES)
RANDOM_MASK = "random-mask"


@dataclass(frozen=True)
class TransferResult:
    """One ticket transfer: ``source``'s round-``round`` ticket trained on ``target``'s task.

    ``accuracy``: the transferred ticket's test accuracy on the target task; ``target_accuracy``: the target
    run's own ticket of that round; ``relative``: their ratio. ``density``: the mask's density (the source's).
    ``from_target``: state-dict entries taken from the target's rewind point because their shapes differ
    (e.g. the head of a task with another number of classes). ``source_config`` / ``target_config``: the two
    runs' config digests, so that a saved result is recognised as stale when a run directory is reused.
    """

    source: str
    target: str
    round: int
    density: float
    accuracy: float
    target_accuracy: float
    relative: float
    from_target: tuple[str, ...]
    train_loss: float | None
    seconds: float
    source_config: str
    target_config: str

    def to_dict(self) -> dict:
        data = asdict(self)
        data["from_target"] = list(self.from_target)
        return data

    @classmethod
    def from_dict(cls, data) -> TransferResult:
        return cls(**{**data, "from_target": tuple(data["from_target"])})


def write_transfer_result(result: TransferResult, out_dir: str | os.PathLike) -> Path:
    """Save one transfer's result as ``out_dir``/transfer.json (atomically); returns the path."""
    if not isinstance(result, TransferResult):
        raise TypeError(f"result must be a TransferResult, got {type(result).__name__}")
    path = Path(out_dir) / RESULT_FILE
    atomic_write_json(path, result.to_dict())
    return path


def load_complete_run(path: str | os.PathLike) -> IMPResult:
    """The ``IMPResult`` of a run directory with at least one complete round (``ConfigError`` otherwise)."""
    result = load_result(path)
    if not result.rounds:
        raise ConfigError(f"{path} holds no complete IMP round; run `rgprune imp ... --out {path}` first")
    return result


def _is_given(config) -> tuple[bool, bool]:
    """Whether the run's task and its model were passed in by its program (``given-*:NAME``, ``given:NAME``)."""
    from rgprune.data import parse_task_spec
    from rgprune.models import parse_model_spec

    return parse_task_spec(config.task).is_given, parse_model_spec(config.model).source == "given"


def check_rebuildable(result: IMPResult, *, data: bool = False, model_fn: bool = False) -> None:
    """Refuse, before anything is trained, a run whose task or model cannot be rebuilt from its directory: one on
    datasets (``given-*:NAME``) or a model factory (``given:NAME``) its program passed to ``run_imp``, unless they
    are passed again (``data``: ``train``/``test`` are given; ``model_fn``: the factory is). Their passing for a
    run that did not take them is refused too (``ConfigError`` either way)."""
    given_task, given_model = _is_given(result.config)
    c, where = result.config, result.out_dir
    missing = []
    if given_task and not data:
        missing.append(f"its task {c.task!r} is datasets its program passed to run_imp(train=..., test=...)")
    if given_model and not model_fn:
        missing.append(f"its model {c.model!r} is built by the factory its program passed to run_imp(model_fn=...)")
    if missing:
        raise ConfigError(
            f"cannot rebuild the run in {where} to train on it: {' and '.join(missing)}. A run directory records "
            "their names and the data's fingerprint, not the data or the code, so `rgprune transfer` cannot use "
            "this run (it takes runs of embedded, KIND:PATH, hf:, torchvision: and module: tasks and models). "
            "From Python, pass them again, as to run_imp: transfer_ticket(A, B, train=..., test=..., "
            "model_fn=...) for target run B, random_mask_baseline(run, train=..., test=..., model_fn=...), "
            "transfer_matrix(runs, out, given={run: dict(train=..., test=..., model_fn=...)}); the data are "
            "checked against the run's fingerprint"
        )
    if data and not given_task:
        raise ConfigError(
            f"datasets were passed for {where}, but its task {c.task!r} is rebuilt from its spec; pass them only "
            "for a given-vision:NAME or given-text:NAME run"
        )
    if model_fn and not given_model:
        raise ConfigError(
            f"a model_fn was passed for {where}, but its model {c.model!r} is rebuilt from its spec; pass one "
            "only for a given:NAME run"
        )


def run_trainer(
    result: IMPResult,
    progress: bool = False,
    *,
    config=None,
    train=None,
    test=None,
    num_classes: int | None = None,
    model_fn: Callable | None = None,
    tokenizer=None,
) -> RoundTrainer:
    """A ``RoundTrainer`` of the run ``result`` (``config``: a variant of its config), its task and model rebuilt
    from the run directory, or from the datasets and factory passed again for a ``given-*`` run
    (``check_rebuildable``), and checked against the inputs the run recorded (inputs.json): other data (files
    changed, other datasets, another tokenizer) or other weights are a ``ConfigError``."""
    from rgprune.data import given_task

    if (train is None) != (test is None):
        raise ConfigError("pass both datasets, train=... and test=..., or neither")
    if num_classes is not None and train is None:
        raise ConfigError("num_classes goes with the datasets of a given-*:NAME run (train=..., test=...)")
    check_rebuildable(result, data=train is not None, model_fn=model_fn is not None)
    config = result.config if config is None else config
    task = None
    if train is not None:
        try:
            task = given_task(config.task, train, test, num_classes=num_classes)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
    trainer = RoundTrainer(config, progress, task=task, model_fn=model_fn, tokenizer=tokenizer)
    _check_inputs(trainer, result)
    return trainer


def _check_inputs(trainer: RoundTrainer, result: IMPResult) -> None:
    """The rebuilt task's data and model's weights are those the run recorded in inputs.json (when it has one)."""
    saved = RunDir(result.out_dir).read_inputs()
    if saved is None:  # a run made before runs recorded their inputs
        return
    now = json.loads(json.dumps(trainer.inputs()))
    task, model = saved.get("task", {}), saved.get("model", {})
    if task != now["task"]:
        raise ConfigError(
            f"the data of {result.out_dir} are not those it trained on: task {task.get('spec')!r} had data "
            f"fingerprint {task.get('fingerprint')}, rebuilt now it has {now['task']['fingerprint']} (files "
            "changed, other datasets, or another tokenizer or preprocessing); restore the run's data (or pass "
            "the datasets / tokenizer it was made with)"
        )
    if model != now["model"]:
        raise ConfigError(
            f"the model weights of {result.out_dir} are not those it started from: recorded {model}, now "
            f"{now['model']}; restore the run's weights file"
        )


def check_round(round_, last: int, where: str) -> None:
    """``round_`` is a round complete in every run (``last``: the last such round; ``where``: the runs)."""
    if isinstance(round_, bool) or not isinstance(round_, int):
        raise ConfigTypeError(f"round must be an int, got {type(round_).__name__}")
    if not 0 <= round_ <= last:
        raise ConfigError(f"round {round_} is not complete in {where}; choose a round in 0..{last}")


def check_transferable(source: IMPResult, target: IMPResult, round_: int | None) -> int:
    """Validate that ``source``'s tickets can be trained on ``target``'s task; returns the round."""
    a, b = source.config, target.config
    if a.model != b.model:
        raise ConfigError(
            f"cannot transfer a {a.model} ticket ({source.out_dir}) to a {b.model} run "
            f"({target.out_dir}): the two runs must use the same model"
        )
    for name in ("prune_head", "prune_embeddings", "exclude", "image_size"):
        if getattr(a, name) != getattr(b, name):
            raise ConfigError(
                f"the runs differ in {name} ({getattr(a, name)!r} in {source.out_dir}, "
                f"{getattr(b, name)!r} in {target.out_dir}): the mask and weights of one do not fit "
                f"the other's model; rerun one of them with the same {name}"
            )
    last = min(len(source.rounds), len(target.rounds)) - 1
    if round_ is None:
        return last
    check_round(
        round_,
        last,
        f"both runs: {source.out_dir} has rounds 0..{len(source.rounds) - 1}, "
        f"{target.out_dir} 0..{len(target.rounds) - 1}",
    )
    return round_


def transfer_ticket(
    source_dir: str | os.PathLike,
    target_dir: str | os.PathLike,
    round: int | None = None,
    progress: bool = False,
    **given,
) -> TransferResult:
    """Train ``source_dir``'s round-``round`` ticket on ``target_dir``'s task (see the module docstring).

    Both are IMP run directories of the same model (and image size / pruning selection); ``round`` defaults
    to the last round complete in both. Nothing is written into either run directory. ``given``: the target
    run's ``train``, ``test`` (and ``num_classes``) datasets of a ``given-*:NAME`` task, ``model_fn`` of a
    ``given:NAME`` model, ``tokenizer`` of a text run made with its own, as passed to its ``run_imp``. Raises
    ``ConfigError`` (a ValueError; ``RunNotFoundError``, a FileNotFoundError, for a missing run) with what to
    change, e.g. for a ``given-*`` target without its datasets, before training anything.
    """
    source, target = load_complete_run(source_dir), load_complete_run(target_dir)
    n = check_transferable(source, target, round)
    src, dst = RunDir(source.out_dir), RunDir(target.out_dir)
    start = time.perf_counter()
    trainer = run_trainer(target, progress, **given)
    with deterministic(trainer.device):
        model = trainer.build(trainer.init_seed)
        state = dst.load_rewind()  # B's θ_k: what A's θ_k cannot provide
        theirs = src.load_rewind()
        from_target = []
        for key, value in state.items():
            if key in theirs and theirs[key].shape == value.shape:
                state[key] = theirs[key]
            else:
                from_target.append(key)
        pruner = trainer.pruner(model)
        masks = src.load_masks(n)
        if list(masks.names) != list(pruner.names):
            raise ConfigError(
                f"the mask of {src} round {n} covers other tensors than {dst}'s model prunes "
                f"({len(masks.names)} vs {len(pruner.names)}); were the runs made by different "
                f"rgprune versions?"
            )
        clash = sorted(set(from_target) & set(pruner.names))
        if clash:
            raise ConfigError(
                f"pruned tensors {clash} have different shapes in {src} and {dst} (a pruned head of "
                f"tasks with different class counts?); a ticket can transfer only when its masked "
                f"tensors fit"
            )
        pruner.load_state_dict({"names": masks.names, "masks": masks.state_dict()})
        pruner.rewind(state)  # A's θ_k (and B's head where A's does not fit), A's mask applied
        train = trainer.train_ticket(model, pruner, n, desc=f"{src.path.name} round {n} on {target.config.task}")
        accuracy = trainer.evaluate(model)
    own = target.rounds[n].accuracy
    return TransferResult(
        source=source.out_dir,
        target=target.out_dir,
        round=n,
        density=pruner.density(),
        accuracy=accuracy,
        target_accuracy=own,
        relative=accuracy / own if own > 0 else math.nan,
        from_target=tuple(from_target),
        train_loss=train["train_loss"],
        seconds=time.perf_counter() - start,
        source_config=source.config.digest,
        target_config=target.config.digest,
    )


@dataclass(frozen=True)
class BaselineResult:
    """The random-mask baseline of run ``run`` at round ``round``: ``accuracy`` on the run's task at ``density``.

    ``source``: "run" (the run trained it, as ``--baselines random-mask``) or "trained" (trained by
    ``random_mask_baseline`` the same way). ``config``: the run's config digest (a saved result of another run
    in the same directory is stale). ``seconds``: training time (0 for "run").
    """

    run: str
    round: int
    accuracy: float
    density: float
    source: str
    config: str
    seconds: float

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data) -> BaselineResult:
        return cls(**data)


def random_mask_baseline(
    run_dir: str | os.PathLike, round: int | None = None, progress: bool = False, **given
) -> BaselineResult:
    """The accuracy of ``run_dir``'s random-mask baseline at ``round`` (default: its last complete round).

    The run's own ``random-mask`` baseline when it trained one; else trained now exactly as ``run_imp`` trains
    it (``RoundTrainer.baselines``: random positions with m_n's per-layer survivor counts, drawn from the run's
    seed, rewound to θ_k, trained like the round-n ticket), so the number equals the one a run made with
    ``--baselines random-mask`` records (same device and CPU thread count). Nothing is written into the run.
    Round 0 is the dense model: there is no mask to randomize, so it raises ``ConfigError``. ``given``: the run's
    datasets, model factory or tokenizer when it was made with them (``transfer_ticket``); needed only to train.
    """
    result = load_complete_run(run_dir)
    last = len(result.rounds) - 1
    n = last if round is None else round
    check_round(n, last, str(result.out_dir))
    if n == 0:
        raise ConfigError(
            f"round 0 of {result.out_dir} is the dense model: a random-mask baseline needs a pruned round (1..{last})"
        )
    digest = result.config.digest
    recorded = result.rounds[n].baselines.get(RANDOM_MASK)
    if recorded is not None:
        return BaselineResult(
            run=result.out_dir,
            round=n,
            accuracy=recorded,
            density=result.rounds[n].density,
            source="run",
            config=digest,
            seconds=0.0,
        )
    start = time.perf_counter()
    trainer = run_trainer(result, progress, config=result.config.replace(baselines=(RANDOM_MASK,)), **given)
    run = RunDir(result.out_dir)
    with deterministic(trainer.device):
        trained = trainer.baselines(n, run.load_masks(n), run.load_rewind())[RANDOM_MASK]
    return BaselineResult(
        run=result.out_dir,
        round=n,
        accuracy=trained["accuracy"],
        density=trained["density"],
        source="trained",
        config=digest,
        seconds=time.perf_counter() - start,
    )
