"""The timed sections of a benchmark run on one weight set: one IMP round by each method, and the RG
trace's cost (rgprune rounds that keep or discard the survivors' statistics)."""

from __future__ import annotations

import gc

import torch

import rgprune
from rgprune.benchmark.measure import interleaved, ratio
from rgprune.benchmark.methods import METHOD_IMPLS, METHOD_LABELS
from rgprune.benchmark.progress import RepetitionBar, log
from rgprune.kernels.format import pack_mask
from rgprune.masks import popcount


def tie_words(s) -> list:
    """Packed masks of the weights whose magnitude equals the round's threshold (the k-th smallest surviving
    magnitude): the only weights where methods may disagree about which to prune (tie order)."""
    threshold = rgprune.global_magnitude_threshold(s.weights, s.masks, s.k)
    if threshold.key < 0:  # nothing pruned: no threshold, no ties
        return [torch.zeros_like(m) for m in s.masks]
    return [pack_mask(w.reshape(-1).abs() == threshold.magnitude) for w in s.weights]


def compare_masks(words, reference_words, ties) -> dict:
    """Bits differing from torch.prune's masks, all and outside the ties; equal up to the tie order when no
    bit differs outside them."""
    diff = [a ^ b for a, b in zip(words, reference_words)]
    outside = sum(popcount(d & ~t) for d, t in zip(diff, ties))
    return {
        "mask_bits_differing_from_torch_prune": sum(popcount(d) for d in diff),
        "mask_bits_differing_from_torch_prune_outside_ties": outside,
        "masks_equal_torch_prune_up_to_ties": outside == 0,
    }


def _round_entries(s, methods, timed, first, ties) -> dict:
    """Per method: the timing, and from its first run the number pruned and the mask bits differing from
    rgprune's (and from torch.prune's, where it ran)."""
    ours = first.get("rgprune", {}).get("words")
    theirs = first.get("torch_prune", {}).get("words")
    entries = {}
    for m in methods:
        entry = {"label": METHOD_LABELS[m], **timed[m]}
        if m in first:
            entry["pruned"] = first[m]["pruned"]
            entry["exact_k"] = first[m]["pruned"] == s.k
            if ours is not None:
                entry["mask_bits_differing_from_rgprune"] = sum(
                    popcount(a ^ b) for a, b in zip(first[m]["words"], ours)
                )
            if theirs is not None:
                entry.update(compare_masks(first[m]["words"], theirs, ties))
        entries[m] = entry
    return entries


def bench_round(s, model, names, methods, device, settings) -> dict:
    """One IMP round from state ``s`` by each method, repetitions interleaved."""
    log(f"  round {s.round}: density {s.density:.4f}, k={s.k}")
    first = {}
    ties = tie_words(s) if "torch_prune" in methods else None

    def on_first(name, ctx):
        keep = METHOD_IMPLS[name].keep(ctx)
        words = [pack_mask(k.reshape(-1)) for k in keep]
        first[name] = {"pruned": s.survivors - sum(int(k.sum()) for k in keep), "words": words}
        log(f"    {name}: first run done")

    variants = {
        m: (lambda m=m: METHOD_IMPLS[m].prepare(s, model, names), lambda ctx, m=m: METHOD_IMPLS[m].run(ctx, s.k))
        for m in methods
    }
    force = {"torch_prune", "reference"} if torch.device(device).type == "cpu" else set()
    bar = RepetitionBar(f"round {s.round}", enabled=settings.progress)
    try:
        timed = interleaved(
            variants,
            settings.reps,
            device,
            slow_reps=settings.slow_reps,
            slow_after=settings.slow_after,
            force_slow=force,
            on_first=on_first,
            on_rep=bar,
        )
    finally:
        bar.close()
    res = {
        "density": s.density,
        "survivors": s.survivors,
        "k": s.k,
        "methods": _round_entries(s, methods, timed, first, ties),
    }
    if ties is not None:
        res["weights_at_threshold"] = sum(popcount(t) for t in ties)
    med = {m: res["methods"][m]["median_s"] for m in methods}
    res["speedup"] = {f"vs_{m}": ratio(med[m], med.get("rgprune")) for m in methods if m != "rgprune"}
    if "torch_prune" in med and "rgprune_switch" in med:  # the one-import switch against what it replaces
        res["switch_vs_torch_prune"] = ratio(med["torch_prune"], med["rgprune_switch"])
    best = {m: res["methods"][m]["min_s"] for m in methods}
    res["speedup_of_min_times"] = {f"vs_{m}": ratio(best[m], best.get("rgprune")) for m in methods if m != "rgprune"}
    return res


def bench_rounds(model, names, states, methods, device, settings) -> dict:
    out = {}
    for r, s in states.items():
        out[f"round{r}"] = bench_round(s, model, names, methods, device, settings)
        gc.collect()
    return out


TRACE_NOTE = (
    "apply_threshold_ has no statistics-free path: the survivors' histogram, counts, sum|w| "
    "and sum w^2 are always computed in its single pass. 'round_without_trace' passes bits=1 "
    "(a 2-bin histogram) and discards the results, so it still pays for the per-tensor sums; "
    "'histogram_pass' is what recording the trace would cost as a separate, unfused pass."
)


def _trace_variants(s) -> dict:
    def clone():
        return [w.clone() for w in s.weights], [m.clone() for m in s.masks]

    def with_threshold():
        ws, ms = clone()
        return ws, ms, rgprune.global_magnitude_threshold(ws, ms, s.k)

    def round_with_trace(ctx):
        ws, ms = ctx
        res = rgprune.prune_global_(ws, ms, s.k, 12)
        return [t.cpu() for t in res.stats] + [res.threshold.histogram.cpu()]  # what the trace records

    def round_without_trace(ctx):
        ws, ms = ctx
        rgprune.apply_threshold_(ws, ms, rgprune.global_magnitude_threshold(ws, ms, s.k), 1)

    return {
        "round_with_trace": (clone, round_with_trace),
        "round_without_trace": (clone, round_without_trace),
        "threshold_only": (clone, lambda ctx: rgprune.global_magnitude_threshold(ctx[0], ctx[1], s.k)),
        "apply_only": (with_threshold, lambda ctx: rgprune.apply_threshold_(ctx[0], ctx[1], ctx[2], 12)),
        "apply_only_bits1": (with_threshold, lambda ctx: rgprune.apply_threshold_(ctx[0], ctx[1], ctx[2], 1)),
        "histogram_pass": (clone, lambda ctx: rgprune.magnitude_histogram(ctx[0], ctx[1], 12)),
    }


def bench_trace(states, device, settings) -> dict:
    """The RG trace's cost: rgprune rounds that keep / discard the survivors' statistics."""
    out = {}
    for r, s in states.items():
        timed = interleaved(_trace_variants(s), settings.reps, device)
        med = {n: v["median_s"] for n, v in timed.items()}
        with_, without = med["round_with_trace"], med["round_without_trace"]
        out[f"round{r}"] = {
            "variants": timed,
            "trace_overhead_s": (with_ - without) if with_ is not None and without is not None else None,
            "trace_overhead_ratio": ratio(with_, without),
            "separate_histogram_pass_ratio": ratio(med["histogram_pass"], without),
            "threshold_share": ratio(med["threshold_only"], without),
        }
    out["note"] = TRACE_NOTE
    return out
