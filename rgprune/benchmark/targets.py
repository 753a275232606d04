"""The targets a benchmark result is judged against, with whether each is met.

CPU: on BERT, rgprune >= 50x faster than torch.prune and >= 5x faster than naive cat+kthvalue; on ResNets
and BERTs, the one-import switch (``rgprune.prune.global_unstructured``) >= 20x faster than torch.prune and
within 2x of rgprune's own call; on every weight set, rgprune's peak extra memory < 1% of the weights'
bytes. GPU: rgprune >= 20x faster than torch.prune, a round within 2x of the memory-bandwidth floor, and
re-applying the masks after a training step within 2x of one read + write pass.
"""

from __future__ import annotations

from rgprune.benchmark.tables import round_keys

QUICK_NOTE = "quick run (few repetitions; in the suite, tiny weight sets): not meaningful"


class _Targets:
    """Collects target entries: ``add`` judges one measured value (None: not measured, nothing judged)."""

    def __init__(self, quick: bool):
        self.items = []
        self.quick = quick

    def add(self, tid, description, model, required, measured, op) -> None:
        met = None if measured is None else bool(op(measured))
        self.items.append(
            {
                "id": tid,
                "description": description,
                "model": model,
                "required": required,
                "measured": measured,
                "met": met,
                **({"note": QUICK_NOTE} if self.quick else {}),
            }
        )


def _switch_round(t: _Targets, name: str, rkey: str, round_: dict) -> None:
    t.add(
        f"cpu.{name}.{rkey}.switch_vs_torch_prune",
        f"{name} {rkey}: the one-import switch rgprune.prune >= 20x faster than torch.prune",
        name,
        ">= 20",
        round_.get("switch_vs_torch_prune"),
        lambda v: v >= 20,
    )
    t.add(
        f"cpu.{name}.{rkey}.switch_vs_rgprune",
        f"{name} {rkey}: the one-import switch within 2x of rgprune.prune_global_",
        name,
        "<= 2",
        round_["speedup"].get("vs_rgprune_switch"),
        lambda v: v <= 2,
    )


def _cpu_round(t: _Targets, name: str, res: dict, rkey: str, rounds_entry: dict) -> None:
    sp = rounds_entry["speedup"]
    if res["role"] == "bert":
        t.add(
            f"cpu.{name}.{rkey}.vs_torch_prune",
            f"{name} {rkey}: rgprune >= 50x faster than torch.prune",
            name,
            ">= 50",
            sp.get("vs_torch_prune"),
            lambda v: v >= 50,
        )
        t.add(
            f"cpu.{name}.{rkey}.vs_naive",
            f"{name} {rkey}: rgprune >= 5x faster than naive cat+kthvalue",
            name,
            ">= 5",
            sp.get("vs_naive"),
            lambda v: v >= 5,
        )
    if res["role"] in ("resnet", "bert"):
        _switch_round(t, name, rkey, rounds_entry)
    mem = res.get("memory", {}).get(rkey, {}).get("rgprune", {})
    extra = mem.get("peak_extra_bytes")
    frac = None if extra is None else extra / res["weight_bytes"]
    t.add(
        f"cpu.{name}.{rkey}.memory",
        f"{name} {rkey}: rgprune's peak extra memory < 1% of the "
        f"weights' bytes (the resident bit masks, 1/32 of the weights, are counted apart)",
        name,
        "< 0.01",
        frac,
        lambda v: v < 0.01,
    )


def _gpu_round(t: _Targets, name: str, res: dict, rkey: str, sp: dict) -> None:
    t.add(
        f"gpu.{name}.{rkey}.vs_torch_prune",
        f"{name} {rkey}: rgprune >= 20x faster than torch.prune",
        name,
        ">= 20",
        sp.get("vs_torch_prune"),
        lambda v: v >= 20,
    )
    fl = res.get("floor", {}).get(rkey, {})
    t.add(
        f"gpu.{name}.{rkey}.floor",
        f"{name} {rkey}: rgprune round within 2x of the bandwidth floor",
        name,
        "<= 2",
        fl.get("times_floor"),
        lambda v: v <= 2,
    )


def evaluate_targets(kind: str, models: dict, quick: bool) -> list:
    """Every target that applies to the measured weight sets of a ``kind`` ("cpu" or "gpu") run."""
    t = _Targets(quick)
    for name, res in models.items():
        rounds = res.get("rounds", {})
        for rkey in round_keys(rounds):
            if kind == "cpu":
                _cpu_round(t, name, res, rkey, rounds[rkey])
            else:
                _gpu_round(t, name, res, rkey, rounds[rkey]["speedup"])
        if kind == "gpu" and res.get("training_step"):
            ratio = res["training_step"]["mask_reapplication"]["ratio_vs_read_write_pass"]
            t.add(
                f"gpu.{name}.mask_reapplication",
                f"{name}: apply_masks_ after a step <= 2x one read+write pass of the pruned tensors",
                name,
                "<= 2",
                ratio,
                lambda v: v <= 2,
            )
    return t.items
