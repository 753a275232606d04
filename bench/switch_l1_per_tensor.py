"""The one-import switch on one tensor at a time: ``rgprune.prune.l1_unstructured`` against
``torch.nn.utils.prune.l1_unstructured``, over every conv/linear weight of a model, three successive rounds.

    python bench/switch_l1_per_tensor.py                         # ResNet-50, rounds 1-3, CPU
    python bench/switch_l1_per_tensor.py --model bert-base --out bench/results/switch-l1-per-tensor.md
    python bench/switch_l1_per_tensor.py --quick                 # ResNet-18, 1 repetition

Each round prunes ``--amount`` of each tensor's survivors (torch counts them through its ``PruningContainer``;
the switch reads ``weight_mask == 1`` with a kernel and writes the new mask into the same buffer). Both start
each repetition from a deep copy of the same model in the same state (round r: the masks of r - 1 torch
rounds installed with ``custom_from_mask``), the repetitions interleaved
(``rgprune.benchmark.measure.interleaved``); the masks after the round are compared. Times are medians of one
run on a shared machine: read the ratios (the load average is printed beside them). ``rgprune bench`` times
the global call (``global_unstructured``) as the method ``rgprune_switch``.
"""

from __future__ import annotations

import argparse
import copy
import os
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout without installing

import torch.nn.utils.prune as tprune  # noqa: E402

import rgprune.prune as switch  # noqa: E402
from rgprune.benchmark.measure import interleaved  # noqa: E402
from rgprune.benchmark.workloads import resolve_model  # noqa: E402


def layer_pairs(model) -> list:
    return [(m, "weight") for m in model.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]


def masks_before(model, round_: int, amount: float) -> list | None:
    """The masks after ``round_ - 1`` rounds of torch's per-tensor L1 pruning (None for round 1)."""
    if round_ == 1:
        return None
    model = copy.deepcopy(model)
    for _ in range(round_ - 1):
        for module, name in layer_pairs(model):
            tprune.l1_unstructured(module, name, amount=amount)
    return [module.weight_mask.clone() for module, _ in layer_pairs(model)]


def prepared(model, masks):
    """A deep copy of the unpruned ``model`` with ``masks`` installed as torch installs them (a pruned model
    cannot be deep-copied: its ``weight`` is not a leaf)."""

    def prepare():
        copy_ = copy.deepcopy(model)
        for (module, name), mask in zip(layer_pairs(copy_), masks or []):
            tprune.custom_from_mask(module, name, mask=mask)
        return copy_

    return prepare


def one_round(lib, amount):
    def run(model):
        for module, name in layer_pairs(model):
            lib.l1_unstructured(module, name, amount=amount)
        return model

    return run


def equal_up_to_ties(theirs, ours) -> bool:
    """The same number of survivors, and masks that differ only among weights of one magnitude (torch.topk
    picks among equal magnitudes in no documented order; the switch takes them in row-major order)."""
    a, b = theirs.weight_mask, ours.weight_mask
    differ = a != b
    if not differ.any():
        return True
    return int(a.sum()) == int(b.sum()) and theirs.weight_orig.detach().abs()[differ].unique().numel() == 1


def measure(model, rounds, amount, reps) -> list[dict]:
    rows = []
    for r in rounds:
        start = prepared(model, masks_before(model, r, amount))
        variants = {"torch": (start, one_round(tprune, amount)), "switch": (start, one_round(switch, amount))}
        first = {}
        timed = interleaved(variants, reps, "cpu", slow_reps=max(1, reps // 2), on_first=first.setdefault)
        pairs = zip(layer_pairs(first["torch"]), layer_pairs(first["switch"]))
        same = all(equal_up_to_ties(a, b) for (a, _), (b, _) in pairs)
        rows.append({"round": r, "torch": timed["torch"], "switch": timed["switch"], "masks_equal": same})
    return rows


def render(name, n_weights, rows, amount) -> str:
    lines = [
        f"# rgprune.prune.l1_unstructured vs torch.nn.utils.prune.l1_unstructured: {name}",
        "",
        f"{n_weights:,} weights in {rows[0]['tensors']} conv/linear tensors; each round prunes {amount} of each "
        f"tensor's survivors; {torch.get_num_threads()} threads; load average {os.getloadavg()[0]:.1f} at the end.",
        "",
        "| round | torch.prune | rgprune.prune (switch) | speedup | masks equal (up to ties) |",
        "|---|---|---|---|---|",
    ]
    for row in rows:
        t, s = row["torch"], row["switch"]
        lines.append(
            f"| {row['round']} | {t['median_s'] * 1e3:.1f} ms ({len(t['times_s'])}) | "
            f"{s['median_s'] * 1e3:.1f} ms ({len(s['times_s'])}) | {t['median_s'] / s['median_s']:.1f}x | "
            f"{'yes' if row['masks_equal'] else 'NO'} |"
        )
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="resnet50", help="a built-in model name of rgprune bench (resnet50)")
    parser.add_argument("--rounds", default="1,2,3", help="rounds to time, comma-separated (default 1,2,3)")
    parser.add_argument("--amount", type=float, default=0.2, help="share of each tensor's survivors pruned")
    parser.add_argument("--reps", type=int, default=5, help="repetitions of the switch (torch: half)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="resnet18, one repetition each")
    parser.add_argument("--out", type=Path, help="also write the markdown table to this file")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    name = "resnet18" if args.quick else args.model
    model = resolve_model(name).build(torch.device("cpu"))
    rounds = [int(r) for r in args.rounds.split(",")]
    rows = measure(model, rounds, args.amount, 1 if args.quick else args.reps)
    rows[0]["tensors"] = len(layer_pairs(model))
    text = render(name, sum(m.weight.numel() for m, _ in layer_pairs(model)), rows, args.amount)
    print(text)
    if args.out:
        args.out.write_text(text)
    return 0 if all(r["masks_equal"] for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
