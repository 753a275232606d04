"""Every table, figure and result number of docs/findings.md, computed from the committed summaries alone.

    python docs/findings.py --check   # recompute; exit 1 naming each table, figure or number that differs
    python docs/findings.py --write   # rewrite them in the document (and the figures' PNG files)
    python docs/findings.py           # print what would be written

The document marks what is generated: a number as ``<!--v:KEY-->text<!--/v-->`` and a table or a figure as a
block ``<!--block:NAME-->`` ... ``<!--/block-->`` on lines of their own (HTML comments: invisible when rendered).
A figure's block holds its image link and the SHA-256 of the data it draws, which the PNG file also carries in its
metadata; ``--check`` compares the blocks and those digests (not the pixels, which vary with matplotlib's version).
The summaries are ``docs/findings-data/`` (``python -m rgprune.experiments collect ...`` writes them; finding 2's
pruning-only references, ``finding2/pruning-only.json.gz``, come from ``python -m rgprune.experiments references
finding2`` and are recomputed here when missing or not matching their run). Every estimate (DMD fits, tail
indices, tests) is recomputed from them by the library at check time, so a change of an estimator shows up as a
difference here, and ``--write`` takes it in.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # the rgprune next to this file, also when it is not installed

from rgprune._io import atomic_write  # noqa: E402
from rgprune.experiments import finding1, finding2, finding3, power  # noqa: E402
from rgprune.experiments.designs import DEPTH_MODELS, F1, F2, F3  # noqa: E402
from rgprune.rg import FlowTrace, trajectory_distance  # noqa: E402
from rgprune.rg.tail import tail_flow  # noqa: E402

DOC = HERE / "findings.md"
DATA = HERE / "findings-data"
FIGURES = DATA / "figures"
VALUE = re.compile(r"<!--v:([\w.-]+)-->(.*?)<!--/v-->", re.S)
BLOCK = re.compile(r"<!--block:([\w.-]+)-->\n(.*?)<!--/block-->", re.S)
PENDING = "pending"


def fmt(x, digits: int = 3) -> str:
    return PENDING if x is None or (isinstance(x, float) and not np.isfinite(x)) else f"{x:.{digits}f}"


def fmt_p(p) -> str:
    return PENDING if p is None else (f"{p:.2g}" if p >= 0.001 else f"{p:.1e}")


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


class Output:
    """The values, blocks and figures of the document, as computed from the summaries."""

    def __init__(self):
        self.values: dict[str, str] = {}
        self.blocks: dict[str, str] = {}
        self.figures: dict[str, tuple] = {}  # name -> (draw(path, digest), digest)
        self.power: dict[str, dict] = {}  # what each finding's power analysis needs, by finding

    def figure(self, name: str, caption: str, data, draw) -> None:
        digest = hashlib.sha256(json.dumps(data, sort_keys=True, default=float).encode()).hexdigest()[:16]
        self.blocks[name] = f"![{caption}](findings-data/figures/{name}.png)\n<!-- data sha256 {digest} -->\n"
        self.figures[name] = (draw, digest)


# --------------------------------------------------------------------------------------------------------------
# Finding 1
# --------------------------------------------------------------------------------------------------------------


def pending(out: Output, values: list[str], blocks: list[str], why: str) -> None:
    """Defaults of a finding's generated parts while its runs are not all summarized."""
    out.values.update({key: PENDING for key in values})
    out.blocks.update({name: f"Pending: {why}.\n" for name in blocks})


def finding_1(out: Output) -> None:
    data = finding1.load(DATA)
    out.values["f1.runs"] = str(len(data.flows))
    rounds = [f"f1.r{n}.{k}" for n in F1.transfer_rounds for k in ("kept", "r", "p", "partial-r", "partial-p", "ci")]
    pending(
        out,
        ["f1.F", "f1.p", "f1.within", "f1.between", "f1.ratio", "f1.verdict-go", "f1.F9", "f1.p9"]
        + ["f1.ten.tasks", "f1.ten.F", "f1.ten.p", "f1.ten.ratio", "f1.disp.widest"]
        + [f"{d}.{k}" for d in ("f1.disp", "f1.disp10") for k in ("F", "p")]
        + [f"f1.gaps.{n}" for n in F1.transfer_rounds]
        + rounds,
        ["f1-gonogo", "f1-distances", "f1-gaps", "f1-xi"] + [f"f1-transfer-{n}" for n in F1.transfer_rounds],
        f"{len(data.flows)} of the {len(F1.runs())} IMP runs are summarized",
    )
    keys = [(t, s) for s in F1.seeds for t in F1.all_tasks]
    if not all(k in data.flows for k in keys):
        return
    check = finding1.go_no_go(data)
    r = check["result"]
    out.values.update(
        {
            "f1.F": fmt(r.statistic, 2),
            "f1.p": fmt_p(r.p_value),
            "f1.within": fmt(r.mean_within),
            "f1.between": fmt(r.mean_between),
            "f1.ratio": fmt(check["ratio"], 2),
            "f1.verdict-go": "go" if check["go"] else "no go",
        }
    )
    with_control = finding1.go_no_go(data, F1.all_tasks)["result"]
    out.values.update({"f1.F9": fmt(with_control.statistic, 2), "f1.p9": fmt_p(with_control.p_value)})
    ten = finding1.go_no_go(data, finding1.TEN_CLASS_TASKS)
    out.values.update(
        {
            "f1.ten.tasks": str(len(finding1.TEN_CLASS_TASKS)),
            "f1.ten.F": fmt(ten["result"].statistic, 2),
            "f1.ten.p": fmt_p(ten["result"].p_value),
            "f1.ten.ratio": fmt(ten["ratio"], 2),
        }
    )
    for key, tasks in (("f1.disp", F1.tasks), ("f1.disp10", finding1.TEN_CLASS_TASKS)):
        disp = finding1.dispersion(data, tasks)["result"]
        out.values.update({f"{key}.F": fmt(disp.statistic, 2), f"{key}.p": fmt_p(disp.p_value)})
        if key == "f1.disp":
            spread = dict(zip(tasks, disp.dispersions))
            widest = max(spread, key=spread.get)
            ratio = spread[widest] / np.median(disp.dispersions)
            out.values["f1.disp.widest"] = f"`{widest}` ({ratio:.2f}x the median)"
    out.blocks["f1-gonogo"] = _gonogo_table(data)
    _distance_figure(out, data)
    for n in F1.transfer_rounds:
        _transfer_round(out, data, n)
    _gap_table(out, data)
    _xi_table_1(out, data)


def _gonogo_table(data) -> str:
    """Mean flow distance between runs: same task other seed, other task same seed, per task."""
    rows = []
    for task in F1.all_tasks:
        same_task = [
            trajectory_distance(data.flows[(task, a)], data.flows[(task, b)])
            for i, a in enumerate(F1.seeds)
            for b in F1.seeds[i + 1 :]
        ]
        other = [
            trajectory_distance(data.flows[(task, s)], data.flows[(t, s)])
            for s in F1.seeds
            for t in F1.tasks
            if t != task
        ]
        accuracy = [data.accuracy[(task, s)] for s in F1.seeds]
        rows.append(
            [
                f"`{task}`",
                fmt(np.mean([a[0] for a in accuracy])),
                fmt(np.mean([a[13] for a in accuracy])),
                fmt(np.mean([a[24] for a in accuracy])),
                fmt(np.mean(same_task)),
                fmt(np.mean(other)),
            ]
        )
    return table(
        [
            "task",
            "dense acc.",
            "acc. round 13",
            "acc. round 24",
            "flow distance, same task (other seeds)",
            "flow distance to the 8 tasks (same seed)",
        ],
        rows,
    )


def _distance_figure(out: Output, data) -> None:
    keys = [(t, s) for t in F1.all_tasks for s in F1.seeds]
    d = finding1.run_distances(data, keys, F1.rounds)

    def draw(path, digest):
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6.4, 5.4))
        im = ax.imshow(d, cmap="viridis")
        ticks = np.arange(len(F1.all_tasks)) * len(F1.seeds) + (len(F1.seeds) - 1) / 2
        ax.set_xticks(ticks, [t.removeprefix("digits700-") for t in F1.all_tasks], rotation=60, fontsize=8)
        ax.set_yticks(ticks, [t.removeprefix("digits700-") for t in F1.all_tasks], fontsize=8)
        ax.set_title("flow distance between runs (task x seed), rounds 0-24", fontsize=10)
        fig.colorbar(im, ax=ax, label="mean distance of the excess observable")
        fig.tight_layout()
        fig.savefig(path, format="png", metadata={"Description": digest})
        plt.close(fig)

    out.figure(
        "f1-distances",
        "Flow distances between the 45 runs, grouped by task (5 seeds each). The visible structure is class count: "
        "upper5 (5 classes) and parity (2) stand apart from the 10-class tasks, which do not differ from each other "
        "(PERMANOVA on them alone, above)",
        np.round(d, 6).tolist(),
        draw,
    )


def _transfer_round(out: Output, data, n: int) -> None:
    p = f"f1.r{n}"
    test = finding1.transfer_test(data, n)
    if not test["complete"]:
        out.blocks[f"f1-transfer-{n}"] = f"Pending: {test['missing']} accuracies of round {n} are missing.\n"
        for key in ("kept", "r", "p", "partial-r", "partial-p", "ci"):
            out.values[f"{p}.{key}"] = PENDING
        return
    tasks = test["tasks"]
    rows = [
        [f"`{t}`", fmt(test["own"][i]), fmt(test["random_mask"][i]), fmt(test["own"][i] - test["random_mask"][i])]
        + [fmt(test["gain"][j, i], 2) for j in range(len(tasks))]
        for i, t in enumerate(tasks)
    ]
    header = ["target task", "own ticket", "random mask", "gap"] + [
        f"gain from {t.removeprefix('digits700-')}" for t in tasks
    ]
    out.blocks[f"f1-transfer-{n}"] = table(header, rows)
    out.values[f"{p}.kept"] = str(len(test["kept"]))
    mantel, partial = test["mantel"], test["partial"]
    out.values[f"{p}.r"] = fmt(mantel.statistic, 2) if mantel else "undefined"
    out.values[f"{p}.p"] = fmt_p(mantel.p_value) if mantel else "undefined"
    out.values[f"{p}.partial-r"] = fmt(partial.statistic, 2) if partial else "undefined"
    out.values[f"{p}.partial-p"] = fmt_p(partial.p_value) if partial else "undefined"
    ci = test["interval"]
    out.values[f"{p}.ci"] = f"[{fmt(ci[0], 2)}, {fmt(ci[1], 2)}]" if ci else "undefined"


def _gap_table(out: Output, data) -> None:
    """Own ticket − random mask per target task and round, with its standard error over the seeds (seed-paired)."""
    gaps = {n: finding1.ticket_gaps(data, n) for n in F1.transfer_rounds}
    if any(np.isnan(g["mean"]).any() for g in gaps.values()):
        out.blocks["f1-gaps"] = "Pending: random-mask baselines missing.\n"
        out.values.update({f"f1.gaps.{n}": PENDING for n in F1.transfer_rounds})
        return
    rows = []
    for i, task in enumerate(F1.tasks):
        row = [f"`{task}`"]
        for n in F1.transfer_rounds:
            g = gaps[n]
            row.append(f"{g['mean'][i]:+.3f} ± {g['se'][i]:.3f} ({g['z'][i]:+.1f})")
        rows.append(row)
    out.blocks["f1-gaps"] = table(
        ["target task"] + [f"round {n}: own ticket − random mask ± SE (in SE)" for n in F1.transfer_rounds], rows
    )
    out.power["f1"] = {"gaps": gaps}
    for n in F1.transfer_rounds:
        g = gaps[n]
        kept = g["mean"] >= F1.min_gap
        out.values[f"f1.gaps.{n}"] = f"{g['z'][kept].min():.1f}-{g['z'][kept].max():.1f}" if kept.any() else "none kept"


def _tail(trace, cache: dict, key, rounds=None):
    """``tail_flow`` of a trace (of only its ``rounds`` when given: each round's fit reads that round's record
    alone), computed once per key: ``{round: ξ}``."""
    if key not in cache:
        if rounds is not None:
            data = trace.to_dict()
            data["rounds"] = [r for r in data["rounds"] if r["round"] in set(rounds)]
            trace = FlowTrace.from_dict(data)
        flow = tail_flow(trace, per_tensor=False)
        cache[key] = dict(zip(flow.rounds.tolist(), flow.xi.tolist()))
    return cache[key]


_TAILS: dict = {}


def _xi_summary(values) -> str:
    values = np.asarray(values, dtype=float)
    finite = values[np.isfinite(values)]
    if not len(finite):
        return "—"
    spread = f" ± {finite.std(ddof=1):.3f}" if len(finite) > 1 else ""
    return f"{finite.mean():+.3f}{spread}" + (f" ({len(finite)} of {len(values)})" if len(finite) < len(values) else "")


def _xi_table_1(out: Output, data) -> None:
    """Exploratory: the tail index ξ of the survivors (``rgprune.rg.tail.tail_flow``) per task at rounds 0, 13
    and 24, mean ± SD over the seeds."""
    rows = []
    for task in F1.all_tasks:
        shown = (0, *F1.transfer_rounds)
        xi = [_tail(data.traces[(task, s)], _TAILS, ("f1", task, s), shown) for s in F1.seeds]
        rows.append([f"`{task}`"] + [_xi_summary([x[n] for x in xi]) for n in shown])
    out.blocks["f1-xi"] = table(["task"] + [f"ξ round {n}" for n in (0, *F1.transfer_rounds)], rows)


# --------------------------------------------------------------------------------------------------------------
# Finding 3
# --------------------------------------------------------------------------------------------------------------


def finding_3(out: Output) -> None:
    data = finding3.load(DATA)
    cells = finding3.cells(data)
    out.values["f3.cells"] = str(len(cells))
    pending(
        out,
        ["f3.r", "f3.p", "f3.slope", "f3.resolved", "f3.se", "f3.density"],
        ["f3-depths", "f3-spread", "f3-xi"],
        f"{len(cells)} of the {len(F3.tasks) * len(F3.seeds)} task x seed cells have every depth summarized",
    )
    if len(cells) < 2:
        return
    test = finding3.depth_test(data)
    errors = finding3.jackknife_spreads(data)
    props = finding3.flow_properties(data)
    windows = finding3.density_windows(data)
    out.values.update({"f3.r": fmt(test["r"], 2), "f3.p": fmt_p(test["p_value"])})
    rows = []
    for d, model in enumerate(F3.models):
        survivors = [data.survivors[(model, *c)] for c in cells]
        pr = props[model]
        lead = pr["lead"][np.isfinite(pr["lead"])]
        lead_text = (
            f"{fmt(lead.mean())} ± {fmt(lead.std(ddof=1))}" if len(lead) > 1 else (fmt(lead[0]) if len(lead) else "—")
        )
        rows.append(
            [
                f"ResNet-{DEPTH_MODELS[model]}",
                f"{survivors[0][0]:,}-{survivors[0][-1]:,}",
                f"{windows[model][0]:.3g}-{windows[model][1]:.2g}",
                fmt(pr["accuracy"].mean()),
                fmt(1e3 * test["spread"][d], 2),
                fmt(1e3 * test["floor"][d], 2),
                f"{fmt(1e3 * test['excess'][d], 2)} ± {fmt(1e3 * errors['excess'][d], 2)}",
                fmt(1e3 * test["seed_part"][d], 2),
                fmt(1e3 * test["task_part"][d], 2),
                f"{fmt(pr['step'].mean())} ± {fmt(pr['step'].std(ddof=1))}",
                f"{pr['resolved']} of {len(pr['lead'])}: {lead_text}",
            ]
        )
    out.blocks["f3-depths"] = table(
        [
            "model",
            "survivors (window)",
            "density (window)",
            "acc. at window end",
            "spread ×1e3",
            "noise floor ×1e3",
            "excess ×1e3 ± SE",
            "between seeds ×1e3",
            "between tasks ×1e3",
            "mean step",
            "leading \\|λ\\|: runs whose fit resolves a direction, mean ± SD over them",
        ],
        rows,
    )
    depths = [DEPTH_MODELS[m] for m in F3.models]
    out.power["f3"] = {"slope": errors["slope"], "slope_se": errors["slope_se"], "cells": len(cells)}
    out.values["f3.slope"] = f"{1e3 * errors['slope']:+.3f} ± {1e3 * errors['slope_se']:.3f}"
    out.values["f3.resolved"] = ", ".join(str(props[m]["resolved"]) for m in F3.models)
    out.values["f3.se"] = f"{1e3 * errors['excess'].min():.2f}-{1e3 * errors['excess'].max():.2f}"
    first, last = windows[F3.models[0]], windows[F3.models[-1]]
    out.values["f3.density"] = (
        f"ResNet-{depths[0]} spans density {first[0]:.3g} → {first[1]:.2g}, ResNet-{depths[-1]} "
        f"{last[0]:.2g} → {last[1]:.2g}"
    )

    def draw(path, digest):
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(5.6, 4.4))
        for key, style, label in (
            ("spread", "o-", "spread between runs"),
            ("floor", "s--", "noise floor (two subsamples of one run)"),
            ("excess", "^-", "excess = spread − floor"),
        ):
            ax.errorbar(depths, 1e3 * test[key], yerr=1e3 * errors[key], fmt=style, capsize=3, label=label)
        ax.axhline(0, color="0.6", linewidth=0.6)
        ax.set_xscale("log", base=2)
        ax.set_xticks(depths, [str(d) for d in depths])
        ax.set_xlabel("depth (ResNet-d); bars: ± 1 jackknife SE over the 9 task x seed cells")
        ax.set_ylabel("mean squared distance ×1e3")
        fig.legend(loc="lower center", ncol=2, fontsize=8, frameon=False)
        fig.tight_layout(rect=(0, 0.1, 1, 1))
        fig.savefig(path, format="png", metadata={"Description": digest})
        plt.close(fig)

    series = {k: np.round(test[k], 9).tolist() for k in ("spread", "floor", "excess")}
    series["errors"] = {k: np.round(v, 9).tolist() for k, v in errors.items()}
    out.figure(
        "f3-spread",
        "Spread of the flows per depth at matched survivor counts, ± 1 jackknife standard error over the cells",
        series,
        draw,
    )
    rows = []
    for model in F3.models:
        keys = [(model, *c) for c in cells]
        start = [_tail(data.traces[k], _TAILS, ("f3", *k), data.windows[k])[data.windows[k][0]] for k in keys]
        end = [_tail(data.traces[k], _TAILS, ("f3", *k), data.windows[k])[data.windows[k][1]] for k in keys]
        rows.append([f"ResNet-{DEPTH_MODELS[model]}", _xi_summary(start), _xi_summary(end)])
    out.blocks["f3-xi"] = table(["model", "ξ at the window's first round", "ξ at the window's last round"], rows)


# --------------------------------------------------------------------------------------------------------------
# Finding 2
# --------------------------------------------------------------------------------------------------------------


def finding_2(out: Output) -> None:
    data = finding2.load(DATA)
    out.values["f2.runs"] = str(len(data.runs))
    pending(
        out,
        [
            f"f2.{m}.{c}{x}"
            for m in ("retraining", "training")
            for c in F2.models[1:]
            for x in ("", ".below", ".ratio", ".steps")
        ]
        + [
            f"f2.seed.{m}.{c}{x}"
            for m in ("retraining", "training")
            for c in F2.models[1:]
            for x in ("", ".seeds", ".r", ".steps")
        ]
        + [
            "f2.eig.agree",
            "f2.eig.agree-gram",
            "f2.eig.gap",
            "f2.power.effect",
            "f2.power.seeds",
            "f2.power.seeds-half",
        ],
        ["f2-runs", "f2-eigenvalues", "f2-steps", "f2-xi"],
        f"{len(data.runs)} of the {len(F2.runs())} runs are summarized",
    )
    if not data.runs:
        return
    values = finding2.per_run(data)
    _finding_2_figure(out, values)
    rows = []
    for model in F2.models:
        for task in F2.tasks:
            runs = [values[(model, task, s)] for s in F2.seeds if (model, task, s) in values]
            if not runs:
                rows.append([f"`{model}`", task, "0"] + [PENDING] * 7)
                continue
            rows.append(
                [
                    f"`{model}`",
                    task,
                    str(len(runs)),
                    fmt(np.mean([r["accuracy"][0] for r in runs])),
                    fmt(np.mean([r["accuracy"][-1] for r in runs])),
                    f"{fmt(np.mean([r['train_loss'][0] for r in runs]))} / "
                    f"{fmt(np.mean([r['train_loss'][-1] for r in runs]))}",
                    fmt(1e3 * np.mean([r["rewound"] for r in runs]), 2),
                    fmt(1e3 * np.mean([r["retraining"] for r in runs]), 2),
                    fmt(1e3 * np.mean([r["training"] for r in runs]), 2),
                    fmt(1e3 * np.mean([r["pruning"] for r in runs]), 2),
                ]
            )
    out.blocks["f2-runs"] = table(
        [
            "model",
            "task",
            "seeds",
            "acc. dense",
            "acc. round 6",
            "train loss dense / round 6",
            "distance from the rewind point ×1e3",
            "retraining step ×1e3",
            "training part (excess) ×1e3",
            "pruning part (excess) ×1e3",
        ],
        rows,
    )
    for measure in ("retraining", "training"):
        for control in F2.models[1:]:
            diff = finding2.paired_difference(values, measure, control)
            key = f"f2.{measure}.{control}"
            if diff is None:
                continue
            low, high = 1e3 * diff["low"], 1e3 * diff["high"]
            out.values[key] = f"{1e3 * diff['mean']:+.3f} [{low:+.3f}, {high:+.3f}] ({diff['pairs']} pairs)"
            below = sum(d < 0 for d in diff["differences"])
            out.values[f"{key}.below"] = f"{below} of {diff['pairs']}"
            ratios = [values[("minilm", t, s)][measure] / values[(control, t, s)][measure] for t, s in diff["keys"]]
            out.values[f"{key}.ratio"] = f"{np.mean(ratios):.3f}"
            steps = [
                np.subtract(values[("minilm", t, s)][f"{measure}_steps"], values[(control, t, s)][f"{measure}_steps"])
                for t, s in diff["keys"]
            ]
            out.values[f"{key}.steps"] = ", ".join(f"{1e3 * d:+.2f}" for d in np.mean(steps, axis=0))
            unit = finding2.seed_unit_difference(values, measure, control)
            if unit is None:
                continue
            low, high = 1e3 * unit["low"], 1e3 * unit["high"]
            out.values[f"f2.seed.{measure}.{control}"] = (
                f"{1e3 * unit['mean']:+.3f} [{low:+.3f}, {high:+.3f}] ({len(unit['seeds'])} seeds)"
            )
            out.values[f"f2.seed.{measure}.{control}.seeds"] = ", ".join(f"{1e3 * u:+.2f}" for u in unit["seeds"])
            out.values[f"f2.seed.{measure}.{control}.r"] = f"{finding2.task_correlation(values, measure, control):.2f}"
            out.values[f"f2.seed.{measure}.{control}.steps"] = ", ".join(
                f"{1e3 * m:+.2f} ± {1e3 * h:.2f}" for m, h in zip(unit["steps"], unit["step_half"])
            )
            if measure == "retraining" and control == "minilm-shuffled":
                _finding_2_power(out, unit)
    rows, xi_rows, agree, agree_gram, gaps = [], [], [], [], []
    for model in F2.models:
        for task in F2.tasks:
            e = finding2.eigenvalues(data, model, task)
            if e is None:
                continue
            fit, ref = e["dmd"], e["reference_dmd"]
            grams = [g for g in e["gram"] if g.rank]
            ref_grams = [g for g in e["reference_gram"] if g.rank]
            rows.append(
                [
                    f"`{model}`",
                    task,
                    _fit_text(fit),
                    _fit_text(ref),
                    f"{len(grams)} of {e['runs']}: {_gram_text(grams)}",
                    f"{len(ref_grams)} of {e['runs']}: {_gram_text(ref_grams)}",
                ]
            )
            agree.append(_inside(fit, ref))
            agree_gram.extend(_inside(g, r) for g, r in zip(e["gram"], e["reference_gram"]))
            gaps.append(_relative_gap(fit, ref))
            gaps.extend(_relative_gap(g, r) for g, r in zip(e["gram"], e["reference_gram"]))
            keys = [(model, task, s) for s in F2.seeds if (model, task, s) in data.runs]
            last = F2.rounds
            run_xi = [_tail(data.runs[k]["flow_trace"], _TAILS, ("f2",) + k, (0, last)) for k in keys]
            ref_xi = [_tail(data.runs[k]["reference_trace"], _TAILS, ("f2-ref",) + k, (last,)) for k in keys]
            xi_rows.append(
                [
                    f"`{model}`",
                    task,
                    _xi_summary([x[0] for x in run_xi]),
                    _xi_summary([x[last] for x in run_xi]),
                    _xi_summary([x[last] for x in ref_xi]),
                ]
            )
    out.blocks["f2-eigenvalues"] = (
        table(
            [
                "model",
                "task",
                "excess DMD, seeds pooled: status, rank, leading \\|λ\\| [90%]",
                "the same for pruning alone",
                "parameter-space DMD, runs resolving a direction: leading \\|λ\\| [90%]",
                "the same for pruning alone",
            ],
            rows,
        )
        if rows
        else "Pending.\n"
    )
    out.values["f2.eig.agree"] = f"{sum(agree)} of {len(agree)}"
    out.values["f2.eig.agree-gram"] = f"{sum(agree_gram)} of {len(agree_gram)}"
    finite = [g for g in gaps if np.isfinite(g)]
    out.values["f2.eig.gap"] = f"{100 * max(finite):.1f}%" if finite else "— (nothing resolved)"
    out.blocks["f2-xi"] = (
        table(["model", "task", "ξ round 0", "ξ round 6", "ξ round 6, pruning alone"], xi_rows)
        if xi_rows
        else "Pending.\n"
    )


def _inside(fit, reference) -> bool:
    """Whether a fit's leading-|λ| interval overlaps pruning alone's (or neither fit resolves anything)."""
    if fit is None or reference is None or not fit.rank or not reference.rank:
        return (fit is None or not fit.rank) and (reference is None or not reference.rank)
    low, high = fit.eigenvalue_intervals[0]
    ref_low, ref_high = reference.eigenvalue_intervals[0]
    return bool(low <= ref_high and ref_low <= high)


def _relative_gap(fit, reference) -> float:
    """|leading |λ| of the fit − pruning alone's| / pruning alone's; NaN when either resolves nothing."""
    if fit is None or reference is None or not fit.rank or not reference.rank:
        return np.nan
    ref = abs(reference.eigenvalues[0])
    return float(abs(abs(fit.eigenvalues[0]) - ref) / ref)


def _fit_text(fit) -> str:
    if fit is None:
        return "one run"
    lead = "" if fit.rank == 0 else f", {_leading(fit)}"
    return f"{fit.status}, rank {fit.rank}{lead}"


def _gram_text(grams) -> str:
    """The leading |λ| of parameter-space fits: each run's when they differ, else one line with the count."""
    texts = [_leading(g) for g in grams]
    if not texts:
        return "nothing resolved"
    return (
        texts[0] + (" (each)" if len(set(texts)) == 1 and len(texts) > 1 else "")
        if len(set(texts)) == 1
        else "; ".join(texts)
    )


def _finding_2_figure(out: Output, values: dict) -> None:
    """Left: the retraining step per round of the pretrained model and its shuffled copy (each run thin, the mean
    thick; random init is off this scale). Middle: their difference per step with the seed as the unit (each seed
    thin, the mean with its 90% t-interval). Right: the training part of the excess step, all three models."""
    series = {
        measure: {
            model: [values[key][f"{measure}_steps"] for key in sorted(values) if key[0] == model] for model in F2.models
        }
        for measure in ("retraining", "training")
    }
    unit = finding2.seed_unit_difference(values, "retraining", "minilm-shuffled")
    if unit is None:
        return
    per_seed = finding2._seed_differences(values, "retraining_steps", "minilm-shuffled").mean(axis=1)
    random_mean = float(np.mean(series["retraining"]["minilm-random"])) if series["retraining"]["minilm-random"] else 0

    def draw(path, digest):
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(1, 3, figsize=(12.6, 3.8))
        colors = dict(zip(F2.models, ("C0", "C1", "C2")))
        steps = np.arange(1, len(unit["steps"]) + 1)
        ax = axes[0]
        for model in F2.models[:2]:
            runs = series["retraining"][model]
            for run in runs:
                ax.plot(steps, 1e3 * np.array(run), color=colors[model], alpha=0.25, linewidth=0.8)
            ax.plot(steps, 1e3 * np.mean(runs, axis=0), color=colors[model], linewidth=2, label=model)
        ax.set_title(f"retraining step (random init: mean {1e3 * random_mean:.0f}, off scale)", fontsize=9)
        ax.set_ylabel("‖θ′ − m⊙θ‖ / ‖m⊙θ‖ ×1e3", fontsize=8)
        ax.legend(fontsize=8)
        ax = axes[1]
        for seed_steps in per_seed:
            ax.plot(steps, 1e3 * seed_steps, color="C0", alpha=0.3, linewidth=0.8)
        ax.errorbar(
            steps,
            1e3 * np.array(unit["steps"]),
            yerr=1e3 * np.array(unit["step_half"]),
            fmt="o-",
            color="C0",
            capsize=3,
            label="mean over seeds, 90% t-interval",
        )
        ax.axhline(0, color="0.4", linewidth=0.8)
        ax.set_title("pretrained − shuffled, retraining step (seed = unit)", fontsize=9)
        ax.set_ylabel("difference ×1e3", fontsize=8)
        ax.legend(fontsize=8)
        ax = axes[2]
        for model, runs in series["training"].items():
            for run in runs:
                ax.plot(steps, 1e3 * np.array(run), color=colors[model], alpha=0.25, linewidth=0.8)
            if runs:
                ax.plot(steps, 1e3 * np.mean(runs, axis=0), color=colors[model], linewidth=2, label=model)
        ax.set_title("training part of the excess step", fontsize=9)
        ax.set_ylabel("×1e3", fontsize=8)
        ax.legend(fontsize=8)
        for ax in axes:
            ax.set_xlabel("step n → n+1 (round of the new mask)", fontsize=8)
        fig.tight_layout()
        fig.savefig(path, format="png", metadata={"Description": digest})
        plt.close(fig)

    data = {m: {k: np.round(v, 9).tolist() for k, v in per.items()} for m, per in series.items()}
    data["seed-unit"] = {k: np.round(unit[k], 9).tolist() for k in ("steps", "step_half")}
    out.figure(
        "f2-steps",
        "Retraining steps per round of pretrained MiniLM and its shuffled copy, their difference per step with the "
        "seed as the unit, and the training part of the excess step",
        data,
        draw,
    )


def _finding_2_power(out: Output, unit: dict) -> None:
    """Seeds for 80% power (one-sided 5%, the level of a 90% interval entirely below 0) against the measured
    seed-unit effect of the whole run and of its last two steps."""
    effect = unit["mean"] / unit["sd"]
    out.power["f2"] = {"effect": effect, "seeds": power.paired_t_units(effect)}
    out.values["f2.power.effect"] = f"{effect:+.2f}"
    out.values["f2.power.seeds"] = str(out.power["f2"]["seeds"])
    out.values["f2.power.seeds-half"] = str(power.paired_t_units(effect / 2))


def _leading(fit) -> str:
    """The leading |λ| of a DMD fit and its interval."""
    low, high = fit.eigenvalue_intervals[0]
    return f"{abs(fit.eigenvalues[0]):.3f} [{low:.3f}, {high:.3f}]"


# --------------------------------------------------------------------------------------------------------------
# Power analysis
# --------------------------------------------------------------------------------------------------------------

#: Measured cost on this 2-core machine, as throughput between the commits that added the summaries (the runs of a
#: batch may have started before the previous commit, so these are lower bounds): finding 1's last 35 IMP runs
#: (ResNet-20, 25 rounds) in 72 min (commits b089427 → 1984863), its 720 transfers and 90 random-mask baselines in
#: 25 min (1984863 → f4b0634), finding 2's 18 runs in 75 min (f2c4f96 → 5125335).
CPU_MINUTES = {"resnet20 run": 72 / 35, "transfer": 25 / 810, "minilm run": 75 / 18}
#: Assumed, not measured (no GPU run of these designs exists): one optimizer step of these small models on one
#: GPU costs about 5 ms (launch-bound at batch 32-64), and a run's evaluation and checkpoints double its time.
GPU_STEP_S, GPU_OVERHEAD = 0.005, 2.0
#: optimizer steps of one run: finding 1/3's ResNet-20 (25 rounds x 8 epochs x 11 steps), finding 2's MiniLM
#: (7 rounds x 156 steps), and one transfer or baseline (one round)
STEPS = {"resnet20 run": 25 * 8 * 11, "transfer": 8 * 11, "minilm run": 7 * 156}
#: finding 3's depths cost in proportion to their depth (ResNet-20 = 1), an assumption
DEPTH_COST = sum(DEPTH_MODELS[m] for m in F3.models) / 20


def _minutes(units: dict[str, float]) -> tuple[float, float]:
    """(2-core minutes from the measured throughput, one-GPU minutes from the assumed step time) of ``units``."""
    cpu = sum(n * CPU_MINUTES[k] for k, n in units.items())
    gpu = sum(n * STEPS[k] * GPU_STEP_S * GPU_OVERHEAD / 60 for k, n in units.items())
    return cpu, gpu


def _duration(minutes: float) -> str:
    if minutes < 90:
        return f"{minutes:.0f} min"
    if minutes < 48 * 60:
        return f"{minutes / 60:.1f} h"
    return f"{minutes / 1440:.0f} days"


def power_analysis(out: Output) -> None:
    """The smallest experiment of each design that would reach 80% power against the effect it measured."""
    keys = ["f1.power.seeds13", "f1.power.seeds24", "f1.power.pairs", "f1.power.tasks", "f3.power.cells"]
    out.values.update({k: PENDING for k in keys})
    out.blocks["power"] = "Pending: a finding's summaries are missing.\n"
    if not all(k in out.power for k in ("f1", "f2", "f3")):
        return
    rows = []
    # finding 1: seeds until every target's ticket effect is resolved to 5 standard errors, tasks for the Mantel r
    seeds = {}
    for n, g in out.power["f1"]["gaps"].items():
        positive = g["z"][g["mean"] >= F1.min_gap]
        seeds[n] = int(np.ceil(len(F1.seeds) * (5 / positive.min()) ** 2)) if len(positive) else None
        out.values[f"f1.power.seeds{n}"] = str(seeds[n]) if seeds[n] else "none"
    pairs = power.correlation_units(-0.5, alpha=F1.mantel_level)
    tasks_low = next(k for k in range(3, 100) if k * (k - 1) // 2 >= pairs)
    out.values.update({"f1.power.pairs": str(pairs), "f1.power.tasks": f"{tasks_low}-{pairs}"})
    n_seeds = max(v for v in seeds.values() if v)
    for tasks in (tasks_low, pairs):
        units = {"resnet20 run": tasks * n_seeds, "transfer": (tasks * (tasks - 1) + tasks) * n_seeds * 2}
        cpu, gpu = _minutes(units)
        rows.append(
            [
                "1",
                f"Mantel r = −0.5 at one-sided {F1.mantel_level}, every kept target's ticket effect at 5 SE",
                f"{tasks} tasks x {n_seeds} seeds, 2 rounds",
                f"{units['resnet20 run']:,} IMP runs, {units['transfer']:,} transfers and baselines",
                _duration(cpu),
                _duration(gpu),
            ]
        )
    # finding 2: seeds (one task: the two tasks of a seed are one measurement), pretrained and shuffled
    f2 = out.power["f2"]
    cpu, gpu = _minutes({"minilm run": 2 * f2["seeds"]})
    rows.append(
        [
            "2",
            f"retraining step, pretrained − shuffled, d_z = {f2['effect']:+.2f} (seed unit), one-sided 5%",
            f"{f2['seeds']} seeds x 1 task",
            f"{2 * f2['seeds']} runs",
            _duration(cpu),
            _duration(gpu),
        ]
    )
    # finding 3: cells for a rising trend as large as the measured (falling) one
    f3 = out.power["f3"]
    cells = power.slope_units(f3["slope"], f3["slope_se"], f3["cells"], alpha=F3.level)
    out.values["f3.power.cells"] = str(cells)
    cpu, gpu = _minutes({"resnet20 run": cells * DEPTH_COST})
    rows.append(
        [
            "3",
            f"a rising slope as large as the measured {1e3 * f3['slope']:+.3f}e-3 per doubling (SE "
            f"{1e3 * f3['slope_se']:.3f}e-3 with {f3['cells']} cells), one-sided {F3.level}",
            f"{cells} task x seed cells x 5 depths",
            f"{cells * len(F3.models)} runs",
            _duration(cpu),
            _duration(gpu),
        ]
    )
    out.blocks["power"] = table(
        ["finding", "80% power against", "smallest design", "runs", "2 cores (measured rate)", "one GPU (estimate)"],
        rows,
    )


# --------------------------------------------------------------------------------------------------------------


def compute() -> Output:
    out = Output()
    finding_1(out)
    finding_3(out)
    finding_2(out)
    power_analysis(out)
    return out


def render(text: str, out: Output) -> tuple[str, list[str]]:
    """The document with every marked value and block replaced by its computed text, and the differences."""
    problems = []

    def value(match):
        key, old = match.group(1), match.group(2)
        if key not in out.values:
            problems.append(f"value {key}: not computed (unknown key)")
            return match.group(0)
        if old != out.values[key]:
            problems.append(f"value {key}: document {old!r}, summaries {out.values[key]!r}")
        return f"<!--v:{key}-->{out.values[key]}<!--/v-->"

    def block(match):
        key, old = match.group(1), match.group(2)
        if key not in out.blocks:
            problems.append(f"block {key}: not computed (unknown name)")
            return match.group(0)
        if old != out.blocks[key]:
            problems.append(f"block {key} differs from the summaries")
        return f"<!--block:{key}-->\n{out.blocks[key]}<!--/block-->"

    new = BLOCK.sub(block, VALUE.sub(value, text))
    used = {m.group(1) for m in BLOCK.finditer(text)}
    problems += [f"figure {name}: not in the document" for name in out.figures if name not in used]
    return new, problems


def check_figures(out: Output) -> list[str]:
    """Each figure's PNG exists and carries the digest of the data it must draw."""
    from PIL import Image

    problems = []
    for name, (_, digest) in out.figures.items():
        path = FIGURES / f"{name}.png"
        if not path.is_file():
            problems.append(f"figure {name}: {path} is missing (run --write)")
            continue
        with Image.open(path) as image:
            if image.info.get("Description") != digest:
                problems.append(f"figure {name}: {path} was drawn from other data (run --write)")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true", help="fail if the document differs from the summaries")
    mode.add_argument("--write", action="store_true", help="rewrite the document's generated parts and figures")
    args = parser.parse_args(argv)
    out = compute()
    text = DOC.read_text()
    new, problems = render(text, out)
    if args.write:
        import matplotlib

        matplotlib.use("Agg")
        FIGURES.mkdir(parents=True, exist_ok=True)
        for name, (draw, digest) in out.figures.items():
            atomic_write(FIGURES / f"{name}.png", lambda tmp, draw=draw, digest=digest: draw(tmp, digest))
        atomic_write(DOC, lambda tmp: Path(tmp).write_text(new))
        print(f"wrote {DOC} ({len(problems)} part(s) changed) and {len(out.figures)} figure(s)")
        return 0
    if args.check:
        problems += check_figures(out)
        for problem in problems:
            print(problem, file=sys.stderr)
        print(f"{DOC.name}: {'OK' if not problems else f'{len(problems)} difference(s)'}")
        return 1 if problems else 0
    print(json.dumps({"values": out.values, "blocks": out.blocks}, indent=1, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
