"""run_imp under torchrun: 2 ranks (gloo on the CPU, 127.0.0.1), DDP training on data shards, rank 0 alone
writing one run directory, resume after an interrupted round and with nothing left to do.

Fast: ResNet-20 on the 8x8 digits, one epoch per round, one pruning round, one thread per rank.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
from run_helpers import accuracy_of
from safetensors.torch import load as safetensors_load
from safetensors.torch import load_file

from rgprune.data import load_task
from rgprune.imp.pipeline import EVAL_BATCH
from rgprune.models import build_model

pytestmark = [
    pytest.mark.skipif(
        not (dist.is_available() and dist.is_gloo_available()),
        reason="torch.distributed with gloo is not available in this torch build",
    ),
    pytest.mark.timeout(400),
]

REPO = Path(__file__).resolve().parents[1]
ARGS = [
    "imp",
    "--model",
    "resnet20",
    "--task",
    "digits",
    "--rounds",
    "1",
    "--epochs",
    "1",
    "--image-size",
    "8",
    "--batch-size",
    "128",
    "--threads",
    "1",
]  # no --quiet: the resume line is wanted (no bars: not a tty)
# rewind step 0 (the default): θ_k is θ_init, saved once (init.safetensors, no rewind.safetensors)
RUN_FILES = {"config.json", "init.safetensors", "metrics.json", "trace.json"}
ROUND_FILES = {"weights.safetensors", "masks.safetensors", "observables.json", "metrics.json"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _torchrun(out: Path, *extra: str, nproc: int = 2) -> subprocess.CompletedProcess:
    env = dict(
        os.environ,
        OMP_NUM_THREADS="1",
        RGPRUNE_DIST_TIMEOUT="60",
        PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
    )
    if sys.platform.startswith("linux"):
        env.setdefault("GLOO_SOCKET_IFNAME", "lo")
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc-per-node",
        str(nproc),
        "--master-addr",
        "127.0.0.1",
        "--master-port",
        str(_free_port()),
        "-m",
        "rgprune.cli",
        *ARGS,
        "--out",
        str(out),
        *extra,
    ]
    return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)


def _snapshot(out: Path) -> dict[str, tuple[int, bytes]]:
    """{relative path: (mtime_ns, bytes)} of every round file."""
    return {
        str(p.relative_to(out)): (p.stat().st_mtime_ns, p.read_bytes())
        for p in sorted(out.glob("round-*/*"))
        if p.is_file()
    }


def test_imp_under_torchrun_writes_one_run_and_resumes(tmp_path):
    out = tmp_path / "run"
    first = _torchrun(out)
    assert first.returncode == 0, first.stdout + first.stderr
    # rank 0 alone prints: one header, one table
    assert first.stdout.count("IMP resnet20-digits-") == 1, first.stdout
    assert first.stdout.count("round  density  accuracy") == 1, first.stdout

    # one run directory, written by rank 0 only: exactly the expected files, no leftovers of a second writer
    top = {p.name for p in out.iterdir() if p.is_file() and not p.name.startswith(".")}
    assert RUN_FILES <= top and "rewind.safetensors" not in top
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == ["round-00", "round-01"]
    for n in (0, 1):
        assert {p.name for p in (out / f"round-{n:02d}").iterdir()} == ROUND_FILES
    assert not list(out.rglob(".tmp-*"))
    summary = json.loads((out / "metrics.json").read_text())
    assert summary["complete"] is True
    # exact survivor counts of ResNet-20's 267408 prunable weights (53482 pruned), and each round's accuracy counted
    # here from the weights rank 0 saved, on the whole test set: guards against a pruner off by a few weights and an
    # accuracy taken in training mode or of another model, which densities within 1e-5 and 0 <= accuracy <= 1 passed
    assert [(r["survivors"], r["weights"]) for r in summary["rounds"]] == [(267408, 267408), (213926, 267408)]
    assert [r["density"] for r in summary["rounds"]] == [1.0, 213926 / 267408]
    test = load_task("digits", image_size=8).test
    for n, r in enumerate(summary["rounds"]):
        assert r["round"] == n and r["world_size"] == 2
        weights = load_file(str(out / f"round-{n:02d}" / "weights.safetensors"))
        assert r["accuracy"] == accuracy_of(
            build_model("resnet20", 10, in_channels=1), weights, test, max(EVAL_BATCH, 128)
        )
    masks = load_file(str(out / "round-01" / "masks.safetensors"))
    assert masks  # the mask of round 1 (density 0.8) as saved by rank 0
    # steps per rank: 1437 training digits -> 719 per rank (padded) -> 6 batches of 128
    assert summary["rounds"][0]["steps"] == summary["total_steps"] == 6

    # an interrupted last round (its files gone): the same command redoes it, bit for bit, from round 0's files
    complete = _snapshot(out)
    shutil.rmtree(out / "round-01")
    second = _torchrun(out)
    assert second.returncode == 0, second.stdout + second.stderr
    assert "resumed at round 1 (round 0 complete)" in second.stdout, second.stdout
    redone = _snapshot(out)
    assert redone.keys() == complete.keys()
    for name, (mtime, data) in complete.items():
        if name.startswith("round-00"):
            assert redone[name] == (mtime, data), f"{name} was rewritten"
        elif name.endswith(".safetensors"):  # tensors (the header's metadata order may vary; json holds timings)
            a, b = load_file(str(out / name)), safetensors_load(data)
            assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), (
                f"{name} differs from the uninterrupted run"
            )

    # nothing left to do: the table again, no round rewritten
    third = _torchrun(out)
    assert third.returncode == 0, third.stdout + third.stderr
    assert "resumed after round 1: nothing left to train" in third.stdout, third.stdout
    assert third.stdout.count("round  density  accuracy") == 1, third.stdout
    # rank 0 alone writes run.log: one start line, the two resumes appended after it
    log = (out / "run.log").read_text()
    assert log.count("started resnet20-digits-") == 1 and log.count("resumed ") == 2, log
    assert _snapshot(out) == redone

    # another config in the same directory: refused on every rank (rank 0 decides and broadcasts), nothing written
    fourth = _torchrun(out, "--fraction", "0.5")
    assert fourth.returncode != 0
    assert "different config" in fourth.stderr
    assert _snapshot(out) == redone
