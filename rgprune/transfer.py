"""Ticket transfer: task A's winning ticket retrained on task B, and its link to the RG flows.

A ticket of an IMP run (``rgprune.imp``) at round n is the pair (mask m_n, rewind point θ_k). Transferring
run A's round-n ticket to run B's task (after Morcos et al. 2019, "One ticket to win them all") means: build
B's model, take every tensor of A's θ_k whose shape fits (the classifier head of a task with another number of
classes does not: it comes from B's own θ_k and is reported in ``TransferResult.from_target``), keep A's mask
m_n applied, and train exactly as B's own round n was trained: B's optimizer, schedule, epochs and batch size,
from B's rewind step, with B's round-n training seed (hence B's data order). The only difference from B's
own ticket is then A's mask and A's weights, and

    relative accuracy = accuracy(A's ticket trained on B) / accuracy(B's own round-n ticket)

measures how well A's ticket transfers. Transferring a run onto itself reproduces its round n bit for bit
(same device and CPU thread count), which the tests check.

``transfer_matrix(runs, out_dir)`` does every ordered pair of several runs, saves each pair as it finishes
(``pairs/<A>--<B>.json``, written atomically; a rerun skips finished pairs), and relates transfer to the
distance between the runs' flows (``rgprune.rg.flow_distance`` of their recorded traces): Spearman's rank
correlation, over the ordered pairs A != B, between ``relative accuracy`` and ``flow distance``. The paper's
claim (Redman et al. 2022) predicts a negative correlation: the closer two flows, the better the tickets
transfer.

Example (``rgprune transfer RUN_A RUN_B RUN_C RUN_D --out runs/transfer``)::

    >>> from rgprune.transfer import spearman
    >>> round(spearman([1, 2, 3, 4], [0.9, 0.7, 0.8, 0.1]).rho, 3)
    -0.8
"""
from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

from rgprune._io import atomic_write, atomic_write_json
from rgprune.imp import ConfigError, ConfigTypeError, IMPResult, RoundTrainer, RunDir, deterministic, load_result

__all__ = ["REPORT_FILE", "RESULT_FILE", "RankCorrelation", "TransferResult", "spearman", "transfer_matrix",
           "transfer_ticket", "write_transfer_result"]

#: the files of a transfer's output directory: the result (JSON) and, for a matrix, its markdown report
RESULT_FILE, REPORT_FILE = "transfer.json", "transfer.md"


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
    def from_dict(cls, data) -> "TransferResult":
        return cls(**{**data, "from_target": tuple(data["from_target"])})


def write_transfer_result(result: TransferResult, out_dir: str | os.PathLike) -> Path:
    """Save one transfer's result as ``out_dir``/transfer.json (atomically); returns the path."""
    if not isinstance(result, TransferResult):
        raise TypeError(f"result must be a TransferResult, got {type(result).__name__}")
    path = Path(out_dir) / RESULT_FILE
    atomic_write_json(path, result.to_dict())
    return path


def _load_run(path: str | os.PathLike) -> IMPResult:
    result = load_result(path)
    if not result.rounds:
        raise ConfigError(f"{path} holds no complete IMP round; run `rgprune imp ... --out {path}` first")
    return result


def _check_round(round_, last: int, where: str) -> None:
    """``round_`` is a round complete in every run (``last``: the last such round; ``where``: the runs)."""
    if isinstance(round_, bool) or not isinstance(round_, int):
        raise ConfigTypeError(f"round must be an int, got {type(round_).__name__}")
    if not 0 <= round_ <= last:
        raise ConfigError(f"round {round_} is not complete in {where}; choose a round in 0..{last}")


def _check_pair(source: IMPResult, target: IMPResult, round_: int | None) -> int:
    """Validate that ``source``'s tickets can be trained on ``target``'s task; returns the round."""
    a, b = source.config, target.config
    if a.model != b.model:
        raise ConfigError(f"cannot transfer a {a.model} ticket ({source.out_dir}) to a {b.model} run "
                         f"({target.out_dir}): the two runs must use the same model")
    for name in ("prune_head", "prune_embeddings", "image_size"):
        if getattr(a, name) != getattr(b, name):
            raise ConfigError(f"the runs differ in {name} ({getattr(a, name)!r} in {source.out_dir}, "
                             f"{getattr(b, name)!r} in {target.out_dir}): the mask and weights of one do not fit "
                             f"the other's model; rerun one of them with the same {name}")
    last = min(len(source.rounds), len(target.rounds)) - 1
    if round_ is None:
        return last
    _check_round(round_, last, f"both runs: {source.out_dir} has rounds 0..{len(source.rounds) - 1}, "
                               f"{target.out_dir} 0..{len(target.rounds) - 1}")
    return round_


def transfer_ticket(source_dir: str | os.PathLike, target_dir: str | os.PathLike, round: int | None = None,
                    progress: bool = False) -> TransferResult:
    """Train ``source_dir``'s round-``round`` ticket on ``target_dir``'s task (see the module docstring).

    Both are IMP run directories of the same model (and image size / pruning selection); ``round`` defaults
    to the last round complete in both. Nothing is written into either run directory. Raises ``ConfigError``
    (a ValueError; ``RunNotFoundError``, a FileNotFoundError, for a missing run) with what to change.
    """
    source, target = _load_run(source_dir), _load_run(target_dir)
    n = _check_pair(source, target, round)
    src, dst = RunDir(source.out_dir), RunDir(target.out_dir)
    start = time.perf_counter()
    trainer = RoundTrainer(target.config, progress)
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
            raise ConfigError(f"the mask of {src} round {n} covers other tensors than {dst}'s model prunes "
                             f"({len(masks.names)} vs {len(pruner.names)}); were the runs made by different "
                             f"rgprune versions?")
        clash = sorted(set(from_target) & set(pruner.names))
        if clash:
            raise ConfigError(f"pruned tensors {clash} have different shapes in {src} and {dst} (a pruned head of "
                             f"tasks with different class counts?); a ticket can transfer only when its masked "
                             f"tensors fit")
        pruner.load_state_dict({"names": masks.names, "masks": masks.state_dict()})
        pruner.rewind(state)  # A's θ_k (and B's head where A's does not fit), A's mask applied
        train = trainer.train_ticket(model, pruner, n, desc=f"{src.path.name} round {n} on {target.config.task}")
        accuracy = trainer.evaluate(model)
    own = target.rounds[n].accuracy
    return TransferResult(source=source.out_dir, target=target.out_dir, round=n, density=pruner.density(),
                          accuracy=accuracy, target_accuracy=own, relative=accuracy / own if own > 0 else math.nan,
                          from_target=tuple(from_target), train_loss=train["train_loss"],
                          seconds=time.perf_counter() - start, source_config=source.config.digest,
                          target_config=target.config.digest)


@dataclass(frozen=True)
class RankCorrelation:
    """Spearman's rank correlation ``rho`` of ``n`` pairs and its two-sided p-value (ties get mean ranks)."""

    rho: float
    p_value: float
    n: int


def spearman(x: Sequence[float], y: Sequence[float]) -> RankCorrelation:
    """Spearman's rank correlation between ``x`` and ``y`` (scipy.stats.spearmanr), validated.

    Needs at least 3 finite pairs and neither side constant (a constant has no ranks to correlate).
    """
    import numpy as np
    from scipy import stats

    xa, ya = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if xa.ndim != 1 or xa.shape != ya.shape:
        raise ValueError(f"x and y must be 1-D sequences of equal length, got shapes {xa.shape} and {ya.shape}")
    if len(xa) < 3:
        raise ValueError(f"a rank correlation needs at least 3 pairs, got {len(xa)}")
    if not (np.isfinite(xa).all() and np.isfinite(ya).all()):
        raise ValueError("x and y must be finite (a NaN has no rank)")
    if np.ptp(xa) == 0 or np.ptp(ya) == 0:
        raise ValueError("x or y is constant, so the rank correlation is undefined")
    result = stats.spearmanr(xa, ya)
    return RankCorrelation(rho=float(result.statistic), p_value=float(result.pvalue), n=len(xa))


def _pair_path(out: Path, a: str, b: str) -> Path:
    return out / "pairs" / f"{a}--{b}.json"


def transfer_matrix(runs: Sequence[str | os.PathLike], out_dir: str | os.PathLike, round: int | None = None,
                    progress: bool = False, log=None, rank: int | None = None) -> dict:
    """Transfer every run's ticket to every other run's task, relate it to the flows' distances, and write
    ``transfer.json`` and ``transfer.md`` into ``out_dir`` (see the module docstring). Resumable: pairs
    already saved in ``out_dir/pairs`` for the same runs and round are not trained again.

    ``round`` defaults to the last round complete in every run. ``rank``: the DMD rank of the flows'
    eigenvalues (``rgprune.rg.flow_distance``; None = its default truncation). A flow of n rounds has n - 1
    snapshot pairs, and a DMD of that full rank fits them exactly whatever the dynamics, so for long flows of
    high-dimensional observables a small fixed rank gives the more stable eigenvalues. Returns the dict
    written to transfer.json: ``runs``, ``tasks``, ``round``, ``relative`` / ``accuracy`` matrices (row =
    source ticket, column = target task; the diagonal holds each run's own accuracy, relative 1),
    ``flow_distance`` (``total`` of ``flow_distance`` of the runs' recorded histogram trajectories) with its
    two parts ``eigenvalue_distance`` and ``trajectory_distance``, and ``correlation`` (of relative accuracy
    with the total distance) and ``correlations`` (with each of the three).
    """
    import numpy as np

    paths, results, traces, round = _matrix_runs(runs, round)
    names, k = [p.name for p in paths], len(paths)
    parts = _flow_distances(traces, rank)
    out = Path(out_dir)
    (out / "pairs").mkdir(parents=True, exist_ok=True)
    accuracy, relative = np.eye(k), np.eye(k)
    for i in range(k):
        accuracy[i, i] = results[i].rounds[round].accuracy
        for j in range(k):
            if i == j:
                continue
            path = _pair_path(out, names[i], names[j])
            saved = _saved_pair(path, round, results[i], results[j])
            if saved is None:
                saved = transfer_ticket(paths[i], paths[j], round, progress=progress)
                atomic_write_json(path, saved.to_dict())
                if log is not None:
                    print(f"{names[i]} round {round} -> {names[j]}: accuracy {saved.accuracy:.4f} "
                          f"(own ticket {saved.target_accuracy:.4f}, relative {saved.relative:.4f}) "
                          f"{saved.seconds:.1f}s", file=log, flush=True)
            accuracy[i, j], relative[i, j] = saved.accuracy, saved.relative
    correlations = _correlations(parts, relative)
    data = {"runs": [str(p) for p in paths], "names": names, "tasks": [r.config.task for r in results],
            "round": round, "density": [r.rounds[round].density for r in results], "dmd_rank": rank,
            "accuracy": accuracy.tolist(), "relative": relative.tolist(),
            **{key: distance.tolist() for key, distance in parts.items()},
            "correlation": correlations["flow_distance"], "correlations": correlations,
            "correlation_of": "Spearman rank correlation over ordered pairs A != B of relative[A][B] and "
                              "flow_distance[A][B] (correlations: also with each part of the distance)"}
    atomic_write_json(out / RESULT_FILE, data)
    atomic_write(out / REPORT_FILE, lambda tmp: Path(tmp).write_text(_markdown(data)))
    return data


def _matrix_runs(runs, round_: int | None) -> tuple[list[Path], list[IMPResult], list, int]:
    """Validate the runs of a transfer matrix and the round; returns their paths, results, recorded flows
    (FlowTraces) and the round."""
    from rgprune.rg.report import MIN_ROUNDS

    if isinstance(runs, (str, os.PathLike)) or len(runs) < 3:
        raise ConfigError("transfer_matrix needs at least 3 run directories (a rank correlation needs 3 pairs; "
                          "for one pair use transfer_ticket)")
    paths = [Path(r) for r in runs]
    names = [p.name for p in paths]
    if len(set(names)) != len(names):
        raise ConfigError(f"run directories must have distinct names (they label the matrix), got {names}")
    results = [_load_run(p) for p in paths]
    last = min(len(r.rounds) for r in results) - 1
    for r in results[1:]:
        _check_pair(results[0], r, None)
    if round_ is None:
        round_ = last
    _check_round(round_, last, "every run")
    traces = [RunDir(p).load_trace() for p in paths]
    short = [name for name, trace in zip(names, traces) if len(trace) < MIN_ROUNDS]
    if short:
        raise ConfigError(f"runs {short} have fewer than {MIN_ROUNDS} rounds: their flows cannot be compared")
    return paths, results, traces, round_


def _flow_distances(traces: Sequence, rank: int | None) -> dict:
    """``flow_distance`` (the total) and its two parts between every two runs' histogram flows: k x k arrays."""
    import numpy as np

    from rgprune.rg.flow import flow_distance

    k = len(traces)
    parts = {key: np.zeros((k, k)) for key in ("flow_distance", "eigenvalue_distance", "trajectory_distance")}
    for i in range(k):
        for j in range(i + 1, k):
            d = flow_distance(traces[i].trajectory("histogram"), traces[j].trajectory("histogram"), rank=rank)
            for key, value in (("flow_distance", d.total), ("eigenvalue_distance", d.eigenvalue_distance),
                               ("trajectory_distance", d.trajectory_distance)):
                parts[key][i, j] = parts[key][j, i] = value
    return parts


def _saved_pair(path: Path, round_: int, source: IMPResult, target: IMPResult) -> TransferResult | None:
    """The pair's saved result when it was made from these runs at this round, else None (train again)."""
    if not path.is_file():
        return None
    saved = TransferResult.from_dict(json.loads(path.read_text()))
    if (saved.round, saved.source_config, saved.target_config) != (round_, source.config.digest,
                                                                    target.config.digest):
        return None
    return saved


def _correlations(parts: dict, relative) -> dict:
    """Spearman's rho of relative accuracy with each distance, over the ordered pairs A != B."""
    import numpy as np

    off = ~np.eye(len(relative), dtype=bool)
    correlations = {}
    for key, distance in parts.items():
        try:
            corr = spearman(distance[off], relative[off])
            correlations[key] = {"rho": corr.rho, "p_value": corr.p_value, "n": corr.n}
        except ValueError as exc:  # e.g. every transfer exactly as good as the target's own ticket
            correlations[key] = {"rho": None, "p_value": None, "n": int(off.sum()), "reason": str(exc)}
    return correlations


def _markdown(data: dict) -> str:
    names, k = data["names"], len(data["names"])
    lines = [f"# Ticket transfer at round {data['round']}", "",
             "Relative accuracy: the row run's ticket trained on the column run's task, divided by the column "
             "run's own ticket (diagonal: 1).", "", "| ticket \\ task | " + " | ".join(names) + " |",
             "|---|" + "---|" * k]
    for i, name in enumerate(names):
        lines.append(f"| {name} | " + " | ".join(f"{v:.4f}" for v in data["relative"][i]) + " |")
    lines += ["", "Flow distance (rgprune.rg.flow_distance, histogram observable):", "",
              "| | " + " | ".join(names) + " |", "|---|" + "---|" * k]
    for i, name in enumerate(names):
        lines.append(f"| {name} | " + " | ".join(f"{v:.4f}" for v in data["flow_distance"][i]) + " |")
    lines += ["", f"Spearman rank correlation between relative accuracy and distance over the ordered pairs "
                  f"(DMD rank: {data['dmd_rank'] or 'default truncation'}):", "", "| distance | rho | p | pairs |",
              "|---|---|---|---|"]
    for key, c in data["correlations"].items():
        if c["rho"] is None:
            lines.append(f"| {key} | undefined: {c['reason']} | | {c['n']} |")
        else:
            lines.append(f"| {key} | {c['rho']:.3f} | {c['p_value']:.3g} | {c['n']} |")
    return "\n".join(lines) + "\n"
