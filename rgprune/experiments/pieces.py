"""The pieces of each finding's experiment, each resumable: run it again and it continues where it stopped.

``imp``: the design's IMP runs (``rgprune.imp.run_imp`` resumes after the last complete round). ``baselines``
and ``transfer`` (finding 1): the random-mask baseline of every run at the transfer rounds, and every ordered
pair's ticket transfer; each result is a small JSON file under the runs root, written atomically, and a piece
skips what is already there. ``summarize``: the committed summaries (``rgprune.experiments.summaries``) of the
complete runs. A piece takes ``shard=(i, n)`` to do every n-th item from the i-th, so that n processes share it.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TypeVar

from rgprune._io import atomic_write_json
from rgprune.experiments.designs import DEPTH_MODELS, F1, F2, F3, RunSpec
from rgprune.imp import RunDir, run_imp

__all__ = [
    "check_shard",
    "f1_baselines",
    "f1_transfers",
    "f2_datasets",
    "f3_specs",
    "imp_runs",
    "lexicon_subsample",
    "run_is_complete",
    "shard_of",
]

T = TypeVar("T")


def check_shard(shard: tuple[int, int]) -> tuple[int, int]:
    index, count = shard
    if not (isinstance(index, int) and isinstance(count, int) and count >= 1 and 0 <= index < count):
        raise ValueError(f"shard must be (i, n) with 0 <= i < n, got {shard!r}")
    return index, count


def shard_of(items: Sequence[T], shard: tuple[int, int]) -> list[T]:
    """Every n-th item from the i-th: the part of ``items`` that shard (i, n) does."""
    index, count = check_shard(shard)
    return list(items[index::count])


def run_is_complete(path: str | os.PathLike) -> bool:
    run = RunDir(path)
    return run.summary_path.is_file() and bool(run.read_summary()["complete"])


def _log(log, text: str) -> None:
    if log is not None:
        print(f"[{time.strftime('%H:%M:%S')}] {text}", file=log, flush=True)


def imp_runs(
    specs: Sequence[RunSpec],
    root: str | os.PathLike,
    shard: tuple[int, int] = (0, 1),
    log=None,
    datasets: Callable[[RunSpec], dict] | None = None,
) -> int:
    """Run (or resume) this shard's IMP runs under ``root``; ``datasets(spec)``: the ``train``/``test`` keyword
    arguments of a ``given-*`` task. Returns how many runs are complete afterwards."""
    done = 0
    for spec in shard_of(specs, shard):
        path = Path(root) / spec.name
        if run_is_complete(path):
            done += 1
            continue
        _log(log, f"imp {spec.name}")
        start = time.perf_counter()
        run_imp(spec.config(), path, progress=False, **(datasets(spec) if datasets is not None else {}))
        _log(log, f"imp {spec.name} done in {time.perf_counter() - start:.0f}s")
        done += 1
    return done


def _write_once(path: Path, make: Callable[[], dict], log, what: str) -> dict:
    if path.is_file():
        return json.loads(path.read_text())
    _log(log, what)
    result = make()
    atomic_write_json(path, result)
    return result


def f1_baseline_path(root: str | os.PathLike, run_name: str, n: int) -> Path:
    return Path(root) / "f1-baselines" / f"{run_name}-round{n:02d}.json"


def f1_transfer_path(root: str | os.PathLike, source: str, target: str, n: int) -> Path:
    return Path(root) / "f1-transfers" / f"{source}--{target}-round{n:02d}.json"


def f1_baselines(root: str | os.PathLike, shard: tuple[int, int] = (0, 1), log=None) -> int:
    """Finding 1: the random-mask baseline of every run at every transfer round (``rgprune.transfer``'s
    ``random_mask_baseline``: trained exactly as ``run_imp`` would have). Returns how many this shard holds."""
    from rgprune.transfer import random_mask_baseline

    items = [(spec, n) for spec in F1.runs() for n in F1.transfer_rounds]
    for spec, n in shard_of(items, shard):

        def make(spec=spec, n=n):
            return random_mask_baseline(Path(root) / spec.name, n).to_dict()

        _write_once(f1_baseline_path(root, spec.name, n), make, log, f"random mask {spec.name} round {n}")
    return len(shard_of(items, shard))


def f1_transfer_items() -> list[tuple[str, str, int]]:
    """(source run, target run, round) of every transfer of finding 1: every ordered pair of tasks, one seed."""
    return [
        (F1.run_name(a, s), F1.run_name(b, s), n)
        for n in F1.transfer_rounds
        for s in F1.seeds
        for a in F1.all_tasks
        for b in F1.all_tasks
        if a != b
    ]


def f1_transfers(root: str | os.PathLike, shard: tuple[int, int] = (0, 1), log=None) -> int:
    """Finding 1: every ordered pair's ticket transfer (``rgprune.transfer.transfer_ticket``)."""
    from rgprune.transfer import transfer_ticket

    items = shard_of(f1_transfer_items(), shard)
    for source, target, n in items:

        def make(source=source, target=target, n=n):
            result = transfer_ticket(Path(root) / source, Path(root) / target, n).to_dict()
            return {**result, "source": source, "target": target}

        _write_once(f1_transfer_path(root, source, target, n), make, log, f"transfer {source} -> {target} round {n}")
    return len(items)


def f3_specs(shared: bool = False) -> list[RunSpec]:
    """Finding 3's runs beyond finding 1's (their rounds follow from each model's prunable weight count); with
    ``shared``, finding 1's runs of its cells too (last, so that they are reached after finding 1 made them)."""
    from rgprune.models import build_model
    from rgprune.pruner import GlobalMagnitudePruner

    counts = {m: GlobalMagnitudePruner(build_model(m, 10, in_channels=1)).num_weights for m in DEPTH_MODELS}
    own = F3.runs(counts)
    return own + [s for s in F1.runs() if s.task in F3.tasks and s.seed in F3.seeds] if shared else own


def f2_datasets(spec: RunSpec) -> dict:
    """The ``train``/``test`` datasets of a finding-2 run: the lexicon task subsampled and cut (``F2``)."""
    task = spec.task.removeprefix("given-text:").rsplit("-", 1)[0]
    return dict(zip(("train", "test"), lexicon_subsample(task, F2.train_size, F2.max_length, F2.subsample_seed)))


def lexicon_subsample(task: str, train_size: int, max_length: int, seed: int):
    """(train, test) TensorDatasets of the embedded lexicon ``task``: entries of at most ``max_length`` tokens
    ([CLS] and [SEP] included) cut to that length; ``train_size`` of the train entries, stratified by label."""
    import torch
    from sklearn.model_selection import train_test_split
    from torch.utils.data import TensorDataset

    from rgprune.data import load_task

    loaded = load_task(task)
    parts = []
    for split in (loaded.train, loaded.test):
        ids, mask, labels = split.tensors
        short = mask.sum(1) <= max_length
        parts.append((ids[short, :max_length], mask[short, :max_length], labels[short]))
    ids, mask, labels = parts[0]
    if train_size < len(labels):
        rows, _ = train_test_split(
            list(range(len(labels))), train_size=train_size, stratify=labels.tolist(), random_state=seed
        )
        rows = torch.tensor(sorted(rows))
        ids, mask, labels = ids[rows], mask[rows], labels[rows]
    return TensorDataset(ids, mask, labels), TensorDataset(*parts[1])


def complete_specs(specs: Iterable[RunSpec], root: str | os.PathLike) -> list[RunSpec]:
    return [s for s in specs if run_is_complete(Path(root) / s.name)]
