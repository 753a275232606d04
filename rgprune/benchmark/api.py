"""``rgprune.benchmark.run``: rgprune against torch.prune and the naive PyTorch ways on the user's own model.

>>> import torch, rgprune.benchmark
>>> model = torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.ReLU(), torch.nn.Linear(64, 10))
>>> result = rgprune.benchmark.run(model, reps=1, memory=False, progress=False, bandwidth_bytes=1 << 20)
>>> sorted(result["models"]["Sequential"]["rounds"])
['round1', 'round5']
>>> result["models"]["Sequential"]["rounds"]["round1"]["methods"]["rgprune"]["masks_equal_torch_prune_up_to_ties"]
True
"""

from __future__ import annotations

import contextlib
import copy
import os
from pathlib import Path

import torch

from rgprune.benchmark.methods import ALL_METHODS, FRACTION, ROUNDS
from rgprune.benchmark.progress import log
from rgprune.benchmark.report import output_path, write_result
from rgprune.benchmark.runner import run_device
from rgprune.benchmark.settings import SECTIONS, Settings
from rgprune.benchmark.workloads import BenchmarkError, Workload, resolve_model
from rgprune.pruner import select_prunable
from rgprune.schedule import prune_count

DTYPES = ("float32", "float16", "bfloat16", "float64")


def check_device(device) -> torch.device:
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise BenchmarkError(f"device must be 'cpu' or 'cuda' (or 'cuda:N'), got {device!r}") from exc
    if dev.type not in ("cpu", "cuda"):
        raise BenchmarkError(f"device must be 'cpu' or 'cuda' (or 'cuda:N'), got {device!r}")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise BenchmarkError(
            "CUDA was asked for but torch.cuda.is_available() is False: run on the CPU "
            "(device='cpu', --device cpu), or on a machine with a GPU and a CUDA build of torch"
        )
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise BenchmarkError(f"{device!r} does not exist: this machine has {torch.cuda.device_count()} GPU(s)")
    return dev


def check_dtype(dtype) -> str | None:
    if dtype is None:
        return None
    name = str(dtype).replace("torch.", "")
    if name not in DTYPES:
        raise BenchmarkError(f"dtype must be one of {', '.join(DTYPES)} (or None: the model's own), got {dtype!r}")
    return name


def check_methods(methods) -> list:
    """The methods asked for, in the canonical order, rgprune always among them (every speedup is a ratio to
    rgprune's time)."""
    if methods is None:
        return list(ALL_METHODS)
    methods = [methods] if isinstance(methods, str) else list(methods)
    bad = sorted(set(methods) - set(ALL_METHODS))
    if bad:
        raise BenchmarkError(f"unknown methods {bad}; choose from {', '.join(ALL_METHODS)}")
    return [m for m in ALL_METHODS if m in methods or m == "rgprune"]


def check_rounds(rounds, fraction) -> tuple:
    rounds = (rounds,) if isinstance(rounds, int) else tuple(rounds)
    if not rounds or any(isinstance(r, bool) or not isinstance(r, int) or r < 1 for r in rounds):
        raise BenchmarkError(f"rounds must be IMP round numbers >= 1 (round 1: dense), got {rounds!r}")
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 < fraction < 1:
        raise BenchmarkError(f"fraction (of the survivors pruned per round) must be in (0, 1), got {fraction!r}")
    return tuple(sorted(set(rounds)))


def check_counts(**counts) -> None:
    for what, n in counts.items():
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise BenchmarkError(f"{what} must be an int >= 1, got {n!r}")


def json_folder(json_path) -> Path | None:
    """The folder ``json_path`` names, created now (before anything is timed), or None when it names a file.
    A folder is a path ending in a separator (``"bench-out/"``) or an existing folder; the result goes in it
    under a dated name (``report.output_path``). Any other path is the file written, as given."""
    if json_path is None:
        return None
    text = os.fspath(json_path)
    if not (text.endswith(tuple(sep for sep in (os.sep, os.altsep) if sep)) or Path(text).is_dir()):
        return None
    try:
        Path(text).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BenchmarkError(f"cannot create the folder {text!r} for the JSON result: {exc}") from exc
    return Path(text)


#: rough seconds per million weights of one run of each method on the CPU (float32, 2 busy cores; round 1 and a
#: masked round alike), with the untimed preparation of each repetition, and of starting one memory subprocess
CPU_SECONDS_PER_MILLION = {
    "torch_prune": 0.35,
    "rgprune_switch": 0.08,
    "naive": 0.17,
    "naive_topk": 0.18,
    "reference": 1.0,
    "rgprune": 0.01,
}
MEMORY_SUBPROCESS_S = 5.5
#: warmup, copy bandwidth and building the model
FIXED_S = 8.0


def estimate_seconds(n_weights: int, device, methods, rounds, reps, slow_reps, slow_after, memory) -> float | None:
    """A rough wall time of a run over ``n_weights`` weights (the timed rounds and the memory subprocesses),
    from ``CPU_SECONDS_PER_MILLION``; None on a GPU (no figures to go by)."""
    if torch.device(device).type != "cpu":
        return None
    millions = n_weights / 1e6
    total = FIXED_S
    for m in methods:
        one = CPU_SECONDS_PER_MILLION.get(m, 1.0) * millions
        runs = min(reps, slow_reps) if m in ("torch_prune", "reference") or one > slow_after else reps
        total += len(rounds) * runs * one
        if memory:
            total += len(rounds) * (MEMORY_SUBPROCESS_S + one)
    return total


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.0f} min"


def _k_per_round(n: int, rounds: tuple, fraction: float) -> dict:
    """What each timed round prunes, from ``n`` prunable weights (the rounds in between prune too)."""
    survivors, out = n, {}
    for r in range(1, max(rounds) + 1):
        k = prune_count(fraction, survivors)
        if r in rounds:
            out[r] = k
        survivors -= k
    return out


def prepare_model(workload: Workload, dev: torch.device, dtype: str | None, users: bool) -> tuple[Workload, int]:
    """Builds the workload's model on ``dev`` in ``dtype`` (the user's own module, ``users``, is copied when
    it must move or change dtype, never modified) and checks that it has something to prune, in one dtype.
    Returns a workload holding the model, and the number of prunable weights."""
    torch.manual_seed(0)
    model = workload.build(torch.device("cpu") if workload.role == "custom" else dev)
    target = {"device": dev} if dtype is None else {"device": dev, "dtype": getattr(torch, dtype)}
    moves = any(p.device != dev or p.dtype != target.get("dtype", p.dtype) for p in model.parameters())
    if users and moves:
        model = copy.deepcopy(model)
    model = model.to(**target)
    try:
        named = select_prunable(model, **workload.select)
    except (ValueError, TypeError) as exc:
        raise BenchmarkError(f"{workload.name}: nothing to prune: {exc}") from exc
    dtypes = sorted({str(p.dtype).replace("torch.", "") for _, p in named})
    if len(dtypes) > 1:
        raise BenchmarkError(
            f"{workload.name}: the prunable weights have several dtypes {dtypes}; global "
            f"pruning ranks one dtype: pass dtype= (--dtype) to cast the model"
        )
    return Workload(
        workload.name, workload.role, workload.description, lambda device: model, workload.select, workload.train
    ), sum(p.numel() for _, p in named)


@contextlib.contextmanager
def torch_threads(threads: int | None):
    """torch's thread count (and OMP_NUM_THREADS, which the memory subprocesses inherit) for a block."""
    if threads is None:
        yield
        return
    before, env = torch.get_num_threads(), os.environ.get("OMP_NUM_THREADS")
    torch.set_num_threads(threads)
    os.environ["OMP_NUM_THREADS"] = str(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)
        if env is None:
            os.environ.pop("OMP_NUM_THREADS", None)
        else:
            os.environ["OMP_NUM_THREADS"] = env


def _command(model, kwargs) -> str:
    shown = ", ".join(f"{k}={v!r}" for k, v in kwargs.items())
    what = repr(model) if isinstance(model, str) else type(model).__name__
    return f"rgprune.benchmark.run({what}{', ' if shown else ''}{shown})"


def run(
    model,
    *,
    device="cpu",
    dtype=None,
    rounds=ROUNDS,
    fraction: float = FRACTION,
    methods=None,
    reps: int = 7,
    slow_reps: int = 2,
    slow_after: float = 10.0,
    memory: bool = True,
    sections=("rounds", "memory"),
    select: dict | None = None,
    name: str | None = None,
    threads: int | None = None,
    progress: bool = True,
    bandwidth_bytes: int | None = None,
    json_path=None,
    command: str | None = None,
    quick: bool = False,
) -> dict:
    """Benchmarks one IMP pruning round of ``model`` by rgprune, torch.nn.utils.prune, the naive PyTorch
    ways (cat + kthvalue, cat + topk) and rgprune's reference, at each round in ``rounds`` (round r starts at
    density ``(1 - fraction) ** (r - 1)``), and returns the result document (``report.SCHEMA``, the same as
    ``bench/results/``).

    ``model``: an ``nn.Module`` (never modified: it is copied when it must move to ``device`` or change
    ``dtype``), a built-in name or a spec ``module:callable`` (``workloads.resolve_model``). Per round and
    method: the median time of ``reps`` interleaved repetitions (``slow_reps`` for torch.prune and the
    reference on the CPU and for anything slower than ``slow_after`` seconds) with every time recorded,
    rgprune's speedup, the peak extra memory (``memory``; CPU: peak RSS in a fresh subprocess per method and
    round; CUDA: the allocator's peak), the memory-bandwidth floor and rgprune's ratio to it, and whether the
    masks equal torch.prune's up to the tie order. ``sections`` may add ``"trace"`` (and ``"training_step"``
    for the suite's built-in sets). ``threads``: torch threads for the run. ``json_path``: a file, or a
    folder (a path ending in a separator, or an existing folder; created when missing) for the suite's dated
    file name (``json_folder``). ``quick``: marks the result as a quick look (``rgprune bench --quick``: few
    repetitions, its file name ends in ``-quick``; the README's tables leave it out). Before timing, a run on
    the CPU logs roughly how long it will take (``estimate_seconds``). Bad input raises ``BenchmarkError``
    before anything is timed.
    """
    dev = check_device(device)
    dtype = check_dtype(dtype)
    rounds = check_rounds(rounds, fraction)
    methods = check_methods(methods)
    check_counts(reps=reps, slow_reps=slow_reps)
    folder = json_folder(json_path)
    sections = set(sections) - (set() if memory else {"memory"})
    if sections - set(SECTIONS):
        raise BenchmarkError(f"unknown sections {sorted(sections - set(SECTIONS))}; choose from {SECTIONS}")
    workload, n = prepare_model(
        resolve_model(model, select, name), dev, dtype, users=isinstance(model, torch.nn.Module)
    )
    ks = _k_per_round(n, rounds, fraction)
    if min(ks.values()) < 1:
        raise BenchmarkError(
            f"{workload.name} has {n} prunable weights: round {min(ks, key=ks.get)} would prune "
            f"none of them at fraction {fraction}; raise fraction or time earlier rounds"
        )
    settings = Settings(
        reps=reps,
        slow_reps=slow_reps,
        slow_after=slow_after,
        methods=methods,
        skip=[s for s in SECTIONS if s not in sections],
        rounds=rounds,
        fraction=fraction,
        dtype=dtype,
        threads=threads,
        progress=progress,
        command=command or _command(model, {"device": str(dev), "rounds": rounds}),
        bandwidth_bytes=bandwidth_bytes,
        quick=quick,
    )
    estimate = estimate_seconds(n, dev, methods, rounds, reps, slow_reps, slow_after, "memory" in sections)
    if estimate is not None:
        extra = " (plus the trace and training sections)" if sections - {"rounds", "memory"} else ""
        hint = "; --quick (quick=True) gives a first look in seconds" if estimate > 60 and not quick else ""
        log(
            f"{workload.name}: {n / 1e6:.2f}M prunable weights, {len(methods)} methods, "
            f"round{'s' if len(rounds) > 1 else ''} {','.join(map(str, rounds))}"
            f"{', memory in subprocesses' if 'memory' in sections else ''}: roughly {_duration(estimate)} on this "
            f"CPU{extra}{hint}"
        )
    with torch_threads(threads):
        result = run_device(dev, [workload], settings)
    if json_path is not None:
        write_result(result, output_path(result, folder) if folder is not None else json_path)
    return result
