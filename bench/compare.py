"""rgprune against the usual ways of global magnitude pruning, side by side in one run.

    python -m bench.compare                       # CPU (and the GPU when present): ResNet-50 + BERT-base
    python -m bench.compare --device cuda         # GPU only; adds the 1B-weight synthetic set
    python -m bench.compare --quick --out /tmp/b  # tiny weight sets, seconds (the smoke test runs this)
    python -m bench.compare --models bert-base --reps 5

For each weight set (the conv/linear weights of torchvision ``resnet50(weights=None)``, the linear weights
of ``transformers.BertModel(BertConfig())``, and on a GPU 200 synthetic tensors of 5M weights each):

* **one IMP pruning round** (remove 20% of the survivors, ``k = round(0.2 * survivors)``) at round 1
  (density 1.0) and round 5 (density 0.8**4 = 0.41, reached by four rgprune rounds; every method then
  starts each repetition from a fresh copy of the same state), by
  (1) ``torch.nn.utils.prune.global_unstructured(..., L1Unstructured, amount=0.2)`` on deep copies of the
  modules (round 5: the existing masks installed with ``prune.custom_from_mask``), (2) the naive PyTorch
  way (concatenate ``|w|`` of the survivors, ``torch.kthvalue``, multiply every tensor by its bool mask),
  (3) rgprune's pure-PyTorch reference (``rgprune.kernels.reference``, called directly), (4) rgprune's
  compiled kernels (``rgprune.prune_global_``). Repetitions are interleaved, each method's spread evenly over
  the whole timing (a slow method's few repetitions are bracketed by the fast methods'), the median is
  reported, and speedups are ratios of medians from the same run, so a noisy shared machine slows every
  method alike. Slow methods get fewer repetitions (the output says how many).
* **peak extra memory** of each method: on the CPU, peak RSS minus RSS before the op, each (method, round)
  in a fresh subprocess with the weights already loaded (the kernel's peak-RSS counter is reset through
  ``/proc/self/clear_refs`` just before the op, so loading does not hide the op's peak); on a GPU
  ``torch.cuda.max_memory_allocated`` minus the allocation before the op. Plus the bytes each method keeps
  for its masks (torch.prune float masks, naive bool masks, rgprune bit masks).
* **keeping masks applied during training**: one optimizer step (ResNet-50: SGD + momentum, batch 2 at
  64x64; BERT-base: AdamW, batch 2 x 32 tokens) with torch.prune's forward-pre-hook reparametrization,
  with rgprune's ``attach`` (``apply_masks_`` after the step) and without pruning.
* **the RG trace**: a round that keeps the survivors' statistics (converted to CPU tensors) against one
  that discards them, and what a separate histogram pass would cost.
* **the memory-bandwidth floor**: measured copy bandwidth against the bytes a round must move
  (3 reads + 1 write of the weights, 1 read + 1 write of the bit masks); a target on a GPU only.

Writes ``<out>/<cpu|gpu>-<device-slug>-<YYYY-MM-DD>.json`` (``-<N>thread`` added for ``--threads N``,
``-quick`` for ``--quick`` runs) with the
machine, every time, median, ratio and byte count, and the targets with whether each is met, and prints
markdown tables (``bench/readme_table.py`` renders the same tables from the JSON). Progress goes to stderr.
"""
from __future__ import annotations

import argparse
import copy
import datetime
import gc
import hashlib
import json
import os
import platform
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import torch  # noqa: E402
import torch.nn.utils.prune as tprune  # noqa: E402

import rgprune  # noqa: E402
from rgprune import _ops  # noqa: E402
from rgprune.kernels import reference  # noqa: E402
from rgprune.masks import MaskSet, _popcount  # noqa: E402
from rgprune.pruner import GlobalMagnitudePruner, select_prunable  # noqa: E402

SCHEMA = "rgprune-bench/1"
ROOT = Path(__file__).resolve().parent.parent
FRACTION = 0.2
ROUNDS = (1, 5)
METHODS = ("torch_prune", "naive", "reference", "rgprune")
METHOD_LABELS = {
    "torch_prune": "torch.nn.utils.prune.global_unstructured (L1Unstructured)",
    "naive": "naive PyTorch: cat |w| of survivors + torch.kthvalue + multiply by bool masks",
    "reference": "rgprune.kernels.reference (pure PyTorch, called directly)",
    "rgprune": "rgprune.prune_global_ (compiled backend)",
}
_WORKER_MARK = "@@rgprune-bench-worker@@"


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------------
# Weight sets
# --------------------------------------------------------------------------------------------------

class _Holder(torch.nn.Module):
    """A module owning one weight, so that torch.nn.utils.prune can prune bare tensors."""

    def __init__(self, weight: torch.Tensor):
        super().__init__()
        self.weight = torch.nn.Parameter(weight)


def _resnet50(device):
    import torchvision
    return torchvision.models.resnet50(weights=None).to(device)


def _resnet20(device):
    from rgprune.models import build_model
    return build_model("resnet20", 10).to(device)


def _bert(device, **config):
    from transformers import BertConfig, BertModel
    from transformers.utils import logging as hf_logging
    hf_logging.set_verbosity_error()
    return BertModel(BertConfig(**config)).to(device)


def _synthetic(device, shapes):
    """Random normal tensors with a different scale per tensor (like layers of a real model)."""
    holders = []
    for i, shape in enumerate(shapes):
        w = torch.randn(shape, device=device) * (0.01 * (1 + i % 7))
        holders.append(_Holder(w))
    return torch.nn.ModuleList(holders)


@dataclass
class Spec:
    name: str
    role: str  # "resnet", "bert" or "synthetic": which targets apply
    description: str
    build: Callable[[torch.device], torch.nn.Module]
    select: dict  # keyword arguments of rgprune.pruner.select_prunable
    train: dict | None  # the training-step benchmark, or None


SPECS = {
    "resnet50": Spec("resnet50", "resnet", "torchvision resnet50(weights=None): all conv + linear weights",
                     _resnet50, dict(prune_head=True),
                     dict(kind="vision", batch=2, image=64, classes=1000, optimizer="sgd")),
    "bert-base": Spec("bert-base", "bert", "transformers BertModel(BertConfig()) random init: all linear weights",
                      _bert, dict(prune_head=True),
                      dict(kind="text", batch=2, seq=32, vocab=30522, optimizer="adamw")),
    "synthetic-1b": Spec("synthetic-1b", "synthetic", "200 random tensors of 2000 x 2500 (1.0e9 weights)",
                         lambda d: _synthetic(d, [(2000, 2500)] * 200), dict(include=["*weight"]), None),
    # tiny sets for --quick (the smoke test) and for trying the script out
    "resnet20": Spec("resnet20", "resnet", "CIFAR ResNet-20 (rgprune.models): all conv + linear weights",
                     _resnet20, dict(prune_head=True),
                     dict(kind="vision", batch=2, image=32, classes=10, optimizer="sgd")),
    "bert-tiny": Spec("bert-tiny", "bert", "BertModel, 2 layers of width 64: all linear weights",
                      lambda d: _bert(d, vocab_size=512, hidden_size=64, num_hidden_layers=2,
                                      num_attention_heads=2, intermediate_size=128, max_position_embeddings=64),
                      dict(prune_head=True), dict(kind="text", batch=2, seq=32, vocab=512, optimizer="adamw")),
    "synthetic-tiny": Spec("synthetic-tiny", "synthetic", "20 random tensors of 37 x 53 .. 96 x 128",
                           lambda d: _synthetic(d, [(37, 53), (96, 128)] * 10), dict(include=["*weight"]), None),
}
DEFAULT_MODELS = {
    (False, "cpu"): ["resnet50", "bert-base"],
    (False, "cuda"): ["resnet50", "bert-base", "synthetic-1b"],
    (True, "cpu"): ["resnet20", "bert-tiny", "synthetic-tiny"],
    (True, "cuda"): ["resnet20", "bert-tiny", "synthetic-tiny"],
}
# Methods skipped by default for a weight set: the reference copies all 8-byte keys to the host and
# sorts them there, minutes for 1e9 weights. --methods overrides.
DEFAULT_SKIP = {"synthetic-1b": {"reference"}}


# --------------------------------------------------------------------------------------------------
# Pruning states and the four methods
# --------------------------------------------------------------------------------------------------

@dataclass
class State:
    """Weights and bit masks at the start of an IMP round; ``k`` is what that round prunes."""

    round: int
    weights: list
    masks: list
    survivors: int
    k: int = field(init=False)

    def __post_init__(self):
        self.k = round(FRACTION * self.survivors)

    @property
    def n_weights(self) -> int:
        return sum(w.numel() for w in self.weights)

    @property
    def density(self) -> float:
        return self.survivors / self.n_weights

    def keep_bool(self) -> list:
        return [reference.unpack_mask(m, w.numel()).reshape(w.shape) for w, m in zip(self.weights, self.masks)]


def make_states(weights: list) -> dict:
    """State at round 1 (dense) and round 5 (four rgprune rounds of 20% of the survivors)."""
    w1 = [w.detach().clone() for w in weights]
    s1 = State(1, w1, MaskSet.ones(w1).words, sum(w.numel() for w in w1))
    w, m, surv = [x.clone() for x in w1], [x.clone() for x in s1.masks], s1.survivors
    for _ in range(4):
        k = round(FRACTION * surv)
        rgprune.prune_global_(w, m, k)
        surv -= k
    return {1: s1, 5: State(5, w, m, surv)}


def _sync(device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def _pairs(model, names):
    out = []
    for name in names:
        module_name, _, param_name = name.rpartition(".")
        out.append((model.get_submodule(module_name) if module_name else model, param_name))
    return out


# prepare(state, model, names, clone) -> ctx; run(ctx, k); survivors(ctx) -> int; words(ctx) -> packed masks.
# prepare and survivors/words are never timed.

def _tp_prepare(state, model, names, clone=True):
    if model is not None:
        copy_ = copy.deepcopy(model)
        params = dict(copy_.named_parameters())
        with torch.no_grad():
            for n, w in zip(names, state.weights):
                params[n].copy_(w)
        pairs = _pairs(copy_, names)
    else:  # bare tensors (the memory subprocess): one holder module per tensor
        copy_ = torch.nn.ModuleList([_Holder(w.clone() if clone else w) for w in state.weights])
        pairs = [(h, "weight") for h in copy_]
    if state.round > 1:
        for (module, pname), keep in zip(pairs, state.keep_bool()):
            tprune.custom_from_mask(module, pname, mask=keep)
    return {"model": copy_, "pairs": pairs}


def _tp_run(ctx, k):
    tprune.global_unstructured(ctx["pairs"], pruning_method=tprune.L1Unstructured, amount=FRACTION)


def _tp_keep(ctx):
    return [getattr(m, p + "_mask") != 0 for m, p in ctx["pairs"]]


def _naive_prepare(state, model, names, clone=True):
    ws = [w.clone() if clone else w for w in state.weights]
    # round 1: a naive user has no masks yet; later rounds: bool masks (1 byte per weight)
    keep = None if state.round == 1 else state.keep_bool()
    return {"weights": ws, "keep": keep}


def _naive_run(ctx, k):
    ws, keep = ctx["weights"], ctx["keep"]
    if keep is None:
        flat = torch.cat([w.reshape(-1).abs() for w in ws])
    else:
        flat = torch.cat([w[m].abs() for w, m in zip(ws, keep)])
    thr = torch.kthvalue(flat, k).values
    del flat
    if keep is None:
        keep = [w.abs() > thr for w in ws]
    else:
        for w, m in zip(ws, keep):
            m &= w.abs() > thr
    for w, m in zip(ws, keep):
        w.mul_(m)
    ctx["keep"] = keep


def _naive_keep(ctx):
    return ctx["keep"] if ctx["keep"] is not None else [torch.ones_like(w, dtype=torch.bool) for w in ctx["weights"]]


def _packed_prepare(state, model, names, clone=True):
    return {"weights": [w.clone() if clone else w for w in state.weights],
            "masks": [m.clone() if clone else m for m in state.masks]}


def _ref_run(ctx, k):
    info, _ = reference.global_magnitude_threshold(ctx["weights"], ctx["masks"], k)
    reference.apply_threshold_(ctx["weights"], ctx["masks"], info, 12)


def _rg_run(ctx, k):
    rgprune.prune_global_(ctx["weights"], ctx["masks"], k)


def _packed_keep(ctx):
    return [reference.unpack_mask(m, w.numel()) for w, m in zip(ctx["weights"], ctx["masks"])]


@dataclass
class Method:
    name: str
    prepare: Callable
    run: Callable
    keep: Callable  # bool masks after the run (for counting and comparing; untimed)


METHOD_IMPLS = {
    "torch_prune": Method("torch_prune", _tp_prepare, _tp_run, _tp_keep),
    "naive": Method("naive", _naive_prepare, _naive_run, _naive_keep),
    "reference": Method("reference", _packed_prepare, _ref_run, _packed_keep),
    "rgprune": Method("rgprune", _packed_prepare, _rg_run, _packed_keep),
}


def _warmup(device) -> None:
    """One tiny round (dense, then masked) of every method: library loading and thread pools start here."""
    g = torch.Generator().manual_seed(1)
    ws = [torch.randn(64, 64, generator=g).to(device), torch.randn(1000, generator=g).to(device)]
    states = make_states(ws)
    for m in METHOD_IMPLS.values():
        for r in ROUNDS:
            ctx = m.prepare(states[r], None, None)
            m.run(ctx, states[r].k)
    _sync(device)


# --------------------------------------------------------------------------------------------------
# Timing
# --------------------------------------------------------------------------------------------------

def _median(xs):
    return statistics.median(xs) if xs else None


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


def interleaved(variants: dict, reps: int, device, *, slow_reps: int = 2, slow_after: float = float("inf"),
                force_slow=(), on_first=None) -> dict:
    """Times each variant ``(prepare, run)`` ``reps`` times, interleaved so that each variant's repetitions
    span the whole timing (``next_variant``). A variant in ``force_slow``, or whose first run takes longer
    than ``slow_after`` seconds, is repeated only ``slow_reps`` times. ``prepare()`` is untimed; ``run(ctx)``
    is timed with device synchronization and the garbage collector off. ``on_first(name, ctx)`` is called
    (untimed) after each variant's first run. Returns {name: {"times_s": [...], "error": str|None}}."""
    names = list(variants)
    target = {n: (min(reps, slow_reps) if n in force_slow else reps) for n in names}
    out = {n: {"times_s": [], "error": None} for n in names}
    done = {n: 0 for n in names}
    while (n := next_variant(names, done, target)) is not None:
        done[n] += 1
        prepare, run = variants[n]
        try:
            ctx = prepare()
            _sync(device)
            gc.collect()
            gc.disable()
            try:
                t0 = time.perf_counter()
                run(ctx)
                _sync(device)
                dt = time.perf_counter() - t0
            finally:
                gc.enable()
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
    for n in names:
        out[n]["reps"] = len(out[n]["times_s"])
        out[n]["median_s"] = _median(out[n]["times_s"])
        out[n]["min_s"] = min(out[n]["times_s"]) if out[n]["times_s"] else None
    return out


def _ratio(a, b):
    return a / b if a is not None and b else None


# --------------------------------------------------------------------------------------------------
# Memory
# --------------------------------------------------------------------------------------------------

def _proc_status_kb(key: str):
    try:
        with open("/proc/self/status") as f:
            m = re.search(rf"^{key}:\s+(\d+) kB", f.read(), re.M)
        return int(m.group(1)) if m else None
    except OSError:
        return None


def _reset_peak_rss() -> bool:
    """Resets the kernel's peak-RSS counter (Linux >= 4.0); False when that is not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _mem_job(job: dict) -> dict:
    """Runs in a fresh subprocess: loads a state, then measures one method's round."""
    data = torch.load(job["state"], weights_only=True)
    state = State(data["round"], data["weights"], data["masks"], data["survivors"])
    method = METHOD_IMPLS[job["method"]]
    ctx = method.prepare(state, None, None, clone=False)
    gc.collect()
    reset = _reset_peak_rss()
    rss0 = _proc_status_kb("VmRSS")
    method.run(ctx, state.k)
    hwm = _proc_status_kb("VmHWM")
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # kB on Linux
    gc.collect()
    rss1 = _proc_status_kb("VmRSS")
    pruned = state.survivors - sum(int(k.sum()) for k in method.keep(ctx))
    # VmHWM is this address space's peak RSS, which clear_refs resets. ru_maxrss is only used where VmHWM
    # cannot be read: it also holds the peak RSS of the parent at fork (recorded at exec), which is larger
    # than anything measured here whenever the parent holds the model.
    peak = hwm if (hwm is not None and reset) else maxrss
    return {"method": job["method"], "round": state.round, "rss_before_bytes": rss0 * 1024,
            "peak_extra_bytes": (peak - rss0) * 1024, "retained_bytes": (rss1 - rss0) * 1024,
            "peak_source": "VmHWM after clear_refs" if peak == hwm and reset else "ru_maxrss",
            "ru_maxrss_bytes": maxrss * 1024, "pruned": pruned, "k": state.k}


def _mem_worker(jobs_json: str) -> None:
    jobs = json.loads(jobs_json)
    _warmup("cpu")
    gc.collect()
    gc.freeze()
    results = []
    for job in jobs:
        gc.collect()
        res = _mem_job(job)
        res.pop("round")
        results.append(res)
        gc.collect()
    print(_WORKER_MARK + json.dumps(results))


def memory_jobs(states: dict, methods, tmpdir: Path, tag: str) -> list:
    """Saves each state to ``tmpdir`` and returns one memory job per (round, method)."""
    jobs = []
    for r, s in states.items():
        path = tmpdir / f"{tag}-round{r}.pt"
        torch.save({"round": s.round, "weights": s.weights, "masks": s.masks, "survivors": s.survivors}, path)
        jobs += [{"state": str(path), "model": tag, "round": r, "method": m} for m in methods]
    return jobs


def run_memory_jobs(jobs: list, shared: bool) -> dict:
    """{(model, round): {method: result}}; each job in a fresh subprocess unless ``shared`` (one for all)."""
    batches = [jobs] if shared else [[j] for j in jobs]
    out = {}
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    for batch in batches:
        log("  memory subprocess: " + ", ".join(f"{j['model']} round {j['round']} {j['method']}" for j in batch))
        proc = subprocess.run([sys.executable, "-m", "bench.compare", "--mem-worker", json.dumps(batch)],
                              cwd=ROOT, env=env, capture_output=True, text=True)
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(_WORKER_MARK)]
        results = json.loads(lines[-1][len(_WORKER_MARK):]) if proc.returncode == 0 and lines else None
        for i, j in enumerate(batch):
            if results is None:
                err = (proc.stderr.strip().splitlines() or ["no output"])[-1]
                res = {"error": f"worker exited with {proc.returncode}: {err}"}
            else:
                res = results[i]
            out.setdefault((j["model"], j["round"]), {})[j["method"]] = res
    return out


def memory_gpu(state: State, method: Method, model, names, device) -> dict:
    ctx = method.prepare(state, model, names)
    gc.collect()
    _sync(device)
    torch.cuda.reset_peak_memory_stats(device)
    base = torch.cuda.memory_allocated(device)
    method.run(ctx, state.k)
    _sync(device)
    res = {"method": method.name, "peak_extra_bytes": torch.cuda.max_memory_allocated(device) - base,
           "retained_bytes": torch.cuda.memory_allocated(device) - base,
           "pruned": state.survivors - sum(int(k.sum()) for k in method.keep(ctx)), "k": state.k}
    del ctx
    gc.collect()
    torch.cuda.empty_cache()
    return res


def mask_storage(n_weights: int, bitmask_bytes: int) -> dict:
    """Bytes each method keeps to remember which weights are pruned."""
    return {
        "torch_prune": 4 * n_weights,  # float32 <name>_mask buffers
        "torch_prune_reparam_total": 8 * n_weights,  # + <name>_orig kept beside the masked <name> (float32)
        "naive": n_weights,  # bool masks
        "reference": bitmask_bytes,
        "rgprune": bitmask_bytes,  # 1 bit per weight in int32 words
    }


# --------------------------------------------------------------------------------------------------
# Sections of the benchmark
# --------------------------------------------------------------------------------------------------

def bench_rounds(spec, model, names, states, methods, device, args) -> dict:
    cpu = torch.device(device).type == "cpu"
    out = {}
    for r, s in states.items():
        log(f"  round {r}: density {s.density:.4f}, k={s.k}")
        first = {}

        def on_first(name, ctx, s=s, first=first):
            keep = METHOD_IMPLS[name].keep(ctx)
            words = [reference.pack_mask(k.reshape(-1)) for k in keep]
            first[name] = {"pruned": s.survivors - sum(int(k.sum()) for k in keep), "words": words}
            log(f"    {name}: first run done")

        variants = {m: (lambda m=m, s=s: METHOD_IMPLS[m].prepare(s, model, names),
                        lambda ctx, m=m, s=s: METHOD_IMPLS[m].run(ctx, s.k)) for m in methods}
        force = {"torch_prune", "reference"} if cpu else set()
        timed = interleaved(variants, args.reps, device, slow_reps=args.slow_reps, slow_after=args.slow_after,
                            force_slow=force, on_first=on_first)
        ours = first.get("rgprune", {}).get("words")
        res = {"density": s.density, "survivors": s.survivors, "k": s.k, "methods": {}}
        for m in methods:
            entry = {"label": METHOD_LABELS[m], **timed[m]}
            if m in first:
                entry["pruned"] = first[m]["pruned"]
                entry["exact_k"] = first[m]["pruned"] == s.k
                if ours is not None:
                    entry["mask_bits_differing_from_rgprune"] = sum(
                        _popcount(a ^ b) for a, b in zip(first[m]["words"], ours))
            res["methods"][m] = entry
        med = {m: res["methods"][m]["median_s"] for m in methods}
        res["speedup"] = {f"vs_{m}": _ratio(med[m], med.get("rgprune")) for m in methods if m != "rgprune"}
        best = {m: res["methods"][m]["min_s"] for m in methods}
        res["speedup_of_min_times"] = {f"vs_{m}": _ratio(best[m], best.get("rgprune"))
                                       for m in methods if m != "rgprune"}
        out[f"round{r}"] = res
        del first
        gc.collect()
    return out


def bench_trace(states, device, args) -> dict:
    """The RG trace's cost: rgprune rounds that keep / discard the survivors' statistics."""
    out = {}
    for r, s in states.items():
        def clone(s=s):
            return [w.clone() for w in s.weights], [m.clone() for m in s.masks]

        def with_threshold(s=s):
            ws, ms = clone()
            return ws, ms, rgprune.global_magnitude_threshold(ws, ms, s.k)

        def round_with_trace(ctx, s=s):
            ws, ms = ctx
            res = rgprune.prune_global_(ws, ms, s.k, 12)
            kept = [t.cpu() for t in res.stats] + [res.threshold.histogram.cpu()]  # what the trace records
            return kept

        def round_without_trace(ctx, s=s):
            ws, ms = ctx
            rgprune.apply_threshold_(ws, ms, rgprune.global_magnitude_threshold(ws, ms, s.k), 1)

        variants = {
            "round_with_trace": (clone, round_with_trace),
            "round_without_trace": (clone, round_without_trace),
            "threshold_only": (clone, lambda ctx, s=s: rgprune.global_magnitude_threshold(ctx[0], ctx[1], s.k)),
            "apply_only": (with_threshold, lambda ctx: rgprune.apply_threshold_(ctx[0], ctx[1], ctx[2], 12)),
            "apply_only_bits1": (with_threshold, lambda ctx: rgprune.apply_threshold_(ctx[0], ctx[1], ctx[2], 1)),
            "histogram_pass": (clone, lambda ctx: rgprune.magnitude_histogram(ctx[0], ctx[1], 12)),
        }
        timed = interleaved(variants, args.reps, device)
        med = {n: v["median_s"] for n, v in timed.items()}
        out[f"round{r}"] = {
            "variants": timed,
            "trace_overhead_s": (med["round_with_trace"] - med["round_without_trace"])
            if med["round_with_trace"] is not None and med["round_without_trace"] is not None else None,
            "trace_overhead_ratio": _ratio(med["round_with_trace"], med["round_without_trace"]),
            "separate_histogram_pass_ratio": _ratio(med["histogram_pass"], med["round_without_trace"]),
            "threshold_share": _ratio(med["threshold_only"], med["round_without_trace"]),
        }
    out["note"] = ("apply_threshold_ has no statistics-free path: the survivors' histogram, counts, sum|w| "
                   "and sum w^2 are always computed in its single pass. 'round_without_trace' passes bits=1 "
                   "(a 2-bin histogram) and discards the results, so it still pays for the per-tensor sums; "
                   "'histogram_pass' is what recording the trace would cost as a separate, unfused pass.")
    return out


def _make_batch(train: dict, device):
    g = torch.Generator().manual_seed(0)
    if train["kind"] == "vision":
        x = torch.randn(train["batch"], 3, train["image"], train["image"], generator=g)
        y = torch.randint(0, train["classes"], (train["batch"],), generator=g)
        return x.to(device), y.to(device)
    ids = torch.randint(0, train["vocab"], (train["batch"], train["seq"]), generator=g)
    return ids.to(device), torch.ones_like(ids).to(device)


def _loss(train: dict, model, batch):
    if train["kind"] == "vision":
        x, y = batch
        return torch.nn.functional.cross_entropy(model(x), y)
    ids, attn = batch
    out = model(input_ids=ids, attention_mask=attn)
    return out.last_hidden_state.float().pow(2).mean() + out.pooler_output.float().pow(2).mean()


def _optimizer(train: dict, params):
    if train["optimizer"] == "sgd":
        return torch.optim.SGD(params, lr=0.01, momentum=0.9)
    return torch.optim.AdamW(params, lr=1e-4)


def bench_training(spec, model, names, state, device, args) -> dict:
    """One optimizer step with no pruning, torch.prune's reparametrization, and rgprune's attach."""
    train = spec.train
    batch = _make_batch(train, device)
    shapes = [w.shape for w in state.weights]
    setups = {}
    for kind in ("no_pruning", "torch_prune", "rgprune_attach"):
        m = copy.deepcopy(model).train()
        params = dict(m.named_parameters())
        with torch.no_grad():
            for n, w in zip(names, state.weights):
                params[n].copy_(w)
        pruner = None
        if kind == "torch_prune":
            MaskSet([x.clone() for x in state.masks], shapes, names).to_torch_prune(_pairs(m, names))
        opt = _optimizer(train, m.parameters())
        if kind == "rgprune_attach":
            pruner = GlobalMagnitudePruner(m, **spec.select)
            assert pruner.names == names
            pruner.masks = MaskSet([x.clone() for x in state.masks], shapes, names)
            pruner.apply_masks()
            pruner.attach(opt)
        setups[kind] = (m, opt, pruner)

    def step(kind):
        m, opt, _ = setups[kind]
        opt.zero_grad(set_to_none=True)
        _loss(train, m, batch).backward()
        opt.step()

    for kind in setups:  # warm-up: optimizer state is created on the first step
        for _ in range(1 if args.quick else 2):
            step(kind)
    _sync(device)
    variants = {kind: (lambda: None, lambda ctx, kind=kind: step(kind)) for kind in setups}
    timed = interleaved(variants, args.reps, device)
    base = timed["no_pruning"]["median_s"]
    out = {"optimizer": train["optimizer"], "batch": {k: v for k, v in train.items() if k != "optimizer"},
           "variants": timed,
           "ratio_vs_no_pruning": {k: _ratio(v["median_s"], base) for k, v in timed.items()},
           "ratio_of_min_times_vs_no_pruning": {k: _ratio(v["min_s"], timed["no_pruning"]["min_s"])
                                                for k, v in timed.items()}}

    # The cost of re-applying the masks after a step (what attach's hook does: weights + optimizer state)
    # against one read + write pass over the same tensors.
    m, opt, pruner = setups["rgprune_attach"]
    tensors, masks = pruner._masked_state(opt)
    with torch.no_grad():
        hook = interleaved({
            "apply_masks_": (lambda: None, lambda ctx: rgprune.apply_masks_(tensors, masks)),
            "read_write_pass": (lambda: None, lambda ctx: torch._foreach_mul_(tensors, 1.0)),
        }, args.reps, device)
    out["mask_reapplication"] = {
        "tensors": len(tensors), "bytes": sum(t.numel() * t.element_size() for t in tensors),
        "variants": hook,
        "ratio_vs_read_write_pass": _ratio(hook["apply_masks_"]["median_s"], hook["read_write_pass"]["median_s"]),
        "note": "attach zeroes the pruned weights and every optimizer state tensor shaped like them "
                "(momentum / Adam moments) in one apply_masks_ call; the read+write pass is "
                "torch._foreach_mul_(same tensors, 1.0)",
    }
    del setups, tensors, masks, m, opt, pruner
    gc.collect()
    return out


def copy_bandwidth(device, nbytes: int, reps: int) -> dict:
    src = torch.empty(nbytes // 4, dtype=torch.float32, device=device).uniform_()
    dst = torch.empty_like(src)
    for _ in range(3):
        dst.copy_(src)
    timed = interleaved({"copy": (lambda: None, lambda ctx: dst.copy_(src))}, max(reps, 5), device)["copy"]
    del src, dst
    return {"bytes_copied": nbytes, "median_s": timed["median_s"], "times_s": timed["times_s"],
            "bytes_per_s": 2 * nbytes / timed["median_s"], "note": "read + write counted: 2 x bytes / time"}


def floor_for(rounds: dict, weight_bytes: int, bitmask_bytes: int, bandwidth: float) -> dict:
    floor_bytes = 4 * weight_bytes + 2 * bitmask_bytes
    floor_s = floor_bytes / bandwidth
    out = {"floor_bytes": floor_bytes, "floor_s": floor_s,
           "definition": "3 reads + 1 write of the weights + 1 read + 1 write of the bit masks, at the "
                         "measured copy bandwidth"}
    for key, r in rounds.items():
        t = r["methods"].get("rgprune", {}).get("median_s")
        out[key] = {"rgprune_s": t, "times_floor": _ratio(t, floor_s),
                    "fraction_of_floor_speed": _ratio(floor_s, t)}
    return out


# --------------------------------------------------------------------------------------------------
# Targets
# --------------------------------------------------------------------------------------------------

def evaluate_targets(kind: str, models: dict, quick: bool) -> list:
    items = []

    def add(tid, description, model, required, measured, op):
        met = None if measured is None else bool(op(measured))
        items.append({"id": tid, "description": description, "model": model, "required": required,
                      "measured": measured, "met": met,
                      **({"note": "quick run on tiny weight sets: not meaningful"} if quick else {})})

    for name, res in models.items():
        role = res["role"]
        for rkey in ("round1", "round5"):
            rr = res.get("rounds", {}).get(rkey)
            if rr is None:
                continue
            sp = rr["speedup"]
            if kind == "cpu" and role == "bert":
                add(f"cpu.{name}.{rkey}.vs_torch_prune", f"{name} {rkey}: rgprune >= 50x faster than torch.prune",
                    name, ">= 50", sp.get("vs_torch_prune"), lambda v: v >= 50)
                add(f"cpu.{name}.{rkey}.vs_naive", f"{name} {rkey}: rgprune >= 5x faster than naive cat+kthvalue",
                    name, ">= 5", sp.get("vs_naive"), lambda v: v >= 5)
            if kind == "cpu":
                mem = res.get("memory", {}).get(rkey, {}).get("rgprune", {})
                extra = mem.get("peak_extra_bytes")
                frac = None if extra is None else extra / res["weight_bytes"]
                add(f"cpu.{name}.{rkey}.memory", f"{name} {rkey}: rgprune's peak extra memory < 1% of the "
                    f"weights' bytes (the resident bit masks, 1/32 of the weights, are counted apart)",
                    name, "< 0.01", frac, lambda v: v < 0.01)
            if kind == "gpu":
                add(f"gpu.{name}.{rkey}.vs_torch_prune", f"{name} {rkey}: rgprune >= 20x faster than torch.prune",
                    name, ">= 20", sp.get("vs_torch_prune"), lambda v: v >= 20)
                fl = res.get("floor", {}).get(rkey, {})
                add(f"gpu.{name}.{rkey}.floor", f"{name} {rkey}: rgprune round within 2x of the bandwidth floor",
                    name, "<= 2", fl.get("times_floor"), lambda v: v <= 2)
        if kind == "gpu" and res.get("training_step"):
            ratio = res["training_step"]["mask_reapplication"]["ratio_vs_read_write_pass"]
            add(f"gpu.{name}.mask_reapplication", f"{name}: apply_masks_ after a step <= 2x one read+write "
                f"pass of the pruned tensors", name, "<= 2", ratio, lambda v: v <= 2)
    return items


# --------------------------------------------------------------------------------------------------
# Machine description
# --------------------------------------------------------------------------------------------------

def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _sha256(path: Path):
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


def _git_head():
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              timeout=10).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def cpu_pressure():
    """Linux PSI: share of time some runnable task waited for a CPU (10 s / 60 s / 300 s averages, in %),
    a direct measure of how much other processes competed for the cores during the run."""
    try:
        with open("/proc/pressure/cpu") as f:
            line = f.readline()
        return {k: float(v) for k, v in re.findall(r"(avg\d+)=([\d.]+)", line)}
    except OSError:
        return None


def machine(device) -> dict:
    import psutil
    ext = next(iter(sorted((ROOT / "rgprune").glob("_C*.so"))), None)
    info = {
        "cpu_model": _cpu_model(),
        "logical_cores": os.cpu_count(),
        "physical_cores": psutil.cpu_count(logical=False),
        "cores_available": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "memory_bytes": psutil.virtual_memory().total,
        "load_average_at_start": list(os.getloadavg()),
        "cpu_pressure_at_start": cpu_pressure(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,
        "rgprune_version": rgprune.__version__,
        "rgprune_backend": rgprune.backend(),
        "git_head": _git_head(),
        "extension_file": ext.name if ext else None,
        "extension_sha256": _sha256(ext) if ext else None,
        "kernels_cpu_sha256": _sha256(ROOT / "csrc" / "cpu" / "kernels_cpu.cpp"),
        # the build flags decide as much as the source (without -fopenmp the CPU kernels ran on one thread)
        "setup_py_sha256": _sha256(ROOT / "setup.py"),
        "cpu_kernels_parallel": bool(getattr(_ops._C, "cpu_kernels_parallel", False)) if _ops._C else None,
        "gpu": None,
    }
    if torch.device(device).type == "cuda":
        p = torch.cuda.get_device_properties(device)
        info["gpu"] = {"name": p.name, "memory_bytes": p.total_memory,
                       "capability": f"{p.major}.{p.minor}", "multiprocessors": p.multi_processor_count}
    return info


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "unknown"


# --------------------------------------------------------------------------------------------------
# Driver
# --------------------------------------------------------------------------------------------------

def run_device(device: str, args) -> dict:
    dev = torch.device(device)
    kind = "gpu" if dev.type == "cuda" else "cpu"
    models = args.models or DEFAULT_MODELS[(args.quick, dev.type)]
    mach = machine(dev)
    result = {
        "schema": SCHEMA, "kind": kind, "device": str(dev),
        "date": datetime.date.today().isoformat(),
        "started": datetime.datetime.now().isoformat(timespec="seconds"),
        "quick": args.quick, "command": " ".join([Path(sys.executable).name, "-m", "bench.compare"] + args.argv),
        "machine": mach,
        "settings": {"fraction": FRACTION, "rounds": list(ROUNDS), "reps": args.reps, "slow_reps": args.slow_reps,
                     "slow_after_s": args.slow_after, "models": models, "threads": args.threads,
                     "methods": list(args.methods or METHODS),
                     "repetition_policy": (
                         "repetitions interleaved, each method's spread evenly over the whole timing (with "
                         "equal counts: every method once per repetition, order rotated), median reported; on the CPU torch.prune and the reference always get slow_reps repetitions, "
                         "and any method whose first run takes longer than slow_after_s gets slow_reps")},
        "models": {},
        "errors": [],
    }
    log(f"{kind} run on {mach['cpu_model'] if kind == 'cpu' else mach['gpu']['name']}; backend "
        f"{mach['rgprune_backend']}; torch threads {mach['torch_threads']}")
    _warmup(dev)
    # A full collection walks every object of torch, torchvision and transformers (0.5 s here); freeze them
    # so that the collections before each timed run only walk what the benchmark itself allocates.
    gc.collect()
    gc.freeze()
    bandwidth = None
    try:
        bandwidth = copy_bandwidth(dev, (64 << 20) if args.quick else ((1 << 30) if kind == "gpu" else (256 << 20)),
                                   args.reps)
        result["copy_bandwidth"] = bandwidth
        log(f"copy bandwidth {bandwidth['bytes_per_s'] / 1e9:.1f} GB/s")
    except Exception as exc:
        result["errors"].append(f"copy bandwidth: {type(exc).__name__}: {exc}")

    tmpdir = Path(tempfile.mkdtemp(prefix="rgprune-bench-"))
    pending = []  # --quick: memory jobs of every model, run in one subprocess at the end
    try:
        for name in models:
            spec = SPECS[name]
            log(f"{name}: building ({spec.description})")
            try:
                torch.manual_seed(0)
                model = spec.build(dev)
                named = select_prunable(model, **spec.select)
                names = [n for n, _ in named]
                weights = [p.detach() for _, p in named]
                states = make_states(weights)
            except Exception as exc:  # e.g. no kernels for this device, out of memory: go on with the next set
                traceback.print_exc(file=sys.stderr)
                result["errors"].append(f"{name} setup: {type(exc).__name__}: {exc}")
                model = named = weights = states = None
                gc.collect()
                continue
            gc.collect()
            gc.freeze()  # the model's modules (and the modules its build imported); unfrozen when done
            n = states[1].n_weights
            weight_bytes = sum(w.numel() * w.element_size() for w in weights)
            bitmask_bytes = sum(m.numel() * 4 for m in states[1].masks)
            methods = [m for m in (args.methods or METHODS)
                       if args.methods or m not in DEFAULT_SKIP.get(name, ())]
            res = {"role": spec.role, "description": spec.description, "n_tensors": len(weights), "n_weights": n,
                   "dtype": str(weights[0].dtype).replace("torch.", ""), "weight_bytes": weight_bytes,
                   "bitmask_bytes": bitmask_bytes, "methods": methods,
                   "skipped_methods": sorted(set(args.methods or METHODS) - set(methods)),
                   "mask_storage_bytes": mask_storage(n, bitmask_bytes), "load_average": {}}
            result["models"][name] = res
            log(f"{name}: {len(weights)} tensors, {n / 1e6:.2f}M weights")

            def section(key, fn):
                if key in args.skip:
                    return
                log(f"{name}: {key}")
                res["load_average"][key] = list(os.getloadavg())  # how busy the machine was
                res.setdefault("cpu_pressure", {})[key] = cpu_pressure()
                try:
                    res[key] = fn()
                except Exception as exc:
                    traceback.print_exc(file=sys.stderr)
                    result["errors"].append(f"{name} {key}: {type(exc).__name__}: {exc}")
                gc.collect()
                if dev.type == "cuda":
                    torch.cuda.empty_cache()

            section("rounds", lambda: bench_rounds(spec, model, names, states, methods, dev, args))
            if dev.type == "cpu":
                if "memory" not in args.skip:
                    jobs = memory_jobs(states, methods, tmpdir, name)
                    if args.quick:  # one subprocess for every model, after the last one
                        pending += jobs
                    else:
                        section("memory", lambda: {f"round{r}": v for (_, r), v in
                                                   run_memory_jobs(jobs, shared=False).items()})
            else:
                section("memory", lambda: {f"round{r}": {m: memory_gpu(s, METHOD_IMPLS[m], model, names, dev)
                                                         for m in methods} for r, s in states.items()})
            section("trace", lambda: bench_trace(states, dev, args))
            if spec.train is not None:
                section("training_step", lambda: bench_training(spec, model, names, states[5], dev, args))
            if bandwidth is not None and "rounds" in res:
                res["floor"] = floor_for(res["rounds"], weight_bytes, bitmask_bytes, bandwidth["bytes_per_s"])
            del model, named, weights, states
            gc.unfreeze()
            gc.collect()
            if dev.type == "cuda":
                torch.cuda.empty_cache()
        if pending:
            log("memory (all models, one subprocess)")
            try:
                for (name, r), v in run_memory_jobs(pending, shared=True).items():
                    result["models"][name].setdefault("memory", {})[f"round{r}"] = v
            except Exception as exc:
                result["errors"].append(f"memory: {type(exc).__name__}: {exc}")
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)
    for res in result["models"].values():
        for per in res.get("memory", {}).values():
            for v in per.values():
                if "peak_extra_bytes" in v:
                    v["peak_extra_fraction_of_weights"] = v["peak_extra_bytes"] / res["weight_bytes"]
                if v.get("error"):
                    result["errors"].append(f"memory {v.get('method', '')}: {v['error']}")

    result["targets"] = evaluate_targets(kind, result["models"], args.quick)
    judged = [t["met"] for t in result["targets"] if t["met"] is not None]
    result["all_targets_met"] = bool(judged) and all(judged)
    result["finished"] = datetime.datetime.now().isoformat(timespec="seconds")
    result["machine"]["load_average_at_end"] = list(os.getloadavg())
    result["machine"]["cpu_pressure_at_end"] = cpu_pressure()
    return result


def output_path(result: dict, out_dir: Path) -> Path:
    m = result["machine"]
    name = m["gpu"]["name"] if result["kind"] == "gpu" else m["cpu_model"]
    suffix = f"-{result['settings']['threads']}thread" if result["settings"].get("threads") else ""
    suffix += "-quick" if result["quick"] else ""
    return out_dir / f"{result['kind']}-{slug(name)}-{result['date']}{suffix}.json"


def parse_args(argv):
    p = argparse.ArgumentParser(prog="python -m bench.compare", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="examples:\n  python -m bench.compare\n  python -m bench.compare --quick "
                                       "--out /tmp/bench\n  python -m bench.compare --device cuda --models "
                                       "bert-base,synthetic-1b --reps 10")
    p.add_argument("--quick", action="store_true", help="tiny weight sets and 2 repetitions (seconds; for tests)")
    p.add_argument("--models", type=lambda s: [x for x in s.split(",") if x],
                   help=f"comma-separated weight sets, from: {', '.join(SPECS)} (default: resnet50,bert-base, "
                        f"plus synthetic-1b on a GPU; --quick: resnet20,bert-tiny,synthetic-tiny)")
    p.add_argument("--device", default="auto",
                   help="cpu, cuda, cpu,cuda or auto (= cpu, plus cuda when a GPU is present); one JSON per device")
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results", help="folder for the JSON results")
    p.add_argument("--reps", type=int, default=None, help="repetitions per method (default 7; --quick 1)")
    p.add_argument("--slow-reps", type=int, default=None,
                   help="repetitions for slow methods (default 2; --quick 1): torch.prune and the reference on "
                        "the CPU, and any method whose first run exceeds --slow-after")
    p.add_argument("--slow-after", type=float, default=10.0, help="seconds (default 10)")
    p.add_argument("--methods", type=lambda s: [x for x in s.split(",") if x],
                   help=f"comma-separated subset of {','.join(METHODS)} (default all; rgprune is always timed)")
    p.add_argument("--skip", type=lambda s: [x for x in s.split(",") if x], default=[],
                   help="sections to skip: rounds,memory,trace,training_step")
    p.add_argument("--threads", type=int, default=None,
                   help="torch.set_num_threads for the run and its subprocesses (default: torch's default)")
    p.add_argument("--mem-worker", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.argv = list(argv)
    if args.mem_worker:
        return args
    for m in args.models or []:
        if m not in SPECS:
            p.error(f"unknown weight set {m!r}; choose from {', '.join(SPECS)}")
    if args.methods:
        bad = set(args.methods) - set(METHODS)
        if bad:
            p.error(f"unknown methods {sorted(bad)}; choose from {', '.join(METHODS)}")
        if "rgprune" not in args.methods:
            args.methods.append("rgprune")
        args.methods = [m for m in METHODS if m in args.methods]
    bad = set(args.skip) - {"rounds", "memory", "trace", "training_step"}
    if bad:
        p.error(f"unknown sections {sorted(bad)} in --skip")
    args.reps = args.reps or (1 if args.quick else 7)
    args.slow_reps = args.slow_reps or (1 if args.quick else 2)
    if args.reps < 1 or args.slow_reps < 1:
        p.error("--reps and --slow-reps must be >= 1")
    if args.device == "auto":
        args.devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    else:
        args.devices = [d for d in args.device.split(",") if d]
        for d in args.devices:
            if d not in ("cpu", "cuda"):
                p.error(f"--device takes cpu, cuda, cpu,cuda or auto, got {d!r}")
            if d == "cuda" and not torch.cuda.is_available():
                p.error("--device cuda but torch.cuda.is_available() is False")
    return args


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
        os.environ["OMP_NUM_THREADS"] = str(args.threads)  # inherited by the memory subprocesses
    if args.mem_worker:
        _mem_worker(args.mem_worker)
        return 0
    from bench.readme_table import render_result
    args.out.mkdir(parents=True, exist_ok=True)
    failed = False
    for device in args.devices:
        result = run_device(device, args)
        path = output_path(result, args.out)
        path.write_text(json.dumps(result, indent=1) + "\n")
        log(f"wrote {path}")
        print(render_result(result))
        print()
        failed |= bool(result["errors"])
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
