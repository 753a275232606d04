"""Finding 1 from its summaries: the go/no-go test, the transfer gains and the Mantel tests (design: ``F1``).

Everything here reads the committed summaries (``docs/findings-data/finding1``), never a run directory.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rgprune.experiments.designs import F1
from rgprune.experiments.summaries import expand_trace, read_summary, run_summary_paths
from rgprune.rg import mantel_test, permanova, trajectory_distance, transfer_gain_matrix
from rgprune.rg.stats import permdisp

__all__ = [
    "TEN_CLASS_TASKS",
    "Finding1Data",
    "dispersion",
    "go_no_go",
    "load",
    "ticket_gaps",
    "transfer_test",
]

#: the tasks of the go/no-go test with 10 classes (upper5 has 5, parity 2): the go/no-go on these alone asks
#: whether flows carry a task signal beyond the number of classes (a correction, docs/findings.md)
TEN_CLASS_TASKS = tuple(t for t in F1.tasks if not t.endswith(("-upper5", "-parity")))


@dataclass
class Finding1Data:
    """The summaries of finding 1: ``flows[(task, seed)]`` (rounds, observables) trajectories, ``accuracy[(task,
    seed)]`` per round, ``dense[seed]`` the (tasks, tasks) dense-model distances in ``F1.all_tasks`` order,
    ``random_mask[(task, seed, round)]`` and ``transfer[(source task, target task, seed, round)]`` accuracies;
    ``traces[(task, seed)]``: the runs' ``FlowTrace`` (for the exploratory tail index)."""

    flows: dict
    accuracy: dict
    dense: dict
    random_mask: dict
    transfer: dict
    traces: dict = field(default_factory=dict)


def load(root: str | Path) -> Finding1Data:
    """Read finding 1's summaries under ``root`` (the ``docs/findings-data`` folder)."""
    folder = Path(root) / "finding1"
    flows, accuracy, traces = {}, {}, {}
    for path in run_summary_paths(root, "finding1"):
        s = read_summary(path)
        key = (s["task"], s["seed"])
        traces[key] = expand_trace(s["trace"])
        flows[key] = traces[key].trajectory(F1.observable)
        accuracy[key] = [r["accuracy"] for r in s["rounds"]]
    extra = read_summary(folder / "transfers.json.gz") if (folder / "transfers.json.gz").is_file() else {}
    dense = {int(seed): np.array(m) for seed, m in extra.get("dense", {}).items()}
    random_mask = {(r["task"], r["seed"], r["round"]): r["accuracy"] for r in extra.get("random_mask", [])}
    transfer = {
        (r["source_task"], r["target_task"], r["seed"], r["round"]): r["accuracy"] for r in extra.get("transfer", [])
    }
    return Finding1Data(flows, accuracy, dense, random_mask, transfer, traces)


def run_distances(data: Finding1Data, keys: list[tuple[str, int]], upto: int) -> np.ndarray:
    """Flow distances (rounds 0..upto) between the runs ``keys`` ((task, seed) pairs)."""
    d = np.zeros((len(keys), len(keys)))
    for i, j in itertools.combinations(range(len(keys)), 2):
        d[i, j] = d[j, i] = trajectory_distance(data.flows[keys[i]][: upto + 1], data.flows[keys[j]][: upto + 1])
    return d


def go_no_go(data: Finding1Data, tasks: tuple[str, ...] = F1.tasks) -> dict:
    """The go/no-go PERMANOVA over the runs of ``tasks`` (task = group, permuted within seeds), whole flows."""
    keys = [(t, s) for s in F1.seeds for t in tasks if (t, s) in data.flows]
    missing = [(t, s) for s in F1.seeds for t in tasks if (t, s) not in data.flows]
    d = run_distances(data, keys, F1.rounds)
    result = permanova(d, [t for t, _ in keys], strata=[s for _, s in keys], permutations=F1.permutations)
    return {
        "result": result,
        "runs": len(keys),
        "missing": missing,
        "go": result.p_value < F1.go_level,
        "ratio": result.mean_between / result.mean_within,
    }


def dispersion(data: Finding1Data, tasks: tuple[str, ...] = F1.tasks) -> dict:
    """PERMDISP (``rgprune.rg.stats.permdisp``) over the runs of ``tasks``, as the go/no-go's PERMANOVA groups and
    permutes them: do the tasks differ in how far their seeds' flows spread? (exploratory, not in the design)"""
    keys = [(t, s) for s in F1.seeds for t in tasks if (t, s) in data.flows]
    d = run_distances(data, keys, F1.rounds)
    result = permdisp(d, [t for t, _ in keys], strata=[s for _, s in keys], permutations=F1.permutations)
    return {"result": result, "runs": len(keys)}


def ticket_gaps(data: Finding1Data, n: int, tasks: tuple[str, ...] = F1.tasks) -> dict:
    """Per target task at round ``n``: own ticket − random mask, per seed (the two share the seed), its mean and
    standard error over the seeds, and the mean in standard errors. NaN where a random mask is missing."""
    own = np.array([[data.accuracy[(t, s)][n] for t in tasks] for s in F1.seeds])
    rnd = np.array([[data.random_mask.get((t, s, n), np.nan) for t in tasks] for s in F1.seeds])
    gap = own - rnd
    mean, se = gap.mean(axis=0), gap.std(axis=0, ddof=1) / np.sqrt(len(F1.seeds))
    with np.errstate(divide="ignore", invalid="ignore"):
        z = mean / se
    return {"tasks": tasks, "gap": gap, "mean": mean, "se": se, "z": z}


def task_distances(data: Finding1Data, tasks: tuple[str, ...], upto: int) -> np.ndarray:
    """(seeds, tasks, tasks) flow distances over rounds 0..upto between the runs of one seed."""
    return np.array([run_distances(data, [(t, s) for t in tasks], upto) for s in F1.seeds])


def accuracies(data: Finding1Data, tasks: tuple[str, ...], n: int) -> tuple[np.ndarray, np.ndarray]:
    """(seeds, tasks, tasks) accuracies of task a's round-n ticket trained on task b (diagonal: b's own ticket),
    and (seeds, tasks) accuracies of b's random mask; NaN where a result is missing."""
    acc = np.full((len(F1.seeds), len(tasks), len(tasks)), np.nan)
    rnd = np.full((len(F1.seeds), len(tasks)), np.nan)
    for si, s in enumerate(F1.seeds):
        for bi, b in enumerate(tasks):
            rnd[si, bi] = data.random_mask.get((b, s, n), np.nan)
            for ai, a in enumerate(tasks):
                acc[si, ai, bi] = data.accuracy[(b, s)][n] if a == b else data.transfer.get((a, b, s, n), np.nan)
    return acc, rnd


def gain(acc: np.ndarray, rnd: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The normalized gain from seed means, and the boolean per target task: does its own ticket beat the random
    mask by ``F1.min_gap``? Targets that do not get NaN columns."""
    mean_acc, mean_rnd = acc.mean(axis=0), rnd.mean(axis=0)
    ok = np.diag(mean_acc) - mean_rnd >= F1.min_gap
    g = np.full_like(mean_acc, np.nan)
    if ok.sum() >= 2:
        g[np.ix_(ok, ok)] = transfer_gain_matrix(mean_acc[np.ix_(ok, ok)], mean_rnd[ok], min_gap=F1.min_gap)
    for b in np.flatnonzero(ok):  # sources outside ``ok`` still have a gain on the targets in ``ok``
        g[:, b] = (mean_acc[:, b] - mean_rnd[b]) / (mean_acc[b, b] - mean_rnd[b])
    return g, ok


def transfer_test(data: Finding1Data, n: int, tasks: tuple[str, ...] = F1.tasks, n_boot: int = 1000) -> dict:
    """The Mantel tests of round ``n`` over ``tasks`` (targets without a ticket effect left out), the partial test
    on the dense-model distances, and a bootstrap interval of r over seeds."""
    acc, rnd = accuracies(data, tasks, n)
    if np.isnan(acc).any() or np.isnan(rnd).any():
        return {"complete": False, "missing": int(np.isnan(acc).sum() + np.isnan(rnd).sum())}
    g, ok = gain(acc, rnd)
    kept = tuple(t for t, k in zip(tasks, ok) if k)
    dist = task_distances(data, tasks, n)
    index = [F1.all_tasks.index(t) for t in tasks]
    dense = np.array([data.dense[s][np.ix_(index, index)] for s in F1.seeds])
    out = {
        "complete": True,
        "round": n,
        "tasks": tasks,
        "kept": kept,
        "gain": g,
        "distance": dist.mean(axis=0),
        "dense": dense.mean(axis=0),
        "own": np.diag(acc.mean(axis=0)),
        "random_mask": rnd.mean(axis=0),
        "accuracy": acc.mean(axis=0),
    }
    if len(kept) < 3:
        return {**out, "mantel": None, "partial": None, "interval": None}
    sel = np.ix_(ok, ok)
    out["mantel"] = mantel_test(dist[:, ok][:, :, ok], g[sel], alternative="less")
    out["partial"] = mantel_test(dist[:, ok][:, :, ok], g[sel], control=dense[:, ok][:, :, ok], alternative="less")
    out["interval"] = _seed_bootstrap(acc[:, ok][:, :, ok], rnd[:, ok], dist[:, ok][:, :, ok], n_boot)
    return out


def _pearson_pairs(distance: np.ndarray, transfer: np.ndarray) -> float:
    upper = np.triu_indices(len(distance), 1)
    sym = (transfer + transfer.T) / 2
    return float(np.corrcoef(distance[upper], sym[upper])[0, 1])


def _seed_bootstrap(acc, rnd, dist, n_boot: int, level: float = 0.9) -> tuple[float, float] | None:
    """Percentile interval of the Mantel r when the seeds are resampled (replicates whose gain is undefined are
    skipped)."""
    rng = np.random.default_rng(0)
    values = []
    for _ in range(n_boot):
        pick = rng.integers(0, len(acc), len(acc))
        mean_acc, mean_rnd = acc[pick].mean(axis=0), rnd[pick].mean(axis=0)
        gap = np.diag(mean_acc) - mean_rnd
        if np.any(gap < F1.min_gap):
            continue
        g = (mean_acc - mean_rnd[None, :]) / gap[None, :]
        values.append(_pearson_pairs(dist[pick].mean(axis=0), g))
    if len(values) < n_boot // 2:
        return None
    low, high = np.quantile(values, [(1 - level) / 2, (1 + level) / 2])
    return float(low), float(high)
