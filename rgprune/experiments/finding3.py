"""Finding 3 from its summaries: spread of the flows per depth at matched survivor counts (design: ``F3``).

Each run's flow is its ``F3.observable`` trajectory over its window, computed from equal-size random subsamples
of the survivors (two independent draws per run). Spread of a depth: the mean squared distance between two of
its runs' trajectories (first draw); noise floor: the mean squared distance between a run's two draws. Both carry
the sampling noise of two observables, so their difference estimates the spread of the flows themselves.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rgprune.experiments.designs import DEPTH_MODELS, F3
from rgprune.experiments.summaries import expand_trace, read_summary, run_summary_paths
from rgprune.rg import dmd, step_sizes

__all__ = ["Finding3Data", "cells", "depth_test", "flow_properties", "load", "mean_squared_distance", "spreads"]


@dataclass
class Finding3Data:
    """``flows[(model, task, seed)]``: the two subsampled trajectories (draw 0, draw 1), each (rounds, bins);
    ``accuracy[(model, task, seed)]``: accuracy per window round; ``survivors``: survivor count per window round."""

    flows: dict
    accuracy: dict
    survivors: dict


def load(root: str | Path) -> Finding3Data:
    flows, accuracy, survivors = {}, {}, {}
    for path in run_summary_paths(root, "finding3"):
        s = read_summary(path)
        key = (s["model"], s["task"], s["seed"])
        first, last = s["window"]
        flows[key] = tuple(
            expand_trace(s["subsamples"][str(seed)]).trajectory(F3.observable) for seed in F3.subsample_seeds
        )
        accuracy[key] = [r["accuracy"] for r in s["rounds"][first : last + 1]]
        survivors[key] = [r["survivors"] for r in s["rounds"][first : last + 1]]
    return Finding3Data(flows, accuracy, survivors)


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
    """Per model: the mean step size of each run over its window, its leading DMD |λ| (0 when nothing is
    resolved) and final accuracy, from the first subsample draw; arrays over the runs of the complete cells."""
    out = {}
    cell_list = cells(data)
    for m in F3.models:
        steps, leads, accs = [], [], []
        for cell in cell_list:
            traj = data.flows[(m, *cell)][0]
            steps.append(float(np.mean(step_sizes(traj))))
            fit = dmd(traj, n_boot=0)
            leads.append(float(np.abs(fit.eigenvalues).max()) if fit.rank else 0.0)
            accs.append(data.accuracy[(m, *cell)][-1])
        out[m] = {"step": np.array(steps), "lead": np.array(leads), "accuracy": np.array(accs)}
    return out
