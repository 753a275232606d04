"""Every table, figure and result number of docs/findings.md, computed from the committed summaries alone.

    python docs/findings.py --check   # recompute; exit 1 naming each table, figure or number that differs
    python docs/findings.py --write   # rewrite them in the document (and the figures' PNG files)
    python docs/findings.py           # print what would be written

The document marks what is generated: a number as ``<!--v:KEY-->text<!--/v-->`` and a table or a figure as a
block ``<!--block:NAME-->`` ... ``<!--/block-->`` on lines of their own (HTML comments: invisible when rendered).
A figure's block holds its image link and the SHA-256 of the data it draws, which the PNG file also carries in its
metadata; ``--check`` compares the blocks and those digests (not the pixels, which vary with matplotlib's version).
The summaries are ``docs/findings-data/`` (``python -m rgprune.experiments collect ...`` writes them).
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
from rgprune.experiments import finding1, finding2, finding3  # noqa: E402
from rgprune.experiments.designs import DEPTH_MODELS, F1, F2, F3  # noqa: E402
from rgprune.rg import trajectory_distance  # noqa: E402

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
        ["f1.F", "f1.p", "f1.within", "f1.between", "f1.ratio", "f1.verdict-go", "f1.F9", "f1.p9"] + rounds,
        ["f1-gonogo", "f1-distances"] + [f"f1-transfer-{n}" for n in F1.transfer_rounds],
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
    out.blocks["f1-gonogo"] = _gonogo_table(data)
    _distance_figure(out, data)
    for n in F1.transfer_rounds:
        _transfer_round(out, data, n)


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
        "Flow distances between the 45 runs, grouped by task (5 seeds each)",
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


# --------------------------------------------------------------------------------------------------------------
# Finding 3
# --------------------------------------------------------------------------------------------------------------


def finding_3(out: Output) -> None:
    data = finding3.load(DATA)
    cells = finding3.cells(data)
    out.values["f3.cells"] = str(len(cells))
    pending(
        out,
        ["f3.r", "f3.p"],
        ["f3-depths", "f3-spread"],
        f"{len(cells)} of the {len(F3.tasks) * len(F3.seeds)} task x seed cells have every depth summarized",
    )
    if len(cells) < 2:
        return
    test = finding3.depth_test(data)
    props = finding3.flow_properties(data)
    out.values.update({"f3.r": fmt(test["r"], 2), "f3.p": fmt_p(test["p_value"])})
    rows = []
    for d, model in enumerate(F3.models):
        survivors = [data.survivors[(model, *c)] for c in cells]
        pr = props[model]
        rows.append(
            [
                f"ResNet-{DEPTH_MODELS[model]}",
                f"{survivors[0][0]:,}-{survivors[0][-1]:,}",
                fmt(pr["accuracy"].mean()),
                fmt(1e3 * test["spread"][d], 2),
                fmt(1e3 * test["floor"][d], 2),
                fmt(1e3 * test["excess"][d], 2),
                fmt(1e3 * test["seed_part"][d], 2),
                fmt(1e3 * test["task_part"][d], 2),
                f"{fmt(pr['step'].mean())} ± {fmt(pr['step'].std(ddof=1))}",
                f"{fmt(pr['lead'].mean())} ± {fmt(pr['lead'].std(ddof=1))}",
            ]
        )
    out.blocks["f3-depths"] = table(
        [
            "model",
            "survivors (window)",
            "acc. at window end",
            "spread ×1e3",
            "noise floor ×1e3",
            "excess ×1e3",
            "between seeds ×1e3",
            "between tasks ×1e3",
            "mean step",
            "leading \\|λ\\|",
        ],
        rows,
    )
    depths = [DEPTH_MODELS[m] for m in F3.models]

    def draw(path, digest):
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(5.6, 3.6))
        ax.plot(depths, 1e3 * test["spread"], "o-", label="spread between runs")
        ax.plot(depths, 1e3 * test["floor"], "s--", label="noise floor (two subsamples of one run)")
        ax.plot(depths, 1e3 * test["excess"], "^-", label="excess = spread − floor")
        ax.set_xscale("log", base=2)
        ax.set_xticks(depths, [str(d) for d in depths])
        ax.set_xlabel("depth (ResNet-d)")
        ax.set_ylabel("mean squared distance ×1e3")
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(path, format="png", metadata={"Description": digest})
        plt.close(fig)

    series = {k: np.round(test[k], 9).tolist() for k in ("spread", "floor", "excess")}
    out.figure("f3-spread", "Spread of the flows per depth at matched survivor counts", series, draw)


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
        ],
        ["f2-runs", "f2-eigenvalues", "f2-steps"],
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
    rows = []
    for model in F2.models:
        for task in F2.tasks:
            e = finding2.eigenvalues(data, model, task)
            if e is None:
                continue
            fit = e["dmd"]
            lead = "—" if fit is None or fit.rank == 0 else _leading(fit)
            grams = [g for g in e["gram"] if g.rank]
            gram = "; ".join(_leading(g) for g in grams) or "nothing resolved"
            rows.append(
                [
                    f"`{model}`",
                    task,
                    f"{fit.status if fit else 'one run'}, rank {fit.rank if fit else 0}",
                    lead,
                    f"{len(grams)} of {e['runs']}: {gram}",
                ]
            )
    out.blocks["f2-eigenvalues"] = (
        table(
            [
                "model",
                "task",
                "excess DMD (seeds pooled)",
                "leading \\|λ\\| [90%]",
                "parameter-space DMD, runs resolving a direction: leading \\|λ\\| [90%]",
            ],
            rows,
        )
        if rows
        else "Pending.\n"
    )


def _finding_2_figure(out: Output, values: dict) -> None:
    """Per model, the retraining step and the training part of the excess step against the round: each run thin,
    the mean over the model's runs thick."""
    series = {
        measure: {
            model: [values[key][f"{measure}_steps"] for key in sorted(values) if key[0] == model] for model in F2.models
        }
        for measure in ("retraining", "training")
    }

    def draw(path, digest):
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(1, 2, figsize=(8.4, 3.4))
        labels = {"retraining": "retraining step ‖θ′ − m⊙θ‖ / ‖m⊙θ‖", "training": "training part of the excess step"}
        for ax, (measure, per_model) in zip(axes, series.items()):
            for color, (model, runs) in zip(("C0", "C1", "C2"), per_model.items()):
                for steps in runs:
                    ax.plot(range(1, len(steps) + 1), steps, color=color, alpha=0.25, linewidth=0.8)
                if runs:
                    ax.plot(range(1, len(runs[0]) + 1), np.mean(runs, axis=0), color=color, linewidth=2, label=model)
            ax.set_xlabel("step n → n+1 (round of the new mask)")
            ax.set_ylabel(labels[measure], fontsize=8)
        axes[0].legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(path, format="png", metadata={"Description": digest})
        plt.close(fig)

    data = {m: {k: np.round(v, 9).tolist() for k, v in per.items()} for m, per in series.items()}
    out.figure("f2-steps", "Retraining and training steps per round, pretrained MiniLM and its controls", data, draw)


def _leading(fit) -> str:
    """The leading |λ| of a DMD fit and its interval."""
    low, high = fit.eigenvalue_intervals[0]
    return f"{abs(fit.eigenvalues[0]):.3f} [{low:.3f}, {high:.3f}]"


# --------------------------------------------------------------------------------------------------------------


def compute() -> Output:
    out = Output()
    finding_1(out)
    finding_3(out)
    finding_2(out)
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
