"""What the IMP tests share: reading a run directory's rounds, comparing two runs bit for bit, and a run of
``rgprune imp`` SIGKILLed in its last round (after round 2 wrote its files, before it was marked complete)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import torch
from safetensors.torch import load_file

from rgprune import MaskSet

REPO = Path(__file__).resolve().parents[1]


def round_files(out: Path, n: int) -> dict:
    folder = out / f"round-{n:02d}"
    return {"weights": load_file(str(folder / "weights.safetensors")),
            "masks": MaskSet.load(folder / "masks.safetensors"),
            "metrics": json.loads((folder / "metrics.json").read_text()),
            "observables": json.loads((folder / "observables.json").read_text())}


def assert_same_run(out_a: Path, out_b: Path, rounds: int) -> None:
    """Two run directories hold bit-identical rounds (masks, weights, observables, metrics up to timings)."""
    for n in range(rounds + 1):
        a, b = round_files(out_a, n), round_files(out_b, n)
        assert a["masks"] == b["masks"], f"round {n}: masks differ"
        assert a["weights"].keys() == b["weights"].keys()
        for key in a["weights"]:
            assert torch.equal(a["weights"][key], b["weights"][key]), f"round {n}: {key} differs"
        assert a["observables"] == b["observables"], f"round {n}: observables differ"
        for m in (a["metrics"], b["metrics"]):
            m.pop("timings")
            m.pop("train_s", None)
            for base in m["baselines"].values():
                base.pop("seconds")
        assert a["metrics"] == b["metrics"], f"round {n}: metrics differ"
    for name in ("init.safetensors", "rewind.safetensors"):
        sa, sb = load_file(str(out_a / name)), load_file(str(out_b / name))
        assert all(torch.equal(sa[k], sb[k]) for k in sa)


KILL_SCRIPT = textwrap.dedent("""
    import sys, time
    from rgprune.cli import main
    from rgprune.imp import RunDir

    real_save = RunDir.save_round_metrics

    def save_round_metrics(self, n, metrics):
        if n < 2:
            return real_save(self, n, metrics)
        # round 2 has written its other files: leave a half-written one, then hang before the completion
        # marker (metrics.json)
        (self.round_dir(n) / ".tmp-halfwritten").write_bytes(b"partial")
        print("HANGING", flush=True)
        time.sleep(600)

    RunDir.save_round_metrics = save_round_metrics
    sys.exit(main(sys.argv[1:]))
""")


def kill_in_round_2(args: list[str], out: Path, timeout: float = 240) -> None:
    """Run ``rgprune ARGS --out OUT`` in a subprocess (one CPU thread) and SIGKILL it once round 2 has written its
    files but not its completion marker; rounds 0 and 1 are then complete."""
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""),
           "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-c", KILL_SCRIPT, *args, "--out", str(out)], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + timeout
        partial_file = out / "round-02" / ".tmp-halfwritten"
        while not partial_file.exists():
            assert proc.poll() is None, f"the run exited early: {proc.communicate()}"
            assert time.monotonic() < deadline, "round 2 never started"
            time.sleep(0.05)
        assert (out / "round-01" / "metrics.json").is_file()
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.communicate()
    assert proc.returncode == -signal.SIGKILL
