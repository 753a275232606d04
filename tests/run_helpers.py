"""What the IMP tests share: a tiny model and data set for the Python API, reading a run directory's rounds,
comparing two runs bit for bit, an accuracy counted independently of the runner, fault injection at the real
writes of a run (``WriteFaults``), and a run of ``rgprune imp`` SIGKILLed at one of its writes (by default in its
last round: after round 2 wrote its other files, before its completion marker)."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import textwrap
import traceback
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from torch import nn
from torch.utils.data import TensorDataset

from rgprune import MaskSet

REPO = Path(__file__).resolve().parents[1]


# ---- a tiny model and data set for run_imp(model_fn=..., train=..., test=...) -----------------------------------


class TinyConvNet(nn.Module):
    def __init__(self, num_classes: int, in_channels: int):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, 6, 3, padding=1)
        self.norm = nn.BatchNorm2d(6)
        self.head = nn.Linear(6, num_classes)
        self.seen = []  # (channels_last input, autocast dtype or None) per forward

    def forward(self, x):
        autocast = torch.get_autocast_dtype("cpu") if torch.is_autocast_enabled("cpu") else None
        self.seen.append((x.is_contiguous(memory_format=torch.channels_last), autocast))
        return self.head(torch.relu(self.norm(self.conv(x))).mean((2, 3)))


def blobs(n: int, seed: int) -> TensorDataset:
    """n 3x6x6 images of 3 classes (Gaussian noise shifted by the label)."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 3
    return TensorDataset(torch.randn(n, 3, 6, 6, generator=g) + labels[:, None, None, None].float(), labels)


# ---- reading and comparing run directories ----------------------------------------------------------------------


def round_files(out: Path, n: int) -> dict:
    folder = out / f"round-{n:02d}"
    return {
        "weights": load_file(str(folder / "weights.safetensors")),
        "masks": MaskSet.load(folder / "masks.safetensors"),
        "metrics": json.loads((folder / "metrics.json").read_text()),
        "observables": json.loads((folder / "observables.json").read_text()),
    }


def without_timings(metrics: dict) -> dict:
    """A round's metrics less what depends on the clock (timings, training and baseline seconds)."""
    m = json.loads(json.dumps(metrics))
    m.pop("timings")
    m.pop("train_s", None)
    for base in m["baselines"].values():
        base.pop("seconds")
    return m


def assert_same_run(out_a: Path, out_b: Path, rounds: int) -> None:
    """Two run directories hold bit-identical rounds (masks, weights, observables, metrics up to timings)."""
    for n in range(rounds + 1):
        a, b = round_files(out_a, n), round_files(out_b, n)
        assert a["masks"] == b["masks"], f"round {n}: masks differ"
        assert a["weights"].keys() == b["weights"].keys()
        for key in a["weights"]:
            assert torch.equal(a["weights"][key], b["weights"][key]), f"round {n}: {key} differs"
        assert a["observables"] == b["observables"], f"round {n}: observables differ"
        assert without_timings(a["metrics"]) == without_timings(b["metrics"]), f"round {n}: metrics differ"
    from rgprune.imp import RunDir

    run_a, run_b = RunDir(out_a), RunDir(out_b)
    for name in ("init", "rewind"):  # θ_k as RunDir reads it (from init.safetensors when it is θ_init)
        sa, sb = getattr(run_a, f"load_{name}")(), getattr(run_b, f"load_{name}")()
        assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa), f"{name} differs"


def accuracy_of(model: nn.Module, state: dict, test, batch_size: int) -> float:
    """Top-1 accuracy of ``model`` holding ``state`` (a full state dict) on the vision data set ``test``, counted
    here rather than by ``rgprune.train.evaluate``: the value a run's metrics must record. ``batch_size``: the
    run's evaluation batch (rgprune.imp.pipeline.EVAL_BATCH or more), and one CPU thread as the tests' runs, so the
    logits are summed in the same order."""
    model.load_state_dict(state)
    model.eval()
    correct, threads = 0, torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.no_grad():
            for start in range(0, len(test), batch_size):
                images, labels = zip(*(test[i] for i in range(start, min(start + batch_size, len(test)))))
                correct += int((model(torch.stack(images)).argmax(dim=1) == torch.stack(labels)).sum())
    finally:
        torch.set_num_threads(threads)
    return correct / len(test)


# ---- fault injection at the real writes -------------------------------------------------------------------------


class WriteFaults:
    """Fault injection at the real writes into a run directory, for tests.

    Every ``rgprune._io.atomic_write`` ends by renaming its complete temp file into place (``os.replace``); inside
    ``with WriteFaults(root, at=(name, i), action=...)`` that rename is watched for destinations under ``root``.
    Each write is recorded in ``writes`` as its path relative to ``root`` (``"round-01/weights.safetensors"``).
    At the ``i``-th write (0-based) of the file ``name`` (relative to ``root``):

    - ``action="raise"``: the write fails with ``OSError(ENOSPC)`` (atomic_write then removes its temp file);
    - ``action="kill"``: the process SIGKILLs itself: the temp file is left complete but never renamed into place
      and no cleanup of the process runs, as when the machine kills it between two writes.

    Nothing is patched outside the ``with`` block; renames elsewhere pass through untouched.
    """

    def __init__(self, root: str | os.PathLike, at: tuple[str, int] | None = None, action: str = "raise"):
        if action not in ("raise", "kill"):
            raise ValueError(f"action is 'raise' or 'kill', got {action!r}")
        self.root, self.at, self.action = Path(root).resolve(), at, action
        self.writes: list[str] = []
        self.fired = False
        self._real = os.replace

    def _replace(self, src, dst, *args, **kwargs):
        try:
            name = Path(os.path.abspath(dst)).resolve().relative_to(self.root).as_posix()
        except ValueError:  # not a write into the run directory
            return self._real(src, dst, *args, **kwargs)
        if self.at is not None and self.at == (name, self.writes.count(name)):
            self.fired = True
            if self.action == "kill":
                sys.stdout.flush()
                os.kill(os.getpid(), signal.SIGKILL)
            raise OSError(errno.ENOSPC, f"No space left on device (injected at write {self.at} by WriteFaults)")
        self.writes.append(name)
        return self._real(src, dst, *args, **kwargs)

    def __enter__(self) -> WriteFaults:
        os.replace = self._replace
        return self

    def __exit__(self, *exc) -> None:
        os.replace = self._real


#: the two ways a write is interrupted, to parametrize a test with: it fails ("raise"), or the process is SIGKILLed
#: at it ("kill": a forked copy of the test process, so POSIX only)
FAIL_OR_KILL = [
    "raise",
    pytest.param("kill", marks=pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork (POSIX only)")),
]


def killed_at(root: str | os.PathLike, at: tuple[str, int], work) -> None:
    """Call ``work()`` in a forked copy of this process that SIGKILLs itself at the write ``at`` under ``root``
    (``WriteFaults``), and check that it was killed there. The writes before it are in place and its temp file is
    left complete, not renamed. POSIX only (``os.fork``); no interpreter starts per kill."""
    pid = os.fork()
    if pid == 0:  # the child runs until WriteFaults kills it; whatever else happens, it must not return to pytest
        try:
            with WriteFaults(root, at=at, action="kill"):
                work()
            print(f"the work finished without reaching the write {at}", flush=True)
        except BaseException:
            traceback.print_exc()
        finally:
            os._exit(70)
    _, status = os.waitpid(pid, 0)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL, (
        f"not killed at {at}: wait status {status} (the child's output is above)"
    )


#: a tiny ``rgprune imp`` run (ResNet-20 on the 8x8 digits, two rounds, both baselines): add ``--out DIR``
# fmt: off
TINY_ARGS = ["imp", "--model", "resnet20", "--task", "digits", "--rounds", "2", "--epochs", "1", "--image-size", "8",
             "--batch-size", "128", "--rewind-step", "3", "--baselines", "all", "--quiet"]
# fmt: on


# ---- `rgprune ...` SIGKILLed at one of its writes, in a subprocess ------------------------------------------------

KILL_SCRIPT = textwrap.dedent("""
    import json, os, sys
    sys.path.insert(0, os.environ["RGPRUNE_TEST_HELPERS"])
    from run_helpers import WriteFaults
    from rgprune.cli import main

    at = tuple(json.loads(os.environ["RGPRUNE_TEST_KILL_AT"]))
    with WriteFaults(os.environ["RGPRUNE_TEST_OUT"], at=at, action="kill"):
        code = main(sys.argv[1:])
    sys.exit(f"the run ended (exit code {code}) without reaching the write {at} it was to be killed at")
""")


def kill_at(args: list[str], out: Path, at: tuple[str, int], timeout: float = 240) -> None:
    """Run ``rgprune ARGS --out OUT`` in a subprocess (one CPU thread) that SIGKILLs itself at the write ``at``
    (``WriteFaults``): the writes before it are in place, its temp file is left complete and not renamed."""
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""),
        "OMP_NUM_THREADS": "1",
        "RGPRUNE_TEST_HELPERS": str(Path(__file__).parent),
        "RGPRUNE_TEST_OUT": str(out),
        "RGPRUNE_TEST_KILL_AT": json.dumps(list(at)),
    }
    proc = subprocess.run(
        [sys.executable, "-c", KILL_SCRIPT, *args, "--out", str(out)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert proc.returncode == -signal.SIGKILL, f"not killed at {at}: exit code {proc.returncode}\n{proc.stderr}"


def kill_in_round_2(args: list[str], out: Path, timeout: float = 240) -> None:
    """``kill_at`` round 2's completion marker: rounds 0 and 1 are complete, round 2 wrote its other files and
    left the marker's temp file."""
    kill_at(args, out, ("round-02/metrics.json", 0), timeout)
    assert (out / "round-01" / "metrics.json").is_file()
    assert len(list((out / "round-02").glob(".tmp-*metrics.json"))) == 1
