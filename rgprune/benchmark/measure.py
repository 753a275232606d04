"""How the benchmark measures: time (repetitions interleaved in one run, medians and spread), peak memory
(peak RSS in a fresh subprocess per job on the CPU, the caching allocator's peak on CUDA) and the
memory-bandwidth floor (measured copy bandwidth against the bytes a round must move)."""

from __future__ import annotations

import gc
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

import rgprune
from rgprune.benchmark.progress import log

WORKER_MARK = "@@rgprune-bench-worker@@"


def sync(device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def median(xs):
    return statistics.median(xs) if xs else None


def ratio(a, b):
    return a / b if a is not None and b else None


# --------------------------------------------------------------------------------------------------
# Time
# --------------------------------------------------------------------------------------------------


def next_variant(names: list, done: dict, target: dict):
    """The variant to run next, so that every variant's repetitions are spread evenly over the whole timing:
    the one least far along, by (runs done + 1/2) / runs wanted; ties in ``names`` order, rotated by the
    number of runs of the variant least run (equal targets: each repetition runs every variant once, in an
    order rotated by one per repetition). A variant with few repetitions (torch.prune) is then bracketed by
    the others' (rgprune's), instead of all of them running after it, so a machine whose speed drifts
    during the run slows both sides of a ratio alike. None when every variant is done."""
    active = [i for i, n in enumerate(names) if done[n] < target[n]]
    if not active:
        return None
    rotation = min(done[names[i]] for i in active)
    best = min(active, key=lambda i: ((done[names[i]] + 0.5) / target[names[i]], (i - rotation) % len(names)))
    return names[best]


def _time_once(prepare, run, device) -> tuple[float, object]:
    """``run(prepare())``, timed with device synchronization and the garbage collector off."""
    ctx = prepare()
    sync(device)
    gc.collect()
    gc.disable()
    try:
        t0 = time.perf_counter()
        run(ctx)
        sync(device)
        dt = time.perf_counter() - t0
    finally:
        gc.enable()
    return dt, ctx


def interleaved(
    variants: dict,
    reps: int,
    device,
    *,
    slow_reps: int = 2,
    slow_after: float = float("inf"),
    force_slow=(),
    on_first=None,
    on_rep=None,
) -> dict:
    """Times each variant ``(prepare, run)`` ``reps`` times, interleaved so that each variant's repetitions
    span the whole timing (``next_variant``). A variant in ``force_slow``, or whose first run takes longer
    than ``slow_after`` seconds, is repeated only ``slow_reps`` times. ``prepare()`` is untimed; ``run(ctx)``
    is timed with device synchronization and the garbage collector off. ``on_first(name, ctx)`` is called
    (untimed) after each variant's first run, ``on_rep(name, repetitions done, repetitions planned)`` after
    every repetition. Returns {name: {"times_s": [...], "error": str|None, "reps", "median_s", "min_s",
    "max_s"}}."""
    names = list(variants)
    target = {n: (min(reps, slow_reps) if n in force_slow else reps) for n in names}
    out = {n: {"times_s": [], "error": None} for n in names}
    done = {n: 0 for n in names}
    while (n := next_variant(names, done, target)) is not None:
        done[n] += 1
        try:
            dt, ctx = _time_once(*variants[n], device)
            out[n]["times_s"].append(dt)
            if len(out[n]["times_s"]) == 1:
                if dt > slow_after:
                    target[n] = min(target[n], slow_reps)
                if on_first is not None:
                    on_first(n, ctx)
            del ctx
        except Exception as exc:  # recorded, and the other variants go on
            out[n]["error"] = f"{type(exc).__name__}: {exc}"
            target[n] = done[n]
            log(f"  {n}: failed: {out[n]['error']}")
            if torch.device(device).type == "cuda":
                torch.cuda.empty_cache()
        if on_rep is not None:
            on_rep(n, sum(done.values()), sum(target.values()))
    for n in names:
        out[n]["reps"] = len(out[n]["times_s"])
        out[n]["median_s"] = median(out[n]["times_s"])
        out[n]["min_s"] = min(out[n]["times_s"]) if out[n]["times_s"] else None
        out[n]["max_s"] = max(out[n]["times_s"]) if out[n]["times_s"] else None
    return out


# --------------------------------------------------------------------------------------------------
# Memory
# --------------------------------------------------------------------------------------------------


def proc_status_kb(key: str):
    try:
        with open("/proc/self/status") as f:
            m = re.search(rf"^{key}:\s+(\d+) kB", f.read(), re.M)
        return int(m.group(1)) if m else None
    except OSError:
        return None


def reset_peak_rss() -> bool:
    """Resets the kernel's peak-RSS counter (Linux >= 4.0); False when that is not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def peak_rss_during(fn) -> dict:
    """Peak RSS while ``fn()`` runs, minus RSS before it, and what it still holds afterwards (bytes)."""
    gc.collect()
    reset = reset_peak_rss()
    rss0 = proc_status_kb("VmRSS")
    fn()
    hwm = proc_status_kb("VmHWM")
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # kB on Linux
    gc.collect()
    rss1 = proc_status_kb("VmRSS")
    # VmHWM is this address space's peak RSS, which clear_refs resets. ru_maxrss is only used where VmHWM
    # cannot be read: it also holds the peak RSS of the parent at fork (recorded at exec), which is larger
    # than anything measured here whenever the parent holds the model.
    peak = hwm if (hwm is not None and reset) else maxrss
    return {
        "rss_before_bytes": rss0 * 1024,
        "peak_extra_bytes": (peak - rss0) * 1024,
        "retained_bytes": (rss1 - rss0) * 1024,
        "peak_source": "VmHWM after clear_refs" if peak == hwm and reset else "ru_maxrss",
        "ru_maxrss_bytes": maxrss * 1024,
    }


def memory_jobs(states: dict, methods, tmpdir: Path, tag: str) -> list:
    """Saves each state to ``tmpdir`` and returns one memory job per (round, method)."""
    jobs = []
    for r, s in states.items():
        path = tmpdir / f"{tag}-round{r}.pt"
        torch.save(
            {
                "round": s.round,
                "weights": s.weights,
                "masks": s.masks,
                "survivors": s.survivors,
                "fraction": s.fraction,
            },
            path,
        )
        jobs += [{"state": str(path), "model": tag, "round": r, "method": m} for m in methods]
    return jobs


def _worker_env() -> tuple[str, dict]:
    """Where the memory subprocess runs and its environment: it imports this same rgprune package first."""
    package_parent = str(Path(rgprune.__file__).resolve().parent.parent)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([package_parent, os.environ.get("PYTHONPATH", "")]))
    return package_parent, env


def run_memory_jobs(jobs: list, shared: bool) -> dict:
    """{(model, round): {method: result}}; each job in a fresh subprocess unless ``shared`` (one for all)."""
    batches = [jobs] if shared else [[j] for j in jobs]
    out = {}
    cwd, env = _worker_env()
    for batch in batches:
        log("  memory subprocess: " + ", ".join(f"{j['model']} round {j['round']} {j['method']}" for j in batch))
        proc = subprocess.run(
            [sys.executable, "-m", "rgprune.benchmark.memory_worker", json.dumps(batch)],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
        )
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(WORKER_MARK)]
        results = json.loads(lines[-1][len(WORKER_MARK) :]) if proc.returncode == 0 and lines else None
        for i, j in enumerate(batch):
            if results is None:
                err = (proc.stderr.strip().splitlines() or ["no output"])[-1]
                res = {"error": f"worker exited with {proc.returncode}: {err}"}
            else:
                res = results[i]
            out.setdefault((j["model"], j["round"]), {})[j["method"]] = res
    return out


def memory_gpu(state, method, model, names, device) -> dict:
    """Peak extra CUDA memory of one method's round: the allocator's peak minus the allocation before it."""
    ctx = method.prepare(state, model, names)
    gc.collect()
    sync(device)
    torch.cuda.reset_peak_memory_stats(device)
    base = torch.cuda.memory_allocated(device)
    method.run(ctx, state.k)
    sync(device)
    res = {
        "method": method.name,
        "peak_extra_bytes": torch.cuda.max_memory_allocated(device) - base,
        "retained_bytes": torch.cuda.memory_allocated(device) - base,
        "pruned": state.survivors - sum(int(k.sum()) for k in method.keep(ctx)),
        "k": state.k,
    }
    del ctx
    gc.collect()
    torch.cuda.empty_cache()
    return res


def mask_storage(n_weights: int, bitmask_bytes: int, element_size: int = 4) -> dict:
    """Bytes each method keeps to remember which weights are pruned (weights of ``element_size`` bytes)."""
    return {
        "torch_prune": element_size * n_weights,  # <name>_mask buffers in the weights' dtype
        "torch_prune_reparam_total": 2 * element_size * n_weights,  # + <name>_orig beside the masked <name>
        "rgprune_switch": element_size * n_weights,  # torch's <name>_mask buffers, written by the kernels
        "naive": n_weights,  # bool masks
        "naive_topk": n_weights,
        "reference": bitmask_bytes,
        "rgprune": bitmask_bytes,  # 1 bit per weight in int32 words
    }


# --------------------------------------------------------------------------------------------------
# The memory-bandwidth floor
# --------------------------------------------------------------------------------------------------


def copy_bandwidth(device, nbytes: int, reps: int) -> dict:
    src = torch.empty(nbytes // 4, dtype=torch.float32, device=device).uniform_()
    dst = torch.empty_like(src)
    for _ in range(3):
        dst.copy_(src)
    timed = interleaved({"copy": (lambda: None, lambda ctx: dst.copy_(src))}, max(reps, 5), device)["copy"]
    return {
        "bytes_copied": nbytes,
        "median_s": timed["median_s"],
        "times_s": timed["times_s"],
        "bytes_per_s": 2 * nbytes / timed["median_s"],
        "note": "read + write counted: 2 x bytes / time",
    }


def floor_for(rounds: dict, weight_bytes: int, bitmask_bytes: int, bandwidth: float) -> dict:
    floor_bytes = 4 * weight_bytes + 2 * bitmask_bytes
    floor_s = floor_bytes / bandwidth
    out = {
        "floor_bytes": floor_bytes,
        "floor_s": floor_s,
        "definition": "3 reads + 1 write of the weights + 1 read + 1 write of the bit masks, at the "
        "measured copy bandwidth",
    }
    for key, r in rounds.items():
        t = r["methods"].get("rgprune", {}).get("median_s")
        out[key] = {"rgprune_s": t, "times_floor": ratio(t, floor_s), "fraction_of_floor_speed": ratio(floor_s, t)}
    return out
