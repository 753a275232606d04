"""The tables of docs/findings.md (findings 1 and 3) from the run directories the commands there make.

    python docs/findings.py [--runs runs/find] [--runs3 runs/find3] [--rank 5]

Reads the IMP runs ``<dir>/<model>-<task>-s<seed>/`` (trace.json, metrics.json; complete runs only) and
``<runs>/transfer-s<seed>-round<N>/transfer.json`` (``rgprune transfer``), and prints markdown.
Every flow statistic is recomputed here from the recorded traces with ``rgprune.rg``, so the DMD rank
is explicit: a flow of 25 rounds has 24 snapshot pairs, and a full-rank DMD of a 4096-bin histogram fits
them exactly whatever the dynamics, so we report a fixed small rank (``--rank``) beside the default.
"""
from __future__ import annotations

import argparse
import itertools
import json
import re
from pathlib import Path

import numpy as np

from scipy.stats import spearmanr

from rgprune.imp import RunDir
from rgprune.rg import classify_directions, dmd, flow_distance, step_sizes

TASKS = ("digits", "digits-inverted", "digits-rotated", "digits-permuted", "digits-5class")
RUN = re.compile(r"^(?P<model>r\d+)-(?P<task>digits(?:-[a-z0-9]+)?)-s(?P<seed>\d+)$")


def runs_in(root: Path) -> dict[tuple[str, str, int], Path]:
    found = {}
    for path in sorted(root.iterdir()):
        m = RUN.match(path.name)
        if m and path.is_dir() and RunDir(path).summary_path.is_file() and RunDir(path).read_summary()["complete"]:
            found[(m["model"], m["task"], int(m["seed"]))] = path
    return found


def flow_stats(path: Path, rank: int, upto: int | None = None) -> dict:
    trace = RunDir(path).load_trace()
    traj = trace.trajectory("histogram")[: None if upto is None else upto + 1]
    steps = step_sizes(traj)
    eig = dmd(traj, rank=rank).eigenvalues
    full = dmd(traj)
    metrics = RunDir(path).read_summary()["rounds"][: None if upto is None else upto + 1]
    return {"traj": traj, "steps": steps, "mean_step": float(np.mean(steps)),
            "late_step": float(np.mean(steps[-5:])), "lead": float(np.abs(eig).max()),
            "relevant": int((classify_directions(eig) == "relevant").sum()),
            "full_rank": full.rank, "full_relevant": int((classify_directions(full.eigenvalues) == "relevant").sum()),
            "accuracy": [m["accuracy"] for m in metrics], "density": [m["density"] for m in metrics]}


def finding_3(root: Path, rank: int, upto: int | None = None) -> None:
    runs = runs_in(root)
    models = sorted({m for m, _, _ in runs}, key=lambda m: int(m[1:]))
    span = "all rounds" if upto is None else f"rounds 0-{upto} only"
    print(f"### Per model: flow statistics over tasks and seeds (DMD rank {rank}, {span})\n")
    print("| model | runs | final accuracy | mean step | late step (last 5) | leading \\|λ\\| | relevant dirs "
          "| full-rank DMD: rank, relevant | mean pairwise trajectory distance | mean pairwise eigenvalue distance |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    per_model = {}
    for model in models:
        keys = sorted(k for k in runs if k[0] == model)
        stats = {k: flow_stats(runs[k], rank, upto) for k in keys}
        per_model[model] = stats

        def ms(values):
            return f"{np.mean(values):.3f} ± {np.std(values, ddof=1):.3f}"

        pairs = list(itertools.combinations(keys, 2))
        dists = [flow_distance(stats[a]["traj"], stats[b]["traj"], rank=rank) for a, b in pairs]
        print(f"| {model} | {len(keys)} | {ms([s['accuracy'][-1] for s in stats.values()])} "
              f"| {ms([s['mean_step'] for s in stats.values()])} | {ms([s['late_step'] for s in stats.values()])} "
              f"| {ms([s['lead'] for s in stats.values()])} | {ms([s['relevant'] for s in stats.values()])} "
              f"| {np.mean([s['full_rank'] for s in stats.values()]):.1f}, "
              f"{ms([s['full_relevant'] for s in stats.values()])} "
              f"| {ms([d.trajectory_distance for d in dists])} | {ms([d.eigenvalue_distance for d in dists])} |")
    print("\nmean ± sample std over the runs (tasks x seeds); pairwise distances over all pairs of runs of one model.\n")
    print("### Spread across seeds within a task vs across tasks (mean pairwise trajectory distance)\n")
    print("| model | same task, other seed | same seed, other task |")
    print("|---|---|---|")
    for model, stats in per_model.items():
        same_task, same_seed = [], []
        for a, b in itertools.combinations(stats, 2):
            d = flow_distance(stats[a]["traj"], stats[b]["traj"], rank=rank).trajectory_distance
            if a[1] == b[1]:
                same_task.append(d)
            elif a[2] == b[2]:
                same_seed.append(d)
        cell = lambda d: f"{np.mean(d):.4f} ({len(d)} pairs)" if d else "no pairs"  # noqa: E731
        print(f"| {model} | {cell(same_task)} | {cell(same_seed)} |")
    if len(per_model) == 2:
        _permutation_test(per_model)
    if upto is not None:
        print()
        return
    print("\n### Per task (mean over seeds): final accuracy, mean step, leading |λ|\n")
    print("| task | " + " | ".join(f"{m} acc | {m} step | {m} \\|λ\\|" for m in per_model) + " |")
    print("|---|" + "---|---|---|" * len(per_model))
    for task in TASKS:
        cells = []
        for model, stats in per_model.items():
            sel = [s for k, s in stats.items() if k[1] == task]
            if not sel:
                cells += ["", "", ""]
                continue
            cells += [f"{np.mean([s['accuracy'][-1] for s in sel]):.3f}", f"{np.mean([s['mean_step'] for s in sel]):.3f}",
                      f"{np.mean([s['lead'] for s in sel]):.3f}"]
        print(f"| {task} | " + " | ".join(cells) + " |")
    print()


def _rho(d, r) -> str:
    """Spearman over ordered pairs, as the findings were first computed (rgprune transfer now reports Mantel tests:
    pairs share tasks, so this p-value is not valid; kept to reproduce the numbers of docs/findings.md)."""
    if len(d) < 3 or np.ptp(d) == 0 or np.ptp(r) == 0:
        return "undefined (fewer than 3 pairs or a constant side)"
    c = spearmanr(d, r)
    return f"{c.statistic:+.3f} (p={c.pvalue:.2g})"


def _permutation_test(per_model: dict, permutations: int = 10000) -> None:
    """Is one model's mean pairwise trajectory distance smaller than the other's by more than chance? The
    model labels are permuted within each (task, seed) cell, so every permutation keeps the design."""
    from rgprune.rg import trajectory_distance

    (ma, sa), (mb, sb) = per_model.items()
    cells = sorted(set(k[1:] for k in sa) & set(k[1:] for k in sb))
    trajs = [sa[(ma, *c)]["traj"] for c in cells] + [sb[(mb, *c)]["traj"] for c in cells]
    n = len(cells)
    d = np.zeros((2 * n, 2 * n))
    for i, j in itertools.combinations(range(2 * n), 2):
        d[i, j] = d[j, i] = trajectory_distance(trajs[i], trajs[j])
    iu = np.triu_indices(n, 1)

    def gap(labels):  # labels[c] = 0: cell c's run of model a is in group a; 1: swapped
        idx_a = np.where(labels == 0, np.arange(n), np.arange(n) + n)
        idx_b = np.where(labels == 0, np.arange(n) + n, np.arange(n))
        return d[np.ix_(idx_a, idx_a)][iu].mean() - d[np.ix_(idx_b, idx_b)][iu].mean()

    observed = gap(np.zeros(n, dtype=int))
    rng = np.random.default_rng(0)
    null = np.array([gap(rng.integers(0, 2, n)) for _ in range(permutations)])
    p = float((np.abs(null) >= abs(observed) - 1e-15).mean())
    print(f"\nPermutation test ({permutations} relabellings of the model within each task x seed cell): mean pairwise "
          f"trajectory distance {ma} − {mb} = {observed:+.4f}, two-sided p = {p:.3g}.")


def finding_1(root: Path, rank: int) -> None:
    files = sorted(root.glob("transfer-*/transfer.json"))
    if not files:
        print("(no transfer-*/transfer.json under", root, ")\n")
        return
    print(f"Spearman rho between relative accuracy and flow distance over ordered pairs A != B. Distances: "
          f"total / trajectory part / eigenvalue part of rgprune.rg.flow_distance; the eigenvalue part with the "
          f"default DMD truncation and with rank {rank}. `10-class` leaves out digits-5class (see the text).\n")
    print(f"| matrix | round (density) | pairs | total | trajectory | eigenvalues (default) | eigenvalues (rank {rank}) "
          f"| trajectory, 10-class | relative accuracy min / mean |")
    print("|---|---|---|---|---|---|---|---|---|")
    pooled: dict[tuple, list] = {}
    for f in files:
        data = json.loads(f.read_text())
        k = len(data["names"])
        off = ~np.eye(k, dtype=bool)
        relative = np.array(data["relative"])
        traces = [RunDir(p).load_trace().trajectory("histogram") for p in data["runs"]]
        ranked = np.zeros((k, k))
        for i, j in itertools.combinations(range(k), 2):
            ranked[i, j] = ranked[j, i] = flow_distance(traces[i], traces[j], rank=rank).eigenvalue_distance
        dists = {"total": np.array(data["flow_distance"]), "trajectory": np.array(data["trajectory_distance"]),
                 "eigenvalues": np.array(data["eigenvalue_distance"]), f"eigenvalues-rank{rank}": ranked}
        ten = np.array([t != "digits-5class" for t in data["tasks"]])
        ten_off = off & ten[:, None] & ten[None, :]
        cells = [_rho(d[off], relative[off]) for d in dists.values()]
        cells.append(_rho(dists["trajectory"][ten_off], relative[ten_off]))
        for key, d in dists.items():
            group = pooled.setdefault((data["round"], key), [[], []])
            group[0] += list(d[off])
            group[1] += list(relative[off])
        group = pooled.setdefault((data["round"], "trajectory, 10-class"), [[], []])
        group[0] += list(dists["trajectory"][ten_off])
        group[1] += list(relative[ten_off])
        print(f"| {f.parent.name} | {data['round']} ({np.mean(data['density']):.4f}) | {off.sum()} | "
              + " | ".join(cells) + f" | {relative[off].min():.3f} / {relative[off].mean():.3f} |")
    print("\nPooled over the matrices of one round (all seeds):\n")
    print("| round | distance | rho | pairs |")
    print("|---|---|---|---|")
    for (rnd, kind), (d, r) in sorted(pooled.items()):
        print(f"| {rnd} | {kind} | {_rho(d, r)} | {len(d)} |")
    print()
    print("Mean relative accuracy per (ticket task, target task), over the matrices of the last round:\n")
    last = max(json.loads(f.read_text())["round"] for f in files)
    mats = [json.loads(f.read_text()) for f in files]
    mats = [m for m in mats if m["round"] == last and m["dmd_rank"] is None]
    tasks = mats[0]["tasks"]
    mean = np.mean([np.array(m["relative"]) for m in mats], axis=0)
    print("| ticket \\ task | " + " | ".join(tasks) + " |")
    print("|---|" + "---|" * len(tasks))
    for t, row in zip(tasks, mean):
        print(f"| {t} | " + " | ".join(f"{v:.3f}" for v in row) + " |")
    print()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", default="runs/find",
                        help="finding 1: the ResNet-20 runs and transfer-* folders (default: runs/find)")
    parser.add_argument("--runs3", default="runs/find3",
                        help="finding 3: the ResNet-20 and ResNet-56 runs (default: runs/find3)")
    parser.add_argument("--rank", type=int, default=5, help="fixed DMD rank for the flow statistics (default: 5)")
    parser.add_argument("--upto", type=int, default=12,
                        help="finding 3 is also computed on rounds 0..UPTO only (default 12: density 0.069)")
    args = parser.parse_args()
    print("## Finding 1: transfer vs flow distance\n")
    finding_1(Path(args.runs), args.rank)
    print("## Finding 3: ResNet-20 vs ResNet-56\n")
    finding_3(Path(args.runs3), args.rank)
    finding_3(Path(args.runs3), args.rank, upto=args.upto)


if __name__ == "__main__":
    main()
