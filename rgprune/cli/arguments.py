"""Argument types and options shared by the ``rgprune`` subcommands."""

from __future__ import annotations

import argparse
from typing import NoReturn

__all__ = ["ShortErrorParser", "add_threads_and_quiet", "fraction", "nonnegative_int", "positive_int", "set_threads"]


class ShortErrorParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose usage errors (a bad value, a missing or unknown option) print two lines, not
    the whole usage first: ``PROG: error: MESSAGE`` and where to find the options; exit status 2, as argparse.
    Its subparsers (``add_subparsers``) are of the same class, so ``rgprune imp`` errors alike."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\nrun '{self.prog} --help' for the options\n")


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def nonnegative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def fraction(text: str) -> float:
    value = float(text)
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1 (exclusive), got {value}")
    return value


def add_threads_and_quiet(parser: argparse.ArgumentParser, threads_help: str, quiet_help: str) -> None:
    """``--threads`` (CPU threads for torch) and ``--quiet``, options of the commands that train."""
    parser.add_argument("--threads", type=positive_int, help=threads_help)
    parser.add_argument("--quiet", action="store_true", help=quiet_help)


def set_threads(args: argparse.Namespace) -> None:
    """Apply ``--threads`` (when given) to torch."""
    if getattr(args, "threads", None):
        import torch

        torch.set_num_threads(args.threads)
