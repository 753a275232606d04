"""``rgprune.benchmark.run_scale``: how each method's time and memory grow with the number of weights, on
synthetic weight sets of growing size (10M to 400M weights by default, as many as the memory allows)."""

from __future__ import annotations

import math
from pathlib import Path

import torch

from rgprune._io import atomic_write
from rgprune.benchmark.api import (
    check_counts,
    check_device,
    check_dtype,
    check_methods,
    check_rounds,
    json_folder,
    torch_threads,
)
from rgprune.benchmark.progress import log
from rgprune.benchmark.report import output_path, write_result
from rgprune.benchmark.runner import run_device
from rgprune.benchmark.settings import Settings
from rgprune.benchmark.workloads import BenchmarkError, Workload, synthetic

DEFAULT_SIZES = (10_000_000, 20_000_000, 50_000_000, 100_000_000, 200_000_000, 400_000_000)
TENSOR_WEIGHTS = 5_000_000  # per synthetic tensor (2000 x 2500, like the GPU suite's 1B-weight set)
# Peak memory of a size, in weight bytes: torch.prune's round at 11x the weights (measured on ResNet-50 and
# BERT-base, bench/results/), its deep copy, the model and the round's state in the parent, with room to spare.
MEMORY_FACTOR = 16
DEFAULT_METHODS = ("torch_prune", "naive", "naive_topk", "rgprune")  # the reference sorts on the host: slow


def synthetic_shapes(n_weights: int) -> list:
    """Tensors of ``TENSOR_WEIGHTS`` weights (the last one smaller) adding up to ``n_weights``."""
    full, rest = divmod(n_weights, TENSOR_WEIGHTS)
    shapes = [(2000, TENSOR_WEIGHTS // 2000)] * full
    return shapes + ([(rest,)] if rest else [])


def size_label(n: int) -> str:
    return f"{n / 1e9:g}B" if n >= 1e9 and n % 10**8 == 0 else f"{n / 1e6:g}M" if n >= 1e6 else f"{n / 1e3:g}k"


def available_bytes(dev: torch.device) -> int:
    if dev.type == "cuda":
        free, _ = torch.cuda.mem_get_info(dev)
        return free
    import psutil

    return psutil.virtual_memory().available


def affordable(sizes, dev, element_size: int) -> tuple[list, list]:
    """The sizes whose estimated peak (``MEMORY_FACTOR`` x the weights' bytes) fits in the available memory,
    and the others with the reason."""
    room = available_bytes(dev)
    kept, skipped = [], []
    for n in sizes:
        need = MEMORY_FACTOR * n * element_size
        if need <= room:
            kept.append(n)
        else:
            skipped.append({"n_weights": n, "reason": f"needs ~{need / 1e9:.1f} GB, {room / 1e9:.1f} GB available"})
    return kept, skipped


def _workload(n: int) -> Workload:
    shapes = synthetic_shapes(n)
    return Workload(
        f"synthetic-{size_label(n)}",
        "synthetic",
        f"{len(shapes)} random normal tensors, {n:,} weights",
        lambda d: synthetic(d, shapes),
        {"include": ["*weight"]},
        None,
    )


def _slope(xs, ys):
    """Least-squares slope of log(y) on log(x): 1.0 means the time grows linearly with the weights."""
    pts = [(math.log(x), math.log(y)) for x, y in zip(xs, ys) if x and y]
    if len(pts) < 2:
        return None
    mx, my = sum(p[0] for p in pts) / len(pts), sum(p[1] for p in pts) / len(pts)
    var = sum((p[0] - mx) ** 2 for p in pts)
    return sum((p[0] - mx) * (p[1] - my) for p in pts) / var if var else None


def growth(result: dict) -> dict:
    """Per round and method, across the sizes: seconds, ns per weight, peak extra bytes (and per weight), and
    the exponent of the time's growth."""
    out = {}
    for m in result["models"].values():
        for rkey, r in m.get("rounds", {}).items():
            for method, e in r["methods"].items():
                mem = m.get("memory", {}).get(rkey, {}).get(method, {}).get("peak_extra_bytes")
                row = out.setdefault(rkey, {}).setdefault(
                    method,
                    {
                        "n_weights": [],
                        "median_s": [],
                        "ns_per_weight": [],
                        "peak_extra_bytes": [],
                        "peak_extra_bytes_per_weight": [],
                    },
                )
                n, t = m["n_weights"], e.get("median_s")
                row["n_weights"].append(n)
                row["median_s"].append(t)
                row["ns_per_weight"].append(None if t is None else 1e9 * t / n)
                row["peak_extra_bytes"].append(mem)
                row["peak_extra_bytes_per_weight"].append(None if mem is None else mem / n)
    for per_method in out.values():
        for row in per_method.values():
            row["time_growth_exponent"] = _slope(row["n_weights"], row["median_s"])
    return out


def plot_growth(scale: dict, path, title: str = "") -> None:
    """Time per weight and peak extra memory per weight against the number of weights, one line per method
    (the first round timed), as a PNG; ``title`` says where it was measured."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from rgprune.benchmark.tables import SHORT, round_keys

    per_method = scale["growth"][round_keys(scale["growth"])[0]]
    fig, (ax_t, ax_m) = plt.subplots(1, 2, figsize=(11, 4.2))
    for method, row in per_method.items():
        ns = [(n, t) for n, t in zip(row["n_weights"], row["ns_per_weight"]) if t is not None]
        mem = [(n, b) for n, b in zip(row["n_weights"], row["peak_extra_bytes_per_weight"]) if b is not None]
        if ns:
            ax_t.plot(*zip(*ns), marker="o", label=SHORT.get(method, method))
        if mem:
            ax_m.plot(*zip(*mem), marker="o", label=SHORT.get(method, method))
    ax_t.set(
        xscale="log", yscale="log", xlabel="weights", ylabel="ns per weight (median)", title="time of one pruning round"
    )
    ax_m.set(
        xscale="log", xlabel="weights", ylabel="peak extra bytes per weight", title="peak extra memory of one round"
    )
    for ax in (ax_t, ax_m):
        ax.grid(True, which="both", alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=8)
        else:  # e.g. memory not measured
            ax.text(0.5, 0.5, "not measured", transform=ax.transAxes, ha="center")
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    try:
        atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=120, format="png"))
    finally:
        plt.close(fig)


def check_sizes(sizes) -> list:
    sizes = list(DEFAULT_SIZES if sizes is None else sizes)
    if not sizes or any(isinstance(n, bool) or not isinstance(n, int) or n < 1000 for n in sizes):
        raise BenchmarkError(f"scale sizes must be numbers of weights >= 1000, got {sizes!r}")
    return sorted(set(sizes))


def run_scale(
    sizes=None,
    *,
    device="cpu",
    dtype=None,
    rounds=(1,),
    fraction: float = 0.2,
    methods=DEFAULT_METHODS,
    reps: int = 3,
    slow_reps: int = 1,
    slow_after: float = 10.0,
    memory: bool = True,
    threads: int | None = None,
    progress: bool = True,
    plot_path=None,
    json_path=None,
    command: str | None = None,
) -> dict:
    """Times one pruning round by each method on synthetic weight sets of growing size (``sizes``, numbers of
    weights; default ``DEFAULT_SIZES``, 10M to 400M) and records, besides the usual result document, a
    ``scale`` section: per method the time per weight, the peak extra memory per weight and the exponent of
    the time's growth (1.0: linear). Sizes whose estimated peak does not fit in the free memory of ``device``
    are skipped (listed with the reason). ``plot_path`` (default: beside ``json_path``) gets the plot."""
    dev, dtype = check_device(device), check_dtype(dtype)
    rounds, methods, sizes = check_rounds(rounds, fraction), check_methods(methods), check_sizes(sizes)
    check_counts(reps=reps, slow_reps=slow_reps)
    folder = json_folder(json_path)
    kept, skipped = affordable(sizes, dev, getattr(torch, dtype or "float32").itemsize)
    if not kept:
        raise BenchmarkError(
            f"no size fits in the free memory of {dev}: {skipped[0]['reason']}; give smaller sizes (--scale-sizes)"
        )
    for s in skipped:
        log(f"scale: skipping {s['n_weights']:,} weights: {s['reason']}")
    settings = Settings(
        reps=reps,
        slow_reps=slow_reps,
        slow_after=slow_after,
        methods=methods,
        skip=["trace", "training_step"] + ([] if memory else ["memory"]),
        rounds=rounds,
        fraction=fraction,
        dtype=dtype,
        threads=threads,
        progress=progress,
        command=command or f"rgprune.benchmark.run_scale({kept!r}, device={str(dev)!r})",
    )
    with torch_threads(threads):
        result = run_device(dev, [_workload(n) for n in kept], settings)
    result["scale"] = {"sizes": kept, "skipped": skipped, "memory_factor": MEMORY_FACTOR, "growth": growth(result)}
    if folder is not None:
        json_path = output_path(result, folder).with_name(output_path(result, folder).stem + "-scale.json")
    if plot_path is None and json_path is not None:
        plot_path = Path(json_path).with_suffix(".png")
    if plot_path is not None:
        where = result["machine"]["gpu"]["name"] if dev.type == "cuda" else result["machine"]["cpu_model"]
        plot_growth(
            result["scale"], plot_path, f"{where}, torch threads {result['machine']['torch_threads']}, {result['date']}"
        )
        result["scale"]["plot"] = str(plot_path)
    if json_path is not None:
        write_result(result, json_path)
    return result
