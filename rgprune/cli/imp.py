"""``rgprune imp`` (options generated from ``IMPConfig``'s fields) and ``rgprune demo``."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import sys
from collections.abc import Callable, Iterator

from rgprune.cli.arguments import add_threads_and_quiet, nonnegative_int, positive_int, set_threads
from rgprune.cli.flow import flow_summary
from rgprune.imp.config import (
    ConfigError,
    IMPConfig,
    check_number,
    cli_option_names,
    describe_bounds,
    field_item_types,
    field_types,
    option_choices,
    option_flag,
)

__all__ = [
    "add_config_arguments",
    "add_demo_parser",
    "add_imp_parser",
    "config_from_args",
    "demo_command",
    "run_imp_command",
]

IMP_EXAMPLES = """examples:
  rgprune imp --model resnet20 --task digits --rounds 8 --out runs/r20-digits
  rgprune imp --model resnet20 --task digits --rounds 8 --epochs 15 --image-size 16 --rewind-step 23 \\
      --baselines random-reinit random-mask --out runs/r20-digits-16px
  rgprune imp --model minilm --task vader --rounds 5 --epochs 3 --device auto --amp --out runs/minilm-vader
  rgprune imp --model resnet20 --task cifar10:~/data --augment --epochs 30 --device cuda --out runs/r20-c10
  rgprune imp --model torchvision:resnet50 --task imagefolder:/data/imagenet --device cuda --amp \\
      --amp-dtype bfloat16 --batch-size 256 --out runs/r50-imagenet
  rgprune imp --model hf:./my-bert --task glue-sst2:~/glue/SST-2 --device cuda --amp --out runs/bert-sst2

Every run prints a line per epoch (loss, training accuracy, time, approximate ETA of the round and
the run) and per round, also when written to a file (progress bars only on a terminal), appends the
same lines to run.log in the run directory, and ends with the path of its report; --quiet prints
nothing but errors (run.log is still written).

Run the same command again to resume an interrupted run: it continues after the last complete round
and gives the same result as an uninterrupted run. A directory holding a run with other settings is
refused. Without --out the run goes to runs/<model>-<task>-<config hash>.
"""
#: the extra values of a list option: every choice, or none
ALL, NONE = "all", "none"


def _number_type(kind: type, bounds: dict | None) -> Callable[[str], int | float]:
    """An argparse type: the text as ``kind``, checked against the field's bounds at parse time."""

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            kind_name = "an int" if kind is int else "a number"
            raise argparse.ArgumentTypeError(f"must be {kind_name}, got {text!r}") from None
        try:
            check_number("value", value, integer=kind is int, **(bounds or {}))
        except ConfigError:
            raise argparse.ArgumentTypeError(
                f"must be {describe_bounds(**bounds) if bounds else 'finite'}, got {value}"
            ) from None
        return value

    parse.__name__ = kind.__name__  # argparse names the type in its "invalid <type> value" messages
    return parse


def _spec_type(f: dataclasses.Field) -> Callable[[str], str]:
    """An argparse type: the spec, checked by the field's parser at parse time."""

    def parse(text: str) -> str:
        try:
            f.metadata["parse"](text)
        except (ValueError, TypeError) as exc:
            raise argparse.ArgumentTypeError(f"invalid choice: {text!r}: {exc}") from None
        return text

    parse.__name__ = f.name  # argparse names the type in its "invalid <type> value" messages
    return parse


def _help(f: dataclasses.Field, kind: type, choices) -> str:
    meta = f.metadata
    text = meta["help"]
    if meta["forms"] is not None:  # a spec: its valid forms
        text += ": " + meta["forms"]()
    elif kind is tuple and choices is not None:
        text += f"; {ALL} for every one"
    if meta["default_text"] is not None:
        text += f" (default: {meta['default_text']})"
    elif f.default is not dataclasses.MISSING and f.default is not False:
        text += f" (default: {f.default})"
    return text.replace("%", "%%")  # argparse %-formats help strings


def _field_arguments(f: dataclasses.Field, kind: type, item: type | None) -> dict:
    """The add_argument keywords of one field (besides dest and help)."""
    choices = option_choices(f)
    if kind is bool:  # store_true when off by default; --x/--no-x when on (or chosen per device) by default
        return {"action": "store_true" if f.default is False else argparse.BooleanOptionalAction, "default": None}
    if kind is tuple:
        if choices is not None:
            return {"nargs": "+", "choices": (*choices, ALL, NONE), "metavar": "NAME"}
        return {
            "nargs": "+",
            "type": _number_type(item, None) if item in (int, float) else item,
            "metavar": item.__name__.upper(),
        }
    kwargs = {}
    if kind in (int, float):
        kwargs["type"] = _number_type(kind, f.metadata["bounds"])
    elif f.metadata["parse"] is not None:
        kwargs.update(type=_spec_type(f), metavar="SPEC")
    if choices is not None:
        kwargs["choices"] = choices
    return kwargs


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    """One option per ``IMPConfig`` field (``--rewind-step`` for ``rewind_step``), its help, choices, bounds and
    default taken from the field. An option not given stays None, so that the dataclass default applies."""
    types, items = field_types(), field_item_types()
    for f in dataclasses.fields(IMPConfig):
        kind = types[f.name]
        kwargs = {
            "dest": f.name,
            "help": _help(f, kind, option_choices(f)),
            **_field_arguments(f, kind, items.get(f.name)),
        }
        if f.default is dataclasses.MISSING:
            kwargs["required"] = True
        parser.add_argument(option_flag(f.name), **kwargs)


def config_from_args(args: argparse.Namespace) -> IMPConfig:
    """The ``IMPConfig`` of the options given (``all``/``none`` expanded in list options)."""
    types, given = field_types(), {}
    for f in dataclasses.fields(IMPConfig):
        value = getattr(args, f.name, None)
        if value is None:
            continue
        if types[f.name] is tuple:
            choices = option_choices(f)
            if choices is not None:
                value = tuple(choices) if ALL in value else tuple(v for v in value if v != NONE)
            value = tuple(value)
        given[f.name] = value
    return IMPConfig(**given)


def add_imp_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "imp",
        help="iterative magnitude pruning with rewinding (lottery tickets), resumable",
        description="Train, prune the smallest-magnitude fraction of the surviving weights (ranked "
        "globally), rewind the survivors and train again, for --rounds rounds; every "
        "round is checkpointed in --out.",
        epilog=IMP_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_config_arguments(p)
    p.add_argument("--out", help="run directory (default: runs/<model>-<task>-<config hash>)")
    add_threads_and_quiet(
        p,
        "CPU threads for torch (default: torch's choice; 1 is often fastest for small models "
        "on a busy machine). Resume with the same count for bit-identical results",
        "print nothing but errors; the run directory's run.log still gets every line (not part of the config: "
        "the run's name and hash are the same with or without it)",
    )
    p.set_defaults(func=run_imp_command)
    return p


def run_imp_command(args: argparse.Namespace, out=None):
    """``rgprune imp``: build the IMPConfig from the options, run or resume (a line per epoch and per round), print
    the table, end with the report's path. ``--quiet``: nothing printed but errors; run.log gets every line. Errors
    name options by their flags (``--text-columns``, not ``TextOptions.text_columns``)."""
    from rgprune.data.options import naming_options
    from rgprune.imp import RunDir, run_imp

    out = out or sys.stdout
    set_threads(args)
    with naming_options(cli_option_names()):
        config = config_from_args(args)
        out_dir = args.out or os.path.join("runs", config.name)
        with _torchrun_process_group(config.device) as rank:  # rank 0 (or the only process) prints
            printed = rank == 0 and not args.quiet
            if printed:
                print(
                    f"IMP {config.name}: {config.model} on {config.task}, {config.rounds} rounds of pruning "
                    f"{config.fraction:g} of the survivors, rewinding to step {config.rewind_step}; run directory "
                    f"{out_dir}",
                    file=out,
                    flush=True,
                )
            result = run_imp(config, out_dir, progress=printed, stream=out)
            if rank == 0:
                run = RunDir(out_dir)
                lines = [*result.table().splitlines(), f"run directory: {out_dir}"]
                if run.report_path.is_file():  # a complete run ends with its flow report
                    lines.append(f"report: {run.report_path}")
                with contextlib.suppress(OSError):  # the run is complete; a log it cannot end is no error
                    run.append_log(lines)
                if printed:
                    print("\n" + "\n".join(lines), file=out, flush=True)
    return result


@contextlib.contextmanager
def _torchrun_process_group(device: str) -> Iterator[int]:
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


def add_demo_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "demo",
        help="the quick-start demo (make demo): a short IMP run on digits",
        description="Iterative magnitude pruning of ResNet-20 on the sklearn digits (16x16), with the "
        "random-reinit and random-mask baselines: a few minutes on a CPU.",
        epilog="example: rgprune demo --out runs/demo",
    )
    p.add_argument("--out", default=os.path.join("runs", "demo"), help="run directory (default: runs/demo)")
    p.add_argument("--rounds", type=positive_int, default=5, help="pruning rounds (default: 5)")
    p.add_argument("--epochs", type=positive_int, default=4, help="epochs per round (default: 4)")
    p.add_argument("--seed", type=nonnegative_int, default=0)
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto (default: cpu)")
    add_threads_and_quiet(
        p,
        "CPU threads for torch (default: torch's choice; try 1 on a busy machine)",
        "no progress bars or per-round lines",
    )
    p.set_defaults(func=demo_command)
    return p


def demo_command(args: argparse.Namespace, out=None):
    """``rgprune demo``: a short IMP run (ResNet-20 on 16x16 digits, baselines on) in a few CPU minutes."""
    from rgprune.imp import BASELINES, RunDir, run_imp

    out = out or sys.stdout
    set_threads(args)
    config = IMPConfig(
        model="resnet20",
        task="digits",
        rounds=args.rounds,
        epochs=args.epochs,
        image_size=16,
        batch_size=64,
        lr=0.1,
        rewind_step=10,
        seed=args.seed,
        device=args.device,
        baselines=BASELINES,
    )
    print(
        f"rgprune demo: iterative magnitude pruning of ResNet-20 on sklearn digits (16x16), {config.rounds} "
        f"rounds of {config.epochs} epochs, rewinding to step {config.rewind_step}, with the random-reinit "
        f"and random-mask baselines; run directory {args.out}",
        file=out,
        flush=True,
    )
    result = run_imp(config, args.out, progress=not args.quiet)
    print(f"\n{result.table()}\n\nrun directory: {args.out}", file=out, flush=True)
    run = RunDir(args.out)  # a complete run ends with its flow report
    print(flow_summary(run.flow_path, run.report_path), file=out, flush=True)
    return result
