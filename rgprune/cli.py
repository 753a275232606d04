"""The ``rgprune`` console script.

Examples::

    rgprune demo                      # short IMP run: ResNet-20 on digits, 5 rounds with baselines
    rgprune imp --model resnet20 --task digits --rounds 8 --out runs/r20-digits
    rgprune prune-demo --model resnet50 --rounds 3   # prune ResNet-50 / BERT-base weights, no training
    rgprune flow runs/r20-digits                     # RG flow report of a run (or of checkpoints)
    rgprune compare runs/r20-digits runs/r20-digits-rotated --out runs/cmp
    rgprune transfer runs/r20-digits runs/r20-digits-rotated   # A's ticket trained on B's task
    rgprune imp --help
"""
from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def _demo_model(name: str):
    import torch

    if name == "resnet50":
        import torchvision
        return torchvision.models.resnet50(weights=None)
    if name == "bert-base":
        from transformers import BertConfig, BertModel
        return BertModel(BertConfig())
    raise ValueError(f"unknown demo model {name!r}; choose resnet50 or bert-base")


def prune_demo(models=("resnet50", "bert-base"), rounds: int = 3, fraction: float = 0.2, seed: int = 0,
               out=sys.stdout) -> list[dict]:
    """Prune each model's conv/linear weights ``rounds`` times by ``fraction`` of the survivors and print
    per-round time, sparsity and a per-layer density table. Returns one record per (model, round)."""
    import torch

    import rgprune

    print(f"rgprune backend: {rgprune.backend()}", file=out)
    records = []
    for name in models:
        torch.manual_seed(seed)
        model = _demo_model(name)
        named = [(n, m.weight) for n, m in model.named_modules()
                 if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
        tensors = [p.data for _, p in named]
        masks = rgprune.MaskSet.ones(tensors, names=[n for n, _ in named])
        n_total = sum(t.numel() for t in tensors)
        print(f"\n{name}: {len(tensors)} conv/linear weight tensors, {n_total / 1e6:.1f}M weights", file=out)
        print(f"{'round':>5} {'pruned':>10} {'sparsity':>9} {'threshold':>11} {'time ms':>9}", file=out)
        for r in range(1, rounds + 1):
            survivors = sum(masks.survivor_counts())
            k = round(fraction * survivors)
            start = time.perf_counter()
            result = rgprune.prune_global_(tensors, masks.words, k)
            elapsed = (time.perf_counter() - start) * 1e3
            sparsity = 1 - masks.density()
            print(f"{r:>5} {k:>10} {sparsity:>9.2%} {result.threshold.magnitude:>11.3e} {elapsed:>9.1f}", file=out)
            records.append({"model": name, "round": r, "k": k, "sparsity": sparsity, "ms": elapsed})
        print("per-layer density after the last round:", file=out)
        for layer, density in masks.layer_densities().items():
            print(f"  {layer:<55} {density:6.3f}", file=out)
    return records


IMP_EXAMPLES = """examples:
  rgprune imp --model resnet20 --task digits --rounds 8 --out runs/r20-digits
  rgprune imp --model resnet20 --task digits --rounds 8 --epochs 15 --image-size 16 --rewind-step 23 \\
      --baselines random-reinit random-mask --out runs/r20-digits-16px
  rgprune imp --model minilm --task vader --rounds 5 --epochs 3 --device auto --amp --out runs/minilm-vader

Run the same command again to resume an interrupted run: it continues after the last complete round
and gives the same result as an uninterrupted run. A directory holding a run with other settings is
refused. Without --out the run goes to runs/<model>-<task>-<config hash>.
"""


def run_imp_command(args, out=None):
    """``rgprune imp``: build the IMPConfig from the options, run or resume, print the table."""
    from rgprune.imp import IMPConfig, run_imp

    out = out or sys.stdout
    _set_threads(args)
    fields = ("model", "task", "rounds", "fraction", "rewind_step", "epochs", "optimizer", "lr", "momentum",
              "weight_decay", "schedule", "batch_size", "seed", "device", "amp", "image_size", "prune_head",
              "prune_embeddings", "baselines")
    given = {f: getattr(args, f) for f in fields if getattr(args, f, None) is not None}
    if "baselines" in given:
        given["baselines"] = _baseline_names(given["baselines"])
    config = IMPConfig(**given)
    out_dir = args.out or os.path.join("runs", config.name)
    with _torchrun_process_group(config.device) as rank:  # rank 0 (or the only process) prints
        if rank == 0:
            print(f"IMP {config.name}: {config.model} on {config.task}, {config.rounds} rounds of pruning "
                  f"{config.fraction:g} of the survivors, rewinding to step {config.rewind_step}; run directory "
                  f"{out_dir}", file=out, flush=True)
        result = run_imp(config, out_dir, progress=not args.quiet and rank == 0)
        if rank == 0:
            print(f"\n{result.table()}\n\nrun directory: {out_dir}", file=out, flush=True)
    return result


@contextlib.contextmanager
def _torchrun_process_group(device: str):
    """Under torchrun (RANK, WORLD_SIZE and LOCAL_RANK in the environment) with no process group yet: the
    default process group for run_imp's distributed mode (gloo for the CPU, NCCL for CUDA, each rank on GPU
    LOCAL_RANK; timeout RGPRUNE_DIST_TIMEOUT seconds, default 1800, so a dead rank fails the others instead
    of hanging them), destroyed at the end. Yields this process's rank (0 when not distributed)."""
    import torch.distributed as dist

    env = ("RANK", "WORLD_SIZE", "LOCAL_RANK")
    if not all(v in os.environ for v in env) or not dist.is_available() or dist.is_initialized():
        yield dist.get_rank() if dist.is_available() and dist.is_initialized() else 0
        return
    import datetime

    import torch

    cuda = device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())
    if cuda:
        torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))
    timeout = datetime.timedelta(seconds=float(os.environ.get("RGPRUNE_DIST_TIMEOUT", 1800)))
    dist.init_process_group("nccl" if cuda else "gloo", timeout=timeout)
    try:
        yield dist.get_rank()
    finally:
        dist.destroy_process_group()


def _baseline_names(names):
    from rgprune.imp import BASELINES

    chosen = []
    for name in names:
        if name == "all":
            chosen += BASELINES
        elif name != "none":
            chosen.append(name)
    return tuple(chosen)


def flow_command(args, out=None):
    """``rgprune flow``: the RG flow report of a run directory or of a list of checkpoints."""

    from rgprune.rg.report import MIN_ROUNDS, checkpoints_in, write_flow_report
    from rgprune.rg.trace import FlowTrace, parameter_gram, trace_from_checkpoints

    out = out or sys.stdout
    paths = [Path(p) for p in args.paths]
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        raise FileNotFoundError(f"no such run directory or checkpoint: {', '.join(missing)}")
    run_trace = paths[0] / "trace.json"
    if len(paths) == 1 and paths[0].is_dir() and run_trace.is_file() and not args.from_checkpoints:
        trace = FlowTrace.load(run_trace)  # recorded during the run, from the kernels' own passes
        out_dir = Path(args.out) if args.out else paths[0]
    else:
        if not args.out:
            raise ValueError("--out DIR is required when analysing checkpoints (where to write the report)")
        out_dir = Path(args.out)
        trace = None
    checkpoints = checkpoints_in(paths) if trace is None or any(paths[0].glob("round-*")) else []
    if trace is None:
        if len(checkpoints) < MIN_ROUNDS:
            raise ValueError(f"{len(checkpoints)} checkpoints: a flow needs at least {MIN_ROUNDS} (rounds 0, 1, 2, ...)")
        trace = trace_from_checkpoints(checkpoints, include=args.include, exclude=args.exclude or (),
                                       fraction=args.fraction)
    elif len(trace) < MIN_ROUNDS:
        raise ValueError(f"the run has {len(trace)} rounds: a flow needs at least {MIN_ROUNDS}; run more IMP rounds")
    gram = parameter_gram(checkpoints, include=args.include, exclude=args.exclude or ()) \
        if len(checkpoints) >= MIN_ROUNDS else None
    paths_written = write_flow_report(trace, out_dir, title=out_dir.name, gram=gram)
    print(flow_summary(paths_written["flow"], paths_written["report"]), file=out, flush=True)
    return paths_written


def flow_summary(flow_json, report) -> str:
    """A few lines on a flow (from its flow.json): rounds, step sizes, DMD eigenvalues and their classes,
    distance from the affine fixed point, and where the full report is."""
    import json
    from collections import Counter

    flow = json.loads(Path(flow_json).read_text())
    a = flow["analysis"]
    steps = ", ".join(f"{x:.3f}" for x in flow.get("step_sizes", []))
    kinds = ", ".join(f"{n} {c}" for c, n in sorted(Counter(a["classes"]).items()))
    moduli = ", ".join(f"{m:.3f}" for m in a["eigenvalue_moduli"][:4])
    return (f"RG flow over {len(flow['rounds'])} rounds ({flow['observable']} observable): step sizes {steps}\n"
            f"  DMD rank {a['dmd_rank']}, leading |λ| {moduli} ({kinds}; marginal within "
            f"±{flow['marginal_tolerance']} of 1); distance of the last round from the affine fixed point "
            f"{a['fixed_point_distance']:.4g}\n"
            f"flow report: {report}")


def compare_command(args, out=None):
    """``rgprune compare``: distances between the flows of several runs, and figures."""

    from rgprune.rg.report import compare_flows, load_trace

    out = out or sys.stdout
    traces = {}
    for path in args.runs:
        name = Path(path).name if Path(path).is_dir() else Path(path).parent.name
        if name in traces:
            name = str(path)
        traces[name] = load_trace(path)
    written = compare_flows(traces, args.out)
    import json
    matrix = json.loads(written["compare"].read_text())["total"]
    width = max(len(n) for n in traces)
    print(" " * width + "".join(f" {n[:12]:>12}" for n in traces), file=out)
    for name, row in zip(traces, matrix):
        print(f"{name:<{width}}" + "".join(f" {d:12.4f}" for d in row), file=out)
    print(f"compare: {len(traces)} flows; report: {written['report']}", file=out, flush=True)
    return written


def transfer_command(args, out=None):
    """``rgprune transfer``: each run's ticket trained on the other runs' tasks, against flow distance."""
    from rgprune.transfer import transfer_matrix, transfer_ticket

    out = out or sys.stdout
    _set_threads(args)
    if len(args.runs) == 2:
        result = transfer_ticket(args.runs[0], args.runs[1], args.round, progress=not args.quiet)
        print(f"{result.source} round {result.round} (density {result.density:.4f}) -> {result.target}: accuracy "
              f"{result.accuracy:.4f}, the target's own ticket {result.target_accuracy:.4f}, relative "
              f"{result.relative:.4f}", file=out, flush=True)
        if args.out:
            from rgprune._io import atomic_write_json
            Path(args.out).mkdir(parents=True, exist_ok=True)
            atomic_write_json(Path(args.out) / "transfer.json", result.to_dict())
        return result
    if not args.out:
        raise ValueError("--out DIR is required with three or more runs (where transfer.json and the pairs go)")
    data = transfer_matrix(args.runs, args.out, args.round, progress=not args.quiet, log=out, rank=args.rank)
    c = data["correlation"]
    rho = "undefined" if c["rho"] is None else f"{c['rho']:.3f} (p = {c['p_value']:.3g}, {c['n']} pairs)"
    print(f"transfer at round {data['round']}: Spearman rho(relative accuracy, flow distance) = {rho}; report: "
          f"{args.out}/transfer.md", file=out, flush=True)
    return data


def demo_command(args, out=None):
    """``rgprune demo``: a short IMP run (ResNet-20 on 16x16 digits, baselines on) in a few CPU minutes."""
    from rgprune.imp import BASELINES, IMPConfig, run_imp

    out = out or sys.stdout
    _set_threads(args)
    config = IMPConfig(model="resnet20", task="digits", rounds=args.rounds, epochs=args.epochs, image_size=16,
                       batch_size=64, lr=0.1, rewind_step=10, seed=args.seed, device=args.device,
                       baselines=BASELINES)
    print(f"rgprune demo: iterative magnitude pruning of ResNet-20 on sklearn digits (16x16), {config.rounds} "
          f"rounds of {config.epochs} epochs, rewinding to step {config.rewind_step}, with the random-reinit "
          f"and random-mask baselines; run directory {args.out}", file=out, flush=True)
    result = run_imp(config, args.out, progress=not args.quiet)
    print(f"\n{result.table()}\n\nrun directory: {args.out}", file=out, flush=True)
    flow = Path(args.out) / "flow.json"
    if flow.is_file():  # written at the end of every complete run of 3 or more rounds
        print(flow_summary(flow, Path(args.out) / "report.md"), file=out, flush=True)
    else:
        print("no flow report: a flow needs at least 3 rounds (0, 1, 2); use --rounds 2 or more", file=out,
              flush=True)
    return result


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _fraction(text: str) -> float:
    value = float(text)
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1 (exclusive), got {value}")
    return value


def _nonnegative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {value}")
    return value


def _add_imp_arguments(p: argparse.ArgumentParser) -> None:
    from rgprune.data import TASK_NAMES
    from rgprune.imp import BASELINES, OPTIMIZERS, SCHEDULES
    from rgprune.models import MODEL_NAMES

    p.add_argument("--model", required=True, choices=MODEL_NAMES, metavar="MODEL",
                   help=f"model to prune: {', '.join(MODEL_NAMES)}")
    p.add_argument("--task", required=True, choices=TASK_NAMES, metavar="TASK",
                   help=f"task to train on: {', '.join(TASK_NAMES)}")
    p.add_argument("--rounds", type=_positive_int, help="pruning rounds after the dense round 0 (default: 8)")
    p.add_argument("--out", help="run directory (default: runs/<model>-<task>-<config hash>)")
    p.add_argument("--fraction", type=_fraction, help="fraction of the surviving weights pruned per round (default: 0.2)")
    p.add_argument("--rewind-step", dest="rewind_step", type=_nonnegative_int,
                   help="optimizer step whose weights the survivors are rewound to; 0 = the initialization (default: 0)")
    p.add_argument("--epochs", type=_positive_int, help="training epochs per round (default: 10)")
    p.add_argument("--optimizer", choices=OPTIMIZERS, help="default: sgd for vision, adamw for text")
    p.add_argument("--lr", type=_positive_float, help="peak learning rate (default: 0.1 for sgd, 1e-4 for adamw)")
    p.add_argument("--momentum", type=float, help="SGD momentum (default: 0.9)")
    p.add_argument("--weight-decay", dest="weight_decay", type=float,
                   help="default: 1e-4 for sgd, 0.01 for adamw")
    p.add_argument("--schedule", choices=SCHEDULES, help="learning-rate schedule over the steps (default: cosine)")
    p.add_argument("--batch-size", dest="batch_size", type=_positive_int, help="default: 64")
    p.add_argument("--image-size", dest="image_size", type=_positive_int,
                   help="vision tasks: resize the 8x8 digits to this size (default: 32)")
    p.add_argument("--seed", type=_nonnegative_int, help="default: 0")
    p.add_argument("--device", help="cpu, cuda, cuda:N or auto (default: cpu)")
    p.add_argument("--amp", action="store_true", default=None,
                   help="mixed precision: bfloat16 autocast on CPU, float16 + GradScaler on CUDA")
    p.add_argument("--prune-head", dest="prune_head", action="store_true", default=None,
                   help="also prune the classifier head")
    p.add_argument("--prune-embeddings", dest="prune_embeddings", action="store_true", default=None,
                   help="also prune BERT's embeddings")
    p.add_argument("--baselines", nargs="+", choices=BASELINES + ("all", "none"), metavar="NAME",
                   help=f"baselines trained for every round's mask: {', '.join(BASELINES)}, all or none "
                        f"(default: none)")
    p.add_argument("--threads", type=_positive_int,
                   help="CPU threads for torch (default: torch's choice; 1 is often fastest for small models on a "
                        "busy machine). Resume with the same count for bit-identical results")
    p.add_argument("--quiet", action="store_true", help="no progress bars or per-round lines")


def _set_threads(args) -> None:
    if getattr(args, "threads", None):
        import torch
        torch.set_num_threads(args.threads)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rgprune", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="the quick-start demo (make demo): a short IMP run on digits",
                          description="Iterative magnitude pruning of ResNet-20 on the sklearn digits (16x16), "
                                      "with the random-reinit and random-mask baselines: a few minutes on a CPU.",
                          epilog="example: rgprune demo --out runs/demo")
    demo.add_argument("--out", default=os.path.join("runs", "demo"), help="run directory (default: runs/demo)")
    demo.add_argument("--rounds", type=_positive_int, default=5, help="pruning rounds (default: 5)")
    demo.add_argument("--epochs", type=_positive_int, default=4, help="epochs per round (default: 4)")
    demo.add_argument("--seed", type=_nonnegative_int, default=0)
    demo.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto (default: cpu)")
    demo.add_argument("--threads", type=_positive_int,
                      help="CPU threads for torch (default: torch's choice; try 1 on a busy machine)")
    demo.add_argument("--quiet", action="store_true", help="no progress bars or per-round lines")
    demo.set_defaults(func=demo_command)

    imp = sub.add_parser("imp", help="iterative magnitude pruning with rewinding (lottery tickets), resumable",
                         description="Train, prune the smallest-magnitude fraction of the surviving weights "
                                     "(ranked globally), rewind the survivors and train again, for --rounds "
                                     "rounds; every round is checkpointed in --out.",
                         epilog=IMP_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_imp_arguments(imp)
    imp.set_defaults(func=run_imp_command)

    fl = sub.add_parser("flow", help="RG flow statistics of a run directory or a list of checkpoints",
                        formatter_class=argparse.RawDescriptionHelpFormatter,
                        epilog="examples:\n  rgprune flow runs/r20-digits\n"
                               "  rgprune flow ckpt-0.safetensors ckpt-1.safetensors ckpt-2.safetensors --out flow/\n"
                               "  rgprune flow round0.pt round1.pt round2.pt --fraction 0.2 --out flow/")
    fl.add_argument("paths", nargs="+", help="a run directory, or checkpoints in round order (safetensors or "
                                             "torch.save state_dicts)")
    fl.add_argument("--out", help="where to write trace.json, flow.json, report.md and the PNGs "
                                  "(default: the run directory)")
    fl.add_argument("--from-checkpoints", action="store_true",
                    help="recompute the trace of a run directory from its checkpoints")
    fl.add_argument("--include", action="append", help="fnmatch pattern of tensor names to analyse (repeatable)")
    fl.add_argument("--exclude", action="append", help="fnmatch pattern of tensor names to skip (repeatable)")
    fl.add_argument("--fraction", type=_fraction, help="pruning fraction per round, for the scaling exponents")
    fl.set_defaults(func=flow_command)

    cp = sub.add_parser("compare", help="distance matrix and figures comparing the flows of several runs",
                        epilog="example: rgprune compare runs/r20-digits runs/r20-digits-inverted --out runs/cmp")
    cp.add_argument("runs", nargs="+", help="run directories (or their trace.json files)")
    cp.add_argument("--out", default="runs/compare", help="output directory (default: runs/compare)")
    cp.set_defaults(func=compare_command)

    tr = sub.add_parser("transfer", help="train one run's ticket on another run's task (2 runs), or all pairs "
                                         "against flow distance (3+ runs)",
                        formatter_class=argparse.RawDescriptionHelpFormatter,
                        description="A ticket is a run's round-N mask and rewind weights. It is trained on the "
                                    "target run's task exactly as the target's own round N was (optimizer, "
                                    "schedule, data order), and its accuracy is reported relative to the target's "
                                    "own ticket. With 3+ runs: every ordered pair, the flow distances, and their "
                                    "Spearman rank correlation (transfer.json, transfer.md; resumable).",
                        epilog="examples:\n  rgprune transfer runs/r20-digits runs/r20-digits-rotated\n"
                               "  rgprune transfer runs/r20-digits runs/r20-digits-inverted runs/r20-digits-rotated "
                               "runs/r20-digits-permuted --out runs/transfer")
    tr.add_argument("runs", nargs="+", help="IMP run directories of one model (first = source when two)")
    tr.add_argument("--round", type=_nonnegative_int, help="the tickets' round (default: the last complete in all)")
    tr.add_argument("--out", help="output directory (required with 3+ runs)")
    tr.add_argument("--rank", type=_positive_int,
                    help="DMD rank of the flows compared (default: flow_distance's truncation, which keeps every "
                         "direction the data supports: for a long flow that is one per snapshot pair)")
    tr.add_argument("--threads", type=_positive_int, help="CPU threads for torch")
    tr.add_argument("--quiet", action="store_true", help="no progress bars")
    tr.set_defaults(func=transfer_command)

    pd = sub.add_parser("prune-demo", help="prune ResNet-50 / BERT-base weights and print the tables",
                        epilog="example: rgprune prune-demo --model resnet50 --rounds 5")
    pd.add_argument("--model", action="append", choices=["resnet50", "bert-base"],
                    help="model to prune (repeatable; default: both)")
    pd.add_argument("--rounds", type=_positive_int, default=3)
    pd.add_argument("--fraction", type=_fraction, default=0.2, help="fraction of survivors pruned per round")
    pd.add_argument("--seed", type=int, default=0)
    pd.set_defaults(func=lambda a: prune_demo(tuple(a.model or ("resnet50", "bert-base")), a.rounds,
                                              a.fraction, a.seed))
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except (ValueError, TypeError, FileNotFoundError) as exc:
        print(f"rgprune {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"rgprune {args.command}: interrupted; completed rounds are kept, run the same command to resume",
              file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
