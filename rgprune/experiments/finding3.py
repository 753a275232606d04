"""Finding 3 from its summaries: spread of the flows per depth at matched survivor counts (design: ``F3``).

Each run's flow is its ``F3.observable`` trajectory over its window, computed from equal-size random subsamples
of the survivors (two independent draws per run). Spread of a depth: the mean squared distance between two of
its runs' trajectories (first draw); noise floor: the mean squared distance between a run's two draws. Both carry
the sampling noise of two observables, so their difference estimates the spread of the flows themselves.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rgprune.experiments.designs import DEPTH_MODELS, F3
from rgprune.experiments.summaries import expand_trace, read_summary, run_summary_paths
from rgprune.rg import dmd, step_sizes

__all__ = [
    "Finding3Data",
    "cells",
    "density_windows",
    "depth_test",
    "flow_properties",
    "jackknife_spreads",
    "load",
    "mean_squared_distance",
    "spreads",
]


@dataclass
class Finding3Data:
    """``flows[(model, task, seed)]``: the two subsampled trajectories (draw 0, draw 1), each (rounds, bins);
    ``accuracy[(model, task, seed)]``: accuracy per window round; ``survivors``: survivor count per window round;
    ``traces``: each run's whole ``FlowTrace`` (every survivor, all rounds); ``windows``: its window's (first, last)
    round; ``density``: its density per window round."""

    flows: dict
    accuracy: dict
    survivors: dict
    traces: dict = field(default_factory=dict)
    windows: dict = field(default_factory=dict)
    density: dict = field(default_factory=dict)


def load(root: str | Path) -> Finding3Data:
    flows, accuracy, survivors, traces, windows, density = {}, {}, {}, {}, {}, {}
    for path in run_summary_paths(root, "finding3"):
        s = read_summary(path)
        key = (s["model"], s["task"], s["seed"])
        first, last = s["window"]
        flows[key] = tuple(
            expand_trace(s["subsamples"][str(seed)]).trajectory(F3.observable) for seed in F3.subsample_seeds
        )
        accuracy[key] = [r["accuracy"] for r in s["rounds"][first : last + 1]]
        survivors[key] = [r["survivors"] for r in s["rounds"][first : last + 1]]
        density[key] = [r["density"] for r in s["rounds"][first : last + 1]]
        traces[key], windows[key] = expand_trace(s["trace"]), (first, last)
    return Finding3Data(flows, accuracy, survivors, traces, windows, density)


def mean_squared_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Mean over aligned rounds of the squared Euclidean distance between two trajectories of equal length."""
    if a.shape != b.shape:
        raise ValueError(f"trajectories must be aligned (same rounds and bins), got {a.shape} and {b.shape}")
    return float(((a - b) ** 2).sum(axis=1).mean())


def cells(data: Finding3Data) -> list[tuple[str, int]]:
    """The task x seed cells that hold a run of every depth."""
    return [(t, s) for t in F3.tasks for s in F3.seeds if all((m, t, s) in data.flows for m in F3.models)]


class _Runs:
    """The runs of the complete cells, indexed model-major (run = model * cells + cell): the mean squared distance
    between any two runs' first draws, and each run's noise floor (between its own two draws)."""

    def __init__(self, data: Finding3Data):
        self.cells = cells(data)
        keys = [(m, *cell) for m in F3.models for cell in self.cells]
        first = [data.flows[k][0] for k in keys]
        self.distance = np.zeros((len(keys), len(keys)))
        for i, j in itertools.combinations(range(len(keys)), 2):
            self.distance[i, j] = self.distance[j, i] = mean_squared_distance(first[i], first[j])
        self.floor = np.array([mean_squared_distance(*data.flows[k][:2]) for k in keys])
        n = len(self.cells)
        self.upper = np.triu_indices(n, 1)
        self.same_task = np.array([[a[0] == b[0] for b in self.cells] for a in self.cells])[self.upper]
        self.same_seed = np.array([[a[1] == b[1] for b in self.cells] for a in self.cells])[self.upper]

    def identity(self) -> np.ndarray:
        return np.tile(np.arange(len(F3.models)), (len(self.cells), 1))

    def spreads(self, assignment: np.ndarray) -> dict[str, np.ndarray]:
        """Per depth d: the runs ``assignment[c, d] * cells + c`` (the model whose run of cell c counts as d)."""
        n = len(self.cells)
        out = {k: np.zeros(len(F3.models)) for k in ("spread", "floor", "seed_part", "task_part")}
        for d in range(len(F3.models)):
            runs = assignment[:, d] * n + np.arange(n)
            values = self.distance[np.ix_(runs, runs)][self.upper]
            floor = self.floor[runs].mean()
            out["spread"][d], out["floor"][d] = values.mean(), floor
            out["seed_part"][d] = values[self.same_task].mean() - floor if self.same_task.any() else np.nan
            out["task_part"][d] = values[self.same_seed].mean() - floor if self.same_seed.any() else np.nan
        out["excess"] = out["spread"] - out["floor"]
        return out


def _trend(excess: np.ndarray) -> float:
    depths = np.log2([DEPTH_MODELS[m] for m in F3.models])
    return float(np.corrcoef(depths, excess)[0, 1])


def spreads(data: Finding3Data) -> dict[str, np.ndarray]:
    """Per depth (``F3.models`` order) over the complete cells: ``spread``, ``floor``, ``excess`` = spread −
    floor, and the parts of the excess between seeds of one task (``seed_part``) and between tasks of one seed
    (``task_part``)."""
    runs = _Runs(data)
    return runs.spreads(runs.identity())


def depth_test(data: Finding3Data, permutations: int = F3.permutations, seed: int = 0) -> dict:
    """The primary test: Pearson r between log2(depth) and the excess spread, one-sided (r > 0), depth labels
    permuted within each task x seed cell. Returns the observed spreads, r, p and the number of cells used."""
    runs = _Runs(data)
    if len(runs.cells) < 2:
        return {"complete": False, "cells": len(runs.cells)}
    observed = runs.spreads(runs.identity())
    r = _trend(observed["excess"])
    rng = np.random.default_rng(seed)
    n_m = len(F3.models)
    extreme = sum(
        _trend(runs.spreads(np.array([rng.permutation(n_m) for _ in runs.cells]))["excess"]) >= r - 1e-12
        for _ in range(permutations)
    )
    return {
        "complete": len(runs.cells) == len(F3.tasks) * len(F3.seeds),
        "cells": len(runs.cells),
        "r": r,
        "p_value": (1 + extreme) / (1 + permutations),
        **observed,
    }


def flow_properties(data: Finding3Data) -> dict[str, dict[str, np.ndarray]]:
    """Per model: the mean step size of each run over its window, its leading DMD |λ| (NaN when the fit resolves
    nothing: a fit that resolves no direction has no leading eigenvalue, and counting it as 0 would make the
    average follow how many fits resolve), and final accuracy, from the first subsample draw; arrays over the runs
    of the complete cells. ``resolved``: how many of the runs' fits resolve a direction."""
    out = {}
    cell_list = cells(data)
    for m in F3.models:
        steps, leads, accs = [], [], []
        for cell in cell_list:
            traj = data.flows[(m, *cell)][0]
            steps.append(float(np.mean(step_sizes(traj))))
            fit = dmd(traj, n_boot=0)
            leads.append(float(np.abs(fit.eigenvalues).max()) if fit.rank else np.nan)
            accs.append(data.accuracy[(m, *cell)][-1])
        lead = np.array(leads)
        out[m] = {
            "step": np.array(steps),
            "lead": lead,
            "resolved": int(np.isfinite(lead).sum()),
            "accuracy": np.array(accs),
        }
    return out


def jackknife_spreads(data: Finding3Data) -> dict[str, np.ndarray]:
    """Jackknife standard errors over the task x seed cells of ``spreads``' per-depth values (each cell left out
    once; the pairs of the remaining cells recomputed): ``{name: (depths,) standard errors}`` for ``spread``,
    ``floor`` and ``excess``, and ``slope`` / ``slope_se``: the least-squares slope of the excess against
    log2(depth) and its jackknife standard error. Pairs of runs share runs, so the cell, not the pair, is the
    unit."""
    runs = _Runs(data)
    n = len(runs.cells)
    if n < 3:
        return {k: np.full(len(F3.models), np.nan) for k in ("spread", "floor", "excess")}
    leave = []
    for drop in range(n):
        keep = [c for c in range(n) if c != drop]
        sub = _Runs.__new__(_Runs)
        sub.cells = [runs.cells[c] for c in keep]
        index = np.array([m * n + c for m in range(len(F3.models)) for c in keep])
        sub.distance = runs.distance[np.ix_(index, index)]
        sub.floor = runs.floor[index]
        sub.upper = np.triu_indices(n - 1, 1)
        sub.same_task = np.array([[a[0] == b[0] for b in sub.cells] for a in sub.cells])[sub.upper]
        sub.same_seed = np.array([[a[1] == b[1] for b in sub.cells] for a in sub.cells])[sub.upper]
        leave.append(sub.spreads(sub.identity()))
    out = {k: _jackknife_se(np.array([x[k] for x in leave])) for k in ("spread", "floor", "excess")}
    out["slope"] = float(_slope(runs.spreads(runs.identity())["excess"]))
    out["slope_se"] = float(_jackknife_se(np.array([_slope(x["excess"]) for x in leave])))
    return out


def _jackknife_se(values: np.ndarray) -> np.ndarray:
    n = len(values)
    return np.sqrt((n - 1) / n * ((values - values.mean(axis=0)) ** 2).sum(axis=0))


def _slope(excess: np.ndarray) -> float:
    """Least-squares slope of the excess spread against log2(depth)."""
    return float(np.polyfit(np.log2([DEPTH_MODELS[m] for m in F3.models]), excess, 1)[0])


def density_windows(data: Finding3Data) -> dict[str, tuple[float, float]]:
    """Per model: the density (fraction of its prunable weights surviving) at the first and last round of its
    window. Matching survivor counts across depths mismatches densities: the deeper model's window lies at lower
    density, so depth and density are confounded in this design."""
    out = {}
    for (model, *_), density in sorted(data.density.items()):
        out.setdefault(model, (density[0], density[-1]))
    return out
