"""Every run's ticket on every other run's task, against the distance between the runs' flows.

``transfer_matrix(runs, out_dir)`` trains every ordered pair (``transfer_ticket``), saving each as it finishes
(``pairs/<A>--<B>.json``; a rerun skips finished pairs), gets every run's random-mask baseline at the round
(``random_mask_baseline``: the run's own, else trained once and saved in ``baselines/<run>-round<NN>.json``),
and relates the normalized transfer gain to the distance between the runs' flows (``rgprune.rg.flow_distance``
of their recorded traces, on the ``excess`` observable by default) with the Mantel tests of
``rgprune.transfer.statistics``. Pair-level correlations (e.g. Spearman over ordered pairs) are not reported:
pairs share tasks, so they treat dependent numbers as independent and reject far too often.

Every file is written atomically (temp file, then rename) while the process holds ``out_dir/.lock``; a killed
matrix resumes where it stopped: the temp file of the write it was killed at is removed and that pair trained again.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from rgprune._io import atomic_write, atomic_write_json, directory_lock, remove_temp_files
from rgprune.imp import ConfigError, IMPResult, RunDir
from rgprune.rg.analysis import MIN_ROUNDS
from rgprune.rg.distance import flow_distance
from rgprune.rg.observables import DEFAULT_OBSERVABLES, OBSERVABLES
from rgprune.transfer.statistics import transfer_statistics
from rgprune.transfer.ticket import (
    REPORT_FILE,
    RESULT_FILE,
    BaselineResult,
    TransferResult,
    check_rebuildable,
    check_round,
    check_transferable,
    load_complete_run,
    random_mask_baseline,
    transfer_ticket,
)

__all__ = ["DENSE_DISTANCE_NOTE", "TRAJECTORY_WEIGHT", "transfer_matrix"]

#: flow_distance = eigenvalue distance + TRAJECTORY_WEIGHT x trajectory distance: the weight this tool has always
#: used (finding 1's design), given explicitly since ``rgprune.rg.flow_distance`` adds the parts only when asked
TRAJECTORY_WEIGHT = 1.0

DENSE_DISTANCE_NOTE = (
    "dense_distance[A][B] = ‖O_0(A) − O_0(B)‖: the Euclidean distance between the two runs' round-0 "
    "rows of the flow's observable, a function of the dense trained models θ_0 alone"
)


def _pair_path(out: Path, a: str, b: str) -> Path:
    return out / "pairs" / f"{a}--{b}.json"


def _baseline_path(out: Path, name: str, round_: int) -> Path:
    return out / "baselines" / f"{name}-round{round_:02d}.json"


def _check_options(observable: str, rank) -> None:
    if not isinstance(observable, str) or observable not in OBSERVABLES:
        raise ConfigError(f"observable must be one of {tuple(OBSERVABLES)}, got {observable!r}")
    if rank is not None and (isinstance(rank, bool) or not isinstance(rank, int) or rank < 1):
        raise ConfigError(f"rank must be a positive int or None (the held-out rule), got {rank!r}")


def transfer_matrix(
    runs: Sequence[str | os.PathLike],
    out_dir: str | os.PathLike,
    round: int | None = None,
    progress: bool = False,
    log=None,
    rank: int | None = None,
    observable: str = DEFAULT_OBSERVABLES[0],
    alternative: str = "less",
    seed: int = 0,
    given: Mapping | None = None,
) -> dict:
    """Transfer every run's ticket to every other run's task, relate the normalized gain to the flows' distances,
    and write ``transfer.json`` and ``transfer.md`` into ``out_dir`` (module docstring). Resumable.

    ``round`` defaults to the last round complete in every run (round 0, the dense model, has no gain).
    ``rank``: a fixed DMD rank for the flows' eigenvalues (None: each flow's held-out rule); ``observable``:
    the trace observable the flows are compared on; ``alternative``: the sign the Mantel tests expect, fixed in
    advance ("less": closer flows transfer better); ``seed``: of the permutations when they are sampled; ``given``:
    for a run made on datasets or a model factory its program passed to ``run_imp`` (``given-*:NAME`` tasks,
    ``given:NAME`` models), ``{run: dict(train=..., test=..., model_fn=...)}`` keyed by its directory as listed in
    ``runs`` or by its name (``transfer_ticket``); every run is checked for them before anything is trained. Returns
    the dict written to transfer.json: ``accuracy``, ``relative`` (to the target's own ticket) and ``gain``
    matrices (row = source ticket, column = target task), ``random_mask_accuracy`` per run with its
    ``random_mask_source``, ``flow_distance`` with its parts ``eigenvalue_distance`` and
    ``trajectory_distance``, ``dense_distance``, and ``task_level``, ``mantel``, ``partial_mantel``.
    """
    _check_options(observable, rank)
    paths, results, traces, round = _matrix_runs(runs, round)
    inputs = _given_inputs(runs, paths, results, given)
    parts = _flow_distances(traces, rank, observable)
    out = Path(out_dir)
    busy = f"{out} is being written by another transfer_matrix process; wait for it or use another output directory"
    with directory_lock(out, busy=busy, error=ConfigError):
        # a killed run leaves the temp file of the write it was killed at; that pair is trained again
        remove_temp_files(out, out / "pairs", out / "baselines")
        (out / "pairs").mkdir(exist_ok=True)
        return _write_matrix(
            paths, results, round, out, parts, progress, log, rank, observable, alternative, seed, inputs
        )


def _given_inputs(runs, paths: list[Path], results: list[IMPResult], given: Mapping | None) -> list[dict]:
    """Each run's ``given`` keyword arguments (``transfer_matrix``), after checking every run can be rebuilt."""
    if given is None:
        given = {}
    if not isinstance(given, Mapping):
        raise ConfigError(f"given must be a mapping {{run: dict(train=..., test=..., model_fn=...)}}, got {given!r}")
    keys = {}
    for run, path in zip(runs, paths):
        for key in (run, str(run), path, str(path), path.name):
            keys[key] = path.name
    unknown = [key for key in given if key not in keys]
    if unknown:
        raise ConfigError(f"given names runs {unknown} that are not among the matrix's runs {[p.name for p in paths]}")
    by_name: dict[str, dict] = {}
    for key, kwargs in given.items():
        if not isinstance(kwargs, Mapping):
            raise ConfigError(f"given[{key!r}] must be a dict of train=..., test=..., model_fn=..., got {kwargs!r}")
        if keys[key] in by_name:
            raise ConfigError(f"given names run {keys[key]} twice")
        by_name[keys[key]] = dict(kwargs)
    for path, result in zip(paths, results):
        kwargs = by_name.get(path.name, {})
        check_rebuildable(result, data=kwargs.get("train") is not None, model_fn=kwargs.get("model_fn") is not None)
    return [by_name.get(path.name, {}) for path in paths]


def _write_matrix(
    paths, results, round, out, parts, progress, log, rank, observable, alternative, seed, inputs
) -> dict:
    """``transfer_matrix`` once its inputs are checked and ``out`` is locked."""
    names = [p.name for p in paths]
    accuracy, relative = _pairs(paths, results, round, out, progress, log, inputs)
    baselines = [
        _baseline(out, path, result, round, progress, log, given) for path, result, given in zip(paths, results, inputs)
    ]
    tasks = [r.config.task for r in results]
    random_mask = [None if b is None else b.accuracy for b in baselines]
    tested, tested_note = _tested_distance(names, parts)
    stats = transfer_statistics(
        accuracy,
        random_mask,
        tasks,
        parts[tested],
        parts["dense_distance"],
        alternative=alternative,
        seed=seed,
    )
    data = {
        "runs": [str(p) for p in paths],
        "names": names,
        "tasks": tasks,
        "seeds": [r.config.seed for r in results],
        "round": round,
        "density": [r.rounds[round].density for r in results],
        "observable": observable,
        "dmd_rank": rank,
        "accuracy": accuracy.tolist(),
        "relative": relative.tolist(),
        "random_mask_accuracy": random_mask,
        "random_mask_source": [None if b is None else b.source for b in baselines],
        **{key: _json_matrix(distance) for key, distance in parts.items()},
        "trajectory_weight": TRAJECTORY_WEIGHT,
        "distance_tested": tested,
        "distance_tested_note": tested_note,
        "dense_distance_note": DENSE_DISTANCE_NOTE,
        **stats,
    }
    atomic_write_json(out / RESULT_FILE, data)
    atomic_write(out / REPORT_FILE, lambda tmp: Path(tmp).write_text(_markdown(data)))
    return data


def _pairs(
    paths: list[Path], results: list[IMPResult], round_: int, out: Path, progress: bool, log, inputs: list[dict]
) -> tuple[np.ndarray, np.ndarray]:
    """Accuracy and relative accuracy of every ordered pair (saved pairs reused, new ones trained and saved)."""
    k = len(paths)
    accuracy, relative = np.eye(k), np.eye(k)
    for i in range(k):
        accuracy[i, i] = results[i].rounds[round_].accuracy
        for j in range(k):
            if i == j:
                continue
            path = _pair_path(out, paths[i].name, paths[j].name)
            saved = _saved(path, TransferResult, round_, (results[i].config.digest, results[j].config.digest))
            if saved is None:
                saved = transfer_ticket(paths[i], paths[j], round_, progress=progress, **inputs[j])
                atomic_write_json(path, saved.to_dict())
                if log is not None:
                    print(
                        f"{paths[i].name} round {round_} -> {paths[j].name}: accuracy {saved.accuracy:.4f} "
                        f"(own ticket {saved.target_accuracy:.4f}, relative {saved.relative:.4f}) "
                        f"{saved.seconds:.1f}s",
                        file=log,
                        flush=True,
                    )
            accuracy[i, j], relative[i, j] = saved.accuracy, saved.relative
    return accuracy, relative


def _baseline(
    out: Path, path: Path, result: IMPResult, round_: int, progress: bool, log, given: dict
) -> BaselineResult | None:
    """The run's random-mask baseline at the round (None at round 0): recorded, saved here before, or trained."""
    if round_ == 0:
        return None
    saved_path = _baseline_path(out, path.name, round_)
    saved = _saved(saved_path, BaselineResult, round_, (result.config.digest,))
    if saved is not None:
        return saved
    baseline = random_mask_baseline(path, round_, progress=progress, **given)
    if baseline.source == "trained":
        atomic_write_json(saved_path, baseline.to_dict())
        if log is not None:
            print(
                f"{path.name} round {round_}: the run has no random-mask baseline; trained it like the run's own "
                f"rounds: accuracy {baseline.accuracy:.4f} {baseline.seconds:.1f}s",
                file=log,
                flush=True,
            )
    return baseline


def _saved(path: Path, kind, round_: int, digests: tuple[str, ...]):
    """A saved pair / baseline when it was made from these runs at this round, else None (train again)."""
    if not path.is_file():
        return None
    saved = kind.from_dict(json.loads(path.read_text()))
    made_from = (saved.source_config, saved.target_config) if kind is TransferResult else (saved.config,)
    return saved if saved.round == round_ and made_from == digests else None


def _matrix_runs(runs, round_: int | None) -> tuple[list[Path], list[IMPResult], list, int]:
    """Validate the runs of a transfer matrix and the round; returns their paths, results, recorded flows
    (FlowTraces) and the round."""
    if isinstance(runs, (str, os.PathLike)) or len(runs) < 3:
        raise ConfigError(
            "transfer_matrix needs at least 3 run directories (a Mantel test needs 3 tasks; for one "
            "pair use transfer_ticket)"
        )
    paths = [Path(r) for r in runs]
    names = [p.name for p in paths]
    if len(set(names)) != len(names):
        raise ConfigError(f"run directories must have distinct names (they label the matrix), got {names}")
    results = [load_complete_run(p) for p in paths]
    last = min(len(r.rounds) for r in results) - 1
    for r in results[1:]:
        check_transferable(results[0], r, None)
    if round_ is None:
        round_ = last
    check_round(round_, last, "every run")
    traces = [RunDir(p).load_trace() for p in paths]
    short = [name for name, trace in zip(names, traces) if len(trace) < MIN_ROUNDS]
    if short:
        raise ConfigError(f"runs {short} have fewer than {MIN_ROUNDS} rounds: their flows cannot be compared")
    return paths, results, traces, round_


def _flow_distances(traces: Sequence, rank: int | None, observable: str) -> dict:
    """``flow_distance`` (the total), its two parts, and the dense models' distance between every two runs' flows.

    A flow whose fit resolved nothing has no eigenvalues, so its eigenvalue distance and total are undefined
    (NaN here, null in transfer.json), not a distance to {0}; ``_tested_distance`` then picks what is tested."""
    try:
        trajectories = [t.trajectory(observable) for t in traces]
    except ValueError as exc:
        raise ConfigError(f"the {observable} observable is undefined for these runs ({exc}); choose another") from None
    k = len(traces)
    keys = ("flow_distance", "eigenvalue_distance", "trajectory_distance", "dense_distance")
    parts = {key: np.zeros((k, k)) for key in keys}
    for i in range(k):
        for j in range(i + 1, k):
            d = flow_distance(trajectories[i], trajectories[j], rank=rank, trajectory_weight=TRAJECTORY_WEIGHT)
            dense = float(np.linalg.norm(trajectories[i][0] - trajectories[j][0]))
            for key, value in zip(keys, (d.total, d.eigenvalue_distance, d.trajectory_distance, dense)):
                parts[key][i, j] = parts[key][j, i] = np.nan if value is None else value
    return parts


def _tested_distance(names: list[str], parts: dict) -> tuple[str, str]:
    """Which distance the Mantel tests use, and why: the flow distance, or the trajectory distance when some
    runs' flows resolved no direction (their eigenvalue distance is undefined)."""
    undefined = np.isnan(parts["flow_distance"]).any(axis=1)
    if not undefined.any():
        return (
            "flow_distance",
            f"the tests use flow_distance (eigenvalue + {TRAJECTORY_WEIGHT:g} x trajectory distance)",
        )
    runs = [n for n, u in zip(names, undefined) if u]
    return "trajectory_distance", (
        f"the flow distance is undefined for pairs with {runs} (a fit that resolved no direction has no "
        f"eigenvalues), so the tests use trajectory_distance"
    )


def _json_matrix(matrix: np.ndarray) -> list:
    return [[None if np.isnan(v) else float(v) for v in row] for row in matrix]


def _matrix_lines(names: list[str], matrix, cell=lambda v: f"{v:.4f}") -> list[str]:
    lines = ["| | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    lines += [f"| {name} | " + " | ".join(cell(v) for v in row) + " |" for name, row in zip(names, matrix)]
    return lines + [""]


def _mantel_line(name: str, test: dict) -> str:
    if test["statistic"] is None:
        return f"| {name} | undefined: {test['reason']} | | | |"
    how = f"exact over {test['permutations']}" if test["exact"] else f"{test['permutations']} random"
    return (
        f"| {name} | {test['statistic']:+.3f} | {test['p_value']:.3g} ({test['alternative']}) | {how} relabellings "
        f"| {test['smallest_p']:.3g} |"
    )


def _markdown(data: dict) -> str:
    names = data["names"]
    gain = [["undefined" if g is None else f"{g:.3f}" for g in row] for row in data["gain"]]
    lines = [
        f"# Ticket transfer at round {data['round']}",
        "",
        "Normalized transfer gain: (accuracy of the row run's ticket on the column run's task − the column run's "
        "random-mask baseline) / (the column run's own ticket − its random-mask baseline). 1: as good as the "
        "target's own ticket; 0: no better than a random mask of that density.",
        "",
    ]
    lines += _matrix_lines(names, gain, cell=str)
    rm = ", ".join(
        f"{n} {'n/a' if a is None else f'{a:.4f}'} ({s or 'round 0: none'})"
        for n, a, s in zip(names, data["random_mask_accuracy"], data["random_mask_source"])
    )
    lines += [
        f"Random-mask baselines (run: recorded by the run; trained: trained here like the run's rounds): {rm}.",
        "",
        "Relative accuracy (the row run's ticket on the column run's task / that run's own ticket):",
        "",
    ]
    lines += _matrix_lines(names, data["relative"])
    rank = data["dmd_rank"] or "each flow's held-out rule"
    lines += [f"Flow distance (rgprune.rg.flow_distance, {data['observable']} observable, DMD rank: {rank}):", ""]
    cell = lambda v: "undefined" if v is None else f"{v:.4f}"  # noqa: E731
    lines += _matrix_lines(names, data["flow_distance"], cell)
    if data["distance_tested"] != "flow_distance":
        lines += ["Trajectory distance (mean distance of aligned rounds):", ""]
        lines += _matrix_lines(names, data["trajectory_distance"])
    lines += [f"The Mantel tests: {data['distance_tested_note']}.", ""]
    lines += [f"Distance between the dense models: {data['dense_distance_note']}.", ""]
    lines += _matrix_lines(names, data["dense_distance"])
    lines += [
        data["mantel_note"],
        "",
        "| test | r | one-sided p | null | smallest possible p |",
        "|---|---|---|---|---|",
        _mantel_line(f"Mantel ({data['distance_tested'].replace('_', ' ')} vs gain)", data["mantel"]),
        _mantel_line("partial Mantel (controlling for the dense models' distance)", data["partial_mantel"]),
        "",
    ]
    return "\n".join(lines)
