"""A benchmark run on one device: every weight set in turn, each section measured, the targets judged.

``run_device(device, workloads, settings)`` returns the result document (``report.SCHEMA``). A section that
fails is recorded in ``errors`` and the run goes on with the next one.
"""

from __future__ import annotations

import datetime
import gc
import os
import shutil
import sys
import tempfile
import traceback
from pathlib import Path

import torch

from rgprune.benchmark.measure import (
    copy_bandwidth,
    floor_for,
    mask_storage,
    memory_gpu,
    memory_jobs,
    run_memory_jobs,
)
from rgprune.benchmark.methods import METHOD_IMPLS, METHODS, make_states, warmup
from rgprune.benchmark.progress import log
from rgprune.benchmark.report import SCHEMA, cpu_pressure, machine
from rgprune.benchmark.sections import bench_rounds, bench_trace
from rgprune.benchmark.targets import evaluate_targets
from rgprune.benchmark.training import bench_training
from rgprune.benchmark.workloads import DEFAULT_SKIP
from rgprune.pruner import select_prunable

REPETITION_POLICY = (
    "repetitions interleaved, each method's spread evenly over the whole timing (with equal counts: every "
    "method once per repetition, order rotated), median reported; on the CPU torch.prune and the reference "
    "always get slow_reps repetitions, and any method whose first run takes longer than slow_after_s gets "
    "slow_reps"
)


def _new_result(dev, settings, names) -> dict:
    kind = "gpu" if dev.type == "cuda" else "cpu"
    return {
        "schema": SCHEMA,
        "kind": kind,
        "device": str(dev),
        "date": datetime.date.today().isoformat(),
        "started": datetime.datetime.now().isoformat(timespec="seconds"),
        "quick": settings.quick,
        "command": settings.command,
        "machine": machine(dev),
        "settings": {
            "fraction": settings.fraction,
            "rounds": sorted(settings.rounds),
            "reps": settings.reps,
            "slow_reps": settings.slow_reps,
            "slow_after_s": settings.slow_after,
            "models": names,
            "threads": settings.threads,
            "methods": list(settings.methods or METHODS),
            "dtype": settings.dtype,
            "repetition_policy": REPETITION_POLICY,
        },
        "models": {},
        "errors": [],
    }


def _measure_bandwidth(dev, settings, result) -> float | None:
    """Copy bandwidth in bytes/s (recorded in the result), or None when it could not be measured."""
    nbytes = settings.bandwidth_bytes or (
        (64 << 20) if settings.quick else ((1 << 30) if dev.type == "cuda" else (256 << 20))
    )
    try:
        bandwidth = copy_bandwidth(dev, nbytes, settings.reps)
    except Exception as exc:
        result["errors"].append(f"copy bandwidth: {type(exc).__name__}: {exc}")
        return None
    result["copy_bandwidth"] = bandwidth
    log(f"copy bandwidth {bandwidth['bytes_per_s'] / 1e9:.1f} GB/s")
    return bandwidth["bytes_per_s"]


def _load(workload, dev, settings):
    """The workload's model (in ``settings.dtype`` when given), its prunable parameters' names and weights,
    and the pruning states of the rounds timed."""
    torch.manual_seed(0)
    model = workload.build(dev)
    if settings.dtype is not None:
        model = model.to(getattr(torch, settings.dtype))
    named = select_prunable(model, **workload.select)
    weights = [p.detach() for _, p in named]
    return model, [n for n, _ in named], weights, make_states(weights, settings.rounds, settings.fraction)


def _summary(workload, weights, states, settings) -> dict:
    dense = next(iter(states.values()))
    n = dense.n_weights
    bitmask_bytes = sum(m.numel() * 4 for m in dense.masks)
    methods = [
        m for m in (settings.methods or METHODS) if settings.methods or m not in DEFAULT_SKIP.get(workload.name, ())
    ]
    return {
        "role": workload.role,
        "description": workload.description,
        "n_tensors": len(weights),
        "n_weights": n,
        "dtype": str(weights[0].dtype).replace("torch.", ""),
        "weight_bytes": sum(w.numel() * w.element_size() for w in weights),
        "bitmask_bytes": bitmask_bytes,
        "methods": methods,
        "skipped_methods": sorted(set(settings.methods or METHODS) - set(methods)),
        "mask_storage_bytes": mask_storage(n, bitmask_bytes, weights[0].element_size()),
        "load_average": {},
    }


class _ModelRun:
    """The sections measured on one loaded weight set, each recorded under its key in ``res``."""

    def __init__(self, workload, dev, settings, result, loaded):
        self.workload, self.dev, self.settings, self.result = workload, dev, settings, result
        self.model, self.names, self.weights, self.states = loaded
        self.res = result["models"][workload.name] = _summary(workload, self.weights, self.states, settings)

    def section(self, key, fn) -> None:
        if key in self.settings.skip:
            return
        log(f"{self.workload.name}: {key}")
        self.res["load_average"][key] = list(os.getloadavg())  # how busy the machine was
        self.res.setdefault("cpu_pressure", {})[key] = cpu_pressure()
        try:
            self.res[key] = fn()
        except Exception as exc:
            traceback.print_exc(file=sys.stderr)
            self.result["errors"].append(f"{self.workload.name} {key}: {type(exc).__name__}: {exc}")
        gc.collect()
        if self.dev.type == "cuda":
            torch.cuda.empty_cache()

    def memory(self, tmpdir, pending) -> None:
        """CPU: one subprocess per job (``--quick``: the jobs join ``pending``, run once at the end); GPU:
        the allocator's peak, in this process."""
        methods, states = self.res["methods"], self.states
        if self.dev.type == "cuda":
            self.section(
                "memory",
                lambda: {
                    f"round{r}": {m: memory_gpu(s, METHOD_IMPLS[m], self.model, self.names, self.dev) for m in methods}
                    for r, s in states.items()
                },
            )
            return
        if "memory" in self.settings.skip:
            return
        jobs = memory_jobs(states, methods, tmpdir, self.workload.name)
        if self.settings.quick:
            pending += jobs
        else:
            self.section(
                "memory", lambda: {f"round{r}": v for (_, r), v in run_memory_jobs(jobs, shared=False).items()}
            )

    def run(self, tmpdir, pending, bandwidth) -> None:
        methods = self.res["methods"]
        self.section(
            "rounds", lambda: bench_rounds(self.model, self.names, self.states, methods, self.dev, self.settings)
        )
        self.memory(tmpdir, pending)
        self.section("trace", lambda: bench_trace(self.states, self.dev, self.settings))
        if self.workload.train is not None:  # at the density of the last round timed (suite: round 5, 0.41)
            last = self.states[max(self.states)]
            self.section(
                "training_step",
                lambda: bench_training(self.workload, self.model, self.names, last, self.dev, self.settings),
            )
        if bandwidth is not None and "rounds" in self.res:
            self.res["floor"] = floor_for(
                self.res["rounds"], self.res["weight_bytes"], self.res["bitmask_bytes"], bandwidth
            )


def _bench_workload(workload, dev, settings, result, tmpdir, pending, bandwidth) -> None:
    log(f"{workload.name}: building ({workload.description})")
    try:
        loaded = _load(workload, dev, settings)
    except Exception as exc:  # e.g. no kernels for this device, out of memory: go on with the next set
        traceback.print_exc(file=sys.stderr)
        result["errors"].append(f"{workload.name} setup: {type(exc).__name__}: {exc}")
        gc.collect()
        return
    gc.collect()
    gc.freeze()  # the model's modules (and the modules its build imported); unfrozen when done
    run = _ModelRun(workload, dev, settings, result, loaded)
    del loaded
    log(f"{workload.name}: {len(run.weights)} tensors, {run.res['n_weights'] / 1e6:.2f}M weights")
    run.run(tmpdir, pending, bandwidth)
    del run
    gc.unfreeze()
    gc.collect()
    if dev.type == "cuda":
        torch.cuda.empty_cache()


def _run_pending_memory(pending, result) -> None:
    log("memory (all models, one subprocess)")
    try:
        for (name, r), v in run_memory_jobs(pending, shared=True).items():
            result["models"][name].setdefault("memory", {})[f"round{r}"] = v
    except Exception as exc:
        result["errors"].append(f"memory: {type(exc).__name__}: {exc}")


def _finish(result) -> dict:
    for res in result["models"].values():
        for per in res.get("memory", {}).values():
            for v in per.values():
                if "peak_extra_bytes" in v:
                    v["peak_extra_fraction_of_weights"] = v["peak_extra_bytes"] / res["weight_bytes"]
                if v.get("error"):
                    result["errors"].append(f"memory {v.get('method', '')}: {v['error']}")
    result["targets"] = evaluate_targets(result["kind"], result["models"], result["quick"])
    judged = [t["met"] for t in result["targets"] if t["met"] is not None]
    result["all_targets_met"] = bool(judged) and all(judged)
    result["finished"] = datetime.datetime.now().isoformat(timespec="seconds")
    result["machine"]["load_average_at_end"] = list(os.getloadavg())
    result["machine"]["cpu_pressure_at_end"] = cpu_pressure()
    return result


def run_device(device, workloads: list, settings) -> dict:
    """Benchmarks each workload on ``device``; returns the result document."""
    dev = torch.device(device)
    result = _new_result(dev, settings, [w.name for w in workloads])
    mach = result["machine"]
    log(
        f"{result['kind']} run on {mach['cpu_model'] if dev.type == 'cpu' else mach['gpu']['name']}; backend "
        f"{mach['rgprune_backend']}; torch threads {mach['torch_threads']}"
    )
    warmup(dev)
    # A full collection walks every object of torch, torchvision and transformers (0.5 s here); freeze them
    # so that the collections before each timed run only walk what the benchmark itself allocates.
    gc.collect()
    gc.freeze()
    bandwidth = _measure_bandwidth(dev, settings, result)
    tmpdir = Path(tempfile.mkdtemp(prefix="rgprune-bench-"))
    pending = []  # --quick: memory jobs of every model, run in one subprocess at the end
    try:
        for workload in workloads:
            _bench_workload(workload, dev, settings, result, tmpdir, pending, bandwidth)
        if pending:
            _run_pending_memory(pending, result)
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)
    return _finish(result)
