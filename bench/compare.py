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

The implementation is the installed package's ``rgprune.benchmark`` (methods, measurement, targets,
report); this script only chooses the weight sets and options of the suite.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import torch  # noqa: E402

from rgprune.benchmark import memory_worker  # noqa: E402
from rgprune.benchmark.methods import ALL_METHODS, METHODS  # noqa: E402
from rgprune.benchmark.progress import log  # noqa: E402
from rgprune.benchmark.report import output_path, write_result  # noqa: E402
from rgprune.benchmark.runner import run_device  # noqa: E402
from rgprune.benchmark.settings import SECTIONS, Settings  # noqa: E402
from rgprune.benchmark.tables import render_result  # noqa: E402
from rgprune.benchmark.workloads import DEFAULT_MODELS, WORKLOADS  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def parse_args(argv):
    p = argparse.ArgumentParser(
        prog="python -m bench.compare",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  python -m bench.compare\n  python -m bench.compare --quick "
        "--out /tmp/bench\n  python -m bench.compare --device cuda --models "
        "bert-base,synthetic-1b --reps 10",
    )
    p.add_argument("--quick", action="store_true", help="tiny weight sets and 2 repetitions (seconds; for tests)")
    p.add_argument(
        "--models",
        type=lambda s: [x for x in s.split(",") if x],
        help=f"comma-separated weight sets, from: {', '.join(WORKLOADS)} (default: resnet50,bert-base, "
        f"plus synthetic-1b on a GPU; --quick: resnet20,bert-tiny,synthetic-tiny)",
    )
    p.add_argument(
        "--device",
        default="auto",
        help="cpu, cuda, cpu,cuda or auto (= cpu, plus cuda when a GPU is present); one JSON per device",
    )
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results", help="folder for the JSON results")
    p.add_argument("--reps", type=int, default=None, help="repetitions per method (default 7; --quick 1)")
    p.add_argument(
        "--slow-reps",
        type=int,
        default=None,
        help="repetitions for slow methods (default 2; --quick 1): torch.prune and the reference on "
        "the CPU, and any method whose first run exceeds --slow-after",
    )
    p.add_argument("--slow-after", type=float, default=10.0, help="seconds (default 10)")
    p.add_argument(
        "--methods",
        type=lambda s: [x for x in s.split(",") if x],
        help=f"comma-separated subset of {','.join(ALL_METHODS)} (default {','.join(METHODS)}; rgprune "
        f"is always timed)",
    )
    p.add_argument(
        "--skip",
        type=lambda s: [x for x in s.split(",") if x],
        default=[],
        help="sections to skip: rounds,memory,trace,training_step",
    )
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch.set_num_threads for the run and its subprocesses (default: torch's default)",
    )
    p.add_argument("--mem-worker", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.argv = list(argv)
    if args.mem_worker:
        return args
    for m in args.models or []:
        if m not in WORKLOADS:
            p.error(f"unknown weight set {m!r}; choose from {', '.join(WORKLOADS)}")
    if args.methods:
        bad = set(args.methods) - set(ALL_METHODS)
        if bad:
            p.error(f"unknown methods {sorted(bad)}; choose from {', '.join(ALL_METHODS)}")
        if "rgprune" not in args.methods:
            args.methods.append("rgprune")
        args.methods = [m for m in ALL_METHODS if m in args.methods]
    bad = set(args.skip) - set(SECTIONS)
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


def settings_from(args) -> Settings:
    return Settings(
        reps=args.reps,
        slow_reps=args.slow_reps,
        slow_after=args.slow_after,
        methods=args.methods,
        skip=args.skip,
        quick=args.quick,
        threads=args.threads,
        command=" ".join([Path(sys.executable).name, "-m", "bench.compare"] + args.argv),
    )


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
        os.environ["OMP_NUM_THREADS"] = str(args.threads)  # inherited by the memory subprocesses
    if args.mem_worker:
        memory_worker.main(args.mem_worker)
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    settings = settings_from(args)
    failed = False
    for device in args.devices:
        models = args.models or DEFAULT_MODELS[(args.quick, torch.device(device).type)]
        result = run_device(device, [WORKLOADS[m] for m in models], settings)
        path = output_path(result, args.out)
        write_result(result, path)
        log(f"wrote {path}")
        print(render_result(result))
        print()
        failed |= bool(result["errors"])
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
